"""The one check of a project's JSON form, before anything is built from it.

A `.mcproj` (or recovery) file may have been edited by hand, damaged, or made by someone hostile.
`check_project_dict` walks it once and refuses, with a ProjectError that names the field and the
clip or media item, anything the rest of the app would choke on later: a wrong type (a string
`start`, a null `out_point`), a number that is not finite, a negative time, a clip or timeline
longer than MAX_SECONDS (a clip lasting 1e7 s made `render` try to build a 2 GB frame list), sizes
and frame rates out of range, media paths that would leave the project's media folder, and nesting
deeper than MAX_DEPTH (copying or re-saving it would overflow Python's stack).

`save_project` runs the same check, so a file we write is always a file we can open.
Standard library only.
"""
from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any

from .errors import ProjectError

MAX_SECONDS = 24 * 3600.0  # the longest clip, and the latest end of any clip on the timeline
MAX_FPS = 1000.0
MAX_SIDE = 1_000_000  # pixels, one side of a media item or the output
MAX_FRAMES = 100_000_000
MAX_DEPTH = 64  # nesting of the JSON document (a request or history entry is a few levels deep)
MAX_TEXT = 1_000_000  # characters of one string (an instruction, a name)

_TYPE_NAMES = {str: "a string", bool: "true or false", int: "a whole number", float: "a number",
               dict: "an object", list: "a list", type(None): "null"}

_MEDIA_FIELDS = {"id", "path", "kind", "width", "height", "frames", "fps", "has_audio", "name"}
_CLIP_FIELDS = {"id", "media_id", "start", "in_point", "out_point", "versions", "active_version", "instruction"}
_VERSION_FIELDS = {"id", "media_id", "request", "plan", "created", "accepted"}
_SETTINGS_FIELDS = {"fps", "width", "height", "image_duration"}


