"""The fixed alphabet of the shapes world: four classes, six colours, one background.

The exact RGB values matter: the renderer paints object interiors with exactly these colours and the
detector segments by distance to them, so a change here changes both sides at once.
"""
from __future__ import annotations

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (230, 200, 30),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

BACKGROUND: tuple[int, int, int] = (245, 245, 245)

# label_map() and the planner's auxiliary head share this numbering: 0 is background.
NUM_LABELS = 1 + len(CLASSES) * len(COLOR_NAMES)


def label_index(cls: str, color: str) -> int:
    """1 + cls * 6 + colour: the (class, colour) index used by label maps (0 = background)."""
    return 1 + CLASSES.index(cls) * len(COLOR_NAMES) + COLOR_NAMES.index(color)


def label_name(index: int) -> str:
    """Inverse of label_index, for legends: 0 -> 'background', 1 -> 'red circle'."""
    if index == 0:
        return "background"
    cls, color = divmod(index - 1, len(COLOR_NAMES))
    return f"{COLOR_NAMES[color]} {CLASSES[cls]}"
