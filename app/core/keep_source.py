"""A video edit keeps its source's own pixels wherever the model did not change the clip.

Our addition to METHOD.md, for the embedded video model. Its DiT draws each 8 x 8 px, 4-frame token
(768 values) from a 128-wide state, so even the parts of a clip an edit leaves alone come back a little
blurred and speckled: on 32 held-out edits, 7 % of the pixels outside the edit moved by more than 16 grey
levels, and the edited clip no longer matched its source where the user asked for nothing. An editor
is expected to leave those pixels alone, so after decoding, a pixel is the source's where the model's
frame differs from the source by at most `threshold` grey levels (the largest channel), or only in
specks and rims a few pixels thick (the blur of an unchanged object's edge); where the model changed a
region (a recoloured, removed, added or moved object), the whole connected change stays, thin parts
included (a star's arms), and `grow` pixels around it. This is the paste-back inpainting pipelines do
outside their mask (diffusers' `VaeImageProcessor.apply_overlay`), with the mask found from the change
itself, as the instruction gives none. OpenCV's morphology does the specks and rims; nothing here is
learned. `at_source_size` puts such a change back into the clip at the clip's own size (the CLI and the
studio write edits so), every other pixel the user's.

A model turns it on with `keep_source_threshold` in its defaults (PipelineDefaults); the shapes world's
closest colours (orange and yellow) differ by 60 in one channel, so a recolour between any two of them
passes a threshold of 48 when drawn within 12 of the palette. Off (0) for the real checkpoints: their
VAE gives the source back far more closely, and an edit of the whole look (light, style) changes every
pixel by a moderate amount, which a threshold would cut into patches.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

# A change is a region when something of it survives an opening with this square: rims up to 2 px thick
# (the blur of an edge) and lone specks do not. The smallest object of the shapes world is about 7 px
# across on a 48 px frame.
OPEN_PX = 3
# How far past a drafted track's box (in draft bins, 3 px at 48 px) the places a drafted edit changes reach
# (`drafted_region`). A change that touches them is kept whole (`with_source_kept`), so the box need not hold
# all of it: a drafted row a bin off, or the DiT's object a few pixels off its plan, still keeps its edit whole.
# Half a bin, with whole changes kept, was the best of 0.5 / 1 (and clipped at 1 / 1.5) on the 64 edits of
# the tuning seed (11): fully right 0.50 for all, the rest kept 0.66 against 0.64-0.69.
EDIT_MARGIN_BINS = 0.5
GROW_PX = 1  # the kept change grows by this much, so an edited object's own anti-aliased edge goes with it


def changed_region(source: np.ndarray, output: np.ndarray, threshold: int,
                   open_px: int = OPEN_PX, grow_px: int = GROW_PX) -> np.ndarray:
    """bool [F, H, W]: where `output` changed `source` (uint8 [F, H, W, 3], same shape) as a region."""
    if source.shape != output.shape:
        raise ValueError(f"source {source.shape} and output {output.shape} differ in shape")
    diff = np.abs(output.astype(np.int16) - source.astype(np.int16)).max(axis=-1)
    opening = np.ones((open_px, open_px), np.uint8)
    growing = np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8)
    changed = (diff > threshold).astype(np.uint8)
    # What survives the opening in any frame is where the clip was changed as a region: an edited object's
    # path. Each frame's changes that touch it are kept whole (their connected areas), so a changed star's
    # thin arms, and the thin slivers by which a re-aimed object first leaves its old path, stay with it.
    cores = np.stack([cv2.morphologyEx(c, cv2.MORPH_OPEN, opening) for c in changed]).any(axis=0)
    region = np.empty(diff.shape, bool)
    for f, c in enumerate(changed):
        _, areas = cv2.connectedComponents(c, connectivity=8)
        mask = (np.isin(areas, np.unique(areas[cores & (c > 0)])) & (c > 0)).astype(np.uint8)
        if grow_px:
            mask = cv2.dilate(mask, growing)
        region[f] = mask > 0
    return region


def source_as_made(source: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The source clip's first frames at the output's size, resized as the codec was given them."""
    from .latents import frames_to_tensor, tensor_to_frames

    n = min(len(output), len(source))
    height, width = np.asarray(output).shape[1:3]
    return tensor_to_frames(frames_to_tensor(np.asarray(source)[:n], height, width))


def changed_nothing(source: np.ndarray, output: np.ndarray) -> bool:
    """Whether an edited clip is its source again, pixel for pixel (the model made no change the source's
    pixels did not cover back): the edit was not made, which the user is told."""
    given = source_as_made(source, output)
    return len(given) == len(output) and np.array_equal(given, np.asarray(output))


