"""Drafting a clip from its media: from an image or reference stills, the words' tracks moved to start where
the media show each object; from a source clip (a video edit), the clip's own tracks with the named change.

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

Reference video is drafted the same way from its stills (app/core/reference_stills.py), reading which still
the words name each object from. The track drafter learns reference instructions' tracks from their words alone
(`--teach-drafter N --drafter-tasks text_to_video,reference_to_video`), as it learned captions'.

Video edits are drafted from the source clip's own tracks (`edit_drafts`): the detector finds the objects on
TRACK_FRAMES frames spread over the clip, the finds are linked frame to frame into tracks (`source_tracks`),
and the model's clip edit drafter (a LayoutDrafter with `reads_sources`, the model folder's edit_drafter/)
reads the instruction's words and those tracks and drafts the target's tracks: the source's, with the named
change. It learns that from the tracks this very function finds on training clips, so what it copies is what
it will be given (`python -m app.train.video --teach-edit-drafter N`).
"""
from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np
import torch
from torch import nn

from .draft import (EDIT_TEMPERATURE, PIXEL_CELL, TRACK_TEMPERATURE, CentreDetection, DraftConfig, no_drafts,
                    pixel_stem)


# How sure the detector must be of an object (1 - background probability). On the 64 image-to-video
# benchmark first frames every object it found was above 0.929; on random-noise and blurred-noise
# images most of its "objects" were below 0.9 (the stem never saw anything but shapes, so this does not
# catch every such image: an image it finds nothing in is left undrafted, below).
MIN_CONFIDENCE = 0.9
# Frames of a source clip the detector looks at to find its tracks: evenly spread, first and last among them.
# Five of 17 see every object the world's clips hold for more than a few frames, at under a third of the cost.
TRACK_FRAMES = 5
# How far (in bins, either axis) a found object may be from where its track was on the frame looked at
# before: the world's fastest object travels 0.6 of the frame in a clip, 2.4 bins of 16 between two of the
# TRACK_FRAMES frames.
TRACK_LINK_BINS = 3.5
# The second look's threshold (FrameDetector.find), well above MIN_CONFIDENCE: it only adds what the first missed.
MOVED_LOOK_CONFIDENCE = 0.99
# A second look's find (FrameDetector.find) within this many bins (either axis) of a first look's find is that
# object again: the world's objects are more than a bin apart, the looks half a stem cell (half a bin).
SAME_PLACE_BINS = 1.5


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
        with at least MIN_CONFIDENCE, left to right (then top to bottom).

        Looked at twice: as given, and moved by half a stem cell right and down (edges repeated). An object
        centred on a corner of the cells splits its centre's confidence between four of them, none sure
        enough: the bundled samples' red circle and blue square (centred in the frame, on the middle cells'
        corner) were found at 0.5-0.9 and their clips planned undrafted. A find of the moved look that the
        first lacks (no object of any label within SAME_PLACE_BINS: the two looks may read one object's class
        differently) is added, its place moved back (the moved cell straddles two bins; the later is taken,
        within half a bin of the object's centre), when surer than
        MOVED_LOOK_CONFIDENCE: the samples' objects are found at 1.000 there, and no peak of 50 noise images was
        above 0.99 in either look (42 above 0.9 in the moved one, 31 in the first)."""
        device = self.pixel_stem[0].weight.device
        tokens, grids = self._pixel_tokens(sources, device)
        found = self.detect(tokens, grids, MIN_CONFIDENCE)
        half = PIXEL_CELL // 2
        moved = [nn.functional.pad(s[None], (half, 0, half, 0), mode="replicate")[0, :, : s.shape[-2], : s.shape[-1]]
                 for s in sources]
        tokens, grids = self._pixel_tokens(moved, device)
        again = self.detect(tokens, grids, MOVED_LOOK_CONFIDENCE)
        c = self.config
        for b, source in enumerate(sources):
            rows = [r for r in found[b].tolist() if r[0] > 0]
            back_x, back_y = half / source.shape[-1] * c.bins, half / source.shape[-2] * c.bins
            for label, x, y, size in (r for r in again[b].tolist() if r[0] > 0):
                x = min(max(int(math.floor(x - back_x + 0.5)), 0), c.bins - 1)
                y = min(max(int(math.floor(y - back_y + 0.5)), 0), c.bins - 1)
                if len(rows) < c.max_objects and not any(
                        max(abs(r[1] - x), abs(r[2] - y)) <= SAME_PLACE_BINS for r in rows):
                    rows.append([label, x, y, size])
            found[b] = -1
            for i, row in enumerate(sorted(rows, key=lambda r: (r[1], r[2]))):
                found[b, i] = torch.tensor(row)
        return found


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


def _moved(row: list, found: list, config: DraftConfig) -> list:
    """A drafted track `row` moved to start where the found object is, with the found object's label and
    size, its drawn motion (end minus start) kept and its end clamped so the whole object stays inside."""
    label, x, y, s = found
    lo, hi = _inside(s, config)
    dx, dy = row[4] - row[1], row[5] - row[2]
    return [label, x, y, s, min(max(x + dx, lo), hi), min(max(y + dy, lo), hi)]


def _same_class(a: int, b: int, config: DraftConfig) -> bool:
    return a > 0 and b > 0 and (a - 1) // config.colours == (b - 1) // config.colours


def onto_found(drafts: torch.Tensor, found: torch.Tensor, config: DraftConfig, *, keep_unnamed: bool = True,
               same_class: bool = False, guessed: list[Callable[[int], bool]] | None = None) -> torch.Tensor:
    """Track drafts [B, length, 6] moved to start where `found` ([B, M, 4] rows) has their objects (see the
    module's docstring). A drafted object takes a found one of its own label, or, with `same_class`, of its
    class when none has its label (a reference still's object the words name without its colour); found
    objects nothing drafted stay where they are with `keep_unnamed` (a first frame's), else are left out (a
    reference still's objects the words do not take). `guessed[b](label)`: whether item b's drafted label has a
    colour the words did not name (the drafter's guess): such a row may take an object of its class too.
    Items drafted with nothing (all -1) stay undrafted, and so does an item in whose media nothing was found."""
    out = drafts.clone()
    for b in range(out.shape[0]):
        rows = [r for r in out[b].tolist() if r[0] > 0]
        if not rows and out[b, 0, 0] < 0:
            continue  # not drafted (an empty instruction)
        objects = [o for o in found[b].tolist() if o[0] > 0]
        if not objects:  # nothing found to start the tracks from: a draft placed anywhere would fight the media
            out[b] = -1
            continue
        free = list(range(len(objects)))
        pairs: dict[int, int] = {}
        def class_ok(label: int, b: int = b) -> bool:
            return same_class or (guessed is not None and guessed[b](label))

        tests = [lambda a, o: a == o, lambda a, o: class_ok(a) and _same_class(a, o, config)]
        for test in tests:  # its own label first, for every object, then its class
            for i, row in enumerate(rows):
                k = None if i in pairs else next((k for k in free if test(row[0], objects[k][0])), None)
                if k is not None:
                    pairs[i] = k
                    free.remove(k)
        moved = [_moved(row, objects[pairs[i]], config) if i in pairs else row for i, row in enumerate(rows)]
        for k in free if keep_unnamed else ():  # in the image, not moved by the words
            if len(moved) < config.max_objects:
                label, x, y, s = objects[k]
                moved.append([label, x, y, s, x, y])
        out[b] = -1
        for i, row in enumerate(moved):
            out[b, i] = torch.tensor(row)
        out[b, len(moved), 0] = 0
    return out


def onto_first_frame(drafts: torch.Tensor, found: torch.Tensor, config: DraftConfig,
                     instructions: list[str] | None = None) -> torch.Tensor:
    """Image-to-video: each drafted object onto the first frame's object of its own label, or, where the words
    name no colour for it ("the circle moves down": the drafted colour is a guess), of its class; the frame's
    other objects stay. An object whose colour the words name never takes another colour's: "a blue circle
    moves down" of an image with a red one draws a blue circle, not the red one repainted."""
    guessed = [_colour_guessed(text) for text in instructions] if instructions is not None else None
    return onto_found(drafts, found, config, guessed=guessed)


def _colour_guessed(instruction: str) -> Callable[[int], bool]:
    """Whether a drafted label's colour is one `instruction` does not name for its class (shapes-world words):
    "the circle moves down and the green star moves left" names green for the star, so a green circle drafted
    is a guess. A colour named of no class ("make it green") counts as named for every class."""
    from app.shapes.palette import CLASSES, COLOR_NAMES

    words = re.findall(r"[a-z]+", instruction.lower())
    pairs, loose = set(), set()
    for i, word in enumerate(words):
        if word in COLOR_NAMES:
            cls = next((c for c in CLASSES if i + 1 < len(words) and words[i + 1].startswith(c)), None)
            (pairs.add((word, cls)) if cls is not None else loose.add(word))

    def guessed(label: int) -> bool:
        if label <= 0:
            return False
        cls, colour = divmod(label - 1, len(COLOR_NAMES))
        return (COLOR_NAMES[colour], CLASSES[cls]) not in pairs and COLOR_NAMES[colour] not in loose
    return guessed


def _words(planner, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The instructions' states alone (what a drafter reads), their mask, and which have words at all."""
    _, _, embeds, mask, positions = planner._prompt(instructions)
    words = planner.mllm.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                        use_cache=False).last_hidden_state
    return words, mask, torch.tensor([bool(t.strip()) for t in instructions], dtype=torch.bool)


def _caption_drafts(planner, instructions: list[str], seeds: list[int] | None) -> torch.Tensor:
    """Each caption's tracks as text-to-video drafts them (the same seed, the same tracks)."""
    words, mask, worded = _words(planner, instructions)
    return planner.drafter.sample(words, mask, seeds, wanted=worded, temperature=TRACK_TEMPERATURE)


def drafts_from_media(planner) -> bool:
    """Whether `planner` drafts clips from their media: a track drafter that drafts, and a frame detector."""
    drafter, detector = getattr(planner, "drafter", None), getattr(planner, "frame_detector", None)
    return drafter is not None and detector is not None and drafter.config.track and planner.drafts


@torch.no_grad()
def first_frame_drafts(planner, instructions: list[str], first_frames: list[np.ndarray],
                       seeds: list[int] | None = None) -> torch.Tensor | None:
    """Track drafts [B, length, 6] for clips made from an image (one uint8 image per item): each caption
    drafted as text-to-video drafts it, moved onto where its image has the objects. None for a planner
    without a track drafter and a frame detector; an empty instruction gets no draft."""
    if not drafts_from_media(planner):
        return None
    inputs = planner.processor(instructions, images=[[frame] for frame in first_frames])
    found = planner.frame_detector.find(planner.source_images(inputs))
    config = planner.drafter.config
    worded = [with_image_colours(text, rows, config) for text, rows in zip(instructions, found)]
    drafts = _caption_drafts(planner, worded, seeds)
    return onto_first_frame(drafts, found, config, instructions)


_COLOURLESS = re.compile(r"\b(the|a|an) (circle|square|triangle|star)\b", re.IGNORECASE)


def with_image_colours(instruction: str, found, config: DraftConfig) -> str:
    """The words the track drafter reads for a clip from an image: "the circle moves right" of an image holding
    one circle reads as "the red circle moves right" (its colour as found). The drafter learned captions that
    name every colour; given none it guessed one, and often a slanted path: "the circle moves right" of the
    bundled red circle was drafted down and right in 3 of 4 seeds, "the red circle moves right" right in 4 of 4.
    A class the image holds none or several of is left as written. The planner and the checks read the user's
    words as they are."""
    from app.shapes.palette import CLASSES, COLOR_NAMES

    rows = [r for r in torch.as_tensor(found).tolist() if r[0] > 0]

    def named(match: re.Match) -> str:
        article, cls = match.group(1), match.group(2)
        of_class = [r[0] for r in rows if CLASSES[(r[0] - 1) // config.colours] == cls.lower()]
        if len(of_class) != 1:
            return match.group(0)
        colour = COLOR_NAMES[(of_class[0] - 1) % config.colours]
        if article.lower() in ("a", "an"):
            article = article[0] + ("n" if colour[0] in "aeiou" else "")
        return f"{article} {colour} {cls}"
    return _COLOURLESS.sub(named, instruction)


def _link(found: list[list[list[int]]], times: list[float], config: DraftConfig) -> list[list]:
    """Tracks from each looked-at frame's found objects ([label, x, y, size] rows): a find joins the track
    of its class whose last place is nearest, within TRACK_LINK_BINS (its label first: a colour can change
    over a clip, a class cannot), else begins a track. Each track of two or more finds becomes a row (label
    first seen, x, y, median size, x end, y end), its start and end where the line fitted through its finds
    puts it at the clip's first and last frame (an object that comes in or goes out is drafted where its
    path would be then, as training drafts are). Rows are ordered left to right, then top to bottom."""
    tracks: list[list[tuple[float, list[int]]]] = []
    for t, rows in zip(times, found):
        open_tracks = [k for k, tr in enumerate(tracks) if tr[-1][0] < t]
        for row in sorted(rows, key=lambda r: (r[1], r[2])):
            def distance(k):
                last = tracks[k][-1][1]
                return max(abs(last[1] - row[1]), abs(last[2] - row[2]))
            near = [k for k in open_tracks if distance(k) <= TRACK_LINK_BINS and _same_class(tracks[k][-1][1][0], row[0], config)]
            if near:
                k = min(near, key=lambda k: (tracks[k][-1][1][0] != row[0], distance(k)))
                tracks[k].append((t, row))
                open_tracks.remove(k)
            else:
                tracks.append([(t, row)])
    out = []
    for tr in tracks:
        if len(tr) < 2 and len(times) > 1:
            continue  # seen once: a misfire, or an object on screen too briefly to draft a path for
        ts = np.array([t for t, _ in tr])
        ends = []
        for col in (1, 2):
            v = np.array([r[col] for _, r in tr], float)
            slope, icpt = np.polyfit(ts, v, 1) if len(tr) > 1 and np.ptp(ts) > 0 else (0.0, v.mean())
            ends.append((icpt, icpt + slope))
        clamp = lambda v: int(min(max(round(float(v)), 0), config.bins - 1))  # noqa: E731
        size = int(np.median([r[3] for _, r in tr]))
        out.append([tr[0][1][0], clamp(ends[0][0]), clamp(ends[1][0]), size, clamp(ends[0][1]), clamp(ends[1][1])])
    return sorted(out, key=lambda r: (r[1], r[2]))[: config.max_objects]


@torch.no_grad()
def source_tracks(planner, clips: list[np.ndarray], config: DraftConfig) -> torch.Tensor:
    """[B, max_objects + 1, 6] track rows of each source clip ([F, H, W, 3] uint8) as the frame detector
    finds them (see `_link`), -1 padded after a stop row."""
    out = torch.full((len(clips), config.length, config.columns), -1, dtype=torch.long)
    for b, clip in enumerate(clips):
        clip = np.asarray(clip)
        picks = np.unique(np.linspace(0, len(clip) - 1, min(TRACK_FRAMES, len(clip))).round().astype(int))
        inputs = planner.processor([""] * len(picks), images=[[clip[i]] for i in picks])
        found = planner.frame_detector.find(planner.source_images(inputs))
        rows = [[r for r in item.tolist() if r[0] > 0] for item in found]
        times = [float(i) / max(1, len(clip) - 1) for i in picks]
        tracks = _link(rows, times, config)
        for i, row in enumerate(tracks):
            out[b, i] = torch.tensor(row)
        out[b, len(tracks), 0] = 0
    return out


def drafts_edits(planner) -> bool:
    """Whether `planner` drafts video edits: a clip edit drafter and a frame detector to find its tracks."""
    editor = getattr(planner, "edit_drafter", None)
    return drafts_from_media(planner) and editor is not None and editor.config.reads_sources


@torch.no_grad()
def edit_drafts(planner, instructions: list[str], clips: list[np.ndarray],
                seeds: list[int] | None = None) -> torch.Tensor | None:
    """Track drafts [B, length, 6] of video edits: each source clip's tracks (`source_tracks`) with the
    instruction's change, drafted greedily by the clip edit drafter (an edit has one target). None for a
    planner that does not draft edits; an empty instruction, or a clip in which nothing is found, gets no
    draft."""
    if not drafts_edits(planner):
        return None
    editor = planner.edit_drafter
    words, mask, worded = _words(planner, instructions)
    rows = no_drafts(len(clips), editor.config)
    if worded.any():  # the unconditional rows (no words) are never drafted: their clips need no tracks
        idx = worded.nonzero().flatten().tolist()
        rows[idx] = source_tracks(planner, [clips[i] for i in idx], editor.config)
    # A clip in which nothing was found (not footage of the model's world) stays undrafted, as it was planned
    # before edits were drafted: tracks drafted from the words alone would fight the clip.
    found = rows[:, 0, 0] > 0
    return editor.sample(words, mask, seeds, wanted=worded & found, temperature=EDIT_TEMPERATURE, source_drafts=rows)


# How far (bins, either axis, at the clip's start and at its end) a track found in an edited clip may be from
# its drafted track and still count as drawn: one bin is the detector's own error (0.995 of source tracks
# found within it), the second is the DiT's (an object drawn a few pixels off its plan is still the edit).
SHOWN_BINS = 2


def _near(a: list, b: list) -> bool:
    """Two track rows of one label whose starts and ends are within SHOWN_BINS."""
    return a[0] == b[0] and max(abs(a[c] - b[c]) for c in (1, 2, 4, 5)) <= SHOWN_BINS


@torch.no_grad()
def edit_shortfall(planner, drafts: torch.Tensor, clip: np.ndarray, source: np.ndarray | None = None,
                   source_rows=None, instruction: str | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """Whether an edited clip ([F, H, W, 3] uint8, at the model's size) shows the edit as it was drafted
    (`drafts`, its [length, 6] track rows): (the drafted tracks the clip does not show, the clip's tracks no
    drafted one accounts for), each as track rows. A drafted track is shown by a found track of its label
    (class and colour) whose start and end are within SHOWN_BINS of it; each found track shows one drafted
    track at most. Both lists empty: the clip holds what was planned, and nothing else the detector knows.
    What is said to a user whose edit did not come back as planned (the DiT left the named object as it was, or
    changed another); it checks the plan's objects and their paths, not each pixel.

    With `source` (the source clip at the edited clip's size) and `source_rows` (its tracks as the draft read
    them, from the source as given): a drafted track the edit leaves as it was (one of `source_rows`) that the
    detector misses in `source` too is not said to be missing: at this size the detector would miss it in any
    clip (a small object of a large source the draft saw and the model-size frames blur; the bundled
    ball_rolls_right.mp4's green square was said missing from an edit that kept it pixel for pixel).

    With `instruction`: an object the edit brings in (its label none of `source_rows`') whose colour the words
    do not name ("replace the circle with a triangle") is shown by a found track of its class: its drafted colour
    was the drafter's guess, and a red triangle is what the words asked for too."""
    from app.shapes.palette import COLOR_NAMES

    config = planner.edit_drafter.config
    wanted = [r for r in drafts.tolist() if r[0] > 0]
    found = [r for r in source_tracks(planner, [clip], config)[0].tolist() if r[0] > 0]
    had = {r[0] for r in np.asarray(source_rows).tolist()} if source_rows is not None else set()
    guessed = _colour_guessed(instruction) if instruction is not None else (lambda label: False)
    colours = len(COLOR_NAMES)

    def shows(a: list, row: list) -> bool:
        if row[0] not in had and guessed(row[0]):  # a new object of a colour the words leave open: its class
            return a[0] > 0 and (a[0] - 1) // colours == (row[0] - 1) // colours and _near([row[0], *a[1:]], row)
        return _near(a, row)

    free = list(range(len(found)))
    unseen = []
    for row in wanted:
        near = [k for k in free if shows(found[k], row)]
        if near:
            free.remove(min(near, key=lambda k: sum(abs(found[k][c] - row[c]) for c in (1, 2, 4, 5))))
        else:
            unseen.append(row)
    if unseen and source is not None and source_rows is not None:
        kept = [row for row in unseen if any(_near(r, row) for r in np.asarray(source_rows).tolist() if r[0] > 0)]
        if kept:
            small = [r for r in source_tracks(planner, [source], config)[0].tolist() if r[0] > 0]
            unseen = [row for row in unseen if row not in kept or any(_near(r, row) for r in small)]
    return unseen, [found[k] for k in free]


def _still_finder(planner) -> FrameDetector | None:
    """What finds a still's objects: the planner's frame detector, or the one its edit drafter learned (the image
    model's edits are drafted from their source's pixels by it). None for a planner without either."""
    if planner.frame_detector is not None:
        return planner.frame_detector
    drafter = getattr(planner, "edit_drafter", None)
    if drafter is None or not drafter.config.pixel_width or drafter.config.reads_sources:
        return None
    cached = getattr(planner, "still_finder_cache", None)
    stem = drafter.pixel_stem[0].weight
    if cached is None or cached.pixel_stem[0].weight.device != stem.device or cached.pixel_stem[0].weight.dtype != stem.dtype:
        cached = FrameDetector.from_edit_drafter(drafter).to(stem.device, stem.dtype).eval()
        object.__setattr__(planner, "still_finder_cache", cached)  # not a submodule: never saved with the planner
    return cached


def checks_still_edits(planner) -> bool:
    """Whether an image edit's result can be checked against its draft (`still_edit_shortfall`)."""
    return _still_finder(planner) is not None


@torch.no_grad()
def still_edit_shortfall(planner, drafts: torch.Tensor, image: np.ndarray, source: np.ndarray | None = None,
                         instruction: str | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """An edited still (uint8 [H, W, 3], at the model's size) against its draft (`drafts`: [length, 4] rows of
    label, x, y, size bins), as `edit_shortfall` checks a clip: (the drafted objects the picture does not show, the
    picture's objects no drafted one accounts for). A drafted object is shown by a found one of its label within
    SHOWN_BINS of its place (sizes are not judged: the detector's size head is often a bin off). With `source`
    and `instruction`: an object the edit brings in whose colour the words leave open is shown by one of its class,
    as for clips. Both lists empty: the picture holds what was planned, and nothing else the detector knows."""
    from app.shapes.palette import COLOR_NAMES

    finder = _still_finder(planner)
    inputs = planner.processor([""] * (2 if source is not None else 1),
                               images=[[np.asarray(image)]] + ([[np.asarray(source)]] if source is not None else []))
    looked = finder.find(planner.source_images(inputs))
    found = [r for r in looked[0].tolist() if r[0] > 0]
    had = {r[0] for r in looked[1].tolist() if r[0] > 0} if source is not None else set()
    wanted = [r for r in drafts.tolist() if r[0] > 0]
    guessed = _colour_guessed(instruction) if instruction is not None else (lambda label: False)
    colours = len(COLOR_NAMES)

    def shows(a: list, row: list) -> bool:
        same = a[0] == row[0] or (row[0] not in had and guessed(row[0]) and a[0] > 0
                                  and (a[0] - 1) // colours == (row[0] - 1) // colours)
        return same and max(abs(a[1] - row[1]), abs(a[2] - row[2])) <= SHOWN_BINS

    free, unseen = list(range(len(found))), []
    for row in wanted:
        near = [k for k in free if shows(found[k], row)]
        if near:
            free.remove(min(near, key=lambda k: abs(found[k][1] - row[1]) + abs(found[k][2] - row[2])))
        else:
            unseen.append(row)
    return unseen, [found[k] for k in free]


@torch.no_grad()
def still_labels(planner, stills: list[np.ndarray]) -> list[set[int]]:
    """The labels the frame detector finds in each still (uint8 images), as drafting from them reads them."""
    inputs = planner.processor([""] * len(stills), images=[[still] for still in stills])
    found = _still_finder(planner).find(planner.source_images(inputs))
    return [{int(r[0]) for r in item.tolist() if r[0] > 0} for item in found]


_DEFINITE = re.compile(r"\bthe (?:(\w+) )?(circle|square|triangle|star)\b(?: from the (?:(\w+) )?image)?")
_ORDINAL = {None: 0, "first": 0, "second": 1, "third": 2, "fourth": 3}


def named_but_missing(instruction: str, labels: list[set[int]]) -> list[str]:
    """The objects the words name as given ("the star moves left", "the circle from the second image") that the
    still they are in (`labels`: each still's found labels, as `still_labels`; one still for image-to-video)
    does not hold, as the frame detector sees it: "star", "blue circle in the second image". Told with the clip:
    the model draws a named object the input lacks wherever its draft puts it (shapes-world words)."""
    from app.shapes.palette import CLASSES, COLOR_NAMES

    colours, missing = len(COLOR_NAMES), []
    for colour, cls, ordinal in _DEFINITE.findall(" ".join(instruction.lower().split())):
        colour = colour if colour in COLOR_NAMES else None
        k = _ORDINAL.get(ordinal or None, 0)
        if k >= len(labels):
            continue  # said before the run (GenerationRequest.validate)
        # Named without "from the first/second image": any still may hold it (the drafter pools them).
        pool = labels[k] if ordinal else set().union(*labels)
        if not any(CLASSES[(lab - 1) // colours] == cls and (colour is None or COLOR_NAMES[(lab - 1) % colours] == colour)
                   for lab in pool):
            name = f"{colour} {cls}" if colour else cls
            missing.append(name + (f" in the {ordinal} image" if ordinal and len(labels) > 1 else ""))
    return list(dict.fromkeys(missing))


def named_rows(instruction: str, rows) -> list[list[int]]:
    """The track rows (label > 0) whose class the words name ("the blue square moves right": every square's);
    the others are objects of the input the words leave alone (shapes-world words)."""
    from app.shapes.palette import CLASSES, COLOR_NAMES

    words = set(re.findall(r"[a-z]+", instruction.lower()))
    named = {c for c in CLASSES if c in words or c + "s" in words}
    return [r for r in np.asarray(rows).tolist() if r[0] > 0 and CLASSES[(r[0] - 1) // len(COLOR_NAMES)] in named]


_MOTION_EDIT = re.compile(r"^(?:\w+ )*?the (?:(\w+) )?(circle|square|triangle|star) moves (.+?) instead$")


def plan_off_words(instruction: str, draft_rows) -> str:
    """A motion edit's draft against its words ("the circle moves down instead"): "" when a drafted object of the
    named class (and colour) heads that way (within 45 degrees, two bins or more), else what the draft has it do,
    "the circle moving right" or "the circle staying put". The edit check compares the clip with its plan, so a
    plan that went another way passed it (the drafter's greedy draft, not the DiT); another seed drafts again."""
    from app.shapes.motion import PHRASE_DIRECTION, direction_name, unit
    from app.shapes.palette import CLASSES, COLOR_NAMES

    m = _MOTION_EDIT.match(" ".join(re.findall(r"[a-z]+", instruction.lower())))
    if m is None or m.group(3) not in PHRASE_DIRECTION:
        return ""
    colour, cls, direction = m.group(1) if m.group(1) in COLOR_NAMES else None, m.group(2), PHRASE_DIRECTION[m.group(3)]
    ux, uy = unit(direction)
    colours, named = len(COLOR_NAMES), []
    for r in np.asarray(draft_rows).tolist():
        if r[0] > 0 and CLASSES[(r[0] - 1) // colours] == cls and (colour is None or COLOR_NAMES[(r[0] - 1) % colours] == colour):
            dx, dy = r[4] - r[1], r[5] - r[2]
            length = math.hypot(dx, dy)
            if length >= 2 and (dx * ux + dy * uy) / length >= math.cos(math.radians(45)):
                return ""
            named.append((dx, dy, length))
    if not named:
        return ""  # the object is not in the draft at all: the edit check says that of the clip
    dx, dy, length = named[0]
    name = f"{colour} {cls}" if colour else cls
    return f"the {name} staying put" if length < 2 else f"the {name} moving {direction_name(dx, dy)}"


def named_but_absent(instruction: str, rows) -> str:
    """The object a clip edit's words name ("make the star red": "star"; "remove the blue square": "blue
    square") when none of the source's tracks (`rows`, [length, 6] track rows as `source_tracks` finds them) is
    of its class (and colour, when one is named); "" when one is, or the words add an object or name none. Why
    an edit came back as its source, said to the user: no seed makes a clip's missing star red. The words are
    the shapes world's (the embedded model's edits); the detector's view, so a shape it misreads counts as
    missing."""
    from app.shapes.palette import CLASSES, COLOR_NAMES

    words = re.findall(r"[a-z]+", instruction.lower())
    if not words or words[0] == "add":
        return ""
    k = next((i for i, w in enumerate(words) if w in CLASSES), None)
    if k is None:
        return ""
    cls, colour = words[k], words[k - 1] if k > 0 and words[k - 1] in COLOR_NAMES else None
    colours = len(COLOR_NAMES)
    for row in np.asarray(rows).tolist():
        if row[0] > 0 and CLASSES[(row[0] - 1) // colours] == cls and \
                (colour is None or COLOR_NAMES[(row[0] - 1) % colours] == colour):
            return ""
    return f"{colour} {cls}" if colour else cls
