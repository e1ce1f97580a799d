"""The two bridges from the planner (MLLM) to the diffusion transformer (METHOD.md).

- `CanvasConnector`: the plan (canvas states) -> something added patch by patch to the DiT's
  patch-embedded noisy latents. Two stages, each closed by a zero-initialised Linear, so a fresh
  connector is an exact no-op (training starts from the unchanged backbone, ControlNet style):
    1. `encode`: a vanilla bidirectional transformer block over each keyframe's cells, then
       ZeroLinear(d_mllm -> dit_dim). It depends only on the plan, so it runs ONCE per request.
    2. `forward`: one DiT block with timestep AdaLN over (patch tokens + resized plan), then
       ZeroLinear(dit_dim -> dit_dim) added back to the patch tokens. It runs every denoising step.
  `resize` maps the encoded plan to the DiT token grid (bilinear in space, linear over latent frames).
- `ContextConnector`: LayerNorm + 2-layer MLP from the MLLM's ordinary states to the backbone's
  text-conditioning width.

Both blocks are diffusers' `BasicTransformerBlock` (the PixArt block: with norm_type
"ada_norm_single" it takes the 6-way shift/scale/gate from `AdaLayerNormSingle`), a well-kept
library class rather than a home-made one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.normalization import AdaLayerNormSingle


def pick_heads(dim: int, preferred: int | None = None) -> int:
    """A head count that divides `dim`: `preferred` if it does, else head dims of 128/64/32/16/8."""
    if preferred and dim % preferred == 0:
        return preferred
    for head_dim in (128, 64, 32, 16, 8):
        if dim % head_dim == 0:
            return dim // head_dim
    return 1


def zero_linear(in_dim: int, out_dim: int) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _interp_matrix(size: int, out: int, device) -> torch.Tensor:
    """[out, size] weights of 1-D bilinear resampling (align_corners=False, antialiased when
    shrinking), read off F.interpolate applied to an identity: exactly the weights it uses.
    The identity gets a dummy width of 2, not 1: with antialias=True, torch 2.13 on CPU resamples a
    [N, C, H, 1] input wrongly (every output row came out as the column mean)."""
    eye = torch.eye(size, device=device, dtype=torch.float32).reshape(size, 1, size, 1).expand(size, 1, size, 2)
    m = F.interpolate(eye.contiguous(), size=(out, 2), mode="bilinear", align_corners=False, antialias=out < size)
    return m[..., 0].reshape(size, out).T


class CanvasConnector(nn.Module):
    """Canvas states [B, K, H, W, d_mllm] -> per-step additions to the DiT's target tokens.

    heads: attention heads of the DiT-side block (dit_dim must divide by it).
    mllm_heads: heads of the vanilla block at d_mllm (default: `heads` if it divides d_mllm,
        else head dim 128/64/...).
    The paper's ablations (Table 3; app/core/ablations.py):
    adaln: False = "without timestep AdaLN" (a plain pre-LN block).
    vanilla_block: False = "without the vanilla block" (the plan goes straight to the zero Linear).
    dit_block: False = "without the DiT block" (the encoded plan is added to the patch tokens as it is).
    out_dim: the width of what `alone` returns (the "canvas before patchify" ablation: latent channels
        times the patch area); default dit_dim.
    """

    def __init__(self, mllm_dim: int, dit_dim: int, heads: int | None = None, adaln: bool = True,
                 mllm_heads: int | None = None, mlp_ratio: float = 4.0, vanilla_block: bool = True,
                 dit_block: bool = True, out_dim: int | None = None):
        super().__init__()
        heads = pick_heads(dit_dim, heads)
        mllm_heads = pick_heads(mllm_dim, mllm_heads or heads)
        self.mllm_dim, self.dit_dim, self.adaln = mllm_dim, dit_dim, adaln
        self.vanilla_block, self.dit_block = vanilla_block, dit_block
        self.config = dict(mllm_dim=mllm_dim, dit_dim=dit_dim, heads=heads, adaln=adaln,
                           mllm_heads=mllm_heads, mlp_ratio=mlp_ratio, vanilla_block=vanilla_block,
                           dit_block=dit_block, out_dim=out_dim)

        # Stage 1: plan-only, once per request. The MLLM's states already carry MRoPE positions,
        # so the block gets no extra position embedding.
        self.plan_block = BasicTransformerBlock(
            mllm_dim, mllm_heads, mllm_dim // mllm_heads, activation_fn="gelu-approximate",
            norm_type="layer_norm", ff_inner_dim=int(mlp_ratio * mllm_dim), attention_bias=True
        ) if vanilla_block else None
        self.plan_out = zero_linear(mllm_dim, dit_dim)
        if not dit_block:  # stage 2 is left out: nothing runs per step but the addition
            self.time_embed = self.step_block = self.step_out = None
            return

        # Stage 2: per step, modulated by the timestep (PixArt/SANA adaLN-single).
        if adaln:
            self.time_embed = AdaLayerNormSingle(dit_dim)
            self.step_block = BasicTransformerBlock(
                dit_dim, heads, dit_dim // heads, activation_fn="gelu-approximate",
                norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
                ff_inner_dim=int(mlp_ratio * dit_dim), attention_bias=True)
        else:
            self.time_embed = None
            self.step_block = BasicTransformerBlock(
                dit_dim, heads, dit_dim // heads, activation_fn="gelu-approximate",
                norm_type="layer_norm", ff_inner_dim=int(mlp_ratio * dit_dim), attention_bias=True)
        self.step_out = zero_linear(dit_dim, out_dim or dit_dim)

    def encode(self, canvas: torch.Tensor) -> torch.Tensor:
        """[B, K, H, W, d_mllm] -> [B, K, H, W, dit_dim]; attention within each keyframe."""
        b, k, h, w, d = canvas.shape
        x = canvas.to(self.plan_out.weight.dtype).reshape(b * k, h * w, d)
        x = self.plan_out(self.plan_block(x) if self.plan_block is not None else x)
        return x.reshape(b, k, h, w, self.dit_dim)

    @staticmethod
    def resize(encoded: torch.Tensor, frames: int, grid_h: int, grid_w: int) -> torch.Tensor:
        """[B, K, H, W, D] -> [B, frames, grid_h, grid_w, D].

        Space: bilinear (antialiased when shrinking, so a 32x32 plan on a 16x16 grid averages its
        cells instead of sampling every other one). Time: keyframe 0 sits on latent frame 0 and
        keyframe K-1 on the last one, linear in between (align_corners); K = 1 broadcasts.
        Returns the input itself when the shapes already match (no copy, exact).

        Done as small matmuls with F.interpolate's own weights rather than F.interpolate on the
        plan: PyTorch's CUDA upsample kernels loop over channels inside each thread, and the plan
        has thousands of channels (x frames x cells). Measured on an H100 at Wan2.2-5B size, the
        F.interpolate version cost 10 % of a denoising step; the matmuls cost next to nothing.
        """
        b, k, h, w, d = encoded.shape
        x = encoded
        if (h, w) != (grid_h, grid_w):
            wh = _interp_matrix(h, grid_h, x.device).to(x.dtype)  # [grid_h, h]
            ww = _interp_matrix(w, grid_w, x.device).to(x.dtype)  # [grid_w, w]
            x = torch.einsum("yh,bkhwd->bkywd", wh, x)
            x = torch.einsum("xw,bkywd->bkyxd", ww, x)
        if k != frames:
            if k == 1:
                x = x.expand(b, frames, grid_h, grid_w, d)
            else:
                pos = torch.linspace(0, k - 1, frames, device=x.device, dtype=torch.float64)
                lo = pos.floor().clamp(max=k - 2)
                frac = (pos - lo).float()
                wt = torch.zeros(frames, k, device=x.device)
                idx = torch.arange(frames, device=x.device)
                wt[idx, lo.long()] = 1 - frac
                wt[idx, lo.long() + 1] += frac
                x = torch.einsum("fk,bkyxd->bfyxd", wt.to(x.dtype), x)
        return x

    def forward(self, tokens: torch.Tensor, plan_tokens: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """tokens, plan_tokens [B', N, D]; timestep [B'] flow-matching time in 0..1 -> tokens'."""
        x = tokens + plan_tokens.to(tokens.dtype)
        if not self.dit_block:
            return x
        return tokens + self.step_out(self._step(x, timestep))

    def alone(self, plan_tokens: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The per-step block over the plan alone, [B', N, D] -> [B', N, out_dim]: the "canvas before
        patchify" ablation, where no patch tokens exist yet to add the plan to."""
        if not self.dit_block:
            raise ValueError("the canvas-before-patchify ablation needs the DiT block")
        return self.step_out(self._step(plan_tokens, timestep))

    def _step(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        if not self.adaln:
            return self.step_block(x)
        t = torch.as_tensor(timestep, device=x.device).reshape(-1).expand(x.shape[0])
        # AdaLayerNormSingle is the PixArt/SANA embedder, trained on a 0..1000 scale.
        t6, _ = self.time_embed(t * 1000, batch_size=x.shape[0], hidden_dtype=x.dtype)
        return self.step_block(x, timestep=t6)


class ContextConnector(nn.Module):
    """MLLM states [B, L, d_mllm] -> backbone conditioning width: LayerNorm, Linear, GELU, Linear.

    The input norm matters because MLLM hidden states have a few huge-magnitude channels.
    """

    def __init__(self, mllm_dim: int, out_dim: int, hidden_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.config = dict(mllm_dim=mllm_dim, out_dim=out_dim, hidden_mult=hidden_mult, dropout=dropout)
        hidden = hidden_mult * mllm_dim
        self.norm = nn.LayerNorm(mllm_dim)
        self.fc1 = nn.Linear(mllm_dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        x = self.norm(context.to(self.fc1.weight.dtype))
        return self.fc2(self.drop(self.act(self.fc1(x))))
