"""Every real backbone family, assembled at tiny random configs of the very classes real checkpoints
use (Qwen2.5-VL planner; SANA + AutoencoderDC, FLUX.1-Kontext + AutoencoderKL, Wan + AutoencoderKLWan),
saved as a model folder and loaded back the way a user's folder is: in float32, bfloat16 and float16,
through every task the family does. Also the conditions each video task depends on (image-to-video's
clean first frame, video edit's source clip, reference video's references), the autoencoder's latent
size, a byte-level BPE tokenizer like Qwen's, and model folders that point at parts elsewhere."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (AutoencoderDC, AutoencoderKL, AutoencoderKLWan, FluxTransformer2DModel,
                       SanaTransformer2DModel, WanTransformer3DModel)
from transformers import Qwen2_5_VLModel

from app.core.backbones.flux import FluxAdapter, tiny_flux_config
from app.core.backbones.sana import SanaAdapter, tiny_sana_config
from app.core.backbones.wan import WanAdapter, tiny_wan_config
from app.core.canvas import CanvasSpec, CanvasTokens
from app.core.checkpoints import ModelFolderError, load_model, save_model
from app.core.latents import DiffusersVAECodec
from app.core.pipeline import MetaCanvasPipeline, PipelineDefaults
from app.core.planner import Planner, PlannerProcessor, tiny_qwen25vl_config
from app.core.request import GenerationRequest, Task

WORDS = "a the of red blue green circle star square moves right left make from first second image".split()
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
SIZE = 32


def _planner(processor=None, hidden=32):
    processor = processor or PlannerProcessor.word_level(WORDS, patch_size=4, min_pixels=16 * 16, max_pixels=32 * 32)
    config = tiny_qwen25vl_config(len(processor.tokenizer), hidden=hidden, layers=1, vision_hidden=32,
                                  vision_depth=1, patch_size=4, tokenizer=processor.tokenizer)
    return Planner(Qwen2_5_VLModel(config), processor, CanvasTokens(CanvasSpec(1, 4, 4), hidden))


def _nudge(adapter):
    """Give the zero-initialised connector outputs a little weight, so the canvas really acts."""
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if ("canvas_connector" in name or "pooled_proj" in name) and p.abs().sum() == 0:
                p.normal_(0, 0.05)


def tiny_dc_ae() -> AutoencoderDC:
    """SANA's deep-compression autoencoder at a tiny size: three stages, so 4x spatial compression."""
    return AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=4,
                         encoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
                         decoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
                         encoder_block_out_channels=(8, 16, 16), decoder_block_out_channels=(8, 16, 16),
                         encoder_layers_per_block=(1, 1, 1), decoder_layers_per_block=(1, 1, 1),
                         encoder_qkv_multiscales=((), (), (5,)), decoder_qkv_multiscales=((), (), (5,)),
                         upsample_block_type="interpolate", downsample_block_type="Conv",
                         decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41)


def tiny_kl_vae() -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4)


def tiny_wan_vae() -> AutoencoderKLWan:
    return AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[True],
                            latents_mean=[0.0] * 4, latents_std=[1.0] * 4, scale_factor_temporal=2,
                            scale_factor_spatial=2)


def build_family(family: str, processor=None) -> MetaCanvasPipeline:
    torch.manual_seed(0)
    planner = _planner(processor)
    if family == "sana":
        adapter = SanaAdapter(SanaTransformer2DModel(**tiny_sana_config()), mllm_dim=32)
        vae, tasks = tiny_dc_ae(), ("text_to_image", "image_edit")
    elif family == "flux":
        adapter = FluxAdapter(FluxTransformer2DModel(**tiny_flux_config()), mllm_dim=32)
        vae, tasks = tiny_kl_vae(), ("text_to_image", "image_edit")
    else:
        adapter = WanAdapter(WanTransformer3DModel(**tiny_wan_config()), mllm_dim=32, context_dropout=0.0)
        vae, tasks = tiny_wan_vae(), ("text_to_video", "image_to_video", "video_edit", "reference_to_video")
    _nudge(adapter)
    defaults = PipelineDefaults(width=SIZE, height=SIZE, steps=2, tasks=tasks)
    return MetaCanvasPipeline(planner, adapter, DiffusersVAECodec(vae), defaults, name=f"tiny-{family}").eval()


