"""The backbone's native text path (app/core/native_text.py) in assemblies of tiny standard-layout checkpoints.

SANA keeps its own text encoder in the method ("text + canvas"): with fresh connectors an assembly must
draw the bare diffusers SanaPipeline's image. FLUX.1-Kontext and Wan2.2 offer it beside the MLLM path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.core.assembly import assemble
from app.core.checkpoints import ModelFolderError, load_model
from app.core.model_catalog import format_table, inspect_folder
from app.core.request import GenerationRequest, Task
from tests.core.checkpoint_folders import base_folders, nudge_canvas  # noqa: F401 - a fixture

PROMPT = "a red circle left of a blue star"


@pytest.fixture(scope="module")
def sana_native(base_folders, tmp_path_factory):
    return assemble(base_folders["qwen"], base_folders["sana"], tmp_path_factory.mktemp("native") / "sana")


def test_a_fresh_sana_assembly_draws_exactly_what_the_bare_sana_pipeline_draws(base_folders, sana_native):
    from diffusers import SanaPipeline

    pipe = load_model(sana_native)
    assert pipe.adapter.text_path == "native" and type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    w, h = pipe.defaults.width, pipe.defaults.height
    ours = pipe(GenerationRequest(Task.TEXT_TO_IMAGE, PROMPT, width=w, height=h, seed=3, steps=4,
                                  guidance=4.5)).frames[0]
    bare = SanaPipeline.from_pretrained(str(base_folders["sana"]), local_files_only=True)
    # The bare pipeline with its defaults, but for resolution binning (it has no bins for a tiny sample size).
    theirs = bare(PROMPT, height=h, width=w, num_inference_steps=4, guidance_scale=4.5, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(3), use_resolution_binning=False).images[0]
    assert theirs.std() > 0.01  # a real picture, not a constant
    # The same image up to the last step's rounding to 8 bits (ours is uint8, theirs float in 0..1).
    assert np.abs(ours / 255.0 - theirs).max() <= 0.6 / 255

    # Another prompt gives another image through the native text encoder (the MLLM's states are not used).
    other = pipe(GenerationRequest(Task.TEXT_TO_IMAGE, "make the square green", width=w, height=h, seed=3, steps=4,
                                   guidance=4.5)).frames[0]
    assert not np.array_equal(other, ours)


def test_on_the_native_path_a_trained_canvas_is_added_on_top(sana_native):
    pipe = load_model(sana_native)
    request = GenerationRequest(Task.TEXT_TO_IMAGE, PROMPT, width=pipe.defaults.width, height=pipe.defaults.height,
                                seed=5, steps=3)
    plain = pipe(request).frames
    nudge_canvas(pipe)
    with_canvas = pipe(request).frames
    assert not np.array_equal(with_canvas, plain)
    assert np.array_equal(pipe(GenerationRequest(**{**request.__dict__, "use_canvas": False})).frames, plain)


def _captured_text_states(pipe):
    """Record what the backbone's transformer is given as its text input."""
    seen = {}

    def hook(module, args, kwargs):
        seen["states"] = kwargs["encoder_hidden_states"].detach().clone()
        if "pooled_projections" in kwargs:
            seen["pooled"] = kwargs["pooled_projections"].detach().clone()

    pipe.adapter.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def test_flux_and_wan_native_assemblies_feed_their_own_t5_states(base_folders, tmp_path):
    from diffusers import FluxKontextPipeline, WanPipeline

    flux = load_model(assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "flux", text_path="native"))
    seen = _captured_text_states(flux)
    source = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    # Guidance 1: FLUX.1-Kontext-dev is guidance-distilled, one row a step as its pipeline runs it.
    flux(GenerationRequest(Task.IMAGE_EDIT, PROMPT, images=[source], width=32, height=32, steps=2, seed=3,
                           guidance=1.0))
    bare = FluxKontextPipeline.from_pretrained(str(base_folders["flux"]), local_files_only=True)
    t5, pooled, _ = bare.encode_prompt(PROMPT, prompt_2=None)
    assert seen["states"].shape == t5.shape and seen["pooled"].shape == pooled.shape
    # The same T5 run twice, through two loaders: float32 rounding apart only (2.2e-5 at most with transformers
    # 5.25 and torch 2.13 on values near 1; another encoder's states would differ by whole units).
    assert torch.allclose(seen["states"], t5, atol=1e-4) and torch.allclose(seen["pooled"], pooled, atol=1e-4)

    wan = load_model(assemble(base_folders["qwen"], base_folders["wan"], tmp_path / "wan", text_path="native"))
    seen = _captured_text_states(wan)
    wan(GenerationRequest(Task.TEXT_TO_VIDEO, PROMPT, width=32, height=32, frames=5, steps=2, seed=3, guidance=1.0))
    umt5, _ = WanPipeline.from_pretrained(str(base_folders["wan"]), local_files_only=True).encode_prompt(
        PROMPT, do_classifier_free_guidance=False, max_sequence_length=512)
    assert seen["states"].shape == umt5.shape and torch.allclose(seen["states"], umt5, atol=1e-4)


def test_the_text_path_is_chosen_shown_and_checked(base_folders, tmp_path):
    mllm = assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "flux-mllm", text_path="mllm")
    index = json.loads((mllm / "model_index.json").read_text())
    assert "text_encoder" not in index and "scheduler" in index
    assert load_model(mllm).native_text is None
    native = assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "flux-native")
    table = format_table([inspect_folder(native), inspect_folder(mllm)])
    assert "native" in table and "context connector" in table

    # Trained connectors keep their own text path unless told otherwise.
    again = assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "again", connectors_dir=mllm)
    assert json.loads((again / "adapter" / "config.json").read_text())["text_path"] == "mllm"

    with pytest.raises(ModelFolderError, match="text path must be one of"):
        assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "bad", text_path="t5")
    import shutil
    no_text = shutil.copytree(base_folders["sana"], tmp_path / "sana-no-text-encoder")
    shutil.rmtree(no_text / "text_encoder")
    with pytest.raises(ModelFolderError, match="lacks text_encoder/"):
        assemble(base_folders["qwen"], no_text, tmp_path / "x", text_path="native")


def test_a_guidance_distilled_flux_takes_the_guidance_in_its_embedding_one_row_a_step(base_folders, tmp_path):
    from app.core.backbones.flux import tiny_flux_adapter, tiny_flux_config

    pipe = load_model(assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "flux", text_path="mllm"))
    # FLUX.1-Kontext-dev's transformer has a guidance embedding (the tiny test folder's has none).
    pipe.adapter = tiny_flux_adapter(mllm_dim=32, config=tiny_flux_config(guidance_embeds=True)).eval()
    seen = {}

    def hook(module, args, kwargs):
        seen["rows"], seen["guidance"] = kwargs["hidden_states"].shape[0], kwargs["guidance"].clone()

    pipe.adapter.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    pipe(GenerationRequest(Task.TEXT_TO_IMAGE, PROMPT, width=32, height=32, steps=2, seed=3, guidance=3.5))
    assert seen["rows"] == 1 and torch.all(seen["guidance"] == 3.5)
    assert not pipe.classifier_free(3.5)
