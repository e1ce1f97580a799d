"""Drafting a clip from an image: the caption's tracks, moved to start where the image has each object.

Our addition to METHOD.md, as the track drafter is (app/core/draft.py). The track drafter drafts from the
words alone, so its tracks start anywhere the caption allows; an image-to-video clip must start from the
given image. So the image's objects are found first, and each drafted track is moved to start where its
object is (its drawn motion, end minus start, kept). The DiT was trained with drafts on text-to-video
clips only, yet it follows such a draft with the first frame given: on the embedded video model (13,620
steps) the motion of 32 image-to-video benchmark clips was followed 0.125 of the time undrafted and 0.53
with the true tracks or the drafter's tracks moved onto the true starts (research/probe_media_drafts.py);
trained on such drafts from step 14,009 on, the committed model (18,304 steps) follows 0.812 of 64.

The objects are found by a FrameDetector: the pixel stem and centre heads an edit drafter learned
(CenterNet's centre targets, app/core/draft.py's CentreDetection), copied into the video model folder
(`frame_detector/`). It reads the image as the planner's vision tower got it (Planner.source_images).
Matching: a drafted object takes the found object of its own label (class and colour); a found object
nothing drafted stays where it is (the caption does not move it); a drafted object the image does not hold
keeps its drafted track (it comes into the clip, as the words say). A drafted object is never moved onto a
found one of another label: tried, a caption naming an object the image lacks turned the image's own object
into it. An image in which nothing is found (not a scene of the model's world) is left undrafted, as the
model planned clips from images before. A track ends where its whole object is still inside the frame (an
object found near the edge it is to move toward moves less).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .draft import TRACK_TEMPERATURE, CentreDetection, DraftConfig, pixel_stem


# How sure the detector must be of an object (1 - background probability). On the 64 image-to-video
# benchmark first frames every object it found was above 0.929; on random-noise and blurred-noise
# images most of its "objects" were below 0.9 (the stem never saw anything but shapes, so this does not
# catch every such image: an image it finds nothing in is left undrafted, below).
MIN_CONFIDENCE = 0.9


class FrameDetector(CentreDetection, nn.Module):
    """An image's objects as draft rows (label, x, y, size bins) from a pixel stem and its centre heads."""

    def __init__(self, config: DraftConfig) -> None:
        super().__init__()
        if not config.pixel_width:
            raise ValueError("a frame detector needs a pixel stem (pixel_width > 0)")
        self.config = config
        self.pixel_stem = pixel_stem(config.pixel_width, config.dim)
        self.centre_head = nn.Linear(config.dim, config.labels)
        self.centre_size_head = nn.Linear(config.dim, config.sizes)

    @classmethod
    def from_edit_drafter(cls, drafter: nn.Module) -> "FrameDetector":
        """The detector an edit drafter (one with a pixel stem) learned, as a module of its own."""
        detector = cls(drafter.config)
        detector.load_state_dict({k: v for k, v in drafter.state_dict().items()
                                  if k.split(".")[0] in ("pixel_stem", "centre_head", "centre_size_head")})
        return detector

    @torch.no_grad()
    def find(self, sources: list[torch.Tensor]) -> torch.Tensor:
        """[B, max_objects, 4] rows of each source's objects (normalised [3, H, W] images), each found
        with at least MIN_CONFIDENCE."""
        tokens, grids = self._pixel_tokens(sources, self.pixel_stem[0].weight.device)
        return self.detect(tokens, grids, MIN_CONFIDENCE)


def check_matches(detector: DraftConfig, drafter: DraftConfig) -> None:
    """A detector's rows go into a track drafter's: the same labels, bins and size bins."""
    for field in ("labels", "bins", "sizes", "half_min", "half_max"):
        if getattr(detector, field) != getattr(drafter, field):
            raise ValueError(f"the frame detector's {field} ({getattr(detector, field)}) differ from the track "
                             f"drafter's ({getattr(drafter, field)})")


def _inside(size: int, config: DraftConfig) -> tuple[int, int]:
    """The bins an object of size bin `size` can be centred in with all of it inside the frame."""
    half = config.half_min + (size + 0.5) / config.sizes * (config.half_max - config.half_min)
    lo = math.ceil(half * config.bins - 0.5)  # the bin's centre (b + 0.5) / bins at least `half` in
    return min(lo, config.bins // 2), max(config.bins - 1 - lo, (config.bins - 1) // 2)


def onto_first_frame(drafts: torch.Tensor, found: torch.Tensor, config: DraftConfig) -> torch.Tensor:
    """Track drafts [B, length, 6] moved to start where `found` ([B, M, 4] rows) has their objects (see
    the module's docstring). Items drafted with nothing (all -1) stay undrafted."""
    out = drafts.clone()
    for b in range(out.shape[0]):
        rows = [r for r in out[b].tolist() if r[0] > 0]
        if not rows and out[b, 0, 0] < 0:
            continue  # not drafted (an empty instruction)
        objects = [o for o in found[b].tolist() if o[0] > 0]
        if not objects:  # nothing found to start the tracks from: a draft placed anywhere would fight the image
            out[b] = -1
            continue
        free = list(range(len(objects)))
        pairs: dict[int, int] = {}
        for i, row in enumerate(rows):  # its own label first
            k = next((k for k in free if objects[k][0] == row[0]), None)
            if k is not None:
                pairs[i] = k
                free.remove(k)
        moved = []
        for i, row in enumerate(rows):
            if i in pairs:
                _, x, y, s = objects[pairs[i]]
                lo, hi = _inside(s, config)
                dx, dy = row[4] - row[1], row[5] - row[2]
                row = [row[0], x, y, s, min(max(x + dx, lo), hi), min(max(y + dy, lo), hi)]
            moved.append(row)
        for k in free:  # in the image, not moved by the words
            if len(moved) < config.max_objects:
                label, x, y, s = objects[k]
                moved.append([label, x, y, s, x, y])
        out[b] = -1
        for i, row in enumerate(moved):
            out[b, i] = torch.tensor(row)
        out[b, len(moved), 0] = 0
    return out


@torch.no_grad()
def first_frame_drafts(planner, instructions: list[str], first_frames: list[np.ndarray],
                       seeds: list[int] | None = None) -> torch.Tensor | None:
    """Track drafts [B, length, 6] for clips made from an image (one uint8 image per item): each caption
    drafted as text-to-video drafts it (the same seed, the same tracks), moved onto where its image has
    the objects. None for a planner without a track drafter and a frame detector; an empty instruction
    gets no draft."""
    drafter, detector = getattr(planner, "drafter", None), getattr(planner, "frame_detector", None)
    if drafter is None or detector is None or not drafter.config.track or not planner.drafts:
        return None
    _, _, embeds, mask, positions = planner._prompt(instructions)
    words = planner.mllm.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                        use_cache=False).last_hidden_state
    worded = torch.tensor([bool(t.strip()) for t in instructions], dtype=torch.bool)
    drafts = drafter.sample(words, mask, seeds, wanted=worded, temperature=TRACK_TEMPERATURE)
    inputs = planner.processor(instructions, images=[[frame] for frame in first_frames])
    return onto_first_frame(drafts, detector.find(planner.source_images(inputs)), drafter.config)
