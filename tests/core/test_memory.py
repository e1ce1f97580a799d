"""Memory options: parsing, the defaults picked from the GPU's memory, the settings, and the placement itself on
tiny real pipelines (CPU as the execution device: the hooks, the streamed "meta" weights and the bookkeeping of
what is on the device all run, and every placement must draw exactly the image the plain pipeline draws)."""
import json

import numpy as np
import pytest
import torch

from app.core.memory import (GB, MemoryOptions, apply_memory_options, default_memory_options, dtype_name,
                             more_frugal, step_flags, step_words)
from app.core.request import GenerationRequest, Task
from app.settings import OFFLOADS, Settings


# ---------------------------------------------------------------------------------------------- the options
def test_options_read_both_spellings_of_a_precision_and_refuse_what_they_do_not_know():
    assert MemoryOptions(dtype="bfloat16").dtype == "bf16" and dtype_name("FP16") == "fp16"
    assert MemoryOptions("fp32").torch_dtype is torch.float32
    for bad in (dict(dtype="int8"), dict(offload="disk"), dict(vae_tiling="yes")):
        with pytest.raises(ValueError):
            MemoryOptions(**bad)
    with pytest.raises(ValueError, match="auto"):
        MemoryOptions().torch_dtype  # noqa: B018 - an auto precision has no torch dtype until resolved


@pytest.mark.parametrize("total, bf16, expected", [
    (None, True, ("fp32", "none", False, False, False)),  # the CPU
    (85 * GB, True, ("bf16", "none", False, False, False)),  # H100 80 GB: everything resident
    (42.5 * GB, True, ("bf16", "none", False, False, True)),  # A100 40 GB: the planner leaves after planning
    (25.4 * GB, True, ("bf16", "model", False, False, False)),  # RTX 4090
    (16 * GB, False, ("fp16", "model", True, False, False)),  # a V100 16 GB: no bfloat16
    (8 * GB, True, ("bf16", "sequential", True, True, False)),
])
def test_defaults_follow_the_gpus_memory(total, bf16, expected):
    o = default_memory_options(total, bf16_supported=bf16)
    assert (o.dtype, o.offload, o.vae_tiling, o.vae_slicing, o.planner_offload) == expected


