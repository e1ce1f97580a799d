"""The project: plain dataclasses that serialise to JSON, and every edit as a small JSON change.

No Qt here. The UI wraps changes in QUndoCommands; a command only needs

    redo: project.apply(change)        undo: project.apply(invert(change))

so each change record carries what it needs to be undone (a removal carries the removed object, a
setter carries the old and new value). Builders named `*_change` read the current project and return
a change without applying it (QUndoStack.push applies it through redo). The plain helpers (`add_clip`,
`add_version`, ...) build, apply and return the new object, for code without an undo stack.

Change kinds (every record is {"kind": ..., ...}, JSON-serialisable):
  add_media        {"item": MediaItem}                      invert: remove_media
  remove_media     {"item": MediaItem}                      invert: add_media
  add_clip         {"track", "index", "clip": Clip}         invert: remove_clip
  remove_clip      {"track", "index", "clip": Clip}         invert: add_clip
  move_clip        {"clip_id", "old": {"track","index","start"}, "new": {...}}
  trim_clip        {"clip_id", "old": {"in_point","out_point"}, "new": {...}}
  add_version      {"clip_id", "index", "version": Version} invert: remove_version
  remove_version   {"clip_id", "index", "version": Version} invert: add_version
  set_active_version {"clip_id", "old": int, "new": int}
  set_accepted     {"clip_id", "version_id", "old": bool|None, "new": bool|None}
  set_clip_instruction {"clip_id", "old": str, "new": str}
  set_plan_edits   {"target", "old": entry|None, "new": entry|None}  (see Project.plan_edits)
  set_target_words {"target", "old": str, "new": str}  (see Project.target_words)
  set_setting      {"key", "old", "new"}
  rename_project   {"old": str, "new": str}
  batch            {"label": str, "changes": [change, ...]}  invert: the inverses in reverse order

Versions: `clip.versions[0]` is always the clip's original media (request {}), so "compare versions"
lists Original, v1, v2... uniformly. A generated result is a NEW MediaItem plus a NEW Version
(`add_result_change`); the source media is never overwritten. The timeline shows
`clip.versions[clip.active_version]`.

Time: `start` is seconds on the timeline; `in_point`/`out_point` are seconds into the ORIGINAL media
(for images, 0 and the display duration). A generated version was made from the trimmed segment, so
it is played from its own beginning and holds its last frame if it is shorter than the clip; a video
edit shorter than the clip plays on as the version it edited (project_file.version_frame).
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import ProjectError

TRACKS = ("image", "video")
KINDS = ("image", "video")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class MediaItem:
    id: str
    path: str  # relative to the project's media folder, '/'-separated
    kind: str  # image | video
    width: int
    height: int
    frames: int = 1
    fps: float = 0.0  # 0 for images
    has_audio: bool = False
    name: str = ""  # what the user called it (the imported file's name), for display

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.kind == "video" and self.fps > 0 else 0.0


@dataclass
class Version:
    id: str
    media_id: str
    request: dict = field(default_factory=dict)  # GenerationRequest.to_dict(); {} for the original
    plan: str | None = None  # plan file name in the media folder, or None
    created: str = field(default_factory=now_iso)
    accepted: bool | None = None  # None: not judged yet


@dataclass
class Clip:
    id: str
    media_id: str  # the original media
    start: float = 0.0
    in_point: float = 0.0
    out_point: float = 0.0
    versions: list[Version] = field(default_factory=list)
    active_version: int = 0
    instruction: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.out_point - self.in_point)

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def active(self) -> Version:
        return self.versions[self.active_version]


@dataclass
class ProjectSettings:
    fps: float = 24.0
    width: int | None = None  # output size; None: the first video-track clip's size
    height: int | None = None
    image_duration: float = 3.0  # seconds an image clip lasts when first placed


@dataclass
class Project:
    name: str = "Untitled"
    media: dict[str, MediaItem] = field(default_factory=dict)
    tracks: dict[str, list[Clip]] = field(default_factory=lambda: {t: [] for t in TRACKS})
    settings: ProjectSettings = field(default_factory=ProjectSettings)
    id: str = field(default_factory=new_id)  # stable across saves; names the recovery file of an untitled project
    history: list[dict] = field(default_factory=list)  # the UI may keep its change log here (saved with the project)
    # The user's edits to the plan shown for a target (a clip id, or "" for a new generation), before they
    # are generated: {"base": which plan they edit (the UI's name for it), "edits": [PlanEdit as a dict],
    # "settings": the seed and size that plan was made with (optional; a reopened project shows it again)}.
    plan_edits: dict[str, dict] = field(default_factory=dict)
    # Words typed for a target no clip owns, kept with the project as a clip's instruction is: "" for a new
    # generation, "id1+id2" for stills picked together as references. An entry whose clips are gone stays while
    # the project is open (an undone removal brings them back with their words) and is not saved.
    target_words: dict[str, str] = field(default_factory=dict)

    # ---------------------------------------------------------------- lookups
    def find_clip(self, clip_id: str) -> tuple[str, int, Clip]:
        for track, clips in self.tracks.items():
            for i, c in enumerate(clips):
                if c.id == clip_id:
                    return track, i, c
        raise ProjectError(f"no clip with id {clip_id!r} in the project")

    def clip(self, clip_id: str) -> Clip:
        return self.find_clip(clip_id)[2]

    def media_item(self, media_id: str) -> MediaItem:
        try:
            return self.media[media_id]
        except KeyError:
            raise ProjectError(f"no media with id {media_id!r} in the project") from None

    def media_in_use(self, media_id: str) -> bool:
        return any(v.media_id == media_id or c.media_id == media_id
                   for clips in self.tracks.values() for c in clips for v in c.versions)

    def timeline(self, track: str = "video") -> list[Clip]:
        """The track's clips in the order they play (by start; equal starts keep list order)."""
        return sorted(self.tracks[track], key=lambda c: c.start)

    def duration(self, track: str = "video") -> float:
        return max((c.end for c in self.tracks[track]), default=0.0)

    # ---------------------------------------------------------------- change builders (no mutation)
    def add_media_change(self, path: str, kind: str, width: int, height: int, frames: int = 1, fps: float = 0.0,
                         has_audio: bool = False, name: str = "", media_id: str | None = None) -> dict:
        if kind not in KINDS:
            raise ProjectError(f"media kind must be one of {KINDS}, not {kind!r}")
        item = MediaItem(media_id or new_id(), path, kind, int(width), int(height), int(frames), float(fps),
                         bool(has_audio), name or path.rsplit("/", 1)[-1])
        return {"kind": "add_media", "item": asdict(item)}

    def remove_media_change(self, media_id: str) -> dict:
        item = self.media_item(media_id)
        if self.media_in_use(media_id):
            raise ProjectError(f"'{item.name}' is still used by a clip; remove the clip first")
        return {"kind": "remove_media", "item": asdict(item)}

    def add_clip_change(self, media_id: str, track: str | None = None, start: float | None = None,
                        in_point: float = 0.0, out_point: float | None = None, instruction: str = "",
                        index: int | None = None) -> dict:
        item = self.media_item(media_id)
        track = track or ("video" if item.kind == "video" else "image")
        _check_track(track)
        if out_point is None:
            out_point = item.duration if item.kind == "video" else in_point + self.settings.image_duration
        if start is None:
            start = self.duration(track)  # append at the end of the track
        original = Version(new_id(), media_id, {}, None, now_iso(), None)
        clip = Clip(new_id(), media_id, float(start), float(in_point), float(out_point), [original], 0, instruction)
        n = len(self.tracks[track])
        return {"kind": "add_clip", "track": track, "index": n if index is None else max(0, min(index, n)),
                "clip": _clip_dict(clip)}

    def remove_clip_change(self, clip_id: str) -> dict:
        track, index, clip = self.find_clip(clip_id)
        return {"kind": "remove_clip", "track": track, "index": index, "clip": _clip_dict(clip)}

    def move_clip_change(self, clip_id: str, start: float | None = None, track: str | None = None,
                         index: int | None = None) -> dict:
        old_track, old_index, clip = self.find_clip(clip_id)
        new_track = track or old_track
        _check_track(new_track)
        if index is None:
            index = old_index if new_track == old_track else len(self.tracks[new_track])
        return {"kind": "move_clip", "clip_id": clip_id,
                "old": {"track": old_track, "index": old_index, "start": clip.start},
                "new": {"track": new_track, "index": int(index), "start": clip.start if start is None else float(start)}}

    def trim_clip_change(self, clip_id: str, in_point: float, out_point: float) -> dict:
        clip = self.clip(clip_id)
        if out_point <= in_point or in_point < 0:
            raise ProjectError("a clip's out point must come after its in point")
        return {"kind": "trim_clip", "clip_id": clip_id,
                "old": {"in_point": clip.in_point, "out_point": clip.out_point},
                "new": {"in_point": float(in_point), "out_point": float(out_point)}}

    def add_version_change(self, clip_id: str, media_id: str, request: dict | None = None, plan: str | None = None,
                           activate: bool = True) -> dict:
        """A new version of the clip showing `media_id` (which must already be in the project);
        with `activate`, also make it the active one (one undo step)."""
        clip = self.clip(clip_id)
        self.media_item(media_id)
        version = Version(new_id(), media_id, copy.deepcopy(request or {}), plan, now_iso(), None)
        add = {"kind": "add_version", "clip_id": clip_id, "index": len(clip.versions), "version": asdict(version)}
        if not activate:
            return add
        return {"kind": "batch", "label": "new version", "changes": [
            add, {"kind": "set_active_version", "clip_id": clip_id, "old": clip.active_version, "new": len(clip.versions)}]}

    def add_result_change(self, clip_id: str, path: str, kind: str, width: int, height: int, frames: int = 1,
                          fps: float = 0.0, request: dict | None = None, plan: str | None = None,
                          activate: bool = True, name: str = "") -> dict:
        """A generated result: new media + new version of the clip, as one undoable change."""
        media = self.add_media_change(path, kind, width, height, frames, fps, False, name)
        clip = self.clip(clip_id)
        version = Version(new_id(), media["item"]["id"], copy.deepcopy(request or {}), plan, now_iso(), None)
        changes = [media, {"kind": "add_version", "clip_id": clip_id, "index": len(clip.versions),
                           "version": asdict(version)}]
        if activate:
            changes.append({"kind": "set_active_version", "clip_id": clip_id, "old": clip.active_version,
                            "new": len(clip.versions)})
        return {"kind": "batch", "label": "generated result", "changes": changes}

    def remove_version_change(self, clip_id: str, version_id: str) -> dict:
        clip = self.clip(clip_id)
        index = _version_index(clip, version_id)
        if index == 0:
            raise ProjectError("the original version of a clip cannot be removed")
        remove = {"kind": "remove_version", "clip_id": clip_id, "index": index, "version": asdict(clip.versions[index])}
        if clip.active_version != index:
            return remove  # apply shifts the active index itself when it sits after the removed one
        # Removing the shown version: show the one before it, in the same undo step.
        new_active = index - 1
        return {"kind": "batch", "label": "remove version", "changes": [
            {"kind": "set_active_version", "clip_id": clip_id, "old": clip.active_version, "new": new_active}, remove]}

    def set_active_version_change(self, clip_id: str, index: int) -> dict:
        clip = self.clip(clip_id)
        if not 0 <= index < len(clip.versions):
            raise ProjectError(f"clip has {len(clip.versions)} versions; there is no version {index}")
        return {"kind": "set_active_version", "clip_id": clip_id, "old": clip.active_version, "new": int(index)}

    def set_accepted_change(self, clip_id: str, version_id: str, accepted: bool | None) -> dict:
        clip = self.clip(clip_id)
        v = clip.versions[_version_index(clip, version_id)]
        return {"kind": "set_accepted", "clip_id": clip_id, "version_id": version_id, "old": v.accepted, "new": accepted}

    def set_clip_instruction_change(self, clip_id: str, text: str) -> dict:
        return {"kind": "set_clip_instruction", "clip_id": clip_id, "old": self.clip(clip_id).instruction, "new": str(text)}

    def set_plan_edits_change(self, target: str, base: str, edits: list[dict], settings: dict | None = None) -> dict:
        """The target's plan edits become `edits` on the plan named `base` (no edits: the entry goes);
        `settings`: what that plan was made with (seed, size), so a reopened project can show it again."""
        new = {"base": str(base), "edits": copy.deepcopy(list(edits))} if edits else None
        if new is not None and settings:
            new["settings"] = {str(k): v for k, v in settings.items()}
        return {"kind": "set_plan_edits", "target": str(target), "old": copy.deepcopy(self.plan_edits.get(target)),
                "new": new}

    def set_target_words_change(self, target: str, text: str) -> dict:
        return {"kind": "set_target_words", "target": str(target), "old": self.target_words.get(target, ""),
                "new": str(text)}

    def set_setting_change(self, key: str, value: Any) -> dict:
        if not hasattr(self.settings, key):
            raise ProjectError(f"unknown project setting {key!r}")
        return {"kind": "set_setting", "key": key, "old": getattr(self.settings, key), "new": value}

    def rename_change(self, name: str) -> dict:
        return {"kind": "rename_project", "old": self.name, "new": str(name)}

    # ---------------------------------------------------------------- helpers (build + apply)
    def add_media(self, path: str, kind: str, width: int, height: int, frames: int = 1, fps: float = 0.0,
                  has_audio: bool = False, name: str = "") -> MediaItem:
        change = self.add_media_change(path, kind, width, height, frames, fps, has_audio, name)
        self.apply(change)
        return self.media[change["item"]["id"]]

    def add_clip(self, media_id: str, track: str | None = None, start: float | None = None, in_point: float = 0.0,
                 out_point: float | None = None, instruction: str = "") -> Clip:
        change = self.add_clip_change(media_id, track, start, in_point, out_point, instruction)
        self.apply(change)
        return self.clip(change["clip"]["id"])

    def add_version(self, clip_id: str, media_id: str, request: dict | None = None, plan: str | None = None,
                    activate: bool = True) -> Version:
        change = self.add_version_change(clip_id, media_id, request, plan, activate)
        self.apply(change)
        return self.clip(clip_id).versions[-1]

    def remove_clip(self, clip_id: str) -> Clip:
        clip = self.clip(clip_id)
        self.apply(self.remove_clip_change(clip_id))
        return clip

    def move_clip(self, clip_id: str, start: float | None = None, track: str | None = None, index: int | None = None) -> None:
        self.apply(self.move_clip_change(clip_id, start, track, index))

    def trim_clip(self, clip_id: str, in_point: float, out_point: float) -> None:
        self.apply(self.trim_clip_change(clip_id, in_point, out_point))

    def set_active_version(self, clip_id: str, index: int) -> None:
        self.apply(self.set_active_version_change(clip_id, index))

    def set_accepted(self, clip_id: str, version_id: str, accepted: bool | None) -> None:
        self.apply(self.set_accepted_change(clip_id, version_id, accepted))

    def set_clip_instruction(self, clip_id: str, text: str) -> None:
        self.apply(self.set_clip_instruction_change(clip_id, text))

    # ---------------------------------------------------------------- applying changes
    def apply(self, change: dict) -> None:
        """Apply one change record. A batch is all or nothing: if a part fails, the parts already
        applied are undone before the error is raised."""
        kind = change.get("kind")
        if kind == "batch":
            done: list[dict] = []
            try:
                for part in change["changes"]:
                    self.apply(part)
                    done.append(part)
            except Exception:
                for part in reversed(done):
                    self.apply(invert(part))
                raise
            return
        handler = _APPLY.get(kind)  # type: ignore[arg-type]
        if handler is None:
            raise ProjectError(f"unknown change kind {kind!r}")
        try:
            handler(self, change)
        except ProjectError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ProjectError(f"change {kind!r} does not fit the project ({type(e).__name__}: {e})") from None

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        # Field by field rather than dataclasses.asdict: asdict deep-copies recursively and made
        # saving a 3000-clip project take half a second; this is ~10x faster.
        return {"name": self.name, "id": self.id,
                "media": {k: dict(vars(v)) for k, v in self.media.items()},
                "tracks": {t: [_clip_dict(c) for c in clips] for t, clips in self.tracks.items()},
                "settings": dict(vars(self.settings)), "history": copy.deepcopy(self.history),
                "plan_edits": copy.deepcopy(self.plan_edits),
                # Only when there are some: a project without them stays one the versions before them open.
                **({"target_words": words} if (words := self._live_target_words()) else {})}

    def _live_target_words(self) -> dict[str, str]:
        """target_words whose clips are all on the timeline ("" always): what is saved."""
        ids = {c.id for clips in self.tracks.values() for c in clips}
        return {k: v for k, v in self.target_words.items() if all(i in ids for i in k.split("+") if i)}

    @classmethod
    def from_dict(cls, d: dict) -> "Project":
        """Build a project from its JSON form; ProjectError names the first thing that is wrong."""
        try:
            media = {}
            for key, m in dict(d.get("media", {})).items():
                item = MediaItem(**m)
                if item.id != key or item.kind not in KINDS:
                    raise ValueError(f"media entry {key!r} is inconsistent")
                media[key] = item
            tracks: dict[str, list[Clip]] = {t: [] for t in TRACKS}
            for t, clips in dict(d.get("tracks", {})).items():
                _check_track(t)
                tracks[t] = [_clip_from_dict(c) for c in clips]
            settings = ProjectSettings(**d.get("settings", {}))
            project = cls(str(d.get("name", "Untitled")), media, tracks, settings, str(d.get("id") or new_id()),
                          list(d.get("history", [])), dict(d.get("plan_edits", {})),
                          {str(k): str(v) for k, v in dict(d.get("target_words", {})).items()})
        except ProjectError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise ProjectError(f"the project's content is malformed ({e})") from None
        seen: set[str] = set()
        for clips in project.tracks.values():
            for c in clips:
                # Ids name clips in every change record (undo, selection, jobs): two clips with one id (a project
                # file edited by hand) would send a result to one of them and break the undo of a removal.
                if c.id in seen:
                    raise ProjectError(f"two clips have the id {c.id!r}: each clip needs its own")
                seen.add(c.id)
                versions = [v.id for v in c.versions]
                if len(set(versions)) != len(versions):
                    raise ProjectError(f"clip {c.id} has two versions with one id")
                for mid in [c.media_id] + [v.media_id for v in c.versions]:
                    if mid not in project.media:
                        raise ProjectError(f"clip {c.id} refers to media {mid!r}, which the project does not list")
                if not c.versions or not 0 <= c.active_version < len(c.versions):
                    raise ProjectError(f"clip {c.id} has no valid active version")
        return project


