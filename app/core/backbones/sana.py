"""SANA (diffusers `SanaTransformer2DModel`): cross-attention DiT, with optional in-sequence editing.

Choices (METHOD.md is silent on them for SANA):
- Context: the MLLM states go through our `ContextConnector` to `caption_channels`, then through
  SANA's own `caption_projection` + `caption_norm`. Keeping SANA's projection means a pretrained
  SANA checkpoint loads unchanged (its projection expects Gemma-2's 2304 channels); the connector
  learns to speak that space. The padding mask is passed as SANA's `encoder_attention_mask`.
- Editing (the embedded default model edits images): the source latents are concatenated to the
  noisy ones IN SEQUENCE, as FLUX.1-Kontext does. SANA's GLUMBConv feed-forward reshapes tokens to a
  2D grid, so a flat concatenation would break its convolution; instead the reference is stacked
  BELOW the target along height: input [B, C, 2H, W], tokens = target rows then reference rows.
  The canvas touches only target rows; a learned zero-init `reference_marker` is added to the
  reference rows (so the model can tell them apart even without absolute positions); the velocity
  is cropped to the target rows. Positions follow FLUX.1-Kontext too: with sin-cos positions
  (interpolation_scale set), the reference rows get the SAME positions as the target rows they
  show, and the target rows keep the positions of a text-to-image image. Left alone, diffusers'
  PatchEmbed would recompute positions for the 2H-tall input with rows squashed to half steps
  (its grid is normalised by height), so an edit's target saw other positions than a generation's,
  and copying the source meant learning an odd offset; in training, edits then stayed near zero
  (source ignored, PSNR outside the edit about 15 dB after 5k steps at batch 256). The 3x3
  depthwise conv sees across the seam: accepted (the reference is useful context there too).
- self_attention="softmax" swaps SANA's linear attention in attn1 for diffusers' AttnProcessor2_0
  (same weights, softmax kernel): linear attention blurs exact copying of the source in edits.
- SANA's default config has no absolute position embedding (interpolation_scale=None); layout
  from a plan needs one, so `tiny_sana_config` sets interpolation_scale=1.
- Timestep: the SANA pipeline feeds 0..1000 (AdaLayerNormSingle); we pass t * 1000.
- source_residual=True (the embedded default's recipes from 2026-11-26): each reference token also goes,
  through a zero-initialised Linear, into the target token of the same grid cell, as if the source were
  concatenated to the noisy image along channels (InstructPix2Pix: conv(concat(x, s)) = conv(x) + conv'(s)).
  The in-sequence reference stays (it is what lets an edit move things); the residual gives each
  target token its own source patch without first having to learn position-matched attention, which
  the small DiTs here did not learn in thousands of steps (the source lowered their edit loss by 0-0.3 %,
  `research/probe_conditioning.py`). Off by default: a real SANA or Kontext checkpoint has no such path.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffusers import SanaTransformer2DModel
from diffusers.models.attention_processor import AttnProcessor2_0, SanaLinearAttnProcessor2_0
from diffusers.models.embeddings import get_2d_sincos_pos_embed

from .base import PREDICTIONS, BackboneAdapter, _Step, sample_to_velocity


def tiny_sana_config(**overrides: Any) -> dict[str, Any]:
    """A SanaTransformer2DModel config small enough for CPU tests (width 32, one layer)."""
    cfg = dict(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=16, num_layers=1,
               num_cross_attention_heads=2, cross_attention_head_dim=16, cross_attention_dim=32,
               caption_channels=32, mlp_ratio=2.5, sample_size=8, patch_size=1, interpolation_scale=1)
    cfg.update(overrides)
    return cfg


class SanaAdapter(BackboneAdapter):
    """MetaCanvas around SANA.

    latents [B, C, H, W]; reference: source latents [B, C, H, W] (same size, batch 1 broadcasts)
    or None; plan_tokens from `prepare_plan(canvas [B, 1, Hc, Wc, d])`.
    """

    family = "sana"

    def __init__(self, transformer: SanaTransformer2DModel, mllm_dim: int, canvas: bool = True,
                 adaln: bool = True, self_attention: str = "linear", context_dropout: float = 0.0,
                 connector_heads: int | None = None, prediction: str = "velocity", source_residual: bool = False,
                 text_path: str = "mllm", ablations=()):
        if self_attention not in ("linear", "softmax"):
            raise ValueError(f"self_attention must be 'linear' or 'softmax', got {self_attention!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        cfg = transformer.config
        dit_dim = cfg.num_attention_heads * cfg.attention_head_dim
        canvas_connector, context_connector = self.make_connectors(
            transformer, mllm_dim, cfg.caption_channels, canvas, adaln, context_dropout, connector_heads,
            ablations, latent_patch_width=cfg.in_channels * cfg.patch_size ** 2)
        super().__init__(transformer, canvas_connector, context_connector,
                         dict(mllm_dim=mllm_dim, canvas=canvas, adaln=adaln, self_attention=self_attention,
                              context_dropout=context_dropout, connector_heads=connector_heads,
                              prediction=prediction, source_residual=source_residual, text_path=text_path, ablations=list(ablations)))
        self.prediction = prediction
        self.reference_marker = nn.Parameter(torch.zeros(dit_dim))
        self.source_residual = None
        if source_residual:  # zero start: a model given it behaves exactly as before until it learns
            self.source_residual = nn.Linear(dit_dim, dit_dim)
            nn.init.zeros_(self.source_residual.weight)
            nn.init.zeros_(self.source_residual.bias)
        self._position_corrections: dict = {}
        self.set_self_attention(self_attention)
        self._install_hook(transformer.patch_embed)

    def set_self_attention(self, kind: str) -> None:
        """'linear' (SANA's own) or 'softmax' (AttnProcessor2_0 on attn1, same weights)."""
        make = AttnProcessor2_0 if kind == "softmax" else SanaLinearAttnProcessor2_0
        for block in self.transformer.transformer_blocks:
            block.attn1.set_processor(make())
        self.config["self_attention"] = kind

    def _denoise(self, latents, t, context, context_mask, plan_tokens, reference, pooled):
        b, c, h, w = latents.shape
        p = self.transformer.config.patch_size
        x = latents
        if reference is not None:
            reference = self._matched(reference.to(latents.dtype), b)
            if reference.shape[1:] != latents.shape[1:]:
                raise ValueError(f"SANA edit needs a reference of the target's shape {tuple(latents.shape[1:])}, "
                                 f"got {tuple(reference.shape[1:])}")
            x = torch.cat([latents, reference], dim=2)  # stacked below: target rows first
        ctx = self.text_states(context)
        if self.canvas_before_patchify and plan_tokens is not None:
            x = torch.cat([latents + self._latent_canvas(plan_tokens, t, h, w), x[:, :, h:]], dim=2)
            plan_tokens = None  # added already: the hook after the patch embedding adds nothing
        # SanaPipeline feeds its scheduler's timesteps (0..1000) times the config's timestep_scale (1 for
        # SANA; SANA-Sprint's differs).
        timestep = t * (1000 * float(getattr(self.transformer.config, "timestep_scale", 1.0) or 1.0))
        with self._stepping(plan_tokens, t, target_tokens=(h // p) * (w // p), grid=(h // p, w // p),
                            has_reference=reference is not None):
            out = self.transformer(x, encoder_hidden_states=ctx.to(x.dtype), timestep=timestep,
                                   encoder_attention_mask=context_mask, return_dict=False)[0]
        out = out[:, :, :h]
        if self.prediction == "sample":
            out = sample_to_velocity(latents, out, t)
        return out

    def _latent_canvas(self, plan_tokens: torch.Tensor, t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The canvas-before-patchify ablation: the plan resized to the token grid, through the connector's
        per-step block alone, unpatchified to what the noisy latents [B, C, h, w] get added."""
        p = self.transformer.config.patch_size
        gh, gw = h // p, w // p
        plan = self.canvas_connector.resize(plan_tokens, 1, gh, gw)
        b = plan.shape[0]
        out = self.canvas_connector.alone(plan.reshape(b, gh * gw, -1), t)  # [B, N, C * p * p]
        c = out.shape[-1] // (p * p)
        return out.reshape(b, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def _inject(self, output: torch.Tensor, step: _Step) -> torch.Tensor:
        n = step.layout["target_tokens"]
        gh, gw = step.layout["grid"]
        if step.layout["has_reference"]:
            key = (gh, gw, output.device)
            if key not in self._position_corrections:  # the same for every step of a request: made once
                # An ordinary tensor even when first made under inference_mode (sampling): inference
                # tensors refuse in-place updates and being saved for backward outside that mode, and
                # quick evaluations run inside training.
                with torch.inference_mode(False):
                    self._position_corrections[key] = shared_position_correction(
                        self.transformer.patch_embed, gh, gw, output.device)
            correction = self._position_corrections[key]
            if correction is not None:
                output = output + correction.to(output.dtype)
        target = output[:, :n]
        if step.layout["has_reference"] and self.source_residual is not None:
            target = target + self.source_residual(output[:, n:]).to(output.dtype)  # the same cell's source patch
        target = self._add_canvas(target, step, 1, gh, gw)
        if not step.layout["has_reference"]:
            return target
        reference = output[:, n:] + self.reference_marker.to(output.dtype)
        return torch.cat([target, reference], dim=1)


def shared_position_correction(patch_embed, gh: int, gw: int, device) -> torch.Tensor | None:
    """What to add to PatchEmbed's output for a [target; reference] stack of 2*gh x gw tokens so that
    both halves carry the positions of one gh x gw image (Kontext-style); None without sin-cos positions."""
    if patch_embed.pos_embed is None or patch_embed.pos_embed_max_size:
        return None  # no absolute positions (SANA's default), or cropped ones that are already consistent

    def table(rows: int) -> torch.Tensor:
        return get_2d_sincos_pos_embed(patch_embed.pos_embed.shape[-1], (rows, gw), base_size=patch_embed.base_size,
                                       interpolation_scale=patch_embed.interpolation_scale, device=device,
                                       output_type="pt").float()

    single = table(gh)
    return torch.cat([single, single]) - table(2 * gh)


def tiny_sana_adapter(mllm_dim: int = 16, seed: int = 0, config: dict | None = None, **adapter_kwargs) -> SanaAdapter:
    """A random tiny SANA + connectors (for tests and other parts' development)."""
    torch.manual_seed(seed)
    transformer = SanaTransformer2DModel(**(config or tiny_sana_config()))
    return SanaAdapter(transformer, mllm_dim, **adapter_kwargs)
