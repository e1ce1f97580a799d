"""Bringing media into the studio: the Import dialog, drops, samples, and "add to timeline".

Each file is checked and copied into the project's media folder in the thread pool
(project_file.import_media); only then does it become one undo step (media item + clip). A generated
PNG's recipe (app.media.generation_info) comes with it, so its instruction and settings return when
its clip is selected.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QThreadPool
from PySide6.QtWidgets import QFileDialog

from app.media import project_file as pf
from app.media.errors import MediaError, ProjectError
from app.media.project import Project, invert
from app.ui.messages import ERROR, INFO, WARNING
from app.ui.workers import run_task

MEDIA_FILTER = ("Media (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff *.mp4 *.m4v *.mov *.mkv *.webm *.avi);;"
                "All files (*)")


class ImportActions(QObject):
    def __init__(self, window: Any, studio: Any, say: Callable[[str, str], None]) -> None:
        super().__init__(window)
        self.window = window
        self.studio = studio
        self.say = say
        self.pool = QThreadPool.globalInstance()

    @property
    def document(self) -> Any:
        return self.studio.document

    def import_dialog(self) -> None:
        dlg = QFileDialog(self.window, "Import media")
        dlg.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dlg.setNameFilter(MEDIA_FILTER)
        dlg.filesSelected.connect(self.import_files)
        dlg.open()  # non-blocking: no nested event loop

    def import_files(self, paths: list[str]) -> None:
        """Check, copy and add each file off the GUI thread; each becomes a media item and a clip."""
        work = self.window.work_path()
        project = self.document.project
        for path in paths:
            snapshot = Project.from_dict(project.to_dict())  # the worker must not read live state
            self.window.statusBar().showMessage(f"Importing {Path(path).name}…")
            run_task(self.pool, _import_with_recipe, snapshot, work, path,
                     on_done=lambda done, p=project, w=work: self._landed(p, w, *done),
                     on_error=lambda e, p=path: self._on_failed(p, e), owner=self)

    def _landed(self, project: Project, work: Path, change: dict, request: dict | None, frames: int = 1) -> None:
        """An import's copy is done; it becomes the project's if that project is still the one open, and in its
        folder: a project closed meanwhile (New, Open) does not get it, and one saved under a new name meanwhile
        (Save As) gets a copy in its new media folder first (the save copied only what the project held then)."""
        name = change["item"].get("name") or change["item"]["path"]
        if self.document.project is not project:
            self.say(f"The import of {name} finished after its project was closed; it is not added to this one "
                     f"(import it again here).", WARNING)
            return
        here = self.window.work_path()
        if pf.media_dir(here) == pf.media_dir(work):
            self._on_imported(change, request, frames)
            return
        run_task(self.pool, pf.copy_imported, work, here, change,
                 on_done=lambda moved, w=here: self._landed(project, w, moved, request, frames),
                 on_error=lambda e, p=str(name): self._on_failed(p, e), owner=self)

    def _on_imported(self, change: dict, request: dict | None, frames: int = 1) -> None:
        """`request`: the recipe a generated PNG carried, or None; the clip remembers it as its
        original's request and its instruction."""
        project = self.document.project
        # Build the clip with the project's own builder, then undo the trial apply: the push applies
        # both as one undo step ("Import" = media + clip).
        project.apply(change)
        try:
            clip_change = project.add_clip_change(change["item"]["id"])
        finally:
            project.apply(invert(change))
        if request:
            clip_change["clip"]["versions"][0]["request"] = dict(request)
            clip_change["clip"]["instruction"] = str(request.get("instruction", ""))
        self.document.push({"kind": "batch", "label": f"import {change['item']['name']}", "changes": [change, clip_change]})
        self.window.timeline.view.select([clip_change["clip"]["id"]])
        if frames > 1:  # said, not hidden: the studio reads animations (GIF, WebP) as stills
            self.say(f"Imported {change['item']['name']}: an animation of {frames} frames, imported as a still of "
                     f"its first frame (import it as an MP4 clip to keep it moving).", WARNING)
        else:
            self.say(f"Imported {change['item']['name']}.", INFO)

    def _on_failed(self, path: str, error: BaseException) -> None:
        name = Path(path).name
        if isinstance(error, (MediaError, ProjectError)):
            text = str(error)
        elif isinstance(error, FileNotFoundError):
            text = f"'{name}' was not found."
        elif isinstance(error, MemoryError):
            text = f"'{name}' is too large to open."
        else:
            text = f"Could not import '{name}': {error}"
        self.say(f"Import failed: {text}", ERROR)

    def add_media_to_timeline(self, media_ids: list[str]) -> None:
        project = self.document.project
        applied: list[dict] = []
        try:
            for mid in media_ids:
                if mid is None:
                    continue
                ch = project.add_clip_change(mid)
                project.apply(ch)  # so the next clip appends after this one
                applied.append(ch)
        finally:
            for ch in reversed(applied):
                project.apply(invert(ch))
        if applied:
            self.document.push({"kind": "batch", "label": "add to timeline", "changes": applied})


def _import_with_recipe(project: Project, work: Path, path: str) -> tuple[dict, dict | None, int]:
    """Import `path` (project_file.import_media) and read the recipe a generated PNG carries in its
    text chunks, from the copy now in the media folder: (add_media change, request dict or None, the frames
    of an animated still)."""
    from app.media.generation_info import read_generation_info
    from app.media.project import MediaItem

    change = pf.import_media(project, work, path)
    info, frames = None, 1
    if change["item"]["kind"] == "image":
        copy = pf.media_path(work, MediaItem(**change["item"]))
        info, frames = read_generation_info(copy), _animation_frames(str(copy))
    return change, (info or {}).get("request"), frames


def _animation_frames(path: str) -> int:
    """How many frames an imported still holds (an animated GIF or WebP: more than 1); 1 when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1) or 1)
    except Exception:  # noqa: BLE001 - only for a note; the import itself has read the file
        return 1
