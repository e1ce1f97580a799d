"""Scoring clips with the shapes detector, frame by frame: tracks, motion, objects, identity, flicker, edits.

Everything starts from `detect` on each frame; detections are linked into tracks by position alone
(not by class or colour), so a track whose colour or class changes shows up as one track with a broken
identity rather than as two tracks.

Thresholds (fractions of the frame side unless said otherwise), and why:
- MAX_STEP 0.12 per frame: the farthest a track links in one frame. Generated motion is at most
  MAX_TRAVEL / (frames - 1), 0.033 at 16 frames (0.07 at 8), and two objects' centres are at least
  2 * MIN_HALF + MARGIN = 0.2 apart on some axis, so a link never has to choose between two objects.
- MAX_GAP 2 frames: a track survives a detection missing in up to two frames (a blurred frame).
- MIN_TRACK 3 frames: shorter tracks are flickers of the detector, not objects; objects_right sees them.
- Displacement: median centre of the first q frames to that of the last q (q = a quarter of the track,
  1 to 3 frames): one wrong frame at either end cannot flip a verdict. A faithful clip measures about
  0.87 of its travel (q = 3 of 16 frames), so at least 0.22.
- MIN_FOLLOW 0.12: "moves" needs at least this displacement, half the shortest generated travel after
  that shrinkage; and the displacement's nearest of the eight named directions must be the named one
  (within 22.5 degrees, the half-way to the neighbouring direction: no displacement fits two names).
- STILL_TOLERANCE 0.05 (3.2 px at 64): "stays still" allows this much drift; detector centres of a
  ground-truth render are within a pixel.
- MIN_COVER 0.75: a moving or still object must be found in three quarters of the frames.
- IDENTITY_AGREEMENT 0.875: a track keeps its identity when its class and its colour each agree with
  one value (or, for an announced "turns", with one switch from the old colour to the new) in 7 of 8
  frames: two bad frames of 16 pass, a colour change half way (8 of 16) does not.
- OBJECTS_RIGHT_FRACTION 0.9: per-frame GenEval-style correctness is a fraction; a clip counts as
  right when at least 90 % of its frames are (one bad frame of 16 passes, two do not).
- PIXEL_TOLERANCE 16 grey levels and KEPT_FRACTION 0.995: outside an edit, a pixel is kept when no
  channel moved more than 16 (2.5 sigma of the noise the detector is tested against, sigma 6), and the
  clip is kept when 99.5 % of those pixels are: the smallest object covers about 0.8 % of a frame, so
  one lost or added object outside the edit fails it.
- FLICKER_LIMIT 3.0 grey levels: mean frame-to-frame change of pixels that should not change. A
  rendered clip has 0; redrawing independent noise of sigma 2.7 each frame would give 3.0.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from .detect import Detection, detect
from .motion import Clause, MotionScene, clause_of, direction_name, frame_times, parse_caption
from .render import object_mask

MAX_STEP = 0.12
MAX_GAP = 2
MIN_TRACK = 3
MIN_FOLLOW = 0.12
STILL_TOLERANCE = 0.05
MIN_COVER = 0.75
IDENTITY_AGREEMENT = 0.875
OBJECTS_RIGHT_FRACTION = 0.9
PIXEL_TOLERANCE = 16
KEPT_FRACTION = 0.995
# An added object's drawn box may touch the source's objects by this many pixels (anti-aliased edges) and
# still count as on a clear path (judged_edit_region).
OVERLAP_PX = 4
FLICKER_LIMIT = 3.0


@dataclass
class Track:
    """One object followed over frames: frame index -> its detection in that frame."""

    size: int
    detections: dict[int, Detection] = field(default_factory=dict)

    @property
    def frames(self) -> list[int]:
        return sorted(self.detections)

    def __len__(self) -> int:
        return len(self.detections)

    def _seq(self, attr: str) -> list:
        return [getattr(self.detections[k], attr) for k in self.frames]

    @property
    def classes(self) -> list[str]:
        return self._seq("cls")

    @property
    def colors(self) -> list[str]:
        return self._seq("color")

    @property
    def cls(self) -> str:
        return Counter(self.classes).most_common(1)[0][0]

    @property
    def color(self) -> str:
        return Counter(self.colors).most_common(1)[0][0]

    def _ends(self) -> int:
        return max(1, min(3, len(self) // 4))

    @property
    def first_color(self) -> str:
        return Counter(self.colors[:self._ends()]).most_common(1)[0][0]

    @property
    def last_color(self) -> str:
        return Counter(self.colors[-self._ends():]).most_common(1)[0][0]

    def centers(self) -> np.ndarray:
        """[n, 2] centres in fractions of the side, in frame order."""
        return np.array([self.detections[k].center for k in self.frames], np.float64) / self.size

    def displacement(self) -> tuple[float, float]:
        """Median centre of the last q frames minus that of the first q (q: a quarter, 1 to 3)."""
        c, q = self.centers(), self._ends()
        d = np.median(c[-q:], axis=0) - np.median(c[:q], axis=0)
        return float(d[0]), float(d[1])


def tracks(frames, max_step: float = MAX_STEP, max_gap: int = MAX_GAP) -> list[Track]:
    """Detections of every frame linked into tracks, nearest pairs first, by centre distance (at most
    `max_step` of the side per frame elapsed), across gaps of up to `max_gap` missing frames."""
    frames = np.asarray(frames)
    size = frames.shape[2]
    out: list[Track] = []
    for k, frame in enumerate(frames):
        dets = detect(frame)
        live = [t for t in out if k - t.frames[-1] <= max_gap + 1]
        pairs = []
        for ti, t in enumerate(live):
            last = t.detections[t.frames[-1]]
            gate = max_step * size * (k - t.frames[-1])
            for di, d in enumerate(dets):
                dist = float(np.hypot(d.center[0] - last.center[0], d.center[1] - last.center[1]))
                if dist <= gate:
                    pairs.append((dist, ti, di))
        used_t, used_d = set(), set()
        for _, ti, di in sorted(pairs):
            if ti in used_t or di in used_d:
                continue
            live[ti].detections[k] = dets[di]
            used_t.add(ti)
            used_d.add(di)
        out.extend(Track(size, {k: d}) for di, d in enumerate(dets) if di not in used_d)
    return out


# ----- what a clip should show -----

def clauses_for(spec) -> list[Clause]:
    """The clauses a clip is judged against: from a MotionScene (its ground truth), a caption, or a
    list of Clause."""
    if isinstance(spec, MotionScene):
        return [clause_of(m) for m in spec.objects]
    if isinstance(spec, str):
        return parse_caption(spec)
    return list(spec)


def _candidates(clause: Clause, found: list[Track]) -> list[Track]:
    out = []
    for t in found:
        if len(t) < MIN_TRACK or t.cls != clause.cls:
            continue
        color = t.first_color if clause.action == "turns" else t.color
        if clause.color is None or color == clause.color:
            out.append(t)
    return out


def clause_holds(clause: Clause, found: list[Track], n_frames: int) -> bool:
    """Whether some track of the named class and colour does what the clause says."""
    for t in _candidates(clause, found):
        dx, dy = t.displacement()
        covered = len(t) >= MIN_COVER * n_frames
        if clause.action == "moves":
            if covered and np.hypot(dx, dy) >= MIN_FOLLOW and direction_name(dx, dy) == clause.arg:
                return True
        elif clause.action == "stays":
            if covered and np.hypot(dx, dy) <= STILL_TOLERANCE:
                return True
        elif clause.action == "appears":
            if t.frames[0] >= 1 and t.frames[-1] == n_frames - 1:
                return True
        elif clause.action == "disappears":
            if t.frames[0] == 0 and t.frames[-1] < n_frames - 1:
                return True
        elif clause.action == "turns":
            if t.last_color == clause.arg and t.first_color != clause.arg:
                return True
    return False


def clause_results(frames, spec, found: list[Track] | None = None) -> list[tuple[Clause, bool]]:
    """Each clause of `spec` with whether the clip does it."""
    found = tracks(frames) if found is None else found
    n = len(frames)
    return [(c, clause_holds(c, found, n)) for c in clauses_for(spec)]


def motion_followed(frames, spec, found: list[Track] | None = None) -> bool:
    """Every "moves" and "stays still" clause holds (True when there is none: a clip of events only)."""
    return all(ok for c, ok in clause_results(frames, spec, found) if c.action in ("moves", "stays"))


def events_followed(frames, spec, found: list[Track] | None = None) -> bool:
    """Every "appears", "disappears" and "turns" clause holds (True when there is none)."""
    return all(ok for c, ok in clause_results(frames, spec, found) if c.action not in ("moves", "stays"))


# ----- objects right per frame, and identity over time -----

def frame_correct(detections: list[Detection], expected) -> bool:
    """GenEval-style for one frame: the detections are exactly the expected (class, colour) multiset."""
    return Counter((d.cls, d.color) for d in detections) == Counter(expected)


def objects_right(frames, spec) -> float:
    """Fraction of frames whose objects are right. With a MotionScene: exactly the objects shown at that
    frame's time. With a caption: every moving or still object named is there, and nothing unnamed is
    (objects that appear, disappear or turn may be there or not, in either of their colours)."""
    frames = np.asarray(frames)
    n = len(frames)
    if isinstance(spec, MotionScene):
        ok = [frame_correct(detect(f), [(o.cls, o.color) for o in spec.at(t).objects])
              for f, t in zip(frames, frame_times(n))]
        return float(np.mean(ok))
    clauses = clauses_for(spec)
    required = Counter((c.cls, c.color) for c in clauses if c.action in ("moves", "stays"))
    allowed = [(c.cls, c.color) for c in clauses] + [(c.cls, c.arg) for c in clauses if c.action == "turns"]

    def is_allowed(d: Detection) -> bool:
        return any(cls == d.cls and (color is None or color == d.color) for cls, color in allowed)

    ok = []
    for f in frames:
        dets = detect(f)
        have = Counter()
        for cls, color in required:
            have[(cls, color)] = sum(1 for d in dets if d.cls == cls and (color is None or d.color == color))
        ok.append(all(have[k] >= v for k, v in required.items()) and all(is_allowed(d) for d in dets))
    return float(np.mean(ok))


def _agreement(values: list[str]) -> float:
    return Counter(values).most_common(1)[0][1] / len(values)


def _switch_agreement(values: list[str], before: str, after: str) -> float:
    """Best fraction of frames matching `before` up to one switch and `after` from it on."""
    n = len(values)
    a = np.cumsum([0] + [v == before for v in values])
    b = np.cumsum([0] + [v == after for v in values[::-1]])[::-1]
    return float(max(a[s] + b[s] for s in range(n + 1))) / n


def identity_kept(frames, spec=None, found: list[Track] | None = None) -> bool:
    """Every track (of at least MIN_TRACK frames) keeps one class and one colour in IDENTITY_AGREEMENT
    of its frames; with `spec`, an announced "turns" lets its object's colour switch once, old to new."""
    found = tracks(frames) if found is None else found
    turns = [c for c in clauses_for(spec) if c.action == "turns"] if spec is not None else []
    for t in found:
        if len(t) < MIN_TRACK:
            continue
        if _agreement(t.classes) < IDENTITY_AGREEMENT:
            return False
        colors = t.colors
        best = _agreement(colors)
        for c in turns:
            if c.cls == t.cls:
                best = max(best, _switch_agreement(colors, c.color or t.first_color, c.arg))
        if best < IDENTITY_AGREEMENT:
            return False
    return True


