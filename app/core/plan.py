"""The Plan: what the MLLM said about one request, and the pictures the studio draws from it.

`canvas` holds the MLLM's output states at the canvas positions ([B, K, H, W, d]); `context` its
states over the prompt. Views are numpy arrays so the UI can show them without knowing torch.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, safe_open, save_file

from .canvas import CanvasSpec
from .draft import DraftConfig, draft_coverage, draft_objects, objects_at, quantize_objects
from .request import PlanEdit

_FORMAT = "metacanvas-plan"
_VERSION = "1"
TRACK_EDITS_REFUSED = ("a clip's drafted tracks cannot be edited object by object yet: edit its canvas instead "
                       "(scale, move), or change the words")


@dataclass
class Plan:
    canvas: torch.Tensor  # [B, K, H, W, d]
    context: torch.Tensor  # [B, L, d]
    context_mask: torch.Tensor  # [B, L] bool
    words: list[list[tuple[str, list[int]]]]
    strength: torch.Tensor | None = None  # [B, K, H, W]
    draft: torch.Tensor | None = None  # [B, length, 4] layout drafts (app/core/draft.py), when drafted
    # [B, K, H, W] how much of each cell the draft's objects cover (zeros for an undrafted item)
    draft_cover: torch.Tensor | None = None
    # How draft rows map to the frame (the drafter's bins and sizes). None on a plan saved before plans
    # carried it: read with DraftConfig's defaults, the bins of every drafting model made until then.
    draft_config: DraftConfig | None = None
    # Plans the same request again with other draft rows ([B, length, 4] -> Plan): set by the planner
    # that made this plan, so an object edit is planned as the model plans that layout. to(), select()
    # and save() leave it behind: a plan handed to another thread or written to a file is data only.
    replan: Callable[[torch.Tensor], "Plan"] | None = field(default=None, repr=False, compare=False)
    # The name of the model that made it, as a plan file records it (None: not recorded): a plan's states mean
    # something only to the model that made them.
    made_by: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.canvas.dim() != 5:
            raise ValueError(f"Plan.canvas must be [B, K, H, W, d], got {tuple(self.canvas.shape)}")
        if self.context.dim() != 3 or self.context.shape[:2] != self.context_mask.shape:
            raise ValueError("Plan.context must be [B, L, d] with a [B, L] context_mask")
        self.context_mask = self.context_mask.bool()
        if self.strength is not None and self.strength.shape != self.canvas.shape[:4]:
            raise ValueError(f"Plan.strength must be [B, K, H, W] = {tuple(self.canvas.shape[:4])}")
        if self.draft_cover is not None and self.draft_cover.shape != self.canvas.shape[:4]:
            raise ValueError(f"Plan.draft_cover must be [B, K, H, W] = {tuple(self.canvas.shape[:4])}")

    # ---- shape -----------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.canvas.shape[0]

    @property
    def keyframes(self) -> int:
        return self.canvas.shape[1]

    @property
    def grid(self) -> tuple[int, int]:
        return (self.canvas.shape[2], self.canvas.shape[3])

    # ---- views -----------------------------------------------------------------------------------
    def _states(self, item: int) -> torch.Tensor:
        # Views are computed in float32 on CPU: bf16 SVD/norms are unsupported or too coarse.
        return self.canvas[item].detach().float().cpu()

    def has_draft(self, item: int = 0) -> bool:
        """Whether this item's canvas was seeded from a layout draft (a drafting model drafted it)."""
        if self.draft_cover is None:
            return False
        if self.draft is not None:
            return bool((self.draft[item][:, 0] >= 0).any())  # an undrafted item's rows are all -1
        return float(self.draft_cover[item].sum()) > 0

    def objects_editable(self, item: int = 0) -> bool:
        """Whether this item's drafted objects can be moved, resized, deleted or added by hand: a still
        draft's can; a clip's drafted tracks cannot yet (TRACK_EDITS_REFUSED)."""
        return self.has_draft(item) and self.draft is not None and not self.layout_config().track

    def objects(self, item: int = 0) -> list[tuple[int, float, float, float]]:
        """The drafted objects, numbered from 1 in this order (the plan picture's numbers): (label, centre
        x, centre y, half-size) in fractions of the frame; [] for an undrafted item."""
        if not self.has_draft(item) or self.draft is None:
            return []
        # A clip's drafted tracks: each object where its track starts (the first keyframe's picture).
        return objects_at(draft_objects(self.draft[item], self.layout_config()), 0.0)

    def objects_after(self, edits: list[PlanEdit], item: int = 0) -> list[tuple[int, float, float, float]]:
        """The drafted objects as the object edits among `edits` leave them (on the bins' centres, as the
        edited draft holds them), numbered from 1 in this order. ValueError for an edit that does not fit."""
        config = self.layout_config()
        if config.track:
            if any(e.edits_objects for e in edits):
                raise ValueError(TRACK_EDITS_REFUSED)
            return self.objects(item)
        current = [(o, o) for o in self.objects(item)]
        for e in edits:
            if e.edits_objects:
                current = _object_edit(current, e, config)
        return draft_objects(quantize_objects([after for _, after in current], config), config)

    def layout_config(self) -> DraftConfig:
        """How this plan's draft rows map to the frame: its drafter's config."""
        if self.draft_config is not None:
            return self.draft_config
        labels = int(self.draft[..., 0].max()) + 1 if self.draft is not None else 1
        return DraftConfig(labels=max(labels, 2), track=self.draft is not None and self.draft.shape[-1] == 6)

    def draft_map(self, item: int = 0, keyframe: int = 0) -> np.ndarray | None:
        """The drafted layout: the share of each cell the draft's objects cover, [H, W] float32 in 0..1;
        None when this item was not drafted (a model without a drafter, or a request it left undrafted)."""
        if not self.has_draft(item):
            return None
        cover = self.draft_cover[item, keyframe].detach().float().cpu()
        return cover.clamp(0, 1).numpy().astype(np.float32)

    def canvas_effect(self, item: int = 0, keyframe: int = 0) -> np.ndarray:
        """The canvas's own effect: how much the canvas connector adds to each cell (|its output|, from
        `strength`), [H, W] float32 in 0..1, divided by the item's peak over its keyframes.

        A plan without a recorded strength (the planner run alone) falls back to how far each cell's
        state is from the canvas's mean state: the same place the connector reads from."""
        values = self._strength(item)
        if values is None:
            states = self._states(item)
            mean = states.reshape(-1, states.shape[-1]).mean(0)
            values = (states - mean).norm(dim=-1)
        return _peak_normalised(values, keyframe)

    def heatmap(self, item: int = 0, keyframe: int = 0) -> np.ndarray:
        """What the plan marks, as one map (the CLI's plan strip and the plan-fidelity eval read it): the
        draft's coverage, divided by its peak, where the item was drafted; else `canvas_effect`.

        The two are different things: a drafted canvas's connector output speaks loudest about the
        background (measured on the shapes model: about 20 on background cells, 13-15 on object
        cells). Pictures that must say which they show call `draft_map` and `canvas_effect`."""
        if self.draft_cover is not None and float(self.draft_cover[item].sum()) > 0:
            return _peak_normalised(self.draft_cover[item].detach().float().cpu(), keyframe)
        return self.canvas_effect(item, keyframe)

    def _strength(self, item: int) -> torch.Tensor | None:
        """|connector output| for the item's keyframes [K, H, W], or None when not recorded for it (a
        strength set after construction may hold fewer rows, e.g. the conditional one only)."""
        s = self.strength
        if s is None or s.dim() != 4 or item >= s.shape[0] or s.shape[1:] != self.canvas.shape[1:4]:
            return None
        return s[item].detach().float().cpu().abs()

    def pca_rgb(self, item: int = 0, keyframe: int = 0) -> np.ndarray:
        """The canvas states' top 3 principal components as colours: [H, W, 3] uint8.

        The basis is fitted over all keyframes of the item so colours mean the same thing across
        keyframes, and each component's sign is fixed (largest-magnitude projection positive) so
        the colours don't flip between calls or between nearly identical plans.
        """
        states = self._states(item)
        k, h, w, d = states.shape
        x = states.reshape(-1, d).double()
        x = x - x.mean(0)
        # Full SVD rather than pca_lowrank: it is deterministic, and the canvas is small.
        u, s, _ = torch.linalg.svd(x, full_matrices=False)
        proj = u[:, :3] * s[:3]
        if proj.shape[1] < 3:
            proj = torch.cat([proj, proj.new_zeros(proj.shape[0], 3 - proj.shape[1])], dim=1)
        pivot = proj.abs().argmax(dim=0)
        signs = torch.sign(proj[pivot, torch.arange(3)])
        proj = proj * torch.where(signs == 0, torch.ones_like(signs), signs)
        lo, hi = proj.min(0).values, proj.max(0).values
        span = torch.where(hi - lo > 1e-12, hi - lo, torch.ones_like(hi))
        rgb = ((proj - lo) / span).clamp(0, 1)
        rgb = torch.where((hi - lo > 1e-12).unsqueeze(0), rgb, torch.zeros_like(rgb))
        rgb = (rgb * 255).round().to(torch.uint8).reshape(k, h, w, 3)
        return rgb[keyframe].numpy()

    def word_map(self, word_index: int, item: int = 0, keyframe: int = 0) -> np.ndarray:
        """How much each canvas cell agrees with one instruction word: [H, W] float32 in 0..1.

        Cosine similarity of the word's mean context state with each cell, min-max rescaled over the
        item's keyframes (raw cosines of LLM states sit in a narrow band that reads as flat grey).
        """
        word, indices = self.words[item][word_index]
        if not indices:
            raise ValueError(f"word {word!r} has no context tokens")
        query = self.context[item, indices].detach().float().cpu().mean(0)
        states = self._states(item)
        cos = torch.nn.functional.cosine_similarity(states, query.expand_as(states), dim=-1)
        lo, hi = cos.min(), cos.max()
        if hi - lo < 1e-12:
            return np.zeros(cos.shape[1:], dtype=np.float32)
        return ((cos[keyframe] - lo) / (hi - lo)).clamp(0, 1).numpy().astype(np.float32)

    # ---- edits -----------------------------------------------------------------------------------
    def edited(self, edits: list[PlanEdit], *, preview: bool = False) -> "Plan":
        """A new plan with the user's edits applied; this plan is left untouched.

        Object edits go first, in their order, to the drafted layout: with `replan` the model plans the
        edited layout afresh; without it (a plan read from a file) each changed object's canvas cells
        are moved, rescaled or cleared to the background's state, and an added object is refused (no
        states for it exist without the model) unless `preview`: then it is drafted and its cells are
        left as they were. A preview never runs the model (what the studio draws on its GUI thread while
        the user edits; Generate plans the edits with the model).
        Cell edits follow in their order, on every item."""
        objects = [e for e in edits if e.edits_objects]
        plan = self._objects_edited(objects, preview) if objects else self
        return plan._cells_edited([e for e in edits if not e.edits_objects])

    def _cells_edited(self, edits: list[PlanEdit]) -> "Plan":
        if not edits:
            return self
        canvas = self.canvas.clone()
        strength = self.strength.clone() if self.strength is not None else None
        if strength is not None and strength.shape != canvas.shape[:4]:
            # Strength on another grid (e.g. the DiT's) cannot follow cell edits; the pipeline recomputes it.
            strength = None
        cover = self.draft_cover.clone() if self.draft_cover is not None else None
        _, k, h, w, d = canvas.shape
        for edit in edits:
            frames = range(k) if edit.keyframe is None else [edit.keyframe]
            if edit.keyframe is not None and not 0 <= edit.keyframe < k:
                raise ValueError(f"plan edit keyframe {edit.keyframe} out of range 0..{k - 1}")
            r0, r1, c0, c1 = _box_cells(edit.box, h, w)
            if r0 >= r1 or c0 >= c1:
                continue
            # The "mean state" is the plan's neutral value: what a cell with nothing to say looks like.
            mean = canvas.reshape(canvas.shape[0], -1, d).mean(1)[:, None, None, :]  # [B, 1, 1, d]
            for f in frames:
                cells = canvas[:, f]
                if edit.kind == "scale":
                    region = cells[:, r0:r1, c0:c1]
                    cells[:, r0:r1, c0:c1] = mean + edit.factor * (region - mean)
                    if strength is not None:
                        strength[:, f, r0:r1, c0:c1] *= abs(edit.factor)
                    if cover is not None:
                        cover[:, f, r0:r1, c0:c1] = (cover[:, f, r0:r1, c0:c1] * abs(edit.factor)).clamp(max=1)
                else:
                    dr, dc = round(edit.dy * h), round(edit.dx * w)
                    canvas[:, f] = _move(cells, (r0, r1, c0, c1), dr, dc, fill=mean)
                    if strength is not None:
                        s = strength[:, f].unsqueeze(-1)
                        strength[:, f] = _move(s, (r0, r1, c0, c1), dr, dc, fill=s.new_zeros(()))[..., 0]
                    if cover is not None:
                        c = cover[:, f].unsqueeze(-1)
                        cover[:, f] = _move(c, (r0, r1, c0, c1), dr, dc, fill=c.new_zeros(()))[..., 0]
        return replace(self, canvas=canvas, strength=strength, draft_cover=cover)

    def _objects_edited(self, edits: list[PlanEdit], preview: bool) -> "Plan":
        drafted = [b for b in range(self.batch_size) if self.has_draft(b)]
        if self.draft is None or not drafted:
            raise ValueError("this plan has no drafted objects to edit: its model drafts no layout (or did not "
                             "draft this request); edit the canvas instead (scale, move)")
        config = self.layout_config()
        if config.track:
            raise ValueError(TRACK_EDITS_REFUSED)
        rows = self.draft.clone()
        changes: dict[int, list[tuple[tuple | None, tuple]]] = {}  # item -> [(object before, after)]
        for b in drafted:
            before = draft_objects(rows[b], config)
            current: list[tuple[tuple | None, tuple]] = [(o, o) for o in before]
            for e in edits:
                current = _object_edit(current, e, config)
            try:
                rows[b] = torch.from_numpy(quantize_objects([after for _, after in current], config))
            except ValueError as err:
                raise ValueError(f"the edited draft does not fit the model: {err}") from None
            after = draft_objects(rows[b], config)  # on the bins' centres, as drawn
            changes[b] = [(old, new) for (old, _), new in zip(current, after)]
            changes[b] += [(old, None) for old in before if old not in [o for o, _ in current]]
        if self.replan is not None and not preview:
            with torch.no_grad():
                plan = self.replan(rows)
            return replace(plan, draft_config=config, replan=self.replan)
        if not preview and any(old is None for b in changes for old, _ in changes[b]):
            raise ValueError("adding an object needs the model to plan it, and this plan came from a file: add "
                             "it to a plan the model makes (without --plan-in), or in the studio")
        return self._objects_moved_on_canvas(rows, changes, config)

    def _objects_moved_on_canvas(self, rows: torch.Tensor, changes: dict, config: DraftConfig) -> "Plan":
        """Each changed object's cells, resampled from where it was to where it is now (sub-cell,
        bilinear) over the background's state; a deleted object's cells become the background's."""
        canvas = self.canvas.clone()
        strength = self.strength.clone() if self._strength_on_grid() else None
        _, k, h, w, _ = canvas.shape
        cover = self.draft_cover if self.draft_cover is not None else torch.zeros(canvas.shape[:4])
        for b, pairs in changes.items():
            moved = [(old, new) for old, new in pairs if old is not None and old != new]
            if not moved:
                continue
            background = cover[b].to(canvas.device) < 0.05  # [K, H, W] cells no drafted object touches
            for f in range(k):
                layers = [canvas[b, f]] + ([strength[b, f].unsqueeze(-1)] if strength is not None else [])
                for i, cells in enumerate(layers):
                    flat = cells[background[f]] if background[f].any() else cells.reshape(-1, cells.shape[-1])
                    bg = flat.mean(0)
                    layers[i] = _resample_objects(cells, moved, bg, h, w)
                canvas[b, f] = layers[0]
                if strength is not None:
                    strength[b, f] = layers[1][..., 0]
        spec = CanvasSpec(k, h, w)
        new_cover = draft_coverage(rows, spec, config)[..., 1:].sum(-1).reshape(-1, k, h, w)
        return replace(self, canvas=canvas, strength=strength if strength is not None else self.strength,
                       draft=rows, draft_cover=new_cover.float())

    def _strength_on_grid(self) -> bool:
        return self.strength is not None and self.strength.shape == self.canvas.shape[:4]

    # ---- plumbing --------------------------------------------------------------------------------
    def select(self, item: int) -> "Plan":
        sl = slice(item, item + 1)
        return Plan(
            canvas=self.canvas[sl], context=self.context[sl], context_mask=self.context_mask[sl],
            words=[self.words[item]] if self.words else [],
            strength=self.strength[sl] if self.strength is not None else None,
            draft=self.draft[sl] if self.draft is not None else None,
            draft_cover=self.draft_cover[sl] if self.draft_cover is not None else None,
            draft_config=self.draft_config, made_by=self.made_by,
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Plan":
        return Plan(
            canvas=self.canvas.to(device=device, dtype=dtype),
            context=self.context.to(device=device, dtype=dtype),
            context_mask=self.context_mask.to(device=device),
            words=self.words,
            strength=self.strength.to(device=device, dtype=dtype) if self.strength is not None else None,
            draft=self.draft,
            draft_cover=self.draft_cover.to(device=device) if self.draft_cover is not None else None,
            draft_config=self.draft_config, made_by=self.made_by,
        )

    def save(self, path: str | Path, made_by: str | None = None) -> None:
        tensors = {
            "canvas": self.canvas.detach().cpu().contiguous(),
            "context": self.context.detach().cpu().contiguous(),
            "context_mask": self.context_mask.detach().cpu().contiguous(),
        }
        if self.strength is not None:
            tensors["strength"] = self.strength.detach().cpu().contiguous()
        if self.draft is not None:
            tensors["draft"] = self.draft.detach().cpu().contiguous()
        if self.draft_cover is not None:
            tensors["draft_cover"] = self.draft_cover.detach().cpu().contiguous()
        metadata = {"format": _FORMAT, "version": _VERSION, "words": json.dumps(self.words)}
        if self.draft_config is not None:
            metadata["draft_config"] = json.dumps(self.draft_config.to_dict())
        if made_by or self.made_by:
            metadata["model"] = made_by or self.made_by
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "Plan":
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a MetaCanvas plan file (metadata format={metadata.get('format')!r})")
        tensors = load_file(str(path), device=str(device))
        words = [[(word, list(idx)) for word, idx in item] for item in json.loads(metadata.get("words", "[]"))]
        config = DraftConfig.from_dict(json.loads(metadata["draft_config"])) if "draft_config" in metadata else None
        return cls(canvas=tensors["canvas"], context=tensors["context"], context_mask=tensors["context_mask"],
                   words=words, strength=tensors.get("strength"), draft=tensors.get("draft"),
                   draft_cover=tensors.get("draft_cover"), draft_config=config, made_by=metadata.get("model"))


def _box_cells(box: tuple[float, float, float, float], h: int, w: int) -> tuple[int, int, int, int]:
    """Fractional (left, top, right, bottom) -> cell ranges covering every cell the box touches."""
    left, top, right, bottom = (min(max(v, 0.0), 1.0) for v in box)
    eps = 1e-6  # a box edge exactly on a cell border must not grab the neighbouring cell
    r0, r1 = math.floor(top * h + eps), math.ceil(bottom * h - eps)
    c0, c1 = math.floor(left * w + eps), math.ceil(right * w - eps)
    return max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)


