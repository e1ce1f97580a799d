"""The rows of a layout draft (app/core/draft.py says what drafts are and why): their format
(DraftConfig), objects quantised to rows and back, tracks placed at a clip time, and rows drawn onto a
canvas grid as per-cell label coverage (what the canvas tokens' draft embedding reads).

Objects are (label, x bin, y bin, size bin), tracks add (x end bin, y end bin); label 0 means "stop",
and -1 pads ("no draft" when an item's whole row is -1). Coordinates are fractions of the frame: x bin k
covers [k/bins, (k+1)/bins).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .canvas import CanvasSpec

SUPERSAMPLE = 4  # coverage samples per canvas cell side (as app/shapes/dataset.label_map measures)


@dataclass(frozen=True)
class DraftConfig:
    labels: int  # label vocabulary including 0 (background in coverage, "stop" in the sequence)
    bins: int = 16  # position bins per axis
    sizes: int = 4  # half-size bins over [half_min, half_max]
    half_min: float = 0.08  # fractions of the frame side
    half_max: float = 0.14
    max_objects: int = 4
    dim: int = 128
    layers: int = 2
    heads: int = 4
    # An edit drafter: image tokens in its memory get an embedding of where they lie in the frame.
    reads_images: bool = False
    # An edit drafter that also looks at the source's pixels through a convolutional stem of its own,
    # this many channels wide (0: it reads the MLLM's states alone). Needs reads_images.
    pixel_width: int = 0
    # The drafts reach the DiT through the text path instead of the canvas: each drafted object becomes
    # one extra context token (DraftContextTokens), appended to the prompt's states that the DiT
    # cross-attends to. The supervision-matched control for a text-only model (research/LOG.md,
    # 2026-12-05): the same drafts, no canvas. A layout drafter's option; its edit drafter's drafts
    # go the same way.
    context_tokens: bool = False
    # Tracks: each row also says where the object is at the clip's end (x and y bins); see the module's
    # docstring. Only onto a canvas (not with context_tokens) and never from images (reads_images).
    track: bool = False
    # An edit drafter given the source's objects as rows (a clip's tracks, found by the frame detector:
    # app/core/frame_detector.source_tracks) instead of reading the source's states or pixels: it reads the
    # instruction's words and those rows, and copies all but the named change (a clip edit drafter).
    reads_sources: bool = False
    # Labels number (class, colour) pairs as 1 + class * colours + colour (the shapes world's label maps):
    # a label's class, for matching a reference still's object to words that name no colour.
    colours: int = 6

    def __post_init__(self) -> None:
        if self.colours < 1:
            raise ValueError(f"colours must be at least 1, not {self.colours}")
        if self.track and (self.context_tokens or self.reads_images):
            raise ValueError("track drafts go onto a clip's canvas from the words (and a source's tracks): "
                             "no context_tokens, no reads_images")
        if self.reads_sources and (self.reads_images or self.pixel_width):
            raise ValueError("an edit drafter reads the source's rows (reads_sources) or its image, not both")

    @property
    def length(self) -> int:
        """Sequence length: every object, then "stop"."""
        return self.max_objects + 1

    @property
    def columns(self) -> int:
        """Numbers per row: label, x, y, size, and for tracks x and y at the clip's end."""
        return 6 if self.track else 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DraftConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _bin(value: float, bins: int) -> int:
    return min(max(int(value * bins), 0), bins - 1)


def quantize_objects(objects: list[tuple], config: DraftConfig) -> np.ndarray:
    """(label, cx, cy, half) in frame fractions -> int64 [length, 4] rows (label, x, y, size) in the
    order given, "stop" after the last, -1 after that. A track config takes (label, cx, cy, half, end
    cx, end cy) and gives [length, 6] rows. More objects than the draft holds is a
    ValueError: a draft never drops an object silently.

    The order is the caller's: the order the instruction names the objects in is the one to give
    (app/train/data.draft_rows). Then "A above B" is always drafted A first and B placed
    relative to it by the relation alone; ordered left to right instead, the drafter had to learn
    which of A and B comes first for "above" (whichever lies further left) and the relation's
    direction from both: after 1,500 teaching steps its drafts had the caption's relation 0.39 of the
    time, while their counts were right 0.96 of the time."""
    if len(objects) > config.max_objects:
        raise ValueError(f"a draft holds at most {config.max_objects} objects, got {len(objects)}")
    rows = np.full((config.length, config.columns), -1, np.int64)
    ordered = list(objects)
    span = max(config.half_max - config.half_min, 1e-6)
    for i, obj in enumerate(ordered):
        if len(obj) != config.columns:
            raise ValueError(f"a {'track' if config.track else 'layout'} draft's objects have {config.columns} "
                             f"numbers, got {len(obj)}")
        label, cx, cy, half = obj[:4]
        if not 1 <= int(label) < config.labels:
            raise ValueError(f"draft label {label} is outside 1..{config.labels - 1}")
        s = min(max(int((half - config.half_min) / span * config.sizes), 0), config.sizes - 1)
        ends = [_bin(v, config.bins) for v in obj[4:]]
        rows[i] = (int(label), _bin(cx, config.bins), _bin(cy, config.bins), s, *ends)
    rows[len(ordered), 0] = 0
    return rows