# ----- flicker and edits -----

def static_mask(scene: MotionScene, frames: int, size: int, grow: int = 1) -> np.ndarray:
    """Bool [size, size]: pixels that should never change, those no moving, appearing, disappearing or
    turning object ever touches (grown by `grow` px for a generator's soft edges), taken out."""
    busy = np.zeros((size, size), bool)
    for m in scene.objects:
        if m.plain and not m.moving:
            continue
        for t in frame_times(frames):
            if m.visible(t):
                busy |= object_mask(m.state(t), size)
    if grow:
        busy = cv2.dilate(busy.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)
    return ~busy


def static_mask_from_tracks(found: list[Track], frames: int, size: int, grow: int = 2) -> np.ndarray:
    """static_mask without a ground truth: pixels outside the boxes of every track that moves, changes,
    is not there in every frame or is too short to judge (grown by `grow` px)."""
    busy = np.zeros((size, size), bool)
    for t in found:
        dx, dy = t.displacement()
        steady = (len(t) == frames and np.hypot(dx, dy) <= STILL_TOLERANCE
                  and _agreement(t.classes) == 1.0 and _agreement(t.colors) == 1.0)
        if steady:
            continue
        for d in t.detections.values():
            x0, y0, x1, y1 = d.box
            busy[max(y0 - grow, 0):y1 + grow, max(x0 - grow, 0):x1 + grow] = True
    return ~busy


