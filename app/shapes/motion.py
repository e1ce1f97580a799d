"""The shapes world in motion: clips where objects move, appear, disappear and change colour.

A clip is a MotionScene: objects of the still world (ShapeObject at time 0) with a displacement over
the clip and optional events. Time, like position, is a fraction (t = 0 first frame, t = 1 last), so
one clip renders at any frame count and size, and frame k of F is the still world's scene at
t = k / (F - 1), drawn by render.render: a frame looks exactly like a still of the world.

Motion is uniform (constant velocity), so an object's path is a segment and the box it sweeps over any
time span is the union of its footprints at the span's two ends. Two objects that are ever on screen
together keep those swept boxes MARGIN apart (`MotionScene.is_valid`), so they never touch in any frame
at any frame count; re-rendering a clip with one object changed leaves every other pixel identical.

Each object does one thing in a generated clip (moves, stays still, appears, disappears or turns a
colour), and no two objects share a class and colour (counting a turned colour), so a caption names
every object without ambiguity:
  "a red circle moves to the right", "a blue square moves up",
  "a green star moves left and a yellow triangle moves down",
  "an orange circle moves down to the left, a purple square stays still and a red star appears".
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np

from .palette import CLASSES, COLOR_NAMES
from .render import render
from .scene import BORDER, MARGIN, Scene, ShapeObject, fits_frame, random_half
from .vocab import article

# Eight directions on screen (y grows downwards). Cardinal ones have two phrasings, as people say both.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1),
    "up right": (1, -1), "up left": (-1, -1), "down right": (1, 1), "down left": (-1, 1),
}
CARDINAL: tuple[str, ...] = ("right", "left", "up", "down")
DIRECTION_PHRASES: dict[str, tuple[str, ...]] = {
    "right": ("to the right", "right"), "left": ("to the left", "left"), "up": ("up",), "down": ("down",),
    "up right": ("up to the right",), "up left": ("up to the left",),
    "down right": ("down to the right",), "down left": ("down to the left",),
}
PHRASE_DIRECTION = {p: d for d, phrases in DIRECTION_PHRASES.items() for p in phrases}

ACTIONS: tuple[str, ...] = ("moves", "stays", "appears", "disappears", "turns")
# Path length of a moving object, in fractions of the side: at least a quarter of the frame (16 px at
# 64), so the motion is plain to see and to measure; at most half, so it fits beside other objects.
MIN_TRAVEL = 0.25
MAX_TRAVEL = 0.5
# At most three objects: a moving object sweeps up to twice its own area, and four rarely fit apart.
MAX_CLIP_OBJECTS = 3
# Event times are kept off the clip's ends, so an event is seen in several frames on both sides.
EVENT_TIMES: dict[str, tuple[float, float]] = {"appears": (0.2, 0.6), "disappears": (0.4, 0.8), "turns": (0.3, 0.7)}
DEFAULT_FRAMES = 16
DEFAULT_SIZE = 64


@dataclass(frozen=True)
class MovingObject:
    """One object over a clip: `obj` as it is at t = 0; it moves by (dx, dy) (fractions of the side)
    by t = 1, is shown from `appear` on and hidden from `vanish` on (None: the whole clip), and has
    colour `turn` from `turn_at` on."""

    obj: ShapeObject
    dx: float = 0.0
    dy: float = 0.0
    appear: float | None = None
    vanish: float | None = None
    turn: str | None = None
    turn_at: float | None = None

    def __post_init__(self) -> None:
        if (self.turn is None) != (self.turn_at is None):
            raise ValueError("a colour change needs both `turn` (the colour) and `turn_at` (the time)")
        if self.turn is not None and self.turn not in COLOR_NAMES:
            raise ValueError(f"unknown colour {self.turn!r}; known: {', '.join(COLOR_NAMES)}")

    @property
    def span(self) -> tuple[float, float]:
        """[start, end) of the time it is on screen (end 1 + 1e-9 when it stays to the last frame)."""
        return (0.0 if self.appear is None else self.appear, 1.0 + 1e-9 if self.vanish is None else self.vanish)

    def visible(self, t: float) -> bool:
        lo, hi = self.span
        return lo <= t < hi

    def position(self, t: float) -> tuple[float, float]:
        return (self.obj.cx + self.dx * t, self.obj.cy + self.dy * t)

    def state(self, t: float) -> ShapeObject:
        """The still object at time t (whether shown or not)."""
        cx, cy = self.position(t)
        color = self.turn if self.turn is not None and t >= self.turn_at else self.obj.color
        return replace(self.obj, cx=cx, cy=cy, color=color)

    def at(self, t: float) -> ShapeObject | None:
        return self.state(t) if self.visible(t) else None

    @property
    def moving(self) -> bool:
        return self.dx != 0.0 or self.dy != 0.0

    @property
    def plain(self) -> bool:
        """On screen the whole clip in one colour: only its position may change."""
        return self.appear is None and self.vanish is None and self.turn is None

    @property
    def action(self) -> str:
        """What a caption says it does (generated objects do exactly one of ACTIONS)."""
        if self.turn is not None:
            return "turns"
        if self.appear is not None:
            return "appears"
        if self.vanish is not None:
            return "disappears"
        return "moves" if self.moving else "stays"

    @property
    def direction(self) -> str | None:
        """The DIRECTIONS name of its motion; None when still. ValueError for a motion that is none of
        the eight (the caption could not say it)."""
        if not self.moving:
            return None
        return direction_name(self.dx, self.dy, exact=True)

    def swept(self, t0: float, t1: float) -> tuple[float, float, float, float]:
        """The box its footprint sweeps between times t0 and t1 (uniform motion: the two ends' union)."""
        a = self.state(t0).footprint
        b = self.state(t1).footprint
        return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))

    def names(self) -> set[tuple[str, str]]:
        """(class, colour) it is seen as at some time."""
        out = {(self.obj.cls, self.obj.color)}
        if self.turn is not None:
            out.add((self.obj.cls, self.turn))
        return out


