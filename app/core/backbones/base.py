"""What every backbone family shares: connectors, the patch-embedding hook, the call contract.

The canvas enters through a forward hook on the transformer's patch embedding rather than a
subclass or a patched forward, so the transformer keeps its stock class and state-dict keys and
still saves/loads with `save_pretrained` / `from_pretrained`. During one adapter call the hook reads
the step's plan and timestep from `self._step`; outside a call it passes outputs through untouched,
so the bare transformer can still be called directly with the hook installed.

Contract (docs/ARCHITECTURE.md):
    adapter(latents, timestep [B] in 0..1, context [B, L, d], context_mask [B, L] bool,
            plan_tokens=None, reference=None, pooled=None) -> velocity, same shape as latents
The context is the MLLM's states (text_path "mllm": they go through the context connector) or the
backbone's own text encoder's (text_path "native", app/core/native_text.py: they go in as they are, with
FLUX's pooled CLIP vector as `pooled`).
    plan_tokens = adapter.prepare_plan(canvas [B, K, H, W, d])   # once per request
What differs by family and matters to a sampler is asked of the adapter, never branched on its name:
    adapter.token_grid(latent_shape) -> (frames, rows, cols)      # the canvas follows it
    adapter.condition(reference, task) -> (reference, clean first latent frame | None)
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..ablations import check_ablations
from ..connectors import CanvasConnector, ContextConnector
from ..native_text import TEXT_PATHS
from ..request import Task


# What the transformer's output means. "velocity" (SANA's own, and every real checkpoint): e - x.
# "sample": the clean image x (x-prediction, as in JiT, Li & He 2025, "Back to Basics: Let Denoising
# Generative Models Denoise"); the adapter converts it to the velocity, so the samplers and the training
# loss (MSE on the velocity: JiT's best "x-prediction, v-loss") stay as they are. Why: a pixel-space DiT
# with 8 x 8 patches must output 192 values per 128-wide token; the noise part of a velocity does not fit
# through that bottleneck (the samples stay grainy), while a clean flat-colour patch does.
PREDICTIONS = ("velocity", "sample")
SAMPLE_PREDICTION_MIN_T = 0.05


def sample_to_velocity(latents: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The network drew the clean latents x; samplers and the flow-matching loss take the velocity
    e - x = (x_t - x) / t (z_t = (1 - t) x + t e). The floor keeps the last steps finite (JiT clips there too)."""
    shape = (-1,) + (1,) * (latents.ndim - 1)
    return (latents - sample) / t.clamp(min=SAMPLE_PREDICTION_MIN_T).to(sample.dtype).view(shape)


@dataclass
class _Step:
    """What the hook needs during one transformer call."""

    plan: torch.Tensor | None  # encoded plan [B, K, h, w, D] (batch already matched)
    timestep: torch.Tensor  # [B] in 0..1
    layout: dict[str, Any]  # family-specific: where the target tokens are