def _check_track(track: str) -> None:
    if track not in TRACKS:
        raise ProjectError(f"track must be one of {TRACKS}, not {track!r}")


def _version_index(clip: Clip, version_id: str) -> int:
    for i, v in enumerate(clip.versions):
        if v.id == version_id:
            return i
    raise ProjectError(f"clip {clip.id} has no version {version_id!r}")


def _clip_dict(c: Clip) -> dict:
    d = dict(vars(c))
    d["versions"] = [{**vars(v), "request": copy.deepcopy(v.request)} for v in c.versions]
    return d


def _clip_from_dict(d: dict) -> Clip:
    d = dict(d)
    versions = [Version(**v) for v in d.pop("versions", [])]
    return Clip(versions=versions, **d)


# -------------------------------------------------------------------- apply handlers


def _add_media(p: Project, ch: dict) -> None:
    item = MediaItem(**ch["item"])
    if item.id in p.media:
        raise ProjectError(f"media {item.id!r} is already in the project")
    p.media[item.id] = item


def _remove_media(p: Project, ch: dict) -> None:
    mid = ch["item"]["id"]
    p.media_item(mid)
    if p.media_in_use(mid):
        raise ProjectError(f"media {mid!r} is still used by a clip")
    del p.media[mid]


def _add_clip(p: Project, ch: dict) -> None:
    _check_track(ch["track"])
    clip = _clip_from_dict(copy.deepcopy(ch["clip"]))
    if any(c.id == clip.id for clips in p.tracks.values() for c in clips):
        raise ProjectError(f"clip {clip.id!r} is already in the project")
    for v in clip.versions:
        p.media_item(v.media_id)
    p.tracks[ch["track"]].insert(ch["index"], clip)