def direction_name(dx: float, dy: float, exact: bool = False) -> str:
    """The nearest of the eight DIRECTIONS to the displacement (dx, dy). With `exact`, ValueError unless
    it is exactly cardinal or exactly diagonal (what generated clips hold)."""
    angle = math.degrees(math.atan2(-dy, dx)) % 360  # counter-clockwise from "right", y up
    names = ("right", "up right", "up", "up left", "left", "down left", "down", "down right")
    k = int(round(angle / 45.0)) % 8
    if exact and abs(angle - 45.0 * round(angle / 45.0)) > 1e-6:
        raise ValueError(f"displacement ({dx:.3f}, {dy:.3f}) is none of the eight named directions")
    return names[k]


def unit(direction: str) -> tuple[float, float]:
    ux, uy = DIRECTIONS[direction]
    n = math.hypot(ux, uy)
    return (ux / n, uy / n)


def _boxes_apart(a, b, margin: float = MARGIN) -> bool:
    return (a[0] >= b[2] + margin - 1e-9 or b[0] >= a[2] + margin - 1e-9
            or a[1] >= b[3] + margin - 1e-9 or b[1] >= a[3] + margin - 1e-9)


def paths_apart(a: MovingObject, b: MovingObject) -> bool:
    """Never closer than MARGIN while both are on screen: their swept boxes over the shared time apart."""
    lo, hi = max(a.span[0], b.span[0]), min(a.span[1], b.span[1])
    if lo >= hi:
        return True
    return _boxes_apart(a.swept(lo, min(hi, 1.0)), b.swept(lo, min(hi, 1.0)))


def path_fits_frame(m: MovingObject) -> bool:
    return fits_frame(m.state(0.0)) and fits_frame(m.state(1.0))