def flicker(frames, static: np.ndarray) -> float:
    """Mean absolute frame-to-frame change (grey levels, all channels) over the `static` pixels."""
    f = np.asarray(frames, np.float32)
    if len(f) < 2 or not static.any():
        return 0.0
    diff = np.abs(f[1:] - f[:-1])  # [F-1, H, W, 3]
    return float(diff[:, static].mean())


def edit_region(source: MotionScene, target: MotionScene, frames: int, size: int, grow: int = 1) -> np.ndarray:
    """Bool [frames, size, size]: per frame, the pixels of the objects that differ between the source's
    and the target's frame (an edit may change these), grown by `grow` px."""
    out = np.zeros((frames, size, size), bool)
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    for k, t in enumerate(frame_times(frames)):
        a, b = set(source.at(t).objects), set(target.at(t).objects)
        for o in a ^ b:
            out[k] |= object_mask(o, size)
        if grow and out[k].any():
            out[k] = cv2.dilate(out[k].astype(np.uint8), kernel).astype(bool)
    return out


def judged_edit_region(output_frames, source: MotionScene, target: MotionScene, grow: int = 1) -> np.ndarray:
    """Bool [F, H, W]: where an edited clip may differ from its source. `edit_region` (the objects the source
    and the target clip differ by), and where the edit leaves a place open (the benchmark's target is then one
    of many right clips; `edit_scores` judges the motion and the objects):
    - an added object ("add a red square": anywhere its path is clear): its boxes as the output draws it (the
      added label is unique in the clip), each frame's that overlap none of the source's objects, grown by
      `grow` px, in place of the target's path; an "add" drawn over another object or by recolouring one is
      not let off;
    - a still object set moving ("the circle moves down instead": how far is not said): its box from its
      start along the named direction, for any travel the world's edits give (MIN_TRAVEL..MAX_TRAVEL).
    Everything else an edit does has one right place."""
    from dataclasses import replace

    from .motion import MAX_TRAVEL, MIN_TRAVEL

    output_frames = np.asarray(output_frames)
    n, size = output_frames.shape[0], output_frames.shape[2]
    region = edit_region(source, target, n, size, grow)
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    times = frame_times(n)
    if len(target.objects) > len(source.objects):  # an add: the target's objects the source does not have
        added = {(m.obj.cls, m.obj.color) for m in set(target.objects) - set(source.objects)}
        # Where the output draws it, not the benchmark target's place: an add drawn elsewhere does not also
        # excuse changes along the path it did not take.
        region[:] = False
        for k, (t, frame) in enumerate(zip(times, output_frames)):
            taken = np.zeros((size, size), bool)
            for o in source.at(t).objects:
                taken |= object_mask(o, size)
            for d in detect(frame):
                x0, y0, x1, y1 = d.box
                if (d.cls, d.color) in added and taken[y0:y1, x0:x1].sum() <= OVERLAP_PX:
                    region[k, max(0, y0 - grow):y1 + grow, max(0, x0 - grow):x1 + grow] = True
    elif len(target.objects) == len(source.objects):
        for a, b in zip(source.objects, target.objects):
            if a == b or a.moving or not b.moving:
                continue
            ux, uy = np.array([b.dx, b.dy]) / np.hypot(b.dx, b.dy)
            for k, t in enumerate(times):
                sweep = np.zeros((size, size), bool)
                for travel in np.linspace(MIN_TRAVEL, MAX_TRAVEL, 9):
                    at = replace(b.obj, cx=b.obj.cx + ux * travel * t, cy=b.obj.cy + uy * travel * t)
                    sweep |= object_mask(at, size)
                region[k] |= cv2.dilate(sweep.astype(np.uint8), kernel).astype(bool)
    return region


