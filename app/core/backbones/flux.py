"""FLUX.1-Kontext (diffusers `FluxTransformer2DModel`): MMDiT joint attention, in-sequence editing.

Follows diffusers' FluxKontextPipeline (pipeline_flux_kontext.py):
- Latents are packed in 2x2 patches to tokens ([B, C, H, W] -> [B, H/2*W/2, 4C]); `in_channels`
  of the transformer is 4C. The adapter takes and returns UNPACKED latents, like the other
  families, and packs/unpacks inside.
- The source image's packed tokens follow the target tokens in sequence; their img_ids are the
  target's (0, row, col) with the first coordinate set to 1. The velocity is cropped to the target.
- The timestep goes in as 0..1 (FluxTransformer2DModel multiplies by 1000 itself).

MetaCanvas choices:
- The canvas hook sits on `transformer.x_embedder` and adds the plan to the first N_target tokens
  only; source tokens leave x_embedder untouched.
- The context connector replaces the T5 stream (out_dim = joint_attention_dim), feeding the stock
  `context_embedder`. Padded context positions are masked out of joint attention (stock FLUX
  attends to T5 padding; our planner left-pads, and its pad states are meaningless). When nothing
  is padded no mask is passed, keeping SDPA's fast path.
- pooled_projections (CLIP's pooled vector in stock FLUX, it feeds the AdaLN time/text embedding):
  derived from the context as a masked mean -> LayerNorm -> ZERO-initialised Linear to
  pooled_projection_dim. Zero start = a constant, known pooled input; text reaches the model through
  joint attention from step one and the pooled path learns from there.
- text_path "native" (app/core/native_text.py): FLUX's own T5 states and pooled CLIP vector go in as the
  bare FluxKontextPipeline gives them, and the canvas is added on top.
- Guidance embedding (FLUX.1-Kontext-dev is guidance-distilled) is used only when the transformer's
  config has guidance_embeds=True; its value is `adapter.guidance_scale`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffusers import FluxTransformer2DModel

from .base import BackboneAdapter, _Step


def tiny_flux_config(**overrides: Any) -> dict[str, Any]:
    """A FluxTransformer2DModel config small enough for CPU tests (width 32, one double + one single block).

    in_channels 16 = 4 latent channels packed 2x2; rope axes 4+6+6 = head dim 16.
    """
    cfg = dict(patch_size=1, in_channels=16, out_channels=None, num_layers=1, num_single_layers=1,
               attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=16,
               guidance_embeds=False, axes_dims_rope=(4, 6, 6))
    cfg.update(overrides)
    return cfg


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H/2 * W/2, 4C] (FluxPipeline._pack_latents)."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[B, H/2 * W/2, 4C] -> [B, C, H, W] (inverse of pack_latents)."""
    b, _, c4 = tokens.shape
    x = tokens.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, h, w)