# The largest side a video edit is given back at (the CLI's and the studio's): a 4K clip's edit is written at
# 1920 px, its own pixels scaled with the model's change, rather than holding and encoding 4K frames.
EDIT_MAX_SIDE = 1920


def at_source_size(source: np.ndarray, output: np.ndarray, footage: Iterable[np.ndarray],
                   threshold: int) -> Iterator[np.ndarray]:
    """An edited clip made at the model's size (uint8 [F, h, w, 3]) given back at its footage's own size, one
    frame at a time: the model's change, scaled up, where it changed the clip (`changed_region` against
    `source`, the clip as the model was given it), each changed cell grown by one footage pixel; the
    footage's own pixels everywhere else. `footage` yields the clip's frames at the size wanted (at least F
    of them). An edit of a 320 x 240 clip is a 320 x 240 clip whose untouched parts are exactly the user's."""
    output = np.asarray(output)
    region = changed_region(source_as_made(source, output), output, threshold)
    grow = np.ones((3, 3), np.uint8)
    made = 0
    for f, frame in zip(range(len(output)), footage):
        frame = np.asarray(frame)[..., :3]
        height, width = frame.shape[:2]
        mask = cv2.dilate(cv2.resize(region[f].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST),
                          grow) > 0
        if mask.any():
            frame = frame.copy()
            frame[mask] = cv2.resize(output[f], (width, height), interpolation=cv2.INTER_LINEAR)[mask]
        made += 1
        yield frame
    if made < len(output):
        raise ValueError(f"the footage has {made} frames, the edit {len(output)}")


def drafted_region(source_rows, target_rows, config, frames: int, height: int, width: int,
                   margin: float | None = None) -> np.ndarray | None:
    """bool [F, H, W]: where a drafted video edit may change its source. `source_rows` are the source clip's
    tracks as the frame detector found them, `target_rows` the edit's draft (both [length, 6] track rows of
    `config`, a DraftConfig): a track the draft copied unchanged (the same row) is left alone; every other
    track, the source's that the draft does not keep and the draft's that the source does not have, sweeps
    its box along its path (its centre moving evenly from start to end over the clip, the box its half
    size and `margin` more, in bins; EDIT_MARGIN_BINS by default). None when the draft
    changes nothing: the plan then names no place, and the edit is left to the threshold alone. Boxes are
    drawn at their bins' centres, so a track's own object can reach past its box by a few pixels: the places
    say which changes to keep, not where to cut them (`with_source_kept`)."""
    from .draft_rows import draft_objects

    margin = EDIT_MARGIN_BINS if margin is None else margin
    def rows(r):
        return [tuple(int(v) for v in row) for row in np.asarray(r).tolist() if row[0] > 0]
    source, target = rows(source_rows), rows(target_rows)
    changed = [r for r in source if r not in target] + [r for r in target if r not in source]
    if not changed:
        return None
    region = np.zeros((frames, height, width), bool)
    pad = margin / config.bins
    ys, xs = (np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width
    for _, cx, cy, half, ex, ey in draft_objects(np.array(changed + [[0] * config.columns]), config):
        for f in range(frames):
            t = f / max(1, frames - 1)
            x, y = cx + t * (ex - cx), cy + t * (ey - cy)
            region[f] |= (np.abs(ys - y)[:, None] <= half + pad) & (np.abs(xs - x)[None, :] <= half + pad)
    return region


def with_source_kept(source: np.ndarray, output: np.ndarray, threshold: int,
                     allowed: np.ndarray | None = None) -> np.ndarray:
    """`output` with the source's pixels outside the region it changed (uint8 [F, H, W, 3]), and, given
    `allowed` (bool [F, H, W], `drafted_region`; frames past its end are left as changed), in every changed
    area of a frame that does not touch `allowed` (an area that touches it is kept whole: the edited object's
    own edge past its drafted box stays the model's)."""
    source, output = np.asarray(source), np.asarray(output)
    region = changed_region(source, output, threshold)
    if allowed is not None:
        for f in range(min(len(region), len(allowed))):
            _, areas = cv2.connectedComponents(region[f].astype(np.uint8), connectivity=8)
            touching = np.unique(areas[region[f] & allowed[f]])
            region[f] = np.isin(areas, touching[touching > 0])
    return np.where(region[..., None], output, source).astype(np.uint8)
