"""Plans in words: what `--plan-edit` reads, the names of the labels a drafted object can have, and what a
user is told of drafted tracks (a video edit that falls short of its plan: `shortfall_words`).

One edit a string, e.g. "move 1 to 0.7,0.5". Objects are numbered as the plan picture shows them (the
draft's order), and each edit sees the draft as the edits before it left it. Places and sizes are
fractions of the frame (0..1; sizes of its width). The words become the core's `PlanEdit`s, which
`Plan.edited` applies; a malformed edit is one ValueError line that says what was expected.
"""
from __future__ import annotations

import re

from app.core.request import PlanEdit

GRAMMAR = ("move N to X,Y | move N by DX,DY | resize N to SIZE | delete N | add COLOUR SHAPE at X,Y [size SIZE] | "
           "erase L,T,R,B | paint L,T,R,B [by FACTOR] | move L,T,R,B by DX,DY; any edit of the canvas may end "
           "with 'keyframe K'")
PAINT_FACTOR = 1.5  # "paint" alone: half as strong again, a visible push that leaves the cells' kind as it was

_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
_PAIR = rf"({_NUMBER})\s*,\s*({_NUMBER})"
_BOX = rf"({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})"
_KEYFRAME = r"(?:\s+keyframe\s+(\d+))?"


def label_names(labels: int) -> dict[int, str]:
    """{label: name} of a drafter with `labels` labels (0 is the background): the shapes world's names
    ("red circle") for the shapes models, "label N" for any other drafter."""
    from app.shapes.palette import NUM_LABELS, label_name

    if labels == NUM_LABELS:
        return {i: label_name(i) for i in range(1, NUM_LABELS)}
    return {i: f"label {i}" for i in range(1, max(labels, 1))}


def plan_labels(plan) -> dict[int, str]:
    """The label names of the model that drafted `plan` ({} for an undrafted plan)."""
    if plan is None or plan.draft is None:
        return {}
    return label_names(plan.layout_config().labels)


def parse_plan_edits(texts: list[str], plan) -> list[PlanEdit]:
    """The `--plan-edit` strings, in order, as PlanEdits on `plan` (the plan they edit: its draft gives the
    objects' numbers and places). ValueError names the edit and what was expected."""
    edits: list[PlanEdit] = []
    for text in texts:
        try:
            edits.append(_parse(text, plan, edits))
        except ValueError as e:
            raise ValueError(f"--plan-edit {text!r}: {e}") from None
    return edits


def _parse(text: str, plan, before: list[PlanEdit]) -> PlanEdit:
    words = " ".join(text.lower().split())
    verb = words.split(" ", 1)[0] if words else ""
    if m := re.fullmatch(rf"move (\d+) to {_PAIR}", words):
        number, x, y = int(m[1]), float(m[2]), float(m[3])
        _, cx, cy, _ = _object(plan, before, number)
        return PlanEdit("move_object", number=number, dx=_fraction(x, "x") - cx, dy=_fraction(y, "y") - cy)
    if m := re.fullmatch(rf"move (\d+) by {_PAIR}", words):
        number = int(m[1])
        _object(plan, before, number)
        return PlanEdit("move_object", number=number, dx=float(m[2]), dy=float(m[3]))
    if m := re.fullmatch(rf"resize (\d+) to ({_NUMBER})", words):
        _object(plan, before, int(m[1]))
        return PlanEdit("resize_object", number=int(m[1]), size=_size(float(m[2])))
    if m := re.fullmatch(r"delete (\d+)", words):
        _object(plan, before, int(m[1]))
        return PlanEdit("delete_object", number=int(m[1]))
    if m := re.fullmatch(rf"add (.+?) at {_PAIR}(?: size ({_NUMBER}))?", words):
        label = _label(plan, m[1])
        x, y = _fraction(float(m[2]), "x"), _fraction(float(m[3]), "y")
        size = _size(float(m[4])) if m[4] else default_size(plan)
        return PlanEdit("add_object", label=label, box=(x - size / 2, y - size / 2, x + size / 2, y + size / 2))
    if m := re.fullmatch(rf"erase {_BOX}{_KEYFRAME}", words):
        return PlanEdit("scale", box=_box(m), factor=0.0, keyframe=_keyframe(m[5]))
    if m := re.fullmatch(rf"(?:paint|scale) {_BOX}(?: by ({_NUMBER}))?{_KEYFRAME}", words):
        if verb == "scale" and m[5] is None:
            raise ValueError("say how much: scale L,T,R,B by FACTOR")
        factor = float(m[5]) if m[5] is not None else PAINT_FACTOR
        if factor < 0:
            raise ValueError(f"the factor must be 0 or more, not {factor:g}")
        return PlanEdit("scale", box=_box(m), factor=factor, keyframe=_keyframe(m[6]))
    if m := re.fullmatch(rf"move {_BOX} by {_PAIR}{_KEYFRAME}", words):
        return PlanEdit("move", box=_box(m), dx=float(m[5]), dy=float(m[6]), keyframe=_keyframe(m[7]))
    known = ("move", "resize", "delete", "add", "erase", "paint", "scale")
    what = f"this is not a {verb} edit" if verb in known else f"unknown edit {verb!r}" if verb else "an empty edit"
    raise ValueError(f"{what}; edits read: {GRAMMAR}")


