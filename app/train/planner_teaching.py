"""Stage 1: teach the planner to ground an instruction in the layout.

A pretrained MLLM arrives able to ground "a red circle left of a blue star"; our small planner
starts from nothing, and a DiT cannot lean on a planner that knows nothing yet (API-NOTES.md). So
the planner first learns, with two auxiliary heads that are thrown away afterwards:
- canvas head: each canvas cell's state predicts that cell's label (background, or class x colour)
  in the target scene: the plan becomes a soft layout;
- context head: the masked mean of the context states predicts the same whole label map, so the
  context states carry the scene too. Both variants (MetaCanvas and the text-only baseline) share
  this planner, which keeps the comparison fair: the baseline's context is just as informed.
A label map is mostly unpredictable from a caption (a "red circle" can be anywhere); the heads learn
the knowable part: which labels, and where the mass sits for positional words and for edits.

With layout drafts (app/core/draft.py), a text-to-image scene's canvas is seeded with that scene's own
draft (teacher forcing), so the canvas head can learn the scene's exact label map, and the drafter
learns, from the context states (detached: it reads them, it does not reshape them), to draw such
drafts from the caption.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from app.core.canvas import CanvasSpec
from app.core.draft import no_drafts
from app.shapes.palette import NUM_LABELS


def label_weights(foreground_weight: float) -> torch.Tensor:
    """Cross-entropy weights per label. Background covers ~85 % of cells: unweighted, the heads
    learn "background everywhere" first."""
    weights = torch.full((NUM_LABELS,), float(foreground_weight))
    weights[0] = 1.0
    return weights


class PlannerTeacher(nn.Module):
    def __init__(self, planner, grid: int, foreground_weight: float = 1.0, keyframes: int = 1):
        super().__init__()
        self.planner = planner
        self.grid = grid
        self.keyframes = keyframes  # a video planner's canvas: labels [B, K, g, g], one map per keyframe
        self.register_buffer("label_weights", label_weights(foreground_weight), persistent=False)
        d = planner.hidden_size
        self.canvas_head = nn.Linear(d, NUM_LABELS)
        self.context_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, keyframes * grid * grid * NUM_LABELS))

    def loss(self, batch: dict, device) -> tuple[torch.Tensor, dict[str, float]]:
        spec = CanvasSpec(self.keyframes, self.grid, self.grid)
        labels = torch.from_numpy(batch["labels"]).to(device).reshape(-1, self.keyframes, self.grid, self.grid)
        drafts = batch_drafts(self.planner, batch)
        plan = self.planner(list(batch["texts"]), spec, inputs=batch["planner_inputs"], drafts=drafts)
        canvas_logits = self.canvas_head(plan.canvas)  # [B, K, g, g, L]
        canvas_loss = F.cross_entropy(canvas_logits.reshape(-1, NUM_LABELS), labels.reshape(-1), weight=self.label_weights)
        mask = plan.context_mask.unsqueeze(-1).to(plan.context.dtype)
        pooled = (plan.context * mask).sum(1) / mask.sum(1).clamp(min=1)
        context_logits = self.context_head(pooled).reshape(-1, self.keyframes, self.grid, self.grid, NUM_LABELS)
        context_loss = F.cross_entropy(context_logits.reshape(-1, NUM_LABELS), labels.reshape(-1), weight=self.label_weights)
        with torch.no_grad():
            fg = labels > 0
            acc = (canvas_logits.argmax(-1)[fg] == labels[fg]).float().mean().item() if fg.any() else 0.0
        # A batch is all edits or all text-to-image, and the two accuracies differ in kind: an edit's
        # layout is in its source (0.5+ once taught), a caption's mostly is not (near 0 under argmax).
        # Named apart, a log of 0.2, 0.0, 0.2 reads as two tasks, not as a collapse.
        kind = batch.get("kind") or ("edit" if batch.get("sources") is not None else "t2i")
        stats = {"canvas": canvas_loss.item(), "context": context_loss.item(), f"fg_acc_{kind}": acc}
        loss = canvas_loss + context_loss
        if self.planner.drafts and batch.get("draft") is not None:
            # A caption's draft teaches the layout drafter, an edit's target draft the edit drafter
            # (never the other: they read different things); without an edit drafter, none.
            if batch.get("sources") is None:
                draft_loss, draft_stats = self.planner.drafter.loss(plan.context.detach(), plan.context_mask, drafts)
                loss = loss + draft_loss
                stats.update(draft_stats)
            elif self.planner.edit_drafter is not None:
                inputs = batch["planner_inputs"]
                edit_drafter = self.planner.edit_drafter
                sources = self.planner.source_images(inputs) if edit_drafter.config.pixel_width else None
                draft_loss, draft_stats = edit_drafter.loss(plan.context.detach(), plan.context_mask, drafts,
                                                            where=self.planner.image_places(inputs), sources=sources,
                                                            source_drafts=batch.get("source_draft"),
                                                            named=batch.get("source_named"))
                loss = loss + draft_loss
                stats.update({f"edit_{k}": v for k, v in draft_stats.items()})
        return loss, stats


def batch_drafts(planner, batch: dict) -> torch.Tensor | None:
    """The drafts a training batch plans with: its scenes' own (text-to-image), none for edits; None
    for a planner without drafts. Never None with drafts: the planner would draw its own."""
    if not planner.drafts:
        return None
    if batch.get("draft") is not None:
        return torch.from_numpy(batch["draft"])
    return no_drafts(len(batch["texts"]), planner.drafter.config)
