"""Wan2.x (diffusers `WanTransformer3DModel`): cross-attention video DiT, conditions as clean frames.

Follows the Wan2.2-TI2V way (pipeline_wan_i2v.py with expand_timesteps=True): a condition frame is
given CLEAN and its tokens get timestep 0 through per-token timesteps ([B, seq_len]); the noisy
frames get t. Two kinds of condition, both in one `WanReference`:
- first_frame [B, C, 1, H, W]: image-to-video. It replaces latent frame 0 of the input; frame 0's
  returned velocity is zero (it is given, not generated): keep frame 0 of the latents equal to the
  clean image latent before decoding, and leave it out of the loss.
- frames [B, C, R, H, W]: in-context reference frames (reference images, or the source clip in video
  editing), concatenated AFTER the target frames along time, so they get the next RoPE frame
  positions; the velocity is cropped to the target frames. A bare tensor as `reference` means frames.
Without any condition a plain [B] timestep is used (identical maths, far cheaper embedding).

MetaCanvas choices:
- The hook sits on `transformer.patch_embedding` (Conv3d, output [B, D, F, h, w]); the canvas is
  resized to the generated latent frames (keyframes spread linearly over them), and the connector's
  DiT block runs per frame (frames folded into the batch). Condition frames get NO canvas.
- The context connector replaces T5 (out_dim = text_dim) and feeds the stock `text_embedder`. Wan
  has no text attention mask; its pipeline zero-pads T5 states, so padded positions are zeroed here.
  text_path "native" (app/core/native_text.py): Wan's own umT5 states go in as its pipeline gives them.
- Timestep: Wan's pipelines feed 0..1000; we pass t * 1000.
- source_residual=True (recipe shapes-video-48-residual-cpu.json): in a video edit each source-clip token
  also goes, through a zero-initialised Linear, into the target token of the same latent frame and cell, as
  sana.py does for image edits (its docstring and research/LOG.md, 2026-11-26, say why: a small DiT does not
  find position-matched attention to its source soon, and copying the unchanged parts is most of an edit).
  Only for a source clip (never for reference stills or a first frame, which are not the target's pixels).
  A source shorter than the target gives its frames to the target's first ones, as keep_source.py matches
  them; the target's later frames get none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from diffusers import WanTransformer3DModel

from ..request import Task
from .base import PREDICTIONS, BackboneAdapter, _Step, sample_to_velocity


def tiny_wan_config(**overrides: Any) -> dict[str, Any]:
    """A WanTransformer3DModel config small enough for CPU tests (width 32, one layer, patch (1,2,2))."""
    cfg = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
               text_dim=32, freq_dim=32, ffn_dim=64, num_layers=1, cross_attn_norm=True,
               qk_norm="rms_norm_across_heads", rope_max_seq_len=64)
    cfg.update(overrides)
    return cfg


@dataclass
class WanReference:
    """Clean condition latents for Wan (see the module docstring). Batch 1 broadcasts."""

    first_frame: torch.Tensor | None = None  # [B, C, 1, H, W]: I2V
    frames: torch.Tensor | None = None  # [B, C, R, H, W]: in-context reference frames / source clip
    source_clip: bool = False  # `frames` are a video edit's source clip (the target's own pixels, frame by frame)


class WanAdapter(BackboneAdapter):
    """MetaCanvas around Wan2.x.

    latents [B, C, F, H, W]; reference: WanReference, a tensor [B, C, R, H, W] (= frames), or None;
    plan_tokens from `prepare_plan(canvas [B, K, Hc, Wc, d])`, spread over the F latent frames.
    """

    family = "wan"

    def __init__(self, transformer: WanTransformer3DModel, mllm_dim: int, canvas: bool = True,
                 adaln: bool = True, context_dropout: float = 0.1, connector_heads: int | None = None,
                 prediction: str = "velocity", source_residual: bool = False, text_path: str = "mllm",
                 ablations=()):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        cfg = transformer.config
        # METHOD.md: dropout 0.1 in the video context connector.
        canvas_connector, context_connector = self.make_connectors(
            transformer, mllm_dim, cfg.text_dim, canvas, adaln, context_dropout, connector_heads, ablations)
        super().__init__(transformer, canvas_connector, context_connector,
                         dict(mllm_dim=mllm_dim, canvas=canvas, adaln=adaln, context_dropout=context_dropout,
                              connector_heads=connector_heads, prediction=prediction,
                              source_residual=source_residual, text_path=text_path, ablations=list(ablations)))
        self.source_residual = None
        if source_residual:  # zero start: a model given it behaves exactly as before until it learns
            dim = cfg.num_attention_heads * cfg.attention_head_dim
            self.source_residual = nn.Linear(dim, dim)
            nn.init.zeros_(self.source_residual.weight)
            nn.init.zeros_(self.source_residual.bias)
        # "sample" (the embedded video model): the DiT draws the clean latents (base.py says why).
        self.prediction = prediction
        self._install_hook(transformer.patch_embedding)

    @property
    def max_positions(self) -> int | None:
        # Wan's 3-axis RoPE is tabulated for this many positions an axis; beyond it diffusers fails deep
        # inside attention with a reshape error (a 257-frame clip, a 520 px side on the embedded model).
        return int(self.transformer.config.rope_max_seq_len)

    def condition(self, reference, task):
        """Image-to-video's image is the clean first latent frame (TI2V); reference images and a source
        clip are clean frames appended after the target."""
        if reference is None:
            return None, None
        if task is Task.IMAGE_TO_VIDEO:
            return WanReference(first_frame=reference[:, :, :1]), reference[:1, :, :1]
        return WanReference(frames=reference, source_clip=task is Task.VIDEO_EDIT), None

    def _denoise(self, latents, t, context, context_mask, plan_tokens, reference, pooled):
        b, c, f, h, w = latents.shape
        pt, ph, pw = self.transformer.config.patch_size
        if isinstance(reference, torch.Tensor):
            reference = WanReference(frames=reference)
        reference = reference or WanReference()
        x = latents
        first = 0
        if reference.first_frame is not None:
            x = torch.cat([self._matched(reference.first_frame.to(x.dtype), b), x[:, :, 1:]], dim=2)
            first = 1
        extra = 0
        if reference.frames is not None:
            frames = self._matched(reference.frames.to(x.dtype), b)
            x = torch.cat([x, frames], dim=2)
            extra = frames.shape[2]
        gf, gh, gw = x.shape[2] // pt, h // ph, w // pw
        target_f = f // pt

        if first or extra:
            if pt != 1:
                raise ValueError("condition frames need a temporal patch size of 1 (all Wan models have it)")
            # Per-token timesteps as Wan2.2-TI2V: 0 on condition frames, t on the noisy ones.
            per_frame = torch.zeros(b, gf, device=x.device, dtype=torch.float32)
            per_frame[:, first:target_f] = t[:, None] * 1000
            timestep = per_frame[:, :, None].expand(b, gf, gh * gw).reshape(b, -1)
        else:
            timestep = t * 1000

        ctx = self.text_states(context) * context_mask.unsqueeze(-1).to(context.dtype)
        source = (target_f, target_f + extra) if extra and reference.source_clip else None
        with self._stepping(plan_tokens, t, target=(first, target_f), grid=(gh, gw), gen_frames=target_f,
                            source=source):
            out = self.transformer(hidden_states=x, timestep=timestep, encoder_hidden_states=ctx.to(x.dtype),
                                   return_dict=False)[0]
        out = out[:, :, :f]
        if self.prediction == "sample":
            out = sample_to_velocity(latents, out, t)
        if first:
            out = torch.cat([torch.zeros_like(out[:, :, :1]), out[:, :, 1:]], dim=2)
        return out

    def _inject(self, output: torch.Tensor, step: _Step) -> torch.Tensor:
        source = step.layout.get("source")
        if source is not None and self.source_residual is not None:
            output = self._add_source(output, step.layout["target"][1], *source)
        if step.plan is None:
            return output
        start, stop = step.layout["target"]  # noisy frames in post-patch frame units
        gh, gw = step.layout["grid"]
        b, d = output.shape[:2]
        n = step.layout["gen_frames"]
        # The plan spans all generated frames (frame 0 included in I2V), so keyframe 0 lines up
        # with the first frame; condition frames are then skipped.
        plan = self.canvas_connector.resize(step.plan, n, gh, gw)[:, start:stop]
        tokens = output[:, :, start:stop].permute(0, 2, 3, 4, 1).reshape(b, -1, d)
        sub = _Step(plan, step.timestep, step.layout)
        new = self._add_canvas(tokens, sub, stop - start, gh, gw)
        new = new.reshape(b, stop - start, gh, gw, d).permute(0, 4, 1, 2, 3)
        return torch.cat([output[:, :, :start], new, output[:, :, stop:]], dim=2)

    def _add_source(self, output: torch.Tensor, target_frames: int, start: int, stop: int) -> torch.Tensor:
        """output [B, D, F, h, w] with target frame i's tokens plus the source residual of source frame i (the
        same cell), for the frames both have."""
        n = min(target_frames, stop - start)
        source = output[:, :, start:start + n].permute(0, 2, 3, 4, 1)  # [B, n, h, w, D]
        added = self.source_residual(source).permute(0, 4, 1, 2, 3).to(output.dtype)
        return torch.cat([output[:, :, :n] + added, output[:, :, n:]], dim=2)


def tiny_wan_adapter(mllm_dim: int = 16, seed: int = 0, config: dict | None = None, **adapter_kwargs) -> WanAdapter:
    """A random tiny Wan + connectors (for tests and other parts' development)."""
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**(config or tiny_wan_config()))
    adapter_kwargs.setdefault("context_dropout", 0.0)
    return WanAdapter(transformer, mllm_dim, **adapter_kwargs)