def _peak_normalised(values: torch.Tensor, keyframe: int) -> np.ndarray:
    """values [K, H, W] -> keyframe's [H, W] float32 divided by the peak over all keyframes, in 0..1.

    Dividing by the peak (not min-max) keeps "nothing planned" dark instead of stretching noise, and
    one peak for all keyframes keeps them comparable."""
    peak = values.max()
    out = values[keyframe] / peak if peak > 0 else torch.zeros_like(values[keyframe])
    return out.clamp(0, 1).numpy().astype(np.float32)


def _move(cells: torch.Tensor, box: tuple[int, int, int, int], dr: int, dc: int,
          fill: torch.Tensor) -> torch.Tensor:
    """Shift cells[:, box] by (dr, dc), filling the vacated area with `fill`; content leaving the frame is dropped."""
    r0, r1, c0, c1 = box
    h, w = cells.shape[1], cells.shape[2]
    out = cells.clone()
    content = cells[:, r0:r1, c0:c1].clone()
    out[:, r0:r1, c0:c1] = fill.to(out.dtype).expand_as(out[:, r0:r1, c0:c1])
    tr0, tr1, tc0, tc1 = r0 + dr, r1 + dr, c0 + dc, c1 + dc
    sr0, sc0 = max(0, -tr0), max(0, -tc0)
    tr0c, tc0c, tr1c, tc1c = max(tr0, 0), max(tc0, 0), min(tr1, h), min(tc1, w)
    if tr0c < tr1c and tc0c < tc1c:
        out[:, tr0c:tr1c, tc0c:tc1c] = content[:, sr0:sr0 + tr1c - tr0c, sc0:sc0 + tc1c - tc0c]
    return out