def _what(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 30 else value[:27] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r}"
    if isinstance(value, (bool, int, float)) and not isinstance(value, bool):
        return f"{value!r}"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _Where:
    """Builds messages like: clip 2 on the video track (id 'c2'): 'start' must be ..."""

    def __init__(self, label: str):
        self.label = label

    def fail(self, field: str, problem: str) -> None:
        raise ProjectError(f"{self.label}: '{field}' {problem}")

    def obj(self, value: Any, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(value, dict):
            raise ProjectError(f"{self.label} must be an object, not {_what(value)}")
        for key in value:
            if key not in allowed:
                raise ProjectError(f"{self.label}: unknown field {str(key)!r}")
        for key in sorted(required):
            if key not in value:
                raise ProjectError(f"{self.label}: the field '{key}' is missing")
        return value

    def text(self, d: dict, field: str, nonempty: bool = False, optional: bool = True) -> None:
        if field not in d and optional:
            return
        v = d.get(field)
        if not isinstance(v, str):
            self.fail(field, f"must be a string, not {_what(v)}")
        if nonempty and not v:
            self.fail(field, "must not be empty")
        if len(v) > MAX_TEXT:
            self.fail(field, f"is {len(v)} characters long (the limit is {MAX_TEXT})")
        if "\x00" in v:
            self.fail(field, "contains a NUL character")

    def number(self, d: dict, field: str, lo: float, hi: float, *, lo_open: bool = False, integer: bool = False,
               unit: str = "", nullable: bool = False) -> None:
        if field not in d:
            return
        v = d[field]
        if v is None and nullable:
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            kind = "a whole number" if integer else "a number"
            self.fail(field, f"must be {kind}{unit and ' of ' + unit}{' or null' if nullable else ''}, not {_what(v)}")
        try:
            x = float(v)
        except OverflowError:
            x = math.inf
        if not math.isfinite(x):
            self.fail(field, f"must be a finite number, not {_what(v)}")
        if x < lo or (lo_open and x == lo) or x > hi:
            low = f"above {lo:g}" if lo_open else f"at least {lo:g}"
            self.fail(field, f"is {v!r}{' ' + unit if unit else ''}; it must be {low} and at most {hi:g}")

    def flag(self, d: dict, field: str, nullable: bool = False) -> None:
        if field in d and not (isinstance(d[field], bool) or (nullable and d[field] is None)):
            self.fail(field, f"must be true or false{' or null' if nullable else ''}, not {_what(d[field])}")


def relative_path_problem(path: str) -> str | None:
    """Why `path` (a media or plan file, relative to the media folder, '/'-separated) is not allowed,
    or None: it must stay inside the media folder."""
    if not isinstance(path, str) or not path:
        return "is empty"
    if "\x00" in path:
        return "contains a NUL character"
    if "\\" in path or re.match(r"^[A-Za-z]:", path):
        return "is a Windows path"
    rel = PurePosixPath(path)
    if rel.is_absolute():
        return "is absolute"
    if ".." in rel.parts:
        return "goes up out of the project's media folder ('..')"
    if not rel.parts:
        return "is empty"
    return None


def _depth_problem(doc: Any, limit: int = MAX_DEPTH) -> bool:
    """True when `doc` nests deeper than `limit` (walked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def check_depth(doc: Any) -> None:
    if _depth_problem(doc):
        raise ProjectError(f"its data is nested more than {MAX_DEPTH} levels deep, which no project is")


def check_project_dict(d: Any) -> None:
    """Raise ProjectError naming the first field that is wrong; return None if `d` (a
    Project.to_dict() form, as stored under "project" in a .mcproj file) is sound."""
    check_depth(d)
    top = _Where("the project")
    top.obj(d, {"name", "id", "media", "tracks", "settings", "history", "plan_edits", "target_words"}, set())
    top.text(d, "name")
    top.text(d, "id")
    if "history" in d and not isinstance(d["history"], list):
        top.fail("history", f"must be a list, not {_what(d['history'])}")
    _check_plan_edits(d.get("plan_edits", {}))
    words = d.get("target_words", {})
    if not isinstance(words, dict):
        top.fail("target_words", f"must be an object, not {_what(words)}")
    for target in words:
        _Where(f"the words typed for {str(target)[:40]!r}").text(words, target)

    settings = d.get("settings", {})
    w = _Where("the project settings")
    w.obj(settings, _SETTINGS_FIELDS, set())
    w.number(settings, "fps", 0.0, MAX_FPS, lo_open=True, unit="frames per second")
    w.number(settings, "width", 1, MAX_SIDE, integer=True, unit="pixels", nullable=True)
    w.number(settings, "height", 1, MAX_SIDE, integer=True, unit="pixels", nullable=True)
    w.number(settings, "image_duration", 0.0, MAX_SECONDS, lo_open=True, unit="seconds")

    media = d.get("media", {})
    if not isinstance(media, dict):
        top.fail("media", f"must be an object, not {_what(media)}")
    for key, item in media.items():
        label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) and item.get("name") else key
        w = _Where(f"media {str(label)!r}")
        w.obj(item, _MEDIA_FIELDS, {"id", "path", "kind", "width", "height"})
        w.text(item, "id", nonempty=True)
        if item["id"] != key:
            w.fail("id", f"is {item['id']!r} but the media is listed as {key!r}")
        w.text(item, "path", nonempty=True)
        problem = relative_path_problem(item["path"])
        if problem:
            w.fail("path", f"{problem}: {item['path']!r}. Media must be inside the project's media folder")
        if item["kind"] not in ("image", "video"):
            w.fail("kind", f"must be \"image\" or \"video\", not {_what(item['kind'])}")
        w.number(item, "width", 1, MAX_SIDE, integer=True, unit="pixels")
        w.number(item, "height", 1, MAX_SIDE, integer=True, unit="pixels")
        w.number(item, "frames", 1, MAX_FRAMES, integer=True, unit="frames")
        if item["kind"] == "video":
            w.number(item, "fps", 0.0, MAX_FPS, lo_open=True, unit="frames per second")
            if "fps" not in item:
                w.fail("fps", "is missing (a video needs its frame rate)")
        else:
            w.number(item, "fps", 0.0, MAX_FPS, unit="frames per second")
        w.flag(item, "has_audio")
        w.text(item, "name")

    tracks = d.get("tracks", {})
    if not isinstance(tracks, dict):
        top.fail("tracks", f"must be an object, not {_what(tracks)}")
    for track, clips in tracks.items():
        if track not in ("image", "video"):
            raise ProjectError(f"the project: unknown track {str(track)!r} (tracks are 'image' and 'video')")
        if not isinstance(clips, list):
            raise ProjectError(f"the {track} track must be a list of clips, not {_what(clips)}")
        for n, clip in enumerate(clips, 1):
            cid = clip.get("id") if isinstance(clip, dict) else None
            w = _Where(f"clip {n} on the {track} track" + (f" (id {cid!r})" if isinstance(cid, str) else ""))
            _check_clip(w, clip)


TASKS = ("text_to_image", "image_edit", "text_to_video", "image_to_video", "video_edit", "reference_to_video")


def _check_request(w: _Where, request: Any) -> None:
    """What made a version (GenerationRequest.to_dict, plus the studio's `edited_version`): the fields the studio
    reads back (its task, words, sizes and seed, the plan edits, the version it edited) are checked; a "frames" of
    "17 frames" made the timeline fail to draw the opened project and every later change fail with it."""
    if not isinstance(request, dict):
        raise ProjectError(f"{w.label} must be an object, not {_what(request)}")
    if "task" in request and request["task"] not in TASKS:
        w.fail("task", f"must be one of {', '.join(TASKS)}, not {_what(request['task'])}")
    w.text(request, "instruction")
    w.text(request, "edited_version")
    for key in ("width", "height"):
        w.number(request, key, 1, MAX_SIDE, integer=True, unit="pixels")
    w.number(request, "frames", 1, MAX_FRAMES, integer=True, unit="frames")
    w.number(request, "steps", 1, 100_000, integer=True, unit="steps")
    w.number(request, "seed", 0, 2 ** 64, integer=True)
    w.number(request, "guidance", 0.0, 1000.0)
    w.flag(request, "use_canvas")
    w.flag(request, "keep_source")
    edits = request.get("plan_edits", [])
    if not isinstance(edits, list) or not all(isinstance(e, dict) and isinstance(e.get("kind"), str) for e in edits):
        w.fail("plan_edits", "must be a list of edits, each an object with a 'kind'")


def _check_plan_edits(entries: Any) -> None:
    """{target: {"base": str, "edits": [{"kind": str, ...}]}}: the studio reads each edit back as a PlanEdit."""
    if not isinstance(entries, dict):
        raise ProjectError(f"the project: 'plan_edits' must be an object, not {_what(entries)}")
    for target, entry in entries.items():
        w = _Where(f"the plan edits of {str(target)!r}")
        w.obj(entry, {"base", "edits", "settings"}, {"base", "edits"})
        w.text(entry, "base")
        settings = entry.get("settings", {})
        if not isinstance(settings, dict) or not all(
                k in ("seed", "steps", "guidance", "width", "height", "frames") and isinstance(v, (int, float))
                and not isinstance(v, bool) for k, v in settings.items()):
            w.fail("settings", "must be an object of the plan's seed, size and frames")
        if not isinstance(entry["edits"], list) or not all(isinstance(e, dict) and isinstance(e.get("kind"), str)
                                                           for e in entry["edits"]):
            w.fail("edits", "must be a list of edits, each an object with a 'kind'")


def _check_clip(w: _Where, clip: Any) -> None:
    w.obj(clip, _CLIP_FIELDS, {"id", "media_id"})
    w.text(clip, "id", nonempty=True)
    w.text(clip, "media_id", nonempty=True)
    w.text(clip, "instruction")
    w.number(clip, "start", 0.0, MAX_SECONDS, unit="seconds")
    w.number(clip, "in_point", 0.0, MAX_SECONDS, unit="seconds")
    w.number(clip, "out_point", 0.0, MAX_SECONDS, unit="seconds")
    start, tin, tout = (float(clip.get(k, 0.0)) for k in ("start", "in_point", "out_point"))
    if tout < tin:
        w.fail("out_point", f"is {tout:g} s, before the in point ({tin:g} s)")
    if tout - tin > MAX_SECONDS:
        w.fail("out_point", f"makes the clip {tout - tin:g} s long; the limit is {MAX_SECONDS / 3600:g} hours")
    if start + (tout - tin) > MAX_SECONDS:
        w.fail("start", f"places the clip's end at {start + tout - tin:g} s; the timeline ends at "
                        f"{MAX_SECONDS / 3600:g} hours")
    versions = clip.get("versions", [])
    if not isinstance(versions, list) or not versions:
        w.fail("versions", "must be a non-empty list (the first version is the clip's original)"
               if isinstance(versions, list) else f"must be a list, not {_what(versions)}")
    w.number(clip, "active_version", 0, len(versions) - 1, integer=True)
    for i, version in enumerate(versions):
        v = _Where(f"{w.label}, version {i}")
        v.obj(version, _VERSION_FIELDS, {"id", "media_id"})
        v.text(version, "id", nonempty=True)
        v.text(version, "media_id", nonempty=True)
        v.text(version, "created")
        if "request" in version:
            _check_request(_Where(f"{v.label}, its request"), version["request"])
        plan = version.get("plan")
        if plan is not None:
            v.text(version, "plan")
            problem = relative_path_problem(plan)
            if problem:
                v.fail("plan", f"{problem}: {plan!r}. Plan files must be inside the project's media folder")
        v.flag(version, "accepted", nullable=True)