def draft_objects(rows: torch.Tensor | np.ndarray, config: DraftConfig) -> list[tuple]:
    """One item's rows back to (label, cx, cy, half) at the bins' centres, up to "stop"; a track
    config's rows to (label, cx, cy, half, end cx, end cy)."""
    out = []
    for row in np.asarray(rows).tolist():
        label, x, y, s = row[:4]
        if label <= 0:
            break
        half = config.half_min + (s + 0.5) / config.sizes * (config.half_max - config.half_min)
        ends = tuple((v + 0.5) / config.bins for v in row[4:config.columns])
        out.append((int(label), (x + 0.5) / config.bins, (y + 0.5) / config.bins, half, *ends))
    return out


def track_times(keyframes: int) -> list[float]:
    """The clip time (0 first frame, 1 last) a track draft is drawn at on each keyframe: evenly spread,
    k / (K - 1), whatever the clip's length, so a drawing is one function of the track. The connector
    puts the last keyframe on the last latent frame, which for 17 frames packs frames 13-16 (centred at
    t = 0.906, app/train/video_data.keyframe_times): the drawing leads the frames it stands for by up to
    0.09 of the path (about a third of a cell at 48 px), a fixed offset the DiT learns in training,
    where it sees these very drawings with the true clips."""
    return [k / max(1, keyframes - 1) for k in range(keyframes)]


def objects_at(objects: list[tuple], time: float) -> list[tuple[int, float, float, float]]:
    """Drafted objects at clip time `time`: a track's place on its straight path, a still draft's as is."""
    out = []
    for obj in objects:
        label, cx, cy, half = obj[:4]
        if len(obj) == 6:
            cx, cy = cx + (obj[4] - cx) * time, cy + (obj[5] - cy) * time
        out.append((label, cx, cy, half))
    return out


def draft_coverage(drafts: torch.Tensor, spec: CanvasSpec, config: DraftConfig) -> torch.Tensor:
    """[B, length, columns] drafts -> [B, N, labels] per-cell label coverage (each object a disc of its
    half-size; the background label takes what the objects leave). An item without a draft (all -1)
    covers nothing, so its canvas is the plain one. Soft coverage keeps sub-cell position. A still
    draft is the same on every keyframe; a track draft puts each object where its track is at the
    keyframe's time (track_times)."""
    batch = drafts.shape[0]
    res_r, res_c = spec.rows * SUPERSAMPLE, spec.cols * SUPERSAMPLE
    ys = (torch.arange(res_r, dtype=torch.float32) + 0.5) / res_r
    xs = (torch.arange(res_c, dtype=torch.float32) + 0.5) / res_c
    times = track_times(spec.keyframes) if config.track else [0.0]
    cover = torch.zeros(batch, len(times), config.labels, res_r, res_c)
    drafts = drafts.detach().cpu()
    for b in range(batch):
        row = drafts[b]
        if not (row[:, 0] >= 0).any():
            continue  # no draft for this item
        objects = draft_objects(row, config)
        for f, time in enumerate(times):
            taken = torch.zeros(res_r, res_c)
            for label, cx, cy, half in objects_at(objects, time):
                disc = (((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) <= half * half).float() * (1 - taken)
                cover[b, f, label] += disc
                taken = taken + disc
            cover[b, f, 0] = 1 - taken
    cells = cover.reshape(batch, len(times), config.labels, spec.rows, SUPERSAMPLE, spec.cols, SUPERSAMPLE)
    cells = cells.mean(dim=(4, 6)).permute(0, 1, 3, 4, 2).reshape(batch, len(times) * spec.rows * spec.cols,
                                                                 config.labels)
    # A still draft is of one scene: every keyframe of a clip's canvas gets it.
    return cells if config.track else cells.repeat(1, spec.keyframes, 1)


def segment_distance(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """[B] the least distance between segments a-b and c-d ([B, 2] each end): for segments that do not
    cross, the least of the four end-to-segment distances; crossing ones are at distance 0."""
    def to_segment(p, s0, s1):
        v = s1 - s0
        t = (((p - s0) * v).sum(-1) / (v * v).sum(-1).clamp(min=1e-12)).clamp(0, 1)
        return (p - (s0 + t[:, None] * v)).norm(dim=-1)

    def side(p, q, r):
        return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])

    crossing = (side(a, b, c) * side(a, b, d) < 0) & (side(c, d, a) * side(c, d, b) < 0)
    ends = torch.stack([to_segment(a, c, d), to_segment(b, c, d), to_segment(c, a, b), to_segment(d, a, b)]).amin(0)
    return torch.where(crossing, torch.zeros_like(ends), ends)


def no_drafts(batch: int, config: DraftConfig) -> torch.Tensor:
    return torch.full((batch, config.length, config.columns), -1, dtype=torch.long)