class BackboneAdapter(nn.Module):
    """A diffusers transformer plus the MetaCanvas connectors.

    Subclasses set `family`, build the connectors, call `_install_hook(module)` on the patch
    embedding, and implement `_denoise` (the transformer call) and `_inject` (the hook's work).
    """

    family: str = ""

    def __init__(self, transformer: nn.Module, canvas_connector: CanvasConnector | None,
                 context_connector: ContextConnector, config: dict[str, Any]):
        super().__init__()
        if config.get("text_path", "mllm") not in TEXT_PATHS:
            raise ValueError(f"text_path must be one of {TEXT_PATHS}, got {config.get('text_path')!r}")
        self.text_path = config.get("text_path", "mllm")
        # The method's ablation switches (app/core/ablations.py): the connector's own are in its build.
        self.ablations = check_ablations(config.get("ablations", ()))
        self.queries_to_context = "queries_1d" in self.ablations
        self.text_to_dit = "canvas_without_text" not in self.ablations
        self.canvas_before_patchify = "canvas_before_patchify" in self.ablations
        if self.canvas_before_patchify and self.family != "sana":
            raise ValueError("the canvas-before-patchify ablation is the paper's SANA study: sana only")
        if self.queries_to_context and self.text_path == "native":
            raise ValueError("queries_1d joins the planner's states to the context: it needs the mllm text path")
        self.transformer = transformer
        self.canvas_connector = canvas_connector
        self.context_connector = context_connector
        # Everything needed to rebuild this adapter around a reloaded transformer (checkpoints.py):
        # `build_adapter(config, transformer)` in app/core/backbones/__init__.py.
        self.config = {"family": self.family, **config}
        self._step: _Step | None = None
        # Set True to have the hook keep the norm of what the canvas adds ([B, F, h, w]), for
        # Plan.strength; off by default because it costs a reduction per step.
        self.record_strength = False
        self.last_strength: torch.Tensor | None = None

    @staticmethod
    def make_connectors(transformer: nn.Module, mllm_dim: int, context_dim: int, canvas: bool, adaln: bool,
                        context_dropout: float, connector_heads: int | None, ablations=(),
                        latent_patch_width: int | None = None):
        """The two connectors every family builds: the canvas connector at the DiT's width (None for a
        text-only model, or for MetaQuery-style queries) and the context connector into the backbone's
        conditioning width. `latent_patch_width`: channels x patch area, for the before-patchify ablation."""
        cfg = transformer.config
        dit_dim = cfg.num_attention_heads * cfg.attention_head_dim
        ablations = check_ablations(ablations)
        canvas_connector = None
        if canvas and "queries_1d" not in ablations:
            canvas_connector = CanvasConnector(
                mllm_dim, dit_dim, connector_heads or cfg.num_attention_heads,
                adaln=adaln and "no_timestep_adaln" not in ablations,
                vanilla_block="no_vanilla_block" not in ablations, dit_block="no_dit_block" not in ablations,
                out_dim=latent_patch_width if "canvas_before_patchify" in ablations else None)
        return canvas_connector, ContextConnector(mllm_dim, context_dim, dropout=context_dropout)

    # ------------------------------------------------------------------ what a sampler asks
    @property
    def max_positions(self) -> int | None:
        """How many tokens the backbone can place along one axis (frames, rows or columns, condition frames
        included); None when it states no limit."""
        return None

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """(frames, rows, cols) of latents per token (SANA and Wan name theirs in the config)."""
        p = self.transformer.config.patch_size
        return tuple(p) if isinstance(p, (tuple, list)) else (1, p, p)

    def token_grid(self, latent_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(frames, rows, cols) of the token grid for latents of `latent_shape` ([C, H, W] or [C, F, H, W])."""
        pt, ph, pw = self.patch_size
        if len(latent_shape) == 3:
            return 1, latent_shape[1] // ph, latent_shape[2] // pw
        return latent_shape[1] // pt, latent_shape[2] // ph, latent_shape[3] // pw

    def condition(self, reference: torch.Tensor | None, task: Task) -> tuple[Any, torch.Tensor | None]:
        """A task's encoded inputs (source, first frame, references, source clip) as this family takes
        them as `reference`, and the clean latent frame a sample starts from, where the family keeps
        one (None: the whole sample starts from noise). Images stack the source in sequence as is."""
        return reference, None

    # ------------------------------------------------------------------ plan
    @property
    def takes_plan(self) -> bool:
        """Whether the canvas reaches the backbone at all: through the canvas connector, or (queries_1d) as
        extra context tokens. False for a text-only model."""
        return self.canvas_connector is not None or (self.queries_to_context and self.config.get("canvas", True))

    def prepare_plan(self, canvas: torch.Tensor | None) -> torch.Tensor | None:
        """Canvas states [B, K, H, W, d_mllm] -> encoded plan [B, K, H, W, dit_dim] (once per request);
        for queries_1d, the states as a sequence [B, K*H*W, d_mllm], to join the context."""
        if canvas is None or not self.takes_plan:
            return None
        if self.canvas_connector is None:
            return canvas.reshape(canvas.shape[0], -1, canvas.shape[-1])
        return self.canvas_connector.encode(canvas)

    # ------------------------------------------------------------------ call
    def forward(self, latents: torch.Tensor, timestep: torch.Tensor | float, context: torch.Tensor,
                context_mask: torch.Tensor | None = None, plan_tokens: torch.Tensor | None = None,
                reference: Any = None, pooled: torch.Tensor | None = None) -> torch.Tensor:
        b = latents.shape[0]
        t = torch.as_tensor(timestep, device=latents.device, dtype=torch.float32).reshape(-1)
        t = t.expand(b) if t.numel() == 1 else t
        if t.shape[0] != b:
            raise ValueError(f"timestep has {t.shape[0]} entries for a batch of {b}")
        if context_mask is None:
            context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
        context_mask = context_mask.to(device=context.device, dtype=torch.bool)
        if plan_tokens is not None:
            if not self.takes_plan:
                raise ValueError("this adapter has no canvas connector (a text-only model): pass plan_tokens=None")
            if plan_tokens.shape[0] == 1 and b > 1:
                plan_tokens = plan_tokens.expand(b, *plan_tokens.shape[1:])
            elif plan_tokens.shape[0] != b:
                raise ValueError(f"plan batch {plan_tokens.shape[0]} does not match latents batch {b}")
        if not self.text_to_dit:  # the canvas-without-text ablation: one zero state where the text was
            context = context.new_zeros(b, 1, context.shape[-1])
            context_mask = context_mask.new_ones(b, 1)
            pooled = None if pooled is None else torch.zeros_like(pooled)
        if self.queries_to_context and plan_tokens is not None:
            context = torch.cat([context, plan_tokens.to(context.dtype)], dim=1)
            context_mask = torch.cat([context_mask, context_mask.new_ones(b, plan_tokens.shape[1])], dim=1)
            plan_tokens = None
        return self._denoise(latents, t, context, context_mask, plan_tokens, reference, pooled)

    def _denoise(self, latents, t, context, context_mask, plan_tokens, reference, pooled) -> torch.Tensor:
        raise NotImplementedError

    def text_states(self, context: torch.Tensor) -> torch.Tensor:
        """The states the backbone's text input takes: the MLLM's through the context connector, or the
        native text encoder's as they are."""
        return context if self.text_path == "native" else self.context_connector(context)

    # ------------------------------------------------------------------ hook
    def _install_hook(self, module: nn.Module) -> None:
        module.register_forward_hook(self._on_patch_embed)

    @contextlib.contextmanager
    def _stepping(self, plan: torch.Tensor | None, t: torch.Tensor, **layout: Any):
        self._step = _Step(plan, t, layout)
        try:
            yield
        finally:
            self._step = None

    def _on_patch_embed(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if self._step is None:  # a direct call of the bare transformer: stay out of the way
            return output
        return self._inject(output, self._step)

    def _inject(self, output: torch.Tensor, step: _Step) -> torch.Tensor:
        raise NotImplementedError

    def _add_canvas(self, tokens: torch.Tensor, step: _Step, frames: int, gh: int, gw: int) -> torch.Tensor:
        """tokens [B, frames*gh*gw, D] of the noisy TARGET only -> tokens with the plan applied.

        Video runs the connector's DiT block per latent frame (frames folded into the batch), as
        the paper does; images are frames = 1.
        """
        if step.plan is None:
            return tokens
        b, n, d = tokens.shape
        plan = self.canvas_connector.resize(step.plan, frames, gh, gw)  # [B, F, gh, gw, D]
        x = tokens.reshape(b * frames, gh * gw, d)
        p = plan.reshape(b * frames, gh * gw, d)
        t = step.timestep.to(tokens.device).repeat_interleave(frames)
        out = self.canvas_connector(x, p, t).reshape(b, n, d)
        if self.record_strength:
            self.last_strength = (out - tokens).detach().float().norm(dim=-1).reshape(b, frames, gh, gw)
        return out

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _matched(x: torch.Tensor, b: int) -> torch.Tensor:
        """Broadcast a batch-1 condition (a shared reference) to batch b."""
        if x.shape[0] == 1 and b > 1:
            return x.expand(b, *x.shape[1:])
        if x.shape[0] != b:
            raise ValueError(f"reference batch {x.shape[0]} does not match latents batch {b}")
        return x