def image_ids(gh: int, gw: int, index: int, device, dtype) -> torch.Tensor:
    """[gh*gw, 3] RoPE ids (index, row, col): index 0 = target, 1 = source (Kontext)."""
    ids = torch.zeros(gh, gw, 3, device=device, dtype=dtype)
    ids[..., 0] = index
    ids[..., 1] = torch.arange(gh, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(gw, device=device, dtype=dtype)[None, :]
    return ids.reshape(gh * gw, 3)


class FluxAdapter(BackboneAdapter):
    """MetaCanvas around FLUX.1-Kontext.

    latents [B, C, H, W] unpacked (H, W even); reference: source latents [B, C, H', W'] unpacked
    (any even size, batch 1 broadcasts) or None; plan_tokens from `prepare_plan(canvas [B, 1, Hc, Wc, d])`,
    resized to the packed grid (H/2, W/2).
    """

    family = "flux"

    def __init__(self, transformer: FluxTransformer2DModel, mllm_dim: int, canvas: bool = True,
                 adaln: bool = True, context_dropout: float = 0.0, connector_heads: int | None = None,
                 guidance_scale: float = 2.5, text_path: str = "mllm", ablations=()):
        cfg = transformer.config
        canvas_connector, context_connector = self.make_connectors(
            transformer, mllm_dim, cfg.joint_attention_dim, canvas, adaln, context_dropout, connector_heads,
            ablations)
        super().__init__(transformer, canvas_connector, context_connector,
                         dict(mllm_dim=mllm_dim, canvas=canvas, adaln=adaln, context_dropout=context_dropout,
                              connector_heads=connector_heads, guidance_scale=guidance_scale, text_path=text_path, ablations=list(ablations)))
        self.pooled_norm = nn.LayerNorm(mllm_dim)
        self.pooled_proj = nn.Linear(mllm_dim, cfg.pooled_projection_dim)
        nn.init.zeros_(self.pooled_proj.weight)
        nn.init.zeros_(self.pooled_proj.bias)
        self.guidance_scale = guidance_scale
        # A guidance-distilled FLUX (Kontext-dev) takes the guidance value in an embedding: the pipeline gives it
        # the request's guidance here and runs no classifier-free guidance.
        self.guidance_embeds = bool(cfg.guidance_embeds)
        self.latent_channels = cfg.in_channels // 4
        self._install_hook(transformer.x_embedder)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return (1, 2, 2)  # FLUX packs 2x2 latent patches itself (its transformer's own patch_size is 1)

    def pooled(self, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        """Masked mean of the context -> pooled_projections [B, pooled_projection_dim]."""
        m = context_mask.to(context.dtype).unsqueeze(-1)
        mean = (context * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.pooled_proj(self.pooled_norm(mean.to(self.pooled_proj.weight.dtype)))

    def _denoise(self, latents, t, context, context_mask, plan_tokens, reference, pooled):
        b, c, h, w = latents.shape
        if h % 2 or w % 2:
            raise ValueError(f"FLUX packs 2x2 latent patches: latent size {h}x{w} must be even")
        gh, gw = h // 2, w // 2
        dtype, device = latents.dtype, latents.device
        x = pack_latents(latents)
        ids = image_ids(gh, gw, 0, device, dtype)
        if reference is not None:
            reference = self._matched(reference.to(dtype), b)
            rh, rw = reference.shape[-2:]
            x = torch.cat([x, pack_latents(reference)], dim=1)
            ids = torch.cat([ids, image_ids(rh // 2, rw // 2, 1, device, dtype)], dim=0)
        ctx = self.text_states(context).to(dtype)
        if pooled is None:  # the MLLM path derives it; the native path brings CLIP's
            pooled = self.pooled(context, context_mask)
        txt_ids = torch.zeros(ctx.shape[1], 3, device=device, dtype=dtype)
        attn_kwargs = None
        if not bool(context_mask.all()):
            # keys: [text | image] (FLUX's joint order); [B, 1, 1, L + N] broadcast over heads/queries
            keep = torch.cat([context_mask, context_mask.new_ones(b, x.shape[1])], dim=1)
            attn_kwargs = {"attention_mask": keep[:, None, None, :]}
        g = None
        if self.transformer.config.guidance_embeds:
            g = torch.full((b,), float(self.guidance_scale), device=device)
        with self._stepping(plan_tokens, t, target_tokens=gh * gw, grid=(gh, gw)):
            out = self.transformer(hidden_states=x, encoder_hidden_states=ctx,
                                   pooled_projections=pooled.to(dtype),
                                   timestep=t.to(dtype), img_ids=ids, txt_ids=txt_ids, guidance=g,
                                   joint_attention_kwargs=attn_kwargs, return_dict=False)[0]
        return unpack_latents(out[:, : gh * gw], h, w)

    def _inject(self, output: torch.Tensor, step: _Step) -> torch.Tensor:
        n = step.layout["target_tokens"]
        gh, gw = step.layout["grid"]
        if step.plan is None:
            return output
        target = self._add_canvas(output[:, :n], step, 1, gh, gw)
        return torch.cat([target, output[:, n:]], dim=1)


def tiny_flux_adapter(mllm_dim: int = 16, seed: int = 0, config: dict | None = None, **adapter_kwargs) -> FluxAdapter:
    """A random tiny FLUX + connectors (for tests and other parts' development)."""
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**(config or tiny_flux_config()))
    return FluxAdapter(transformer, mllm_dim, **adapter_kwargs)
