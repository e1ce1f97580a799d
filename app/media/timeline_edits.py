"""Timeline edits by hand as change records: move a clip along or between tracks, trim one end, split it.

Each builder reads the project, clamps what was asked to what the clip's media allows, and returns one change
record (a batch when it touches several fields) for the UI to push as one undo step, or None when nothing
would change. No Qt here; the timeline widget previews a drag with the same arithmetic (`trimmed_span`,
`tracks_for_kind`), so what is drawn while dragging is what the change will hold.

The rules:
- the image track holds stills; a video clip stays on the video track, a still may go on either;
- nothing starts before 0 s, and a clip lasts at least one frame of the project's rate;
- a video clip's in and out points stay inside its original media; a still has no length of its own, so its
  ends can be dragged out freely (its in point stays 0: for a still only the duration means anything);
- a video clip's generated versions were made from the segment it had then and play from their own first
  frame: moving its in point (a trim of its start, a split) would shift or drop what they show, so a clip that
  has them keeps its start (`GeneratedVersionsError`); its end may still be trimmed.
"""
from __future__ import annotations

import copy
from dataclasses import asdict

from .errors import ProjectError
from .project import Clip, Project, Version, new_id, now_iso
from .schema import MAX_SECONDS

LEFT, RIGHT = "left", "right"


class GeneratedVersionsError(ProjectError):
    """The edit would move the in point of a video clip that has generated versions."""


def _keeps_its_start(project: Project, clip: Clip, what: str) -> None:
    if project.media_item(clip.media_id).kind == "video" and len(clip.versions) > 1:
        raise GeneratedVersionsError(
            f"'{what}' would change where this clip starts in its source, and its generated versions play from "
            f"their own first frame (they were made from the clip's start as it is now): trim its end instead, "
            f"or {what} before generating.")


def tracks_for_kind(kind: str) -> tuple[str, ...]:
    """The tracks a clip whose original media is of `kind` may be placed on."""
    return ("image", "video") if kind == "image" else ("video",)


def trimmed_span(start: float, in_point: float, out_point: float, source_duration: float | None, edge: str,
                 seconds: float, min_duration: float) -> tuple[float, float, float]:
    """(start, in_point, out_point) after dragging the clip's `edge` to `seconds` on the timeline.

    Trimming the left edge keeps the picture anchored to the timeline (the frame at any moment of the rest of
    the clip is unchanged): start and in point move together. `source_duration` is None for a still."""
    end = start + (out_point - in_point)
    if edge == LEFT:
        earliest = 0.0 if source_duration is None else max(0.0, start - in_point)
        new_start = min(max(seconds, earliest), end - min_duration)
        if source_duration is None:
            return new_start, in_point, in_point + (end - new_start)
        return new_start, in_point + (new_start - start), out_point
    if edge != RIGHT:
        raise ProjectError(f"a clip has a left and a right edge, not {edge!r}")
    latest = MAX_SECONDS if source_duration is None else start + (source_duration - in_point)
    new_end = max(min(seconds, latest), start + min_duration)
    return start, in_point, in_point + (new_end - start)


def source_duration(project: Project, clip: Clip) -> float | None:
    """How long the clip's original media lasts (None for a still, which has no length of its own)."""
    item = project.media_item(clip.media_id)
    return item.duration if item.kind == "video" else None


def min_duration(project: Project) -> float:
    return 1.0 / float(project.settings.fps or 24.0)


def move_edit(project: Project, clip_id: str, start: float, track: str | None = None) -> dict | None:
    """Move the clip to `start` seconds, on `track` when its media may go there (else its own track). A moved
    clip goes on top of its track's clips (last in its list: it wins where they overlap), as the one just placed
    does in an editor; on its own track it kept its place in the list and went under a clip it was dropped on."""
    old_track, _, clip = project.find_clip(clip_id)
    kind = project.media_item(clip.media_id).kind
    new_track = track if track in tracks_for_kind(kind) else old_track
    new_start = min(max(0.0, float(start)), MAX_SECONDS - clip.duration)
    if new_track == old_track and abs(new_start - clip.start) < 1e-9:
        return None
    on_top = len(project.tracks[new_track]) - (1 if new_track == old_track else 0)
    return project.move_clip_change(clip_id, new_start, new_track, on_top)


def trim_edit(project: Project, clip_id: str, edge: str, seconds: float) -> dict | None:
    """Drag the clip's `edge` (LEFT or RIGHT) to `seconds` on the timeline, within what its media allows."""
    clip = project.clip(clip_id)
    if edge == LEFT:
        _keeps_its_start(project, clip, "trim the start")
    start, tin, tout = trimmed_span(clip.start, clip.in_point, clip.out_point, source_duration(project, clip),
                                    edge, float(seconds), min_duration(project))
    changes = []
    if abs(start - clip.start) > 1e-9:
        changes.append(project.move_clip_change(clip_id, start))
    if abs(tin - clip.in_point) > 1e-9 or abs(tout - clip.out_point) > 1e-9:
        changes.append(project.trim_clip_change(clip_id, tin, tout))
    if not changes:
        return None
    return changes[0] if len(changes) == 1 else {"kind": "batch", "label": "trim clip", "changes": changes}


def split_edit(project: Project, clip_ids: list[str], seconds: float) -> dict | None:
    """Split each clip that `seconds` falls inside (by at least a frame) into two that share its source: the
    first keeps the clip's id and ends at `seconds`, the second is a new clip from there on. None when no
    clip is under `seconds`.

    A still's versions are whole pictures, so the second part gets them all (the version shown stays shown).
    A video clip is split only while it has no generated versions (see the module's rules)."""
    t = float(seconds)
    shortest = min_duration(project)
    changes = []
    inserted = {track: 0 for track in project.tracks}  # clips this split already added, per track
    for track, index, clip in sorted((project.find_clip(c) for c in set(clip_ids)), key=lambda f: f[:2]):
        if not clip.start + shortest <= t <= clip.end - shortest:
            continue
        _keeps_its_start(project, clip, "split")
        cut = clip.in_point + (t - clip.start)
        still = project.media_item(clip.media_id).kind == "image"
        second = Clip(new_id(), clip.media_id, t, 0.0 if still else cut,
                      (clip.end - t) if still else clip.out_point,
                      [Version(new_id(), v.media_id, copy.deepcopy(v.request), v.plan, now_iso(), v.accepted)
                       for v in clip.versions],
                      clip.active_version, clip.instruction)
        changes.append(project.trim_clip_change(clip.id, clip.in_point, cut))
        # Right after the first part in the track's list, so it overlaps other clips as the whole clip did.
        inserted[track] += 1
        changes.append({"kind": "add_clip", "track": track, "index": index + inserted[track], "clip": asdict(second)})
    if not changes:
        return None
    return {"kind": "batch", "label": "split clip" if len(changes) == 2 else "split clips", "changes": changes}
