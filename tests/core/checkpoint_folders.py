"""Tiny random checkpoints in the standard folder layouts users download: a transformers Qwen2.5-VL folder
and diffusers SANA, FLUX.1-Kontext and Wan2.2 pipeline folders, each written by the libraries' own
`save_pretrained`. Shared by the catalogue and assembly tests (tests/core/test_model_catalog.py,
tests/core/test_assembly.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

QWEN_HIDDEN = 32

# Qwen2.5-VL's own chat template, cut to what the planner uses (roles, images, videos, text).
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _bpe_tokenizer(extra_special: list[str] | None = None, model_max_length: int | None = None):
    """A byte-level BPE tokenizer with Qwen's special tokens (words split into pieces, as in a real one);
    `model_max_length` as CLIP's (77) where a pipeline pads to it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from app.core.planner import SPECIAL_TOKENS

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    special = SPECIAL_TOKENS + (extra_special or [])
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(["a red circle left of a blue star", "make the square green", "user assistant"] * 5,
                             trainer)
    extra = {"model_max_length": model_max_length} if model_max_length else {}
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                   additional_special_tokens=SPECIAL_TOKENS[2:], **extra)


def qwen25vl_folder(path: Path, shard: bool = True) -> Path:
    """A Qwen2.5-VL-Instruct folder as the hub ships it: config.json (model_type qwen2_5_vl), sharded
    safetensors with model.safetensors.index.json, tokenizer files, preprocessor_config.json,
    video_preprocessor_config.json and chat_template.json (the processor's template, not the tokenizer's)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from app.core.planner import tiny_image_processor, tiny_qwen25vl_config

    path = Path(path)
    tokenizer = _bpe_tokenizer()
    config = tiny_qwen25vl_config(len(tokenizer), hidden=QWEN_HIDDEN, layers=1, vision_hidden=32, vision_depth=1,
                                  patch_size=4, tokenizer=tokenizer)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.save_pretrained(str(path), max_shard_size="100KB" if shard else "10GB")
    tokenizer.save_pretrained(str(path))
    image_processor = tiny_image_processor(4, 16 * 16, 32 * 32)
    image_processor.save_pretrained(str(path))
    pre = json.loads((path / "preprocessor_config.json").read_text())
    pre.update(image_processor_type="Qwen2VLImageProcessor", processor_class="Qwen2_5_VLProcessor")
    (path / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    video = {k: pre[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")}
    video.update(video_processor_type="Qwen2VLVideoProcessor", processor_class="Qwen2_5_VLProcessor")
    (path / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    (path / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_CHAT_TEMPLATE}))
    return path


def nudge_canvas(pipe) -> None:
    """What training would do: the canvas connector's zero-initialised outputs become non-zero."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in pipe.adapter.canvas_connector.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)


def _scheduler(shift: float):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=shift)


def sana_pipeline_folder(path: Path) -> Path:
    """SanaPipeline: transformer/, vae/ (AutoencoderDC), text_encoder/ (Gemma2), tokenizer/, scheduler/."""
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    from app.core.backbones.sana import tiny_sana_config
    from tests.core.test_model_families import tiny_dc_ae

    torch.manual_seed(0)
    tokenizer = _bpe_tokenizer()
    text_encoder = Gemma2Model(Gemma2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                            head_dim=16, pad_token_id=tokenizer.pad_token_id))
    transformer = SanaTransformer2DModel(**tiny_sana_config(interpolation_scale=None))
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    pipe = SanaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=tiny_dc_ae(), transformer=transformer,
                        scheduler=scheduler)
    pipe.save_pretrained(str(path), safe_serialization=True)
    return Path(path)


def flux_kontext_pipeline_folder(path: Path) -> Path:
    """FluxKontextPipeline: transformer/, vae/ (AutoencoderKL), text_encoder/ (CLIP), tokenizer/,
    text_encoder_2/ (T5), tokenizer_2/, scheduler/."""
    from diffusers import FluxKontextPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from app.core.backbones.flux import tiny_flux_config
    from tests.core.test_model_families import tiny_kl_vae

    torch.manual_seed(0)
    tokenizer = _bpe_tokenizer()
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, projection_dim=16,
                                        max_position_embeddings=77))
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2))
    pipe = FluxKontextPipeline(scheduler=_scheduler(3.0), vae=tiny_kl_vae(), text_encoder=clip,
                               tokenizer=_bpe_tokenizer(model_max_length=77), text_encoder_2=t5, tokenizer_2=tokenizer,
                               transformer=FluxTransformer2DModel(**tiny_flux_config()))
    pipe.save_pretrained(str(path), safe_serialization=True)
    return Path(path)


def wan_pipeline_folder(path: Path, image_to_video: bool = False) -> Path:
    """WanPipeline (Wan2.2-TI2V-5B's class) or WanImageToVideoPipeline: transformer/, vae/
    (AutoencoderKLWan), text_encoder/ (UMT5), tokenizer/, scheduler/."""
    from diffusers import WanImageToVideoPipeline, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from app.core.backbones.wan import tiny_wan_config
    from tests.core.test_model_families import tiny_wan_vae

    torch.manual_seed(0)
    tokenizer = _bpe_tokenizer()
    t5 = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                     num_heads=2))
    parts = dict(tokenizer=tokenizer, text_encoder=t5, vae=tiny_wan_vae(), scheduler=_scheduler(5.0),
                 transformer=WanTransformer3DModel(**tiny_wan_config()), expand_timesteps=True)
    pipe = WanImageToVideoPipeline(**parts) if image_to_video else WanPipeline(**parts)
    pipe.save_pretrained(str(path), safe_serialization=True)
    return Path(path)


@pytest.fixture(scope="module")
def base_folders(tmp_path_factory):
    """One tiny folder of each layout, written once per test module (a few seconds in all)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {"qwen": qwen25vl_folder(root / "Qwen2.5-VL-tiny"),
            "sana": sana_pipeline_folder(root / "Sana-tiny"),
            "flux": flux_kontext_pipeline_folder(root / "FLUX.1-Kontext-tiny"),
            "wan": wan_pipeline_folder(root / "Wan2.2-TI2V-tiny"),
            "wan_i2v": wan_pipeline_folder(root / "Wan2.2-I2V-tiny", image_to_video=True)}