def kept_outside(source_frames, output_frames, region: np.ndarray, tolerance: int = PIXEL_TOLERANCE) -> float:
    """Fraction of the pixels outside `region` ([F, H, W]) whose channels all moved at most `tolerance`."""
    a = np.asarray(source_frames, np.int16)
    b = np.asarray(output_frames, np.int16)
    same = (np.abs(a - b).max(axis=-1) <= tolerance)
    outside = ~region
    return float(same[outside].mean()) if outside.any() else 1.0


def clip_scores(frames, spec, found=None) -> dict:
    """The four per-clip judgements against `spec` (a MotionScene, a caption's clauses): objects right per
    frame (fraction), motion followed, events followed, identity kept."""
    found = tracks(frames) if found is None else found
    return {"objects_right": objects_right(frames, spec),
            "motion_followed": motion_followed(frames, spec, found),
            "events_followed": events_followed(frames, spec, found),
            "identity_kept": identity_kept(frames, spec, found)}


def edit_scores(source_frames, output_frames, source: MotionScene, target: MotionScene) -> dict:
    """How well `output_frames` does the edit from `source` to `target` (ground-truth clips):
    its objects per frame, motion and events judged against the target, identity over time, and the
    pixels kept outside the edit (`judged_edit_region`). `success` and `kept` are the two verdicts."""
    output_frames = np.asarray(output_frames)
    scores = clip_scores(output_frames, target)
    region = judged_edit_region(output_frames, source, target)
    scores["kept_outside"] = kept_outside(source_frames, output_frames, region)
    scores["success"] = bool(scores["objects_right"] >= OBJECTS_RIGHT_FRACTION and scores["motion_followed"]
                             and scores["events_followed"])
    scores["kept"] = bool(scores["kept_outside"] >= KEPT_FRACTION)
    return scores


def edit_success(source_frames, output_frames, source: MotionScene, target: MotionScene) -> bool:
    """The edit is done and nothing else changed."""
    s = edit_scores(source_frames, output_frames, source, target)
    return s["success"] and s["kept"]