def _image(seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def _clip(seed: int, frames: int = 5) -> np.ndarray:
    return np.stack([_image(seed * 100 + k) for k in range(frames)])


def requests_for(family: str) -> list[GenerationRequest]:
    """One request per task the family does, small enough for the CPU."""
    common = dict(width=SIZE, height=SIZE, steps=2, seed=3)
    if family in ("sana", "flux"):
        return [GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle left of a blue star", **common),
                GenerationRequest(Task.IMAGE_EDIT, "make the circle green", images=[_image(1)], **common)]
    video = dict(common, frames=5)
    return [GenerationRequest(Task.TEXT_TO_VIDEO, "a red circle moves right", **video),
            GenerationRequest(Task.IMAGE_TO_VIDEO, "the circle moves right", images=[_image(2)], **video),
            GenerationRequest(Task.VIDEO_EDIT, "make the circle blue", video=_clip(3), **video),
            GenerationRequest(Task.REFERENCE_TO_VIDEO, "the circle from the first image moves right",
                              images=[_image(4), _image(5)], **video)]


@pytest.fixture(scope="module")
def family_folders(tmp_path_factory):
    """Each family's model, saved once as a float32 model folder."""
    root = tmp_path_factory.mktemp("families")
    return {family: save_model(build_family(family), root / family) for family in ("sana", "flux", "wan")}


@pytest.fixture(scope="module")
def float32_frames(family_folders):
    out = {}
    for family, folder in family_folders.items():
        pipe = load_model(folder, dtype=torch.float32)
        out[family] = [pipe(r).frames for r in requests_for(family)]
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("family", ["sana", "flux", "wan"])
def test_every_family_runs_every_task_in_each_precision(family_folders, float32_frames, family, dtype, monkeypatch):
    # The large parts must arrive in the asked precision straight from the files: with the final
    # whole-pipeline cast switched off, they are already in `dtype` (no float32 detour in host memory).
    monkeypatch.setattr(MetaCanvasPipeline, "to", lambda self, device=None, dtype=None: self)
    raw = load_model(family_folders[family], dtype=dtype)
    assert raw.planner.mllm.dtype == dtype and raw.adapter.transformer.dtype == dtype
    # An SD-style autoencoder (force_upcast, FLUX's AutoencoderKL) stays float32 under float16.
    assert raw.codec.vae.dtype == (torch.float32 if raw.codec.keeps_float32(dtype) else dtype)
    monkeypatch.undo()

    pipe = load_model(family_folders[family], dtype=dtype)
    assert pipe.dtype == dtype
    tolerance = 1.0 if dtype == torch.float32 else 12.0  # mean |difference| in 0..255 levels
    for request, reference in zip(requests_for(family), float32_frames[family]):
        frames = pipe(request).frames
        assert frames.shape == reference.shape == (request.frames, SIZE, SIZE, 3)
        difference = np.abs(frames.astype(np.float32) - reference).mean()
        assert difference <= tolerance, f"{request.task.value} in {dtype}: {difference:.2f} levels from float32"


def test_the_embedded_default_architecture_runs_in_half_precision(tmp_path):
    """The default model's own parts (word-level planner with its layout and edit drafters, pixel-space
    SANA) in bfloat16 and float16: the drafter once promoted half-precision embeddings to float32 and
    crashed every generation."""
    import os

    from app.train.build import build_model
    from app.train.recipe import Recipe

    recipe = Recipe.load(os.path.join(os.path.dirname(__file__), "..", "..", "app", "train", "recipes", "tiny-test.json"))
    recipe.model.canvas_drafts = recipe.model.edit_drafts = True
    recipe.model.edit_drafter_pixels = 8
    torch.manual_seed(0)
    folder = save_model(build_model(recipe).eval(), tmp_path / "model")
    make = GenerationRequest(Task.TEXT_TO_IMAGE, "a green square above a red star", steps=3, seed=9)
    reference = load_model(folder)(make).frames
    edit = GenerationRequest(Task.IMAGE_EDIT, "make the square red", images=[reference[0]], steps=3, seed=9)
    edited = load_model(folder)(edit).frames
    for dtype in (torch.bfloat16, torch.float16):
        pipe = load_model(folder, dtype=dtype)
        assert pipe.planner.drafter is not None and pipe.planner.edit_drafter is not None
        result = pipe(make)
        assert result.plan.draft is not None  # the drafter ran, in `dtype`
        assert np.abs(result.frames.astype(np.float32) - reference).mean() < 12.0
        assert np.abs(pipe(edit).frames.astype(np.float32) - edited).mean() < 12.0


# ------------------------------------------------------------------ what each video task depends on

@pytest.fixture(scope="module")
def wan_pipe():
    return build_family("wan")


def test_image_to_video_keeps_the_given_first_frame_clean_at_every_step(wan_pipe):
    pipe = wan_pipe
    image = _image(7)
    request = GenerationRequest(Task.IMAGE_TO_VIDEO, "the circle moves right", images=[image], width=SIZE,
                                height=SIZE, frames=5, steps=3, seed=1)
    clean = pipe.codec.encode(image, SIZE, SIZE, pipe.device, pipe.dtype)[:, :, :1]
    seen = []
    result = pipe(request, callback=lambda info: seen.append(info.latents[:, :, :1].clone()), preview=False)
    assert len(seen) == 3
    for latent in seen:
        assert torch.equal(latent, clean)
    # And so the first decoded frame is the image as the autoencoder gives it back, unlike the others.
    roundtrip = pipe.codec.decode(clean)[0].astype(np.float32)
    assert np.abs(result.frames[0] - roundtrip).mean() < 1.0
    assert np.abs(result.frames[-1] - roundtrip).mean() > 5.0


def _with_fixed_plan(pipe, request):
    """The plan of `request`, made once: runs that reuse it differ only in what the DiT is given."""
    return pipe._run_planner(request, with_unconditional=request.guidance > 1.0)


def _final_latents(pipe, request, plan) -> torch.Tensor:
    seen = []
    pipe(request, plan=plan, callback=lambda info: seen.append(info.latents.clone()), preview=False)
    return seen[-1]


def test_video_edit_depends_on_its_source_clip_in_the_planner_and_the_backbone(wan_pipe):
    pipe = wan_pipe
    a = GenerationRequest(Task.VIDEO_EDIT, "make the circle blue", video=_clip(1), width=SIZE, height=SIZE,
                          frames=5, steps=2, seed=4)
    b = replace(a, video=_clip(2))
    # The planner sees the clip through its vision tower ...
    assert not torch.allclose(_with_fixed_plan(pipe, a).context, _with_fixed_plan(pipe, b).context)
    # ... and the backbone gets its latents: with one plan held fixed, another source changes the result.
    plan = _with_fixed_plan(pipe, a)
    assert (_final_latents(pipe, a, plan) - _final_latents(pipe, b, plan)).abs().max() > 1e-3


def test_reference_video_depends_on_its_references_in_the_planner_and_the_backbone(wan_pipe):
    pipe = wan_pipe
    a = GenerationRequest(Task.REFERENCE_TO_VIDEO, "the circle from the first image moves right",
                          images=[_image(1), _image(2)], width=SIZE, height=SIZE, frames=5, steps=2, seed=4)
    b = replace(a, images=[_image(1), _image(3)])  # only the second reference differs
    assert not torch.allclose(_with_fixed_plan(pipe, a).context, _with_fixed_plan(pipe, b).context)
    plan = _with_fixed_plan(pipe, a)
    assert (_final_latents(pipe, a, plan) - _final_latents(pipe, b, plan)).abs().max() > 1e-3
    # Each reference is its own latent frame: a causal video VAE given the stills as one clip would
    # fold the second into the first's latent frame and lose it.
    assert pipe._reference_latents(a, pipe.device, pipe.dtype).shape[2] == 2


# ------------------------------------------------------------------ SANA's autoencoder

def test_sana_with_autoencoder_dc_plans_and_denoises_at_the_autoencoders_latent_size():
    pipe = build_family("sana")
    image = _image(1, 48)
    encoded = pipe.codec.encode(image, 48, 48, pipe.device, pipe.dtype)
    assert tuple(encoded.shape[1:]) == pipe.codec.latent_shape(48, 48) == (4, 12, 12)  # 48 px / 4
    assert pipe.codec.vae.decode(encoded / pipe.codec.scaling).sample.shape[-2:] == (48, 48)
    request = GenerationRequest(Task.IMAGE_EDIT, "make the circle green", images=[image], width=48, height=48,
                                steps=2, seed=1)
    assert pipe.adapter.token_grid(tuple(encoded.shape[1:])) == (1, 12, 12)
    assert pipe.canvas_spec(request) == CanvasSpec(1, 12, 12)
    shapes = []
    result = pipe(request, callback=lambda info: shapes.append(tuple(info.latents.shape)), preview=False)
    assert shapes == [(1, 4, 12, 12)] * 2 and result.frames.shape == (1, 48, 48, 3)


# ------------------------------------------------------------------ a byte-level BPE tokenizer, as Qwen's

def bpe_processor() -> PlannerProcessor:
    """A byte-level BPE tokenizer trained here on a few captions, with Qwen's special tokens and chat
    template: words split into several tokens, as they do with a real Qwen2.5-VL tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from app.core.planner import SPECIAL_TOKENS, tiny_image_processor

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(["a red circle left of a blue star", "make the square green", "user assistant"] * 5,
                             trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                        additional_special_tokens=SPECIAL_TOKENS[2:])
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}")
    return PlannerProcessor(tokenizer, tiny_image_processor(4, 16 * 16, 32 * 32))


def test_a_bpe_tokenizer_plans_words_it_splits_and_words_it_never_saw(tmp_path):
    processor = bpe_processor()
    assert len(processor.tokenizer.tokenize("circle")) >= 1
    assert len(processor.tokenizer.tokenize("zebra")) > 1  # unseen: split into byte pieces, never <unk>
    pipe = build_family("sana", processor=processor)
    for text in ("a red circle left of a blue star", "a zebra next to a giraffe"):
        pipe.check_instruction(text)  # a subword tokenizer reads any text: nothing is refused
        request = GenerationRequest(Task.TEXT_TO_IMAGE, text, width=SIZE, height=SIZE, steps=2, seed=1)
        assert pipe(request).frames.shape == (1, SIZE, SIZE, 3)
    edit = GenerationRequest(Task.IMAGE_EDIT, "make the square green", images=[_image(3)], width=SIZE,
                             height=SIZE, steps=2, seed=1)
    frames = pipe(edit).frames
    loaded = load_model(save_model(pipe, tmp_path / "bpe"))
    assert type(loaded.planner.processor.tokenizer.backend_tokenizer.model).__name__ == "BPE"
    assert np.array_equal(loaded(edit).frames, frames)


# ------------------------------------------------------------------ parts that live elsewhere, parts missing

def test_components_named_by_path_load_from_wherever_they_are(family_folders, tmp_path):
    """A user's model folder may point at base checkpoints kept elsewhere ({"path": FOLDER}), absolute
    or relative to the model folder; the result is the same model."""
    folder = Path(shutil.copytree(family_folders["flux"], tmp_path / "model"))
    elsewhere = tmp_path / "checkpoints"
    elsewhere.mkdir()
    index = json.loads((folder / "model_index.json").read_text())
    shutil.move(folder / "planner", elsewhere / "qwen")
    shutil.move(folder / "transformer", elsewhere / "flux-transformer")
    shutil.move(folder / "vae", elsewhere / "flux-vae")
    index["planner"] = {"path": str(elsewhere / "qwen")}
    index["transformer"] = {"path": "../checkpoints/flux-transformer"}
    index["vae"] = {"path": str(elsewhere / "flux-vae"), "class": "AutoencoderKL"}
    (folder / "model_index.json").write_text(json.dumps(index))
    request = requests_for("flux")[1]
    assert np.array_equal(load_model(folder)(request).frames, load_model(family_folders["flux"])(request).frames)


@pytest.mark.parametrize("entry, message", [
    ({"path": None}, r"planner entry's \"path\" must be a folder path"),
    ({"path": "/nowhere/qwen"}, r"planner folder /nowhere/qwen does not exist"),
    (42, r"the planner entry must be a folder name"),
])
def test_a_bad_component_entry_is_named_in_one_line(family_folders, tmp_path, entry, message):
    folder = Path(shutil.copytree(family_folders["sana"], tmp_path / "model"))
    index = json.loads((folder / "model_index.json").read_text())
    index["planner"] = entry
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match=message) as err:
        load_model(folder)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("part", ["planner", "transformer", "canvas_tokens", "context_connector"])
def test_a_model_folder_without_a_required_part_names_it_in_one_line(family_folders, tmp_path, part):
    folder = Path(shutil.copytree(family_folders["sana"], tmp_path / "model"))
    index = json.loads((folder / "model_index.json").read_text())
    del index[part]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match=f"names no {part}") as err:
        load_model(folder)
    assert "\n" not in str(err.value)


def test_weights_that_do_not_match_an_edited_config_refuse_the_load(family_folders, tmp_path):
    """diffusers only warns when a config was edited under its weights (num_layers 1 -> 2: the new
    block stays random); a model that would run wrong is refused instead."""
    folder = Path(shutil.copytree(family_folders["wan"], tmp_path / "model"))
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["num_layers"] = 2
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="do not match its config.json.*missing"):
        load_model(folder)