def _remove_clip(p: Project, ch: dict) -> None:
    track, index, _ = p.find_clip(ch["clip"]["id"])
    del p.tracks[track][index]


def _move_clip(p: Project, ch: dict) -> None:
    track, index, clip = p.find_clip(ch["clip_id"])
    new = ch["new"]
    _check_track(new["track"])
    del p.tracks[track][index]
    p.tracks[new["track"]].insert(new["index"], clip)
    clip.start = float(new["start"])


def _trim_clip(p: Project, ch: dict) -> None:
    clip = p.clip(ch["clip_id"])
    clip.in_point, clip.out_point = float(ch["new"]["in_point"]), float(ch["new"]["out_point"])


def _add_version(p: Project, ch: dict) -> None:
    clip = p.clip(ch["clip_id"])
    version = Version(**copy.deepcopy(ch["version"]))
    p.media_item(version.media_id)
    if ch["index"] == 0:
        raise ProjectError("version 0 is the clip's original")
    clip.versions.insert(ch["index"], version)
    if clip.active_version >= ch["index"]:
        clip.active_version += 1


def _remove_version(p: Project, ch: dict) -> None:
    clip = p.clip(ch["clip_id"])
    index = _version_index(clip, ch["version"]["id"])
    if index == 0:
        raise ProjectError("the original version of a clip cannot be removed")
    if clip.active_version == index:
        raise ProjectError("the active version cannot be removed; activate another one first")
    del clip.versions[index]
    if clip.active_version > index:
        clip.active_version -= 1


