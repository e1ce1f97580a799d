"""Scenes of the shapes world, in coordinates that do not depend on the image size.

Positions and sizes are fractions of the image side, so one scene renders at 64 px for training and
at any other size for display, and an edit's target differs from its source only in the objects the
instruction names.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .palette import CLASSES, COLOR_NAMES

# The spec's size range: each object's half-size is 8-14 % of the image side.
MIN_HALF = 0.08
MAX_HALF = 0.14
# Gap kept between any two objects' boxes (2.5 px at 64): the anti-aliased rims never meet, so the
# detector sees separate components and edits can re-render one object without touching another.
MARGIN = 0.04
# Distance kept from the frame's edge, so no object is cut.
BORDER = 0.02
MAX_OBJECTS = 4

# A regular five-pointed star whose box is 2*half wide; its inner radius ratio is the regular one.
_STAR_INNER = 0.381966
_STAR_OUTER = 1.0 / math.sin(math.radians(72))  # outer radius in units of half
_STAR_HEIGHT = (1 + math.cos(math.radians(36))) * _STAR_OUTER / 2  # half-height in units of half


@dataclass(frozen=True)
class ShapeObject:
    """One upright shape: class, colour name, box centre (cx, cy) and half-size, all in fractions."""

    cls: str
    color: str
    cx: float
    cy: float
    half: float

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            raise ValueError(f"unknown class {self.cls!r}; known: {', '.join(CLASSES)}")
        if self.color not in COLOR_NAMES:
            raise ValueError(f"unknown colour {self.color!r}; known: {', '.join(COLOR_NAMES)}")

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The drawn shape's tight box (x0, y0, x1, y1) in fractions; its centre is (cx, cy)."""
        hy = self.half * (_STAR_HEIGHT if self.cls == "star" else 1.0)
        return (self.cx - self.half, self.cy - hy, self.cx + self.half, self.cy + hy)

    @property
    def footprint(self) -> tuple[float, float, float, float]:
        """The square every class is kept inside when spacing objects (same for all classes, so a
        replace edit never needs to move anything)."""
        return (self.cx - self.half, self.cy - self.half, self.cx + self.half, self.cy + self.half)

    def polygon(self) -> np.ndarray:
        """Vertices (k, 2) in fractions for polygonal classes, clockwise on screen; circle has none."""
        cx, cy, h = self.cx, self.cy, self.half
        if self.cls == "square":
            return np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]])
        if self.cls == "triangle":
            # Apex up, base along the bottom of the box: the box is filled edge to edge.
            return np.array([[cx, cy - h], [cx + h, cy + h], [cx - h, cy + h]])
        if self.cls == "star":
            r_out = _STAR_OUTER * h
            # Shift so the box (not the star's circumcentre) is centred on (cx, cy).
            oy = cy - _STAR_HEIGHT * h + r_out
            pts = []
            for i in range(10):
                ang = math.radians(-90 + 36 * i)
                r = r_out if i % 2 == 0 else r_out * _STAR_INNER
                pts.append([cx + r * math.cos(ang), oy + r * math.sin(ang)])
            return np.array(pts)
        return np.zeros((0, 2))

    def moved(self, cx: float, cy: float) -> "ShapeObject":
        return replace(self, cx=cx, cy=cy)


@dataclass(frozen=True)
class Scene:
    """A set of non-touching objects on the plain background. Order carries no meaning."""

    objects: tuple[ShapeObject, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))

    def __len__(self) -> int:
        return len(self.objects)

    def count(self, cls: str | None = None, color: str | None = None) -> int:
        return sum(1 for o in self.objects if (cls is None or o.cls == cls) and (color is None or o.color == color))

    def to_dict(self) -> dict:
        return {"objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        return cls(tuple(ShapeObject(**o) for o in data["objects"]))

    def is_valid(self) -> bool:
        """Inside the frame and pairwise apart by MARGIN: the invariants every generator keeps."""
        return all(fits_frame(o) for o in self.objects) and all(
            apart(a, b) for i, a in enumerate(self.objects) for b in self.objects[i + 1:]
        )


def fits_frame(obj: ShapeObject) -> bool:
    x0, y0, x1, y1 = obj.footprint
    return x0 >= BORDER - 1e-9 and y0 >= BORDER - 1e-9 and x1 <= 1 - BORDER + 1e-9 and y1 <= 1 - BORDER + 1e-9


def apart(a: ShapeObject, b: ShapeObject, margin: float = MARGIN) -> bool:
    """Footprints separated by at least `margin` along x or y (so the shapes cannot touch)."""
    return (abs(a.cx - b.cx) >= a.half + b.half + margin - 1e-9) or (abs(a.cy - b.cy) >= a.half + b.half + margin - 1e-9)


def fits_with(obj: ShapeObject, others) -> bool:
    return fits_frame(obj) and all(apart(obj, o) for o in others)


def random_half(rng: np.random.Generator) -> float:
    return float(rng.uniform(MIN_HALF, MAX_HALF))


def random_color(rng: np.random.Generator) -> str:
    return COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]


def random_class(rng: np.random.Generator) -> str:
    return CLASSES[int(rng.integers(len(CLASSES)))]


def place(rng: np.random.Generator, cls: str, color: str, others, half: float | None = None,
          region: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0), tries: int = 60) -> ShapeObject | None:
    """A new object at a random spot inside `region` (fractions, applied to its centre) that keeps clear
    of `others`; None when no spot was found in `tries` draws (the caller then starts over)."""
    for _ in range(tries):
        h = random_half(rng) if half is None else half
        lo_x, lo_y = max(region[0], BORDER + h), max(region[1], BORDER + h)
        hi_x, hi_y = min(region[2], 1 - BORDER - h), min(region[3], 1 - BORDER - h)
        if lo_x > hi_x or lo_y > hi_y:
            continue
        obj = ShapeObject(cls, color, float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)), h)
        if fits_with(obj, others):
            return obj
    return None


def place_all(rng: np.random.Generator, specs, restarts: int = 200) -> Scene:
    """A scene holding one object per (cls, color) in `specs`, at random non-touching spots."""
    specs = list(specs)
    if len(specs) > MAX_OBJECTS:
        raise ValueError(f"at most {MAX_OBJECTS} objects fit the shapes world, got {len(specs)}")
    for _ in range(restarts):
        objs: list[ShapeObject] = []
        for cls, color in specs:
            obj = place(rng, cls, color, objs)
            if obj is None:
                break
            objs.append(obj)
        else:
            return Scene(tuple(objs))
    raise RuntimeError(f"could not place {specs} without touching")


def random_scene(rng: np.random.Generator, n: int | None = None) -> Scene:
    """1 to 4 objects of random classes and colours (repeats allowed)."""
    n = int(rng.integers(1, MAX_OBJECTS + 1)) if n is None else n
    return place_all(rng, [(random_class(rng), random_color(rng)) for _ in range(n)])
