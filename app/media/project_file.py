"""`.mcproj` project files, crash-safe saving, and autosave/recovery.

Layout of a project called PROJECT (a folder-based bundle, so media stay ordinary files the user can
see, back up and open in other tools):

    somewhere/
      PROJECT.mcproj        the JSON document (below); the only file a save rewrites
      PROJECT.mcproj.bak    the previous save (a hard link to it, made before each save)
      PROJECT_media/        copies of imported media and every generated result / plan file;
                            MediaItem.path is relative to this folder

Imported files are COPIED into PROJECT_media (never moved or modified), under a new unique name, so
the project keeps working when the user tidies their Downloads folder. Results get new files too; a
file in PROJECT_media is never overwritten.

The document: {"format": "metacanvas-project", "schema": 1, "saved": ISO time, "project": Project.to_dict()}.

Saving is atomic: the JSON goes to a hidden temporary file in the same folder, is flushed and fsynced,
then os.replace()d over PROJECT.mcproj and the folder is fsynced. At every instant PROJECT.mcproj is
either the complete old or the complete new document, whatever kills the process.

Autosave writes the same document (plus where it belongs) to a recovery folder, by default
platformdirs.user_data_dir("MetaCanvas Studio")/recovery, overridable with `root=`, the
METACANVAS_RECOVERY_DIR environment variable, or METACANVAS_DATA_DIR (then DATA_DIR/recovery). On start the UI calls
`find_recoveries()`; it lists the recovery files a studio left behind (each studio writes its own, tagged with its
process; a studio still running is not a crash).

One file of about 690 lines: the media folder, the document and the recovery copy follow one set of rules (never
overwrite, always atomic); the recovery half (autosave_path onward) is the next split to make.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from . import atomic, files
from . import schema as project_schema
from .errors import MediaError, ProjectError
from .files import describe_os_error
from .project import MediaItem, Project, invert, new_id

PROJECT_SUFFIX = ".mcproj"
FORMAT = "metacanvas-project"
RECOVERY_FORMAT = "metacanvas-recovery"
SCHEMA_VERSION = 1
APP_NAME = "MetaCanvas Studio"
# A 3000-clip project is ~2 MB; refusing above this (before reading) keeps a wrong or hostile file
# from taking gigabytes of memory in json.loads.
MAX_PROJECT_BYTES = 256 * 2**20


# ------------------------------------------------------------------------------------ paths


def media_dir(project_path: str | os.PathLike) -> Path:
    p = Path(project_path)
    return p.with_name(p.stem + "_media")


def media_path(project_path: str | os.PathLike, item: MediaItem) -> Path:
    """Where `item`'s file lives. Refuses paths that would leave the media folder: a project file
    edited by hand (or by someone else) must not make us read or write elsewhere. That includes a
    link inside the media folder that points outside it (checked when the file exists)."""
    problem = project_schema.relative_path_problem(item.path)
    if problem:
        raise ProjectError(f"media '{item.name or item.id}' has an invalid path {item.path!r} in the project "
                           f"({problem}); media must be inside the project's media folder")
    folder = media_dir(project_path)
    path = folder.joinpath(*PurePosixPath(item.path).parts)
    if os.path.islink(path) or (len(PurePosixPath(item.path).parts) > 1 and os.path.lexists(path)):
        try:
            inside = path.resolve().is_relative_to(folder.resolve())
        except (OSError, RuntimeError):  # a link loop
            inside = False
        if not inside:
            raise ProjectError(f"media '{item.name or item.id}' ({item.path!r}) is a link to a file outside the "
                               f"project's media folder, which is not allowed; replace it with a copy of the file")
    return path


def missing_media(project: Project, project_path: str | os.PathLike) -> list[MediaItem]:
    """Media whose files are gone, so the UI can mark them offline instead of failing later."""
    return [m for m in project.media.values() if not media_path(project_path, m).is_file()]


def _data_dir() -> Path:
    """The app's data folder; METACANVAS_DATA_DIR overrides it (the test suite, portable installs)."""
    env = os.environ.get("METACANVAS_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def untitled_project_path(project: Project, root: str | os.PathLike | None = None) -> Path:
    """Where an untitled project lives until its first "Save As" (so imports have a media folder).
    `save_project(project, new_path, media_from=this)` then copies the media over."""
    base = Path(root) if root else _data_dir() / "untitled"
    return base / project.id / f"Untitled{PROJECT_SUFFIX}"


# ------------------------------------------------------------------------------------ media


def _unique_name(folder: Path, stem: str, suffix: str) -> str:
    stem = re.sub(r"[^\w\-]+", "_", stem)[:40].strip("_") or "media"
    while True:
        name = f"{stem}-{new_id()[:8]}{suffix}"
        if not (folder / name).exists():
            return name


def import_media(project: Project, project_path: str | os.PathLike, source: str | os.PathLike,
                 limits=None) -> dict:
    """Check `source` (MediaError if it is not usable), copy it into the media folder and return
    the `add_media` change (not applied: push it on the undo stack or `project.apply` it)."""
    from .probe import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, check_complete, check_image_complete, image_size,
                        media_kind)

    source = Path(source)
    kind = media_kind(source)
    if kind == "image":
        w, h = image_size(source, limits)
        check_image_complete(source, limits)  # a truncated still is refused here, not at every later look
        frames, fps, audio = 1, 0.0, False
    else:
        info = check_complete(source, limits)  # a clip cut short is refused here, not found out at every export
        w, h, frames, fps, audio = info.width, info.height, info.frames, info.fps, info.has_audio
    # Keep the user's extension when it matches the content, so other tools open the copy too.
    suffix = source.suffix.lower()
    if suffix not in (IMAGE_EXTENSIONS if kind == "image" else VIDEO_EXTENSIONS):
        suffix = ".png" if kind == "image" else ".mp4"
    folder = media_dir(project_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        name = _unique_name(folder, _text(source.stem), suffix)
        atomic.copy_file_atomic(source, folder / name, overwrite=False)
    except OSError as e:
        raise MediaError(f"Could not copy '{source.name}' into the project folder: {describe_os_error(e)}. "
                         f"Nothing was added.") from None
    return project.add_media_change(name, kind, w, h, frames, fps, audio, name=_text(source.name))


def _text(name: str) -> str:
    """A file name as text a project can hold: a name whose bytes are not UTF-8 (a Latin-1 camera's 'caf\xe9')
    comes through the OS as lone surrogates, which made every later save and autosave of the project fail."""
    return os.fsencode(name).decode("utf-8", "replace")


def write_result(project_path: str | os.PathLike, frames, fps: float = 24.0, plan=None,
                 count: int | None = None, info: dict | None = None) -> dict:
    """Write a generated result (uint8 [H, W, 3] image or [F, H, W, 3] clip) and its plan as NEW files in
    the media folder; never overwrites anything. Runs off the GUI thread. Returns what `result_change`
    needs: {"name", "kind", "width", "height", "frames", "fps", "plan"} (plan: file name or None).
    Videos are H.264 MP4 (even size, see export.export_video); images PNG. `plan`: anything with
    `.save(path)` (app.core.plan.Plan), kept beside the result so the studio can show it again. With `count`,
    `frames` is an iterator of that many clip frames, encoded as they come (a video edit given back at its
    footage's size: a long HD clip is never all in memory). `info`: the recipe a still's PNG carries
    (generation_info), as the CLI's do."""
    import numpy as np

    from .export import export_image, export_video

    arr = None if count is not None else np.asarray(frames)
    folder = media_dir(project_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MediaError(f"Could not create the media folder '{folder}': {describe_os_error(e)}.") from None
    if arr is None:
        name = _unique_name(folder, "result", ".mp4")
        w, h = export_video(frames, folder / name, fps, total=count)
        written = {"name": name, "kind": "video", "width": w, "height": h, "frames": int(count), "fps": float(fps)}
    elif arr.ndim == 3 or (arr.ndim == 4 and arr.shape[0] == 1):
        image = arr if arr.ndim == 3 else arr[0]
        name = _unique_name(folder, "result", ".png")
        if info is not None:
            from .generation_info import write_png

            write_png(image, folder / name, info, overwrite=False)
        else:
            export_image(image, folder / name, "png")
        written = {"name": name, "kind": "image", "width": int(image.shape[1]), "height": int(image.shape[0]),
                   "frames": 1, "fps": 0.0}
    elif arr.ndim == 4:
        name = _unique_name(folder, "result", ".mp4")
        w, h = export_video(list(arr), folder / name, fps)
        written = {"name": name, "kind": "video", "width": w, "height": h, "frames": len(arr), "fps": float(fps)}
    else:
        raise ValueError("frames must be [H, W, 3] or [F, H, W, 3]")
    written["plan"] = None
    if plan is not None and hasattr(plan, "save"):
        written["plan"] = name.rsplit(".", 1)[0] + ".plan.safetensors"
        tmp = atomic.temp_path_for(folder / written["plan"])
        try:  # all or nothing, as every file here: a full disk leaves no half plan under the version's name
            plan.save(tmp)
            atomic.commit_temp(tmp, folder / written["plan"], overwrite=False)
        except Exception:  # safetensors says a failed write in its own error type, not OSError
            atomic.remove_quietly(tmp)
            written["plan"] = None  # the result matters more than its plan picture
    return written


def copy_imported(from_project: str | os.PathLike, to_project: str | os.PathLike, change: dict) -> dict:
    """An imported file `import_media` copied into one project's media folder, copied into another's (the project
    was saved under a new name while the import ran): returns the `add_media` change naming the new copy. Off the
    GUI thread; the first folder keeps its copy."""
    source, folder = media_dir(from_project), media_dir(to_project)
    name = str(change["item"]["path"])
    stem, dot, suffix = name.rpartition(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        new = name if not (folder / name).exists() else _unique_name(folder, stem or name, dot + suffix if dot else "")
        atomic.copy_file_atomic(source / name, folder / new)  # all or nothing, never over a file
    except OSError as e:
        raise MediaError(f"Could not copy '{change['item'].get('name') or name}' into the media folder '{folder}': "
                         f"{describe_os_error(e)}.") from None
    return {**change, "item": {**change["item"], "path": new}}


def copy_result(from_project: str | os.PathLike, to_project: str | os.PathLike, written: dict) -> dict:
    """A result `write_result` wrote into one project's media folder, copied into another's (the project was
    saved under a new name while it was written): its file and plan under names new there. Runs off the GUI
    thread; returns `written` with the new names. The first folder keeps its copy: it may be a saved project."""
    source, folder = media_dir(from_project), media_dir(to_project)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        out = dict(written)
        name = str(written["name"])
        while True:  # a name free there for the result and for its plan beside it (as write_result names them)
            out["name"] = _unique_name(folder, "result", "." + name.rsplit(".", 1)[-1])
            plan = out["name"].rsplit(".", 1)[0] + ".plan.safetensors" if written.get("plan") else None
            if plan is None or not (folder / plan).exists():
                break
        atomic.copy_file_atomic(source / name, folder / out["name"])  # all or nothing, never over a file
    except OSError as e:
        raise MediaError(f"Could not copy the result into the media folder '{folder}': {describe_os_error(e)}.") \
            from None
    if plan is not None:
        try:
            atomic.copy_file_atomic(source / written["plan"], folder / plan)
            out["plan"] = plan
        except OSError:
            out["plan"] = None  # as write_result: the result matters more than its plan (its version shows none)
    return out


def result_change(project: Project, written: dict, clip_id: str | None, request: dict | None = None,
                  instruction: str = "") -> tuple[dict, str]:
    """The change that adds a written result to `project` (not applied) and the clip it lands in:
    a new active version of `clip_id` when the clip still exists and is of the result's kind;
    otherwise (no clip, it was deleted, or an image became a video) a new clip on the track of its
    kind, with the request on its first version. Called on the GUI thread with the live project, so
    version indices are current even when several results land one after another."""
    kind = written["kind"]
    clip = None
    if clip_id is not None:
        try:
            clip = project.clip(clip_id)
        except ProjectError:
            clip = None
    if clip is not None and project.media_item(clip.media_id).kind == kind:
        change = project.add_result_change(clip.id, written["name"], kind, written["width"], written["height"],
                                           written["frames"], written["fps"], request=request,
                                           plan=written.get("plan"), name=written["name"])
        return change, clip.id
    # A new clip is named by what made it (the file name stays unique on disk).
    media = project.add_media_change(written["name"], kind, written["width"], written["height"], written["frames"],
                                     written["fps"], name=instruction.strip()[:48] or written["name"])
    project.apply(media)  # the clip builder needs the item; undone below, the batch applies both as one step
    try:
        clip_change = project.add_clip_change(media["item"]["id"])
    finally:
        project.apply(invert(media))
    first = clip_change["clip"]["versions"][0]
    first["request"] = dict(request or {})
    first["plan"] = written.get("plan")
    clip_change["clip"]["instruction"] = instruction
    return {"kind": "batch", "label": "generated clip", "changes": [media, clip_change]}, clip_change["clip"]["id"]


EDITED_VERSION = "edited_version"  # a video edit's request: the id of the clip's version it edited


def edit_source(clip, version):
    """The version of `clip` a video edit `version` was made from (its frames play on past the edit's end),
    or None when `version` is no video edit. A request saved before edits recorded it (no `edited_version`)
    is taken as made from the original; an edited version since deleted leaves None (the edit then holds
    its last frame)."""
    if version.request.get("task") != "video_edit" or version.media_id == clip.media_id:
        return None
    wanted = version.request.get(EDITED_VERSION)
    if wanted is None:
        return clip.versions[0]
    return next((v for v in clip.versions if v.id == wanted and v is not version), None)


def edit_chain(clip, version) -> list:
    """`version`, the version it edited, the one that one edited, ...: what plays past each edit's end.
    Ends at the first version that is no video edit (each visited once: a cycle cannot loop)."""
    chain = [version]
    while (source := edit_source(clip, chain[-1])) is not None and all(source is not v for v in chain):
        chain.append(source)
    return chain


def chain_spans(project: Project, clip, version) -> list[tuple[MediaItem, float]]:
    """(media item, seconds of it the clip can show from its start) along edit_chain(clip, version): the
    original from the clip's in point, a generated version from its own start (what version_frame reads)."""
    spans = []
    for shown in edit_chain(clip, version):
        item = project.media_item(shown.media_id)
        if item.kind != "video" or item.fps <= 0:
            spans.append((item, float("inf")))  # a still shows for as long as asked
            continue
        first = int(clip.in_point * item.fps + 1e-6) if shown.media_id == clip.media_id else 0
        spans.append((item, max(0, item.frames - first) / item.fps))
    return spans


def clip_audio(project: Project, project_path: str | os.PathLike, clip_id: str) -> tuple[Path, float] | None:
    """The sound an export of the clip's active version carries: (source file, start seconds) of the clip's
    original media, from its in point, for the original and for video edits made (edit by edit) from it,
    which keep its timing and frame rate; None for other versions (a new clip made from words over it, an
    edit of one) or a source without sound."""
    clip = project.clip(clip_id)
    source = project.media_item(clip.media_id)
    if source.kind != "video" or not source.has_audio:
        return None
    if edit_chain(clip, clip.active)[-1].media_id != clip.media_id:
        return None
    return media_path(project_path, source), float(clip.in_point)


def version_frame(project: Project, clip, version, seconds: float) -> tuple[MediaItem, int]:
    """The media item and frame a video clip shows `seconds` after its start with `version`: the original
    from the clip's in point, a generated version from its own start. A video edit was made from the first
    frames of the version it edited (at that version's timing), so past its end the clip goes on as that
    version plays (edit_source; the original from the clip's in point); any other version holds its last
    frame."""
    for shown in edit_chain(clip, version):
        item = project.media_item(shown.media_id)
        offset = clip.in_point if shown.media_id == clip.media_id else 0.0
        index = int((offset + seconds) * item.fps + 1e-6)
        if index < item.frames or item.kind != "video" or edit_source(clip, shown) is None:
            break
    return item, int(min(item.frames - 1, max(0, index)))


def store_result(project: Project, project_path: str | os.PathLike, clip_id: str | None, frames, fps: float = 24.0,
                 request: dict | None = None, plan=None) -> dict:
    """`write_result` then `result_change`, in one call (for scripts; the studio splits them across threads)."""
    written = write_result(project_path, frames, fps, plan)
    return result_change(project, written, clip_id, request, (request or {}).get("instruction", ""))[0]


# ------------------------------------------------------------------------------------ save / open


def _document(project: Project, fmt: str = FORMAT, project_dict: dict | None = None, **extra) -> bytes:
    doc = {"format": fmt, "schema": SCHEMA_VERSION, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           **extra, "project": project.to_dict() if project_dict is None else project_dict}
    try:
        # Compact, because json's fast C encoder is only used without `indent` (3-5x faster saves). A recovery copy
        # names the project's path, which may hold bytes that are not UTF-8 (a Latin-1 folder, read by Python as
        # lone surrogates): written as \u escapes, read back as the same path, where UTF-8 refused it and the
        # project's autosaves all failed.
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=fmt == RECOVERY_FORMAT,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise ProjectError(f"the project holds a value that cannot be saved ({e})") from None


def save_project(project: Project, path: str | os.PathLike, media_from: str | os.PathLike | None = None,
                 keep_backup: bool = True, overwrite: bool = True,
                 undo_files: tuple[list[dict], list[str]] = ((), ())) -> Path:
    """Write `project` to `path` atomically (see the module docstring).

    media_from: the project's previous path when saving under a new name ("Save As", or the first
    save of an untitled project): referenced media are copied to the new media folder first, so the
    new document never points at files that are not there.
    undo_files: media item dicts and plan file names that the studio's undo stack can bring back (an import undone
    before a Save As and redone after it): copied with the project's own, so that file is there when it comes back.
    keep_backup: keep the previous save as PROJECT.mcproj.bak.
    overwrite: replace an existing file at `path` (Save; Save As once the user confirmed "Replace?").
    With False an existing file is refused and left untouched (atomic.py's overwrite rule).

    The project is checked first (project_schema.check_project_dict: a file we write is a file we can open).
    Stale temporary files of killed saves/imports beside the project and in its media folder are
    removed (atomic.clean_stale_temps_in). Any failure raises ProjectError saying why ("the disk is
    full", "permission denied", ...) and that the previous save is unchanged.
    """
    path = Path(path)
    if path.suffix != PROJECT_SUFFIX:
        path = path.with_name(path.name + PROJECT_SUFFIX)
    # Before touching the disk: a value that cannot be saved (or opened again) changes nothing.
    d = project.to_dict()
    try:
        project_schema.check_project_dict(d)
    except ProjectError as e:
        raise ProjectError(f"Could not save '{path.name}': the project holds a value that cannot be saved "
                           f"({e}). The previous save is unchanged.") from None
    data = _document(project, project_dict=d)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ProjectError(f"Could not save: {files.not_regular_message(path, st.st_mode)}")
    if st is not None and not overwrite:
        raise ProjectError(f"'{path.name}' already exists. Choose another name or allow replacing it.")
    media = media_dir(path)
    if os.path.lexists(media) and not media.is_dir():  # said as itself, not as the project appearing meanwhile
        raise ProjectError(f"Could not save '{path.name}': its media folder's name, '{media.name}', is taken by a "
                           f"file there; choose another name for the project. The previous save is unchanged.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_project_temps(path)
        if media_from is not None and Path(media_from).resolve() != path.resolve():
            _copy_media(project, Path(media_from), path, undo_files)
        if keep_backup and path.exists():
            _backup(path)
        atomic.write_bytes_atomic(path, data, overwrite=overwrite)
    except FileExistsError:
        raise ProjectError(f"'{path.name}' appeared while saving; it was left untouched. Save again to replace it.") from None
    except OSError as e:
        raise ProjectError(f"Could not save '{path.name}': {describe_os_error(e)}. "
                           f"The previous save is unchanged.") from None
    return path


def clean_project_temps(project_path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed saves, imports and exports left beside the project and
    in its media folder (only ours, only stale ones: see atomic.clean_stale_temps_in). Called on
    open and save; never raises."""
    path = Path(project_path)
    removed = atomic.clean_stale_temps_in(
        path.parent, legacy=lambda name: name.endswith((PROJECT_SUFFIX, PROJECT_SUFFIX + ".bak")))
    removed += atomic.clean_stale_temps_in(media_dir(path), legacy=True)  # that whole folder is ours
    return removed


def _backup(path: Path) -> None:
    """PROJECT.mcproj.bak := the current save, via a hard link made beside it and renamed over the
    old backup, so the backup too is always whole. Where hard links are not possible, a copy."""
    bak = path.with_name(path.name + ".bak")
    tmp = atomic.temp_path_for(bak)
    try:
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, bak)
    except OSError:
        pass  # a failed backup must not stop the save itself
    # After a save that failed, the backup and the project are one file (two links): a rename between two links
    # of one file does nothing and says it succeeded, leaving the temporary link behind.
    atomic.remove_quietly(tmp)


def _copy_media(project: Project, old_project: Path, new_project: Path,
                undo_files: tuple[list[dict], list[str]] = ((), ())) -> None:
    new_dir = media_dir(new_project)
    new_dir.mkdir(parents=True, exist_ok=True)
    items = list(project.media.values())
    for d in undo_files[0]:
        try:
            items.append(MediaItem(**d))
        except TypeError:
            continue  # not an item this version reads: nothing to copy for it
    for item in items:
        try:
            src, dst = media_path(old_project, item), media_path(new_project, item)
        except ProjectError:
            if item.id in project.media:
                raise
            continue  # an undo step's item with a path outside the media folder: never read or written
        if dst.exists() or not src.exists():
            continue  # missing sources stay "offline" media, as they were
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            atomic.copy_file_atomic(src, dst, overwrite=False)
        except files.NotRegularFile:
            continue  # not a file we could have imported: it stays "offline", as missing media do
    # Plan files and other side files of versions live in the media folder too.
    plans = [v.plan for clips in project.tracks.values() for clip in clips for v in clip.versions if v.plan]
    for plan in plans + [p for p in undo_files[1] if isinstance(p, str)]:
        src, dst = media_dir(old_project) / plan, new_dir / plan
        if src.is_file() and not dst.exists() and ".." not in PurePosixPath(plan).parts \
                and not PurePosixPath(plan).is_absolute():
            atomic.copy_file_atomic(src, dst, overwrite=False)


def _parse_document(path: Path, data: bytes, fmt: str) -> dict:
    bak_hint = ""
    bak = path.with_name(path.name + ".bak")
    if fmt == FORMAT and bak.is_file():
        bak_hint = f" A backup of the previous save exists: '{bak.name}'."
    if not data.strip():
        raise ProjectError(f"'{path.name}' is empty (0 bytes) and cannot be opened.{bak_hint}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProjectError(f"'{path.name}' is not a MetaCanvas project (it is not a text file).") from None
    except json.JSONDecodeError as e:
        raise ProjectError(f"'{path.name}' is damaged (invalid JSON at line {e.lineno}, column {e.colno}).{bak_hint}") from None
    except RecursionError:  # json raises it for [[[[... thousands deep; no project nests like that
        raise ProjectError(f"'{path.name}' is damaged: its data is nested thousands of levels deep, "
                           f"which no project is.{bak_hint}") from None
    except (ValueError, MemoryError) as e:  # e.g. an integer of more than 4300 digits
        raise ProjectError(f"'{path.name}' is damaged: it holds a value that cannot be read ({_short(e)}).{bak_hint}") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise ProjectError(f"'{path.name}' is not a MetaCanvas project file.")
    schema = doc.get("schema")
    if not isinstance(schema, int) or schema < 1:
        raise ProjectError(f"'{path.name}' has no valid schema version.{bak_hint}")
    if schema > SCHEMA_VERSION:
        raise ProjectError(f"'{path.name}' was saved by a newer version of {APP_NAME} (project format {schema}; "
                           f"this version reads up to {SCHEMA_VERSION}). Update the application to open it.")
    if not isinstance(doc.get("project"), dict):
        raise ProjectError(f"'{path.name}' is damaged: it holds no project.{bak_hint}")
    try:
        project_schema.check_project_dict(doc["project"])
    except ProjectError as e:
        raise ProjectError(f"'{path.name}' is damaged: {e}.{bak_hint}") from None
    return doc


def _short(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 120 else text[:117] + "..."


def _read_document(path: Path, what: str) -> bytes:
    """The bytes of a project or recovery file: a regular file (never a pipe or device, which would
    hang or never end), at most MAX_PROJECT_BYTES; ProjectError otherwise."""
    try:
        return files.read_regular(path, max_bytes=MAX_PROJECT_BYTES)
    except FileNotFoundError:
        raise ProjectError(f"'{path}' was not found. It may have been moved, renamed or deleted.") from None
    except files.NotRegularFile as e:
        raise ProjectError(f"{e} It cannot be opened as {what}.") from None
    except files.FileTooLarge as e:
        raise ProjectError(f"{e} No {what} is that big; it cannot be opened.") from None
    except OSError as e:
        raise ProjectError(f"'{path}' cannot be read: {describe_os_error(e)}.") from None
    except ValueError as e:  # a NUL byte in the name
        raise ProjectError(f"{str(path)!r} is not a usable file name ({e}).") from None


def project_file(path: str | os.PathLike) -> Path:
    """The project file `path` names: itself, or the one .mcproj inside a folder given instead. Every caller that
    keeps the path (its media folder is found beside it, saves go to it) keeps this one: a folder's own path put
    its media folder beside the folder, every clip offline, and a save wrote a second, empty project there."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob(f"*{PROJECT_SUFFIX}"))
        if len(found) != 1:
            raise ProjectError(f"'{path}' is a folder; choose the {PROJECT_SUFFIX} file inside it.")
        path = found[0]
    return path


def open_project(path: str | os.PathLike) -> Project:
    """Open a .mcproj file (or the one in a folder: `project_file`; callers keep that path). Everything in it is
    checked first (project_schema.check_project_dict); any problem is a ProjectError naming the field and the
    clip or media item. Also removes stale temporary files that killed saves left beside it
    (clean_project_temps)."""
    path = project_file(path)
    data = _read_document(path, "a project")
    doc = _parse_document(path, data, FORMAT)
    try:
        project = Project.from_dict(doc["project"])
    except ProjectError as e:
        raise ProjectError(f"'{path.name}' is damaged: {e}") from None
    for item in project.media.values():
        try:
            media_path(path, item)
        except ProjectError as e:
            raise ProjectError(f"'{path.name}' cannot be opened: {e}.") from None
    clean_project_temps(path)
    return project


# ------------------------------------------------------------------------------------ autosave / recovery


def recovery_dir(root: str | os.PathLike | None = None) -> Path:
    if root:
        return Path(root)
    env = os.environ.get("METACANVAS_RECOVERY_DIR")
    return Path(env) if env else _data_dir() / "recovery"


def autosave_path(project_path: str | os.PathLike | None = None, project: Project | None = None,
                  root: str | os.PathLike | None = None, writer: int | None = None) -> Path:
    """The recovery file for a saved project (named after it, plus a hash of its full path so two
    projects with one name do not collide) or for an untitled one (named after `project.id`), and after the
    process that writes it (`writer`, this one by default): two studios open on one project each keep their own,
    and one closing cleanly no longer removes the other's (a crash of the other then lost its work)."""
    folder = recovery_dir(root)
    tag = f".w{os.getpid() if writer is None else int(writer)}"
    if project_path is not None:
        p = Path(project_path).resolve()
        # fsencode: the same bytes as UTF-8 for any name that is text, and a name that is not (a Latin-1 folder)
        # hashed as its bytes rather than raising after the project was saved.
        digest = hashlib.sha1(os.fsencode(str(p))).hexdigest()[:10]
        stem = re.sub(r"[^\w\-]+", "_", p.stem)[:40] or "project"
        return folder / f"{stem}-{digest}{tag}.autosave.json"
    if project is None:
        raise ValueError("an untitled project's autosave path needs the project")
    return folder / f"untitled-{project.id}{tag}.autosave.json"


_WRITER = re.compile(r"\.w(\d{1,10})\.autosave\.json$")  # autosave_path's writer tag (not on a copy set aside)


@dataclass
class Recovery:
    path: Path  # the recovery file
    project_path: Path | None  # where the project was saved, None if it never was
    media_dir: Path | None  # where its media are
    saved_at: float  # time.time() of the autosave
    name: str  # the project's name


def write_recovery(project: Project, project_path: str | os.PathLike | None = None,
                   root: str | os.PathLike | None = None, media_path_of: str | os.PathLike | None = None) -> Path:
    """Autosave: write the project to its recovery file, atomically. `media_path_of` is the path
    whose media folder holds its media (defaults to `project_path`; for an untitled project pass
    `untitled_project_path(project)`)."""
    target = autosave_path(project_path, project, root)
    media_owner = media_path_of if media_path_of is not None else project_path
    data = _document(project, RECOVERY_FORMAT,
                     project_path=str(Path(project_path).resolve()) if project_path else None,
                     media_dir=str(media_dir(media_owner).resolve()) if media_owner else None,
                     saved_ts=time.time())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes_atomic(target, data, overwrite=True)
    except OSError as e:
        raise ProjectError(f"Could not write the autosave: {describe_os_error(e)}.") from None
    return target


def find_recoveries(root: str | os.PathLike | None = None) -> list[Recovery]:
    """Recovery files worth offering, newest first: those a studio left behind (a studio removes its own at a save or
    a clean close, and removes one it recovered), not another running studio's; a file named as before writer tags
    only when newer than the saved project it belongs to. Unreadable recovery files are skipped, never fatal."""
    folder = recovery_dir(root)
    found = []
    try:
        found_files = list(folder.glob("*.autosave.json"))
    except OSError:
        return []
    atomic.clean_stale_temps_in(folder)
    for f in found_files:
        try:
            doc = _parse_document(f, _read_document(f, "a recovery file"), RECOVERY_FORMAT)
            saved = float(doc.get("saved_ts", f.stat().st_mtime))
            project_path = Path(doc["project_path"]) if doc.get("project_path") else None
            writer = _WRITER.search(f.name)
            # Another studio's, still running: its own autosave, not a crash's. A process that took the crashed
            # studio's pid after its last write is not its writer: the copy is offered.
            if writer is not None and int(writer.group(1)) != os.getpid() \
                    and atomic.pid_alive(int(writer.group(1)), started_by=saved):
                continue
            # The project was saved after this autosave: nothing to recover. Only for a file of the versions before
            # writer tags: a writer's own save or clean close removes its file, so one left behind is a crash's
            # even where the project was saved since (by another studio), as is a copy set aside.
            if project_path is not None and project_path.exists() and project_path.stat().st_mtime >= saved \
                    and CRASHED not in f.name and writer is None:
                continue
            # A saved project is named as its file is (the project's own name stays "Untitled" unless renamed).
            name = project_path.name if project_path is not None else str(doc["project"].get("name", "Untitled"))
            found.append(Recovery(f, project_path, Path(doc["media_dir"]) if doc.get("media_dir") else None, saved,
                                  name))
        except (ProjectError, OSError, ValueError, TypeError, KeyError):
            continue
    return sorted(found, key=lambda r: r.saved_at, reverse=True)


CRASHED = "-crashed-"  # in the name of a recovery copy set aside: offered until it is recovered


def set_aside_recovery(recovery: Recovery) -> Path:
    """Move a crashed session's recovery file off its project's autosave path (to one named also by when it was
    saved), so this session's autosaves and clean close of the same project neither overwrite nor remove it; it is
    still found, and offered even once the project is saved again, until it is recovered. Returns the new path."""
    suffix = ".autosave.json"
    stem = recovery.path.name[:-len(suffix)] if recovery.path.name.endswith(suffix) else recovery.path.stem
    target = recovery.path.with_name(f"{stem}{CRASHED}{int(recovery.saved_at)}{suffix}")
    os.replace(recovery.path, target)
    return target


def load_recovery(recovery: Recovery | str | os.PathLike) -> Project:
    path = recovery.path if isinstance(recovery, Recovery) else Path(recovery)
    try:
        data = _read_document(path, "a recovery file")
    except ProjectError as e:
        raise ProjectError(f"The recovery file cannot be read: {e}") from None
    doc = _parse_document(path, data, RECOVERY_FORMAT)
    try:
        return Project.from_dict(doc["project"])
    except ProjectError as e:
        raise ProjectError(f"The recovery file '{path.name}' is damaged: {e}") from None


def clear_recovery(project_path: str | os.PathLike | None = None, project: Project | None = None,
                   root: str | os.PathLike | None = None) -> None:
    """Remove the project's recovery file (after a successful save, or a clean close)."""
    atomic.remove_quietly(autosave_path(project_path, project, root))