def _set_active_version(p: Project, ch: dict) -> None:
    clip = p.clip(ch["clip_id"])
    if not 0 <= ch["new"] < len(clip.versions):
        raise ProjectError(f"clip has no version {ch['new']}")
    clip.active_version = int(ch["new"])


def _set_accepted(p: Project, ch: dict) -> None:
    clip = p.clip(ch["clip_id"])
    clip.versions[_version_index(clip, ch["version_id"])].accepted = ch["new"]


def _set_clip_instruction(p: Project, ch: dict) -> None:
    p.clip(ch["clip_id"]).instruction = str(ch["new"])


def _set_setting(p: Project, ch: dict) -> None:
    if not hasattr(p.settings, ch["key"]):
        raise ProjectError(f"unknown project setting {ch['key']!r}")
    setattr(p.settings, ch["key"], ch["new"])


def _rename(p: Project, ch: dict) -> None:
    p.name = str(ch["new"])


def _set_plan_edits(p: Project, ch: dict) -> None:
    if ch["new"] is None:
        p.plan_edits.pop(ch["target"], None)
    else:
        new = ch["new"]
        p.plan_edits[str(ch["target"])] = {"base": str(new["base"]), "edits": copy.deepcopy(list(new["edits"])),
                                           **({"settings": dict(new["settings"])} if new.get("settings") else {})}