def _object_edit(current: list[tuple[tuple | None, tuple]], edit: PlanEdit,
                 config: DraftConfig) -> list[tuple[tuple | None, tuple]]:
    """One object edit on [(the object as drafted or None if added, the object now)], in draft order."""
    out = list(current)
    if edit.kind == "add_object":
        if config.labels > 1 and edit.label >= config.labels:
            raise ValueError(f"plan edit add_object: label {edit.label} is outside the model's 1..{config.labels - 1}")
        left, top, right, bottom = edit.box
        out.append((None, (edit.label, (left + right) / 2, (top + bottom) / 2, (right - left) / 2)))
        return out
    if not 1 <= edit.number <= len(out):
        have = f"objects 1 to {len(out)}" if len(out) > 1 else ("object 1" if out else "no objects")
        raise ValueError(f"plan edit {edit.kind.replace('_', ' ')} {edit.number}: the draft has {have}")
    i = edit.number - 1
    origin, (label, x, y, half) = out[i]
    if edit.kind == "delete_object":
        del out[i]
    elif edit.kind == "move_object":
        out[i] = (origin, (label, x + edit.dx, y + edit.dy, half))
    else:  # resize_object
        out[i] = (origin, (label, x, y, edit.size / 2))
    return out


def _disc_weights(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, radius: float) -> torch.Tensor:
    """How much of a disc covers each point's cell, soft over half a cell at its rim (x, y: cell centres)."""
    cell = 1.0 / max(x.shape[-1], y.shape[-2])
    dist = ((x - cx) ** 2 + (y - cy) ** 2).sqrt()
    return ((radius + cell / 2 - dist) / cell).clamp(0, 1)


