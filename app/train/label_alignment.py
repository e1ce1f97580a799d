"""An auxiliary loss for stage 2: the DiT's own tokens, halfway up, name what lies under them.

Why (our choice; METHOD.md trains stage 2 with the flow-matching loss alone): a small DiT trained
from nothing learns to draw flat shapes long before it learns which shape a word names (the shapes
model still drew squares for "a circle" after 1.5 M training images, research/LOG.md). REPA (Yu et
al. 2024, "Representation Alignment for Generation Is Easier Than You Think") showed that giving a
DiT's middle tokens a semantic target speeds training many times over; it aligns them with a
pretrained image encoder. We have no such encoder, but the shapes world gives exact semantics for
free: each token's label (background, or class x colour) in the target scene, the same label map
the planner is taught on (app/train/planner_teaching.py). A linear head on the target tokens of
block `layer` predicts it with cross-entropy, at every noise level: at low noise it is reading the
image, at high noise it is the plan the text and canvas imply. The head is thrown away after
training; the exported model is an ordinary MetaCanvas model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from app.shapes.palette import NUM_LABELS


class LabelAlignment(nn.Module):
    def __init__(self, adapter, layer: int):
        super().__init__()
        blocks = adapter.transformer.transformer_blocks
        if not -len(blocks) <= layer < len(blocks):
            raise ValueError(f"label_loss_layer {layer} is outside the DiT's {len(blocks)} blocks")
        cfg = adapter.transformer.config
        self.head = nn.Linear(cfg.num_attention_heads * cfg.attention_head_dim, NUM_LABELS)
        self._features: torch.Tensor | None = None
        # A forward hook keeps the transformer's stock class; it only records the block's output.
        blocks[layer].register_forward_hook(self._record)

    def _record(self, module, inputs, output) -> None:
        if module.training:  # not while the training run samples for its quick evaluations
            self._features = output

    def loss(self, labels: torch.Tensor) -> torch.Tensor:
        """labels [B, g, g] of the target scene on the token grid -> cross-entropy of the last call's tokens."""
        if self._features is None:
            raise RuntimeError("no DiT features recorded: run the adapter in training mode first")
        b, g, _ = labels.shape
        tokens = self._features[:, : g * g]  # an edit's reference rows follow the target's
        self._features = None
        logits = self.head(tokens.float())
        return F.cross_entropy(logits.reshape(-1, NUM_LABELS), labels.reshape(-1).to(logits.device))