@dataclass(frozen=True)
class MotionScene:
    """A clip of the shapes world: objects over time. Order carries no meaning."""

    objects: tuple[MovingObject, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))

    def __len__(self) -> int:
        return len(self.objects)

    def at(self, t: float) -> Scene:
        """The still scene shown at time t."""
        return Scene(tuple(o for o in (m.at(t) for m in self.objects) if o is not None))

    def scenes(self, frames: int = DEFAULT_FRAMES) -> list[Scene]:
        return [self.at(t) for t in frame_times(frames)]

    def is_valid(self) -> bool:
        """Every path inside the frame, no two objects ever touching, and every object nameable by
        class and colour (no (class, colour) shared, a turned colour included)."""
        names = [m.names() for m in self.objects]
        return (all(path_fits_frame(m) for m in self.objects)
                and all(paths_apart(a, b) for i, a in enumerate(self.objects) for b in self.objects[i + 1:])
                and all(not (names[i] & names[j]) for i in range(len(names)) for j in range(i + 1, len(names))))

    def find(self, cls: str, color: str) -> int | None:
        """Index of the object seen as (class, colour) at some time, or None."""
        for i, m in enumerate(self.objects):
            if (cls, color) in m.names():
                return i
        return None

    def to_dict(self) -> dict:
        return {"objects": [asdict(m) for m in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> "MotionScene":
        return cls(tuple(MovingObject(**{**m, "obj": ShapeObject(**m["obj"])}) for m in data["objects"]))


def frame_times(frames: int) -> np.ndarray:
    """t of each frame: 0 for the first, 1 for the last."""
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {frames}")
    return np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)


def render_clip(scene: MotionScene, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The clip as uint8 [frames, size, size, 3]; frame k is render(scene.at(k / (frames - 1)))."""
    return np.stack([render(s, size) for s in scene.scenes(frames)])


def still(scene: Scene) -> MotionScene:
    """A still scene as a clip where nothing moves."""
    return MotionScene(tuple(MovingObject(o) for o in scene.objects))


# ----- random clips -----

def distinct_identities(rng: np.random.Generator, n: int, turns: list[bool]) -> list[tuple[str, str, str | None]]:
    """(class, colour, turned colour or None) per object, no (class, colour) seen twice."""
    taken: set[tuple[str, str]] = set()
    out = []
    for k in range(n):
        while True:
            cls = CLASSES[int(rng.integers(len(CLASSES)))]
            color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
            turn = None
            if turns[k]:
                turn = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
                if turn == color or (cls, turn) in taken:
                    continue
            if (cls, color) in taken:
                continue
            taken.add((cls, color))
            if turn is not None:
                taken.add((cls, turn))
            out.append((cls, color, turn))
            break
    return out


def place_moving(rng: np.random.Generator, cls: str, color: str, direction: str | None, others,
                 travel: float | None = None, tries: int = 60, **events) -> MovingObject | None:
    """A new object moving `direction` (None: still) by `travel` (random MIN..MAX_TRAVEL when None),
    whose whole path lies in the frame and clear of `others`' paths; None when `tries` draws failed.
    `events` are MovingObject's appear / vanish / turn / turn_at."""
    for _ in range(tries):
        h = random_half(rng)
        length = float(rng.uniform(MIN_TRAVEL, MAX_TRAVEL)) if travel is None else travel
        ux, uy = unit(direction) if direction else (0.0, 0.0)
        dx, dy = ux * length, uy * length
        lo_x, hi_x = BORDER + h - min(0.0, dx), 1 - BORDER - h - max(0.0, dx)
        lo_y, hi_y = BORDER + h - min(0.0, dy), 1 - BORDER - h - max(0.0, dy)
        if lo_x > hi_x or lo_y > hi_y:
            continue
        obj = ShapeObject(cls, color, float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)), h)
        m = MovingObject(obj, dx, dy, **events)
        if path_fits_frame(m) and all(paths_apart(m, o) for o in others):
            return m
    return None


def _event_kwargs(rng: np.random.Generator, action: str, turn: str | None) -> dict:
    if action in EVENT_TIMES:
        lo, hi = EVENT_TIMES[action]
        t = round(float(rng.uniform(lo, hi)), 4)
        return {"appears": {"appear": t}, "disappears": {"vanish": t}, "turns": {"turn": turn, "turn_at": t}}[action]
    return {}


def random_actions(rng: np.random.Generator, n: int, events: bool = True) -> list[str]:
    """One action per object, at least one "moves": moving is what clips are for. Without `events`,
    only "moves" and "stays"."""
    choices = ACTIONS if events else ACTIONS[:2]
    weights = np.array([0.5, 0.2, 0.1, 0.1, 0.1][:len(choices)])
    acts = [choices[int(rng.choice(len(choices), p=weights / weights.sum()))] for _ in range(n)]
    if "moves" not in acts:
        acts[int(rng.integers(n))] = "moves"
    return acts


def motion_scene_for(rng: np.random.Generator, specs, restarts: int = 300) -> MotionScene:
    """A valid clip with one object per spec (cls, colour, action, direction or None, turned colour or
    None), placed at random; `direction` is used by "moves" (random when None)."""
    specs = list(specs)
    for _ in range(restarts):
        objs: list[MovingObject] = []
        for cls, color, action, direction, turn in specs:
            if action == "moves" and direction is None:
                direction = random_direction(rng)
            m = place_moving(rng, cls, color, direction if action == "moves" else None, objs,
                             **_event_kwargs(rng, action, turn))
            if m is None:
                break
            objs.append(m)
        else:
            return MotionScene(tuple(objs))
    raise RuntimeError(f"could not place a clip of {specs}")