def test_known_part_sizes_decide_the_offload():
    parts = {"planner": 16 * GB, "transformer": 24 * GB, "vae": GB // 5}
    assert default_memory_options(85 * GB, part_bytes=parts).offload == "none"
    assert default_memory_options(48 * GB, part_bytes=parts).planner_offload  # fits while planning, not with activations
    assert default_memory_options(40 * GB, part_bytes=parts).offload == "model"
    assert default_memory_options(16 * GB, part_bytes=parts).offload == "sequential"
    # The embedded default (megabytes) never needs offload, however small the GPU.
    assert default_memory_options(4 * GB, part_bytes={"planner": 10**6, "transformer": 10**7}).offload == "none"


def test_resolving_keeps_what_was_chosen_and_fills_in_the_rest():
    o = MemoryOptions(offload="model", vae_tiling=True).resolved("cpu")
    assert (o.dtype, o.offload, o.vae_tiling, o.vae_slicing, o.planner_offload) == ("fp32", "model", True, False, False)


def test_running_out_of_memory_steps_down_until_nothing_is_left():
    o = default_memory_options(85 * GB)
    steps = []
    while (more := more_frugal(o)) is not None:
        steps.append((step_words(o, more), step_flags(o, more)))
        o = more
    assert steps == [("model offload", "--offload model"), ("sequential offload", "--offload sequential"),
                     ("VAE tiling and slicing", "--vae-tiling --vae-slicing")]


def test_settings_keep_the_memory_options_and_reset_a_bad_one(tmp_path):
    assert OFFLOADS == ("auto", "none", "model", "sequential")
    path = tmp_path / "settings.json"
    s = Settings(precision="bfloat16", offload="sequential", vae_tiling=True, vae_slicing=False)
    s.save(path)
    loaded = Settings.load(path)
    assert loaded == s and loaded.warning is None
    assert loaded.memory_options() == MemoryOptions("bf16", "sequential", True, False, None)
    assert Settings().memory_options() == MemoryOptions()  # all auto
    path.write_text(json.dumps({"offload": "disk", "vae_tiling": "yes", "planner_offload": True}))
    bad = Settings.load(path)
    assert (bad.offload, bad.vae_tiling, bad.planner_offload) == ("auto", None, True)
    assert "offload" in bad.warning and "vae_tiling" in bad.warning and "planner_offload" not in bad.warning


# ---------------------------------------------------------------------------------------------- placement
@pytest.fixture(scope="module")
def pipe():
    """The embedded default's architecture at a tiny size (real Qwen2.5-VL planner, SANA, pixel space): its own,
    as placements hook into it."""
    from app.train.build import build_model
    from app.train.recipe import Recipe

    torch.manual_seed(0)
    return build_model(Recipe.load("app/train/recipes/tiny-test.json")).eval()


def _request(**kw):
    return GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle left of a blue star", steps=3, seed=3, **kw)


@pytest.mark.parametrize("offload", ["none", "model", "sequential"])
@pytest.mark.parametrize("planner_offload", [False, True])
def test_every_placement_draws_the_same_image(pipe, offload, planner_offload):
    plain = pipe(_request()).frames
    placement = apply_memory_options(pipe, MemoryOptions("fp32", offload, planner_offload=planner_offload), "cpu")
    try:
        assert pipe.memory is placement and pipe.device == torch.device("cpu")
        if offload == "sequential":  # the large weights stream in from the CPU; the small parts stay
            assert next(pipe.adapter.transformer.parameters()).device.type == "meta"
            assert next(pipe.planner.model.parameters()).device.type == "meta"
            assert pipe.planner.canvas_tokens.tokens.device.type == "cpu"
        assert np.array_equal(pipe(_request()).frames, plain)
    finally:
        placement.remove()
    assert pipe.memory is None and next(pipe.adapter.transformer.parameters()).device.type == "cpu"
    assert np.array_equal(pipe(_request()).frames, plain)


def test_model_offload_keeps_only_the_part_in_use_on_the_device(pipe):
    placement = apply_memory_options(pipe, MemoryOptions("fp32", "model"), "cpu")
    try:
        assert placement.on_device == []  # all rest on the CPU until used
        pipe.plan(_request())
        assert placement.on_device == ["planner"]
        during = []
        pipe(_request(), callback=lambda info: during.append(placement.on_device))
        assert during == [["transformer"]] * 3
        pipe.plan(_request())  # a live plan between generations brings the planner back, alone
        assert placement.on_device == ["planner"]
        assert not placement.step_previews or pipe.codec.kind == "pixel"  # no VAE to move: previews stay
    finally:
        placement.remove()


def test_the_planner_leaves_the_device_after_planning(pipe):
    placement = apply_memory_options(pipe, MemoryOptions("fp32", "none", planner_offload=True), "cpu")
    try:
        assert placement.on_device == ["transformer"]
        seen = []
        # The canvas tokens are made inside planning.
        hook = pipe.planner.canvas_tokens.register_forward_hook(lambda *_: seen.append(placement.on_device))
        pipe(_request())
        assert seen == [["planner", "transformer"]]  # there while planning...
        assert placement.on_device == ["transformer"]  # ...and gone after
    finally:
        placement.remove()
        hook.remove()


def test_applying_again_replaces_the_placement_and_can_change_the_precision(pipe):
    first = apply_memory_options(pipe, MemoryOptions("fp32", "sequential"), "cpu")
    second = apply_memory_options(pipe, MemoryOptions("bf16", "model"), "cpu")
    try:
        assert pipe.memory is second and first.pipe.memory is second
        assert pipe.dtype == torch.bfloat16 and next(pipe.adapter.transformer.parameters()).device.type == "cpu"
        assert pipe(_request()).frames.shape == (1, 64, 64, 3)
    finally:
        second.remove()
        pipe.to(dtype=torch.float32)


def test_a_vae_codec_gets_tiling_and_slicing_and_runs_offloaded():
    """A FLUX.1-Kontext edit with an AutoencoderKL: the autoencoder's encode and decode bring it to the device."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from app.core.backbones.flux import FluxAdapter, tiny_flux_config
    from app.core.latents import DiffusersVAECodec
    from app.core.pipeline import MetaCanvasPipeline, PipelineDefaults
    from tests.core.test_model_families import _nudge, _planner

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4)
    adapter = FluxAdapter(FluxTransformer2DModel(**tiny_flux_config()), mllm_dim=32)
    _nudge(adapter)
    flux = MetaCanvasPipeline(_planner(), adapter, DiffusersVAECodec(vae),
                              PipelineDefaults(width=32, height=32, steps=2, tasks=("text_to_image", "image_edit")),
                              name="tiny-flux").eval()
    source = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    request = GenerationRequest(Task.IMAGE_EDIT, "make the circle green", images=[source], width=32, height=32,
                                steps=2, seed=1)
    plain = flux(request).frames
    placement = apply_memory_options(flux, MemoryOptions("fp32", "model", vae_tiling=True, vae_slicing=True), "cpu")
    assert vae.use_tiling and vae.use_slicing
    assert not placement.step_previews  # a preview decode per step would swap the VAE and the transformer
    assert np.array_equal(flux(request).frames, plain)
    assert placement.on_device == ["vae"]  # the decode came last
    apply_memory_options(flux, MemoryOptions("fp32", "sequential", vae_tiling=False, vae_slicing=False), "cpu")
    assert not vae.use_tiling and not vae.use_slicing
    assert next(vae.parameters()).device.type == "meta"
    assert np.array_equal(flux(request).frames, plain)


def test_reading_the_memory_options_does_not_import_accelerate():
    """The studio reads its memory options on the GUI thread as it starts loading a model: importing accelerate
    there (~0.2 s on 2 cores) froze the window for ~130 ms (bench gui --only launch). It is imported where a
    placement needs it."""
    import subprocess
    import sys

    code = ("import sys; from app.settings import Settings; Settings().memory_options(); "
            "import app.core.memory; print('accelerate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
