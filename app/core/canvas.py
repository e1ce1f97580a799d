"""Canvas tokens: the learnable grid the MLLM fills with its plan, and where that grid sits in M-RoPE.

The canvas is laid out like an image block in Qwen2.5-VL's 3-axis rotary positions, so a pretrained MLLM
reads it as "a picture to come" (METHOD.md, Canvas tokens). Temporal stride s = 1 between keyframes: the
paper does not give it; s = 1 matches a video grid whose time interval is one id per temporal patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CanvasSpec:
    keyframes: int
    rows: int
    cols: int

    def __post_init__(self) -> None:
        for name in ("keyframes", "rows", "cols"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"CanvasSpec.{name} must be a positive integer, got {value!r}")

    @property
    def num_tokens(self) -> int:
        return self.keyframes * self.rows * self.cols

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.keyframes, self.rows, self.cols)


CANVAS_POSITIONS = ("grid", "sequence")


class CanvasTokens(nn.Module):
    """Learnable [K, H, W, d] grid; other output grids are interpolated from it.

    Optional layout drafts (`draft_labels`, app/core/draft.py): one embedding per label, weighted by a
    draft's coverage of each cell and added to that cell's token, so the plan is the plan of one scene.
    """

    def __init__(self, spec: CanvasSpec, dim: int, init_std: float = 0.02, draft_labels: int = 0,
                 positions: str = "grid") -> None:
        super().__init__()
        if positions not in CANVAS_POSITIONS:
            raise ValueError(f"canvas positions must be one of {CANVAS_POSITIONS}, not {positions!r}")
        self.spec = spec
        self.dim = dim
        # "grid": an image block's 3-axis M-RoPE ids (the method); "sequence": 1-D text positions (the
        # no-multimodal-RoPE and 1-D query ablations, app/core/ablations.py).
        self.positions = positions
        self.draft_labels = int(draft_labels)
        if self.draft_labels:  # zero at first: a new draft changes nothing until it is taught
            self.draft_embedding = nn.Parameter(torch.zeros(self.draft_labels, dim))
        # Small init: the canvas starts close to "no information", like fresh token embeddings.
        self.tokens = nn.Parameter(torch.randn(spec.keyframes, spec.rows, spec.cols, dim) * init_std)

    def forward(self, spec: CanvasSpec | None = None, draft: torch.Tensor | None = None) -> torch.Tensor:
        """[N, d] without a draft; [B, N, d] with `draft`, [B, N, draft_labels] label coverage per cell."""
        spec = spec or self.spec
        base = self._resized(self.tokens, spec).reshape(spec.num_tokens, self.dim)
        if draft is not None and self.draft_labels:
            if draft.shape[1:] != (spec.num_tokens, self.draft_labels):
                raise ValueError(f"a draft for this canvas is [B, {spec.num_tokens}, {self.draft_labels}], "
                                 f"got {tuple(draft.shape)}")
            base = base + draft.to(self.draft_embedding) @ self.draft_embedding
        return base

    def _resized(self, grid: torch.Tensor, spec: CanvasSpec) -> torch.Tensor:
        if spec.shape != tuple(grid.shape[:3]):
            if spec.keyframes == grid.shape[0]:
                x = grid.permute(0, 3, 1, 2)  # [K, d, H, W]
                x = F.interpolate(x, size=(spec.rows, spec.cols), mode="bilinear", align_corners=False)
                grid = x.permute(0, 2, 3, 1)
            else:
                x = grid.permute(3, 0, 1, 2).unsqueeze(0)  # [1, d, K, H, W]
                x = F.interpolate(x, size=spec.shape, mode="trilinear", align_corners=False)
                grid = x[0].permute(1, 2, 3, 0)
        return grid

    def extra_repr(self) -> str:
        return f"spec={self.spec}, dim={self.dim}, draft_labels={self.draft_labels}"


def canvas_position_ids(prefix_ids: torch.Tensor, attention_mask: torch.Tensor | None, spec: CanvasSpec,
                        temporal_stride: int = 1, layout: str = "grid") -> torch.Tensor:
    """Append the canvas block's 3-axis ids to a prefix's ids: [3, B, L] -> [3, B, L + N].

    start = (largest id of the prefix over its unmasked positions) + 1, per item, because left padding
    makes items' prefixes end at different ids; then t = start + k*s, h = start + row, w = start + col,
    which is exactly what Qwen2.5-VL's get_rope_index gives an image grid of (1, 2H, 2W) (K = 1).
    """
    if prefix_ids.dim() != 3 or prefix_ids.shape[0] != 3:
        raise ValueError(f"prefix_ids must be [3, B, L], got {tuple(prefix_ids.shape)}")
    _, batch, length = prefix_ids.shape
    device = prefix_ids.device
    if length == 0:
        start = torch.zeros(batch, dtype=prefix_ids.dtype, device=device)
    else:
        ids = prefix_ids
        if attention_mask is not None:
            valid = attention_mask.to(device=device).bool().unsqueeze(0).expand_as(prefix_ids)
            ids = prefix_ids.masked_fill(~valid, torch.iinfo(prefix_ids.dtype).min)
        start = ids.amax(dim=(0, 2)) + 1
        # An item with no unmasked prefix starts at 0 like an empty sequence would.
        start = torch.where(start < 0, torch.zeros_like(start), start)

    if layout == "sequence":  # as text: t = h = w = the running index
        block = torch.arange(spec.num_tokens, device=device).expand(3, 1, -1).to(prefix_ids.dtype)
    else:
        k = torch.arange(spec.keyframes, device=device) * temporal_stride
        r = torch.arange(spec.rows, device=device)
        c = torch.arange(spec.cols, device=device)
        kk, rr, cc = torch.meshgrid(k, r, c, indexing="ij")
        block = torch.stack([kk, rr, cc]).reshape(3, 1, -1).to(prefix_ids.dtype)  # [3, 1, N]
    block = block + start.view(1, batch, 1)
    return torch.cat([prefix_ids, block], dim=2)