def random_direction(rng: np.random.Generator, diagonal: float = 0.25) -> str:
    """A cardinal direction, or with probability `diagonal` a diagonal one."""
    names = list(DIRECTIONS)
    return names[int(rng.integers(4, 8))] if rng.random() < diagonal else names[int(rng.integers(4))]


def random_motion_scene(rng: np.random.Generator, n: int | None = None, actions: list[str] | None = None,
                        events: bool = True) -> MotionScene:
    """1 to MAX_CLIP_OBJECTS objects, each with one action (random_actions when `actions` is None)."""
    n = (len(actions) if actions else int(rng.integers(1, MAX_CLIP_OBJECTS + 1))) if n is None else n
    actions = random_actions(rng, n, events) if actions is None else list(actions)
    if len(actions) != n or not set(actions) <= set(ACTIONS):
        raise ValueError(f"need {n} actions out of {', '.join(ACTIONS)}, got {actions}")
    ids = distinct_identities(rng, n, [a == "turns" for a in actions])
    return motion_scene_for(rng, [(cls, color, a, None, turn) for (cls, color, turn), a in zip(ids, actions)])


# ----- captions -----

class Clause(NamedTuple):
    """One object's part of a caption: "a red circle moves to the right" is
    Clause("circle", "red", "moves", "right"); `arg` is the direction of "moves" and the new colour of
    "turns"; `color` None when the caption gives none ("a circle moves up")."""

    cls: str
    color: str | None
    action: str
    arg: str | None = None


def clause_of(m: MovingObject) -> Clause:
    action = m.action
    arg = m.direction if action == "moves" else (m.turn if action == "turns" else None)
    return Clause(m.obj.cls, m.obj.color, action, arg)


def clause_text(clause: Clause, rng: np.random.Generator | None = None) -> str:
    """The clause in words; `rng` picks among a direction's phrasings (None: the first)."""
    words = f"{clause.color} {clause.cls}" if clause.color else clause.cls
    noun = f"{article(words)} {words}"
    if clause.action == "moves":
        phrases = DIRECTION_PHRASES[clause.arg]
        phrase = phrases[0] if rng is None else phrases[int(rng.integers(len(phrases)))]
        return f"{noun} moves {phrase}"
    if clause.action == "stays":
        return f"{noun} stays still"
    if clause.action == "turns":
        return f"{noun} turns {clause.arg}"
    return f"{noun} {clause.action}"


def join_clauses(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def motion_caption(scene: MotionScene, rng: np.random.Generator | None = None) -> str:
    """Every object of the clip and what it does, in the order of scene.objects."""
    if not len(scene):
        raise ValueError("an empty clip has no caption")
    return join_clauses([clause_text(clause_of(m), rng) for m in scene.objects])


_CLAUSE = re.compile(r"^(?:(?:a|an|the) )?(?:(?P<color>\w+) )?(?P<cls>\w+) "
                     r"(?P<action>moves|stays|appears|disappears|turns)(?: (?P<rest>.+))?$")


def parse_clause(text: str) -> Clause:
    m = _CLAUSE.match(text.strip())
    if not m:
        raise ValueError(f"not a clip clause: {text!r}")
    cls, color, action, rest = m["cls"], m["color"], m["action"], m["rest"]
    if cls not in CLASSES or (color is not None and color not in COLOR_NAMES):
        raise ValueError(f"unknown object in {text!r}")
    if action == "moves":
        if rest not in PHRASE_DIRECTION:
            raise ValueError(f"unknown direction {rest!r} in {text!r}")
        return Clause(cls, color, action, PHRASE_DIRECTION[rest])
    if action == "turns":
        if rest not in COLOR_NAMES:
            raise ValueError(f"unknown colour {rest!r} in {text!r}")
        return Clause(cls, color, action, rest)
    if action == "stays" and rest != "still" or action in ("appears", "disappears") and rest:
        raise ValueError(f"unexpected words in {text!r}")
    return Clause(cls, color, action)


def parse_caption(text: str) -> list[Clause]:
    """The clauses of a caption made by motion_caption (or typed in its form)."""
    text = " ".join(re.findall(r"[a-z]+|,", text.lower())).replace(" ,", ",")
    return [parse_clause(p) for p in re.split(r", | and ", text) if p]