def _set_target_words(p: Project, ch: dict) -> None:
    if ch["new"]:
        p.target_words[str(ch["target"])] = str(ch["new"])
    else:
        p.target_words.pop(ch["target"], None)


_APPLY = {
    "add_media": _add_media, "remove_media": _remove_media, "add_clip": _add_clip, "remove_clip": _remove_clip,
    "move_clip": _move_clip, "trim_clip": _trim_clip, "add_version": _add_version,
    "remove_version": _remove_version, "set_active_version": _set_active_version, "set_accepted": _set_accepted,
    "set_clip_instruction": _set_clip_instruction, "set_setting": _set_setting, "rename_project": _rename,
    "set_plan_edits": _set_plan_edits, "set_target_words": _set_target_words,
}

_OPPOSITE = {"add_media": "remove_media", "remove_media": "add_media", "add_clip": "remove_clip",
             "remove_clip": "add_clip", "add_version": "remove_version", "remove_version": "add_version"}


def files_named(change: dict) -> tuple[list[dict], list[str]]:
    """The media items and plan files a change record names (an undo or redo of it brings them into the
    project): (media item dicts, plan file names)."""
    items: list[dict] = []
    plans: list[str] = []
    kind = change.get("kind")
    if kind == "batch":
        for part in change.get("changes", []):
            more_items, more_plans = files_named(part)
            items += more_items
            plans += more_plans
    elif kind in ("add_media", "remove_media"):
        items.append(change["item"])
    elif kind in ("add_clip", "remove_clip"):
        plans += [v["plan"] for v in change["clip"].get("versions", []) if v.get("plan")]
    elif kind in ("add_version", "remove_version") and change["version"].get("plan"):
        plans.append(change["version"]["plan"])
    return items, plans


def invert(change: dict) -> dict:
    """The change that undoes `change` (a pure function of the record)."""
    kind = change.get("kind")
    if kind == "batch":
        return {"kind": "batch", "label": change.get("label", ""),
                "changes": [invert(c) for c in reversed(change["changes"])]}
    if kind in _OPPOSITE:
        return {**copy.deepcopy(change), "kind": _OPPOSITE[kind]}
    if kind in ("move_clip", "trim_clip", "set_active_version", "set_accepted", "set_clip_instruction",
                "set_setting", "rename_project", "set_plan_edits", "set_target_words"):
        out = copy.deepcopy(change)
        out["old"], out["new"] = out["new"], out["old"]
        return out
    raise ProjectError(f"unknown change kind {kind!r}")
