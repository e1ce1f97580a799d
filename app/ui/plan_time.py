"""Where a video plan's keyframes sit in time: the weights the model blends them with at each frame of the
clip, and their places along it (the timeline's plan strips). No Qt.

The model (app/core/connectors.py, CanvasConnector.resize) puts keyframe 0 on latent frame 0 and keyframe
K-1 on the last latent frame, linear in between; a video codec with frame step s (Wan's: 4) makes latent
frame 0 of frame 0 and latent frame j >= 1 of frames s*j-s+1 .. s*j. The viewer blends the keyframes' maps
with those same weights, so the overlay under the playhead is the plan the model used for that frame.
"""
from __future__ import annotations

import math

DEFAULT_FRAME_STEP = 4  # Wan's causal packing, and the embedded video model's, when no video model says


def latent_frames(frames: int, step: int) -> int:
    """Latent frames of a clip of `frames` frames."""
    return 1 + (max(1, int(frames)) - 1) // max(1, int(step))


def latent_index(frame: int, step: int) -> int:
    """The latent frame that holds pixel frame `frame`."""
    step = max(1, int(step))
    return 0 if frame <= 0 else (int(frame) + step - 1) // step


def keyframe_weights(frame: int, frames: int, keyframes: int, step: int = DEFAULT_FRAME_STEP) -> list[tuple[int, float]]:
    """[(keyframe, weight), ...] (weights sum to 1) of the plan at pixel frame `frame` of a clip of `frames`
    frames, as the model interpolates its `keyframes` keyframes; frames past the clip take its last one."""
    if keyframes <= 1:
        return [(0, 1.0)]
    n = latent_frames(frames, step)
    j = min(latent_index(max(0, frame), step), n - 1)
    pos = 0.0 if n == 1 else j * (keyframes - 1) / (n - 1)
    lo = min(int(math.floor(pos)), keyframes - 2)
    frac = pos - lo
    return [(lo, 1.0 - frac), (lo + 1, frac)]


def keyframe_places(frames: int, keyframes: int, step: int = DEFAULT_FRAME_STEP) -> list[float]:
    """Where each keyframe sits along its clip, as a fraction 0..1 of the clip's length: the middle of the
    frames its latent frame packs (a keyframe between two latent frames sits between their middles)."""
    frames = max(1, int(frames))
    step = max(1, int(step))
    n = latent_frames(frames, step)

    def middle(j: int) -> float:  # in frames from the clip's start
        return 0.5 if j == 0 else step * j - step / 2 + 1

    if keyframes <= 1:
        return [0.5]
    places = []
    for k in range(keyframes):
        pos = 0.0 if n == 1 else k * (n - 1) / (keyframes - 1)
        lo = min(int(math.floor(pos)), max(0, n - 2))
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        places.append(min(1.0, ((1 - frac) * middle(lo) + frac * middle(hi)) / frames))
    return places