def _resample_objects(cells: torch.Tensor, moved: list[tuple[tuple, tuple | None]], bg: torch.Tensor,
                      h: int, w: int) -> torch.Tensor:
    """cells [H, W, d]: every moved object's disc cleared to `bg`, then each object that is still there
    drawn at its new place and size, sampled bilinearly from where it was."""
    ys = ((torch.arange(h, dtype=torch.float32) + 0.5) / h)[:, None].expand(h, w)
    xs = ((torch.arange(w, dtype=torch.float32) + 0.5) / w)[None, :].expand(h, w)
    work = cells.float()
    bg = bg.float()
    # The object's states spread a little past its drafted disc: half a cell more is taken along.
    margin = 0.5 / max(h, w)
    out = work.clone()
    for old, _ in moved:
        m = _disc_weights(xs, ys, old[1], old[2], old[3] + margin)[..., None]
        out = out * (1 - m) + bg * m
    for old, new in moved:
        if new is None:
            continue
        scale = old[3] / new[3]
        # Where each cell's centre comes from, in grid_sample's -1..1 coordinates.
        sx, sy = old[1] + (xs - new[1]) * scale, old[2] + (ys - new[2]) * scale
        grid = torch.stack([sx * 2 - 1, sy * 2 - 1], -1)[None]
        source = (work - bg).permute(2, 0, 1)[None]
        content = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        m = _disc_weights(xs, ys, new[1], new[2], new[3] + margin)[..., None]
        out = out * (1 - m) + (bg + content.permute(1, 2, 0)) * m
    return out.to(cells.dtype)