def default_size(plan) -> float:
    """An added object's diameter when none is given: the middle of the sizes the drafter draws."""
    config = plan.layout_config() if plan is not None and plan.draft is not None else None
    if config is None:
        return 0.22
    return config.half_min + config.half_max


def _object(plan, before: list[PlanEdit], number: int) -> tuple:
    """Object `number` as the edits before this one leave the draft (ValueError if there is none)."""
    if plan is None or not plan.has_draft(0):
        raise ValueError("the plan has no drafted objects to edit (its model drafts no layout); edit the canvas "
                         "instead (erase, paint, move L,T,R,B by DX,DY)")
    objects = plan.objects_after(before)
    if not 1 <= number <= len(objects):
        have = f"objects 1 to {len(objects)}" if len(objects) > 1 else ("object 1" if objects else "no objects")
        raise ValueError(f"there is no object {number}: the draft has {have} (the numbers of the plan picture)")
    return objects[number - 1]


def _label(plan, words: str) -> int:
    names = plan_labels(plan)
    if not names:
        raise ValueError("the plan has no drafted layout to add an object to (its model drafts no layout)")
    by_name = {name: label for label, name in names.items()}
    if words in by_name:
        return by_name[words]
    if m := re.fullmatch(r"(?:label )?(\d+)", words):
        if int(m[1]) in names:
            return int(m[1])
    shapes = sorted({name.split()[-1] for name in names.values()})
    if words in shapes:
        colours = [name.rsplit(" ", 1)[0] for name in names.values() if name.endswith(" " + words)]
        raise ValueError(f"name its colour too, e.g. add {colours[0]} {words} at X,Y (colours: {', '.join(colours)})")
    raise ValueError(f"unknown object {words!r}; the model draws: {', '.join(names.values())}")


