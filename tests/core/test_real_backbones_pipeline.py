"""The real-checkpoint code paths end to end at tiny random configs: a Qwen2.5-VL planner with FLUX
(image editing, AutoencoderKL latents) and with Wan (text-to-video and image-to-video, AutoencoderKLWan
latents), saved as model folders, loaded back, and run through the same pipeline the studio uses."""
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan

from app.core.backbones.flux import FluxAdapter, tiny_flux_config
from app.core.backbones.wan import WanAdapter, tiny_wan_config
from app.core.canvas import CanvasSpec
from app.core.checkpoints import load_model, save_model
from app.core.latents import DiffusersVAECodec
from app.core.pipeline import MetaCanvasPipeline, PipelineDefaults
from app.core.request import GenerationRequest, Task
from diffusers import FluxTransformer2DModel, WanTransformer3DModel

# The tiny planner and connector nudge are the families test's own.
from tests.core.test_model_families import _nudge, _planner


def test_flux_kontext_edit_with_a_vae_round_trips_through_a_model_folder(tmp_path):
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4)
    adapter = FluxAdapter(FluxTransformer2DModel(**tiny_flux_config()), mllm_dim=32)
    _nudge(adapter)
    pipe = MetaCanvasPipeline(_planner(), adapter, DiffusersVAECodec(vae),
                              PipelineDefaults(width=32, height=32, steps=3, tasks=("text_to_image", "image_edit")),
                              name="tiny-flux").eval()
    source = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    request = GenerationRequest(Task.IMAGE_EDIT, "make the circle green", images=[source], width=32, height=32,
                                steps=3, seed=1)
    steps = []
    out = pipe(request, callback=lambda info: steps.append(info.step))
    assert out.frames.shape == (1, 32, 32, 3) and steps == [1, 2, 3]
    assert pipe.canvas_spec(request) == CanvasSpec(1, 8, 8)  # 32 px / VAE 2 / packing 2
    loaded = load_model(save_model(pipe, tmp_path / "flux"))
    assert type(loaded.codec.vae).__name__ == "AutoencoderKL"
    assert np.array_equal(loaded(request).frames, out.frames)


@pytest.mark.parametrize("task", [Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO])
def test_wan_video_tasks_make_the_frames_they_were_asked_for(tmp_path, task):
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[True],
                           latents_mean=[0.0] * 4, latents_std=[1.0] * 4, scale_factor_temporal=2,
                           scale_factor_spatial=2)
    adapter = WanAdapter(WanTransformer3DModel(**tiny_wan_config()), mllm_dim=32, context_dropout=0.0)
    _nudge(adapter)
    tasks = ("text_to_video", "image_to_video")
    pipe = MetaCanvasPipeline(_planner(), adapter, DiffusersVAECodec(vae),
                              PipelineDefaults(width=16, height=16, steps=2, keyframes=3, tasks=tasks),
                              name="tiny-wan").eval()
    images = [np.full((16, 16, 3), 200, np.uint8)] if task is Task.IMAGE_TO_VIDEO else []
    request = GenerationRequest(task, "a red circle moves right", images=images, width=16, height=16,
                                frames=5, steps=2, seed=2)
    spec = pipe.canvas_spec(request)
    assert spec.keyframes == 3  # latent frames (5 - 1) / 2 + 1 = 3
    out = pipe(request)
    assert out.frames.shape == (5, 16, 16, 3)
    assert out.plan.canvas.shape[1] == 3
    loaded = load_model(save_model(pipe, tmp_path / "wan"))
    assert np.array_equal(loaded(request).frames, out.frames)
    # Guidance only at the second step (sigma 0.5): the first runs the conditional half alone, with
    # the reference (Wan's first frame for image-to-video) cut to that half.
    from dataclasses import replace

    pipe.defaults = replace(pipe.defaults, guidance_interval=(0.0, 0.6))
    partly = pipe(request).frames
    assert partly.shape == (5, 16, 16, 3) and not np.array_equal(partly, out.frames)
