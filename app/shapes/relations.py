"""GenEval's relative-position rule, shared by the caption generator and the scorer.

It lives in shapes (not eval) because the generator must only emit "A left of B" scenes that the
scorer will accept, and eval imports shapes, never the other way round.
"""
from __future__ import annotations

import numpy as np

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

# GenEval's default `position_threshold` option.
POSITION_THRESHOLD = 0.1


def relative_position(box_a, box_b, threshold: float = POSITION_THRESHOLD) -> set[str]:
    """Relations of A relative to B from (x0, y0, x1, y1) boxes, as GenEval's `relative_position`.

    The centre offset is shrunk by `threshold` times the summed box sizes on each axis, so a pair that
    barely differs on an axis does not count as left/right (or above/below) on it; what remains is
    normalised by the raw offset's length and an axis counts when it carries over half of it.
    """
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    found = set()
    if dx < -0.5:
        found.add("left of")
    if dx > 0.5:
        found.add("right of")
    if dy < -0.5:
        found.add("above")
    if dy > 0.5:
        found.add("below")
    return found


def relation_holds_robustly(box_a, box_b, relation: str, slack: float) -> bool:
    """True when `relation` survives boxes that are off by `slack` on every side.

    A detector's boxes differ from the drawn ones by about a pixel (anti-aliased edges, noise), so the
    generator asks for this margin and the scorer's verdict on a faithful render cannot flip.
    """
    for grow in (-slack, slack):
        for sx in (-slack, slack):
            for sy in (-slack, slack):
                a = (box_a[0] - grow + sx, box_a[1] - grow + sy, box_a[2] + grow + sx, box_a[3] + grow + sy)
                b = (box_b[0] - grow, box_b[1] - grow, box_b[2] + grow, box_b[3] + grow)
                if relation not in relative_position(a, b):
                    return False
    return True