def _fraction(value: float, name: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction of the frame from 0 to 1, not {value:g}")
    return value


def _size(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"a size is a fraction of the frame's width above 0 and at most 1, not {value:g}")
    return value


def _box(m: re.Match) -> tuple[float, float, float, float]:
    left, top, right, bottom = (_fraction(float(m[i]), "a box edge") for i in range(1, 5))
    if right <= left or bottom <= top:
        raise ValueError(f"a box is LEFT,TOP,RIGHT,BOTTOM with right > left and bottom > top, not "
                         f"{left:g},{top:g},{right:g},{bottom:g}")
    return left, top, right, bottom


def _keyframe(text: str | None) -> int | None:
    return None if text is None else int(text)


def motion_words(row: list[int], still_bins: int = 2) -> str:
    """A track row's way (label, x, y, size, x end, y end; y grows downward): "moving up to the left", "staying
    put" when it moves under `still_bins` bins either way."""
    _, x, y, _, xe, ye = row[:6]
    ways = [w for w, far in (("up", y - ye), ("down", ye - y)) if far >= still_bins]
    ways += [w for w, far in (("left", x - xe), ("right", xe - x)) if far >= still_bins]
    return ("moving " + " to the ".join(ways)) if ways else "staying put"


def track_words(rows: list[list[int]], names: dict[int, str]) -> str:
    """Track rows in words: "a blue circle moving right, a red star staying put"."""
    from app.shapes.vocab import article

    return ", ".join(f"{article(names.get(r[0], f'label {r[0]}'))} {names.get(r[0], f'label {r[0]}')} {motion_words(r)}"
                     for r in rows)


def place_words(row: list[int], bins: int) -> str:
    """An object row's place (label, x, y, ... bins of `bins`; y grows downward): "at the top left", "in the
    middle", "on the right"."""
    third = lambda v: min(int(3 * (v + 0.5) / bins), 2)  # noqa: E731
    across, down = ("left", "", "right")[third(row[1])], ("top", "", "bottom")[third(row[2])]
    if across and down:
        return f"at the {down} {across}"
    return f"on the {across}" if across else f"at the {down}" if down else "in the middle"


def object_words(rows: list[list[int]], names: dict[int, str], bins: int) -> str:
    """Object rows in words: "a green circle on the left, a red square at the top"."""
    from app.shapes.vocab import article

    return ", ".join(f"{article(names.get(r[0], f'label {r[0]}'))} {names.get(r[0], f'label {r[0]}')} "
                     f"{place_words(r, bins)}" for r in rows)


def shortfall_words(result) -> str:
    """A checked edit's shortfall (GenerationResult.shortfall) in words, "" when the result shows its plan
    or was not checked: "the clip does not show a blue circle moving right", "the clip draws the orange
    circle staying put, off the path its plan has for it (moving down)" (a planned object found elsewhere),
    "the clip shows what was not planned: a red star staying put"; for a picture (object rows, not tracks),
    "the picture does not show a green circle on the left", "... draws the red circle at the top, off the place
    its plan has for it (on the right)"."""
    unseen, unplanned = (list(x) for x in (getattr(result, "shortfall", None) or ([], [])))
    if not unseen and not unplanned:
        return ""
    names = plan_labels(result.plan)
    if len((unseen or unplanned)[0]) < 6:  # a still's object rows
        bins = result.plan.layout_config().bins
        return _shortfall_said("picture", unseen, unplanned, names, lambda rows: object_words(rows, names, bins),
                               lambda row: place_words(row, bins), "place")
    return _shortfall_said("clip", unseen, unplanned, names, lambda rows: track_words(rows, names), motion_words,
                           "path")


def _shortfall_said(what: str, unseen: list, unplanned: list, names: dict[int, str], listed, way, of: str) -> str:
    astray = []  # a planned object drawn off its drafted place or path: one finding, not a missing and an extra one
    for row in list(unseen):
        drawn = next((u for u in unplanned if u[0] == row[0]), None)
        if drawn is not None:
            astray.append((row, drawn))
            unseen.remove(row)
            unplanned.remove(drawn)
    said = [f"does not show {listed(unseen)}"] if unseen else []
    for planned, drawn in astray:
        name, want, got = names.get(planned[0], f"label {planned[0]}"), way(planned), way(drawn)
        said.append(f"draws the {name} {got}, off the {of} its plan has for it" + (f" ({want})" if want != got else ""))
    if unplanned:
        said.append(f"shows what was not planned: {listed(unplanned)}")
    return f"the {what} " + "; it ".join(said)


def names_what_the_clip_lacks(result) -> bool:
    """Whether a video edit came back as its source without being attempted: its words name an object the clip
    does not hold (GenerationResult.unchanged_why NOT_IN_CLIP)."""
    from app.core.pipeline import NOT_IN_CLIP

    why = str(getattr(result, "unchanged_why", ""))
    return bool(getattr(result, "unchanged", False)) and why.startswith(NOT_IN_CLIP)


def unchanged_words(result, retry: str) -> str:
    """Why a video edit came back as its source (GenerationResult.unchanged_why), as the end of "the model
    changed nothing…"; "" when no more is known. `retry`: how the user asks again ("seed", "--seed")."""
    from app.core.pipeline import NOT_IN_CLIP, NOTHING_PLANNED, PUT_BACK

    why = getattr(result, "unchanged_why", "")
    if why.startswith(NOT_IN_CLIP):
        return (f": it finds no {why[len(NOT_IN_CLIP):].strip()} in the clip (the words name what the clip does not "
                f"hold, as the model sees it)")
    if why == NOTHING_PLANNED:
        return (": its plan for the edit changes nothing in the clip (the model may not know this edit's wording, "
                "e.g. an object set still; or the clip may not hold what the instruction names, as the model sees "
                "it)")
    if why == PUT_BACK:
        return (f" its plan asked for: what it drew was elsewhere in the clip and went back to the source (another "
                f"{retry} or wording may make the edit)")
    return ""
