"""The studio's main window: it wires the widgets to the project document and to the engine.

Why over 600 lines: it still holds the studio's state as well as its wiring. The planned split moves that state into an
observable studio model plus action modules for project files and exports; until then it stays one file.

Rules this file keeps:
* Nothing slow runs on the GUI thread: decoding (thumbnails, frames, inputs), importing (probe + copy),
  writing results, exporting and autosaving go to thread pools; the model lives in the engine thread.
* Every project change is a `ProjectDocument.push` of an app.media change record (one undo step).
* Every message to the user goes through `self.messages.post` (status bar + non-modal banner).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QThreadPool, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QProgressBar, QProgressDialog,
                               QSplitter, QVBoxLayout, QWidget)

from app.core.request import GenerationRequest, Task
from app.media import project_file as pf
from app.media.errors import ExportCancelled, ExportError, MediaError, ProjectError
from app.media.project import Project, invert
from app.settings import REPO_ROOT, Settings
from app.ui.document import ProjectDocument
from app.ui.generation_panel import GenerationPanel
from app.ui.images import rgb_to_qimage
from app.ui.instruction import Debouncer, InstructionBox, choose_task
from app.ui.media_bin import MediaBin, sample_files
from app.ui.messages import ERROR, INFO, WARNING, MessageBanner, MessageCenter, connect_status_bar
from app.ui.settings_dialog import SettingsDialog
from app.ui.timeline import IMAGE_TRACK, VIDEO_TRACK, Timeline, TimelineClip
from app.ui.versions_panel import VersionsPanel
from app.ui.viewer import Viewer
from app.ui.workers import LatestOnly, run_task

log = logging.getLogger(__name__)

SAMPLES_DIR = REPO_ROOT / "resources" / "samples"
THEME_FILE = REPO_ROOT / "resources" / "theme.qss"
PLAN_DEBOUNCE_MS = 40  # short: the live-plan goal is <= 100 ms from the last keystroke to the heatmap
TIMELINE_THUMBS = 6
INPUT_MAX_SIDE = 512  # inputs are decoded at most this big; the model resizes to the request size anyway


@dataclass
class JobInfo:
    job_id: int
    request: GenerationRequest
    clip_id: str | None  # the clip whose new version this becomes; None: a new clip
    description: str
    state: str = "queued"  # queued | running | done


class MainWindow(QMainWindow):
    """The studio. `engine_factory()` builds the engine after the window shows (tests pass their own)."""

    plan_shown = Signal(float)  # perf_counter() when a live plan reached the screen (benchmarks)
    result_stored = Signal(str)  # clip id that got a new version
    export_done = Signal(str)  # path written

    def __init__(self, settings: Settings | None = None, model_path: str | None = None,
                 data_root: str | Path | None = None, recovery_root: str | Path | None = None,
                 start_engine: bool = True, offer_recovery: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings.load()
        self.model_path = model_path
        self.data_root = Path(data_root) if data_root else None
        self.recovery_root = Path(recovery_root) if recovery_root else None
        self.engine: Any = None
        self.pool = QThreadPool.globalInstance()
        self.jobs: dict[int, JobInfo] = {}
        self.latest_plan_job: int | None = None
        self.plan_requested_at: float = 0.0
        self.current_plan: Any = None
        self.model_ready = False
        self._input_cache: dict[tuple, np.ndarray] = {}
        self._thumb_started: set[tuple] = set()
        self._export_cancel: threading.Event | None = None
        self._export_dialog: QProgressDialog | None = None
        self._exporting = False
        self._saving_autosave = False
        self.pending_recoveries: list[pf.Recovery] = []

        self.setWindowTitle("MetaCanvas Studio")
        self.resize(1280, 800)
        self.messages = MessageCenter(self)
        self.document = ProjectDocument(parent=self)
        self.document.changed.connect(self._on_project_changed)
        self.document.reset.connect(self._on_project_reset)
        self.document.path_changed.connect(lambda _: self._update_title())

        self._build_widgets()
        self._build_actions()
        connect_status_bar(self.messages, self.statusBar(), self.banner)
        self.frame_reader = LatestOnly(self)
        self.frame_reader.ready.connect(self._on_frame_ready)
        self.frame_reader.failed.connect(lambda key, e: self.show_message(str(e), WARNING))
        self.compare_reader = LatestOnly(self)
        self.compare_reader.ready.connect(lambda key, frame: self.viewer.set_compare(frame))
        self.plan_debounce = Debouncer(PLAN_DEBOUNCE_MS, self)
        self.plan_debounce.timeout.connect(self.request_live_plan)
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_tick)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self._apply_autosave_interval()
        if self.settings.warning:
            self.show_message(self.settings.warning, WARNING)
        self._on_project_reset()
        if start_engine:
            # The window shows first; the engine thread and the model load come one event-loop turn
            # later, so launch-to-window never waits for torch or the weights.
            QTimer.singleShot(0, self, self.start_engine)
        if offer_recovery:
            QTimer.singleShot(0, self, self.check_recoveries)
        # Import the decoding/encoding libraries once, early, in the pool: a first import inside an
        # export or a scrub holds the GIL long enough to freeze the GUI for ~100 ms.
        QTimer.singleShot(200, self, self._prewarm_codecs)  # the context object drops it if the window is gone

    def _prewarm_codecs(self) -> None:
        run_task(self.pool, _prewarm, on_error=lambda e: None, owner=self)

    # ================================================================ construction
    def _build_widgets(self) -> None:
        self.banner = MessageBanner(self)
        self.viewer = Viewer(self)
        self.viewer.play_toggled.connect(self.set_playing)
        self.viewer.canvas.plan_drawn.connect(self.plan_shown)
        self.instruction = InstructionBox(self)
        self.instruction.instruction_changed.connect(self._on_instruction_changed)
        self.instruction.word_clicked.connect(lambda i: self.viewer.show_word(None if i < 0 else i))
        self.instruction.make_video_changed.connect(lambda _: self._update_task())
        self.timeline = Timeline(self)
        self.timeline.view.selection_changed.connect(self._on_selection_changed)
        self.timeline.view.scrubbed.connect(self._on_scrub)
        center = QWidget(self)
        lay = QVBoxLayout(center)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.banner)
        split = QSplitter(Qt.Orientation.Vertical, center)
        top = QWidget(split)
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.viewer, 1)
        tl.addWidget(self.instruction)
        split.addWidget(top)
        split.addWidget(self.timeline)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        lay.addWidget(split, 1)
        self.setCentralWidget(center)

        self.media_bin = MediaBin(self)
        self.media_bin.import_clicked.connect(self.import_dialog)
        self.media_bin.files_dropped.connect(self.import_files)
        self.media_bin.add_to_timeline.connect(self.add_media_to_timeline)
        self.generation = GenerationPanel(self)
        # A model with layout codes or a layout drafter plans one scene per seed: the plan on screen follows the seed.
        self.generation.seed.valueChanged.connect(lambda _: self._request_plan_soon())
        self.generation.generate_clicked.connect(self.generate)
        self.generation.cancel_clicked.connect(self.cancel_running)
        self.generation.cancel_job.connect(self.cancel_job)
        self.versions = VersionsPanel(self)
        self.versions.activate.connect(self._on_version_clicked)
        self.versions.judge.connect(self._on_judge)
        for title, widget, area in (("Media", self.media_bin, Qt.DockWidgetArea.LeftDockWidgetArea),
                                    ("Generate", self.generation, Qt.DockWidgetArea.RightDockWidgetArea),
                                    ("Versions", self.versions, Qt.DockWidgetArea.RightDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock{title}")
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(area, dock)

        self.model_label = QLabel("Model: starting…", self)
        self.model_progress = QProgressBar(self)
        self.model_progress.setRange(0, 0)  # busy: a load reports no fraction
        self.model_progress.setFixedWidth(100)
        self.model_progress.setVisible(False)
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.model_progress)
        self.setAcceptDrops(True)

    def _build_actions(self) -> None:
        m = self.menuBar()
        file = m.addMenu("&File")
        self.act_new = file.addAction("New", self.new_project, QKeySequence.StandardKey.New)
        self.act_open = file.addAction("Open…", self.open_dialog, QKeySequence.StandardKey.Open)
        self.act_save = file.addAction("Save", self.save, QKeySequence.StandardKey.Save)
        self.act_save_as = file.addAction("Save As…", self.save_as_dialog, QKeySequence.StandardKey.SaveAs)
        file.addSeparator()
        file.addAction("Import media…", self.import_dialog, QKeySequence("Ctrl+I"))
        samples = file.addMenu("Import sample")
        for p in sample_files(SAMPLES_DIR):
            samples.addAction(p.name, lambda p=p: self.import_files([str(p)]))
        file.addSeparator()
        file.addAction("Export still (PNG/JPEG)…", self.export_still_dialog)
        file.addAction("Export clip (MP4)…", self.export_clip_dialog)
        file.addAction("Export video track (MP4)…", self.export_track_dialog)
        file.addSeparator()
        file.addAction("Settings…", self.settings_dialog)
        file.addAction("Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = m.addMenu("&Edit")
        self.act_undo = self.document.undo_stack.createUndoAction(self, "Undo")
        self.act_undo.setShortcuts([QKeySequence("Ctrl+Z")])
        self.act_redo = self.document.undo_stack.createRedoAction(self, "Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit.addAction(self.act_undo)
        edit.addAction(self.act_redo)
        edit.addSeparator()
        edit.addAction("Remove selected clip", self.remove_selected_clip, QKeySequence.StandardKey.Delete)
        gen = m.addMenu("&Generate")
        self.act_generate = gen.addAction("Generate", self.generate)
        self.act_generate.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.act_cancel = gen.addAction("Cancel running job", self.cancel_running, QKeySequence("Esc"))
        # Space must not fire while typing an instruction: QPlainTextEdit claims plain keys through
        # ShortcutOverride, so this window-level shortcut only sees Space elsewhere.
        self.play_shortcut = QShortcut(QKeySequence("Space"), self, activated=self.toggle_play)

    # ================================================================ messages (the one path)
    def show_message(self, text: str, level: str = INFO) -> None:
        """Every user-facing message goes here: status bar, banner for warnings/errors, the log."""
        (log.warning if level != INFO else log.info)("%s", text)
        self.messages.post(text, level)

    # ================================================================ engine
    def start_engine(self) -> None:
        from app.engine.engine import Engine

        self.engine = Engine(previews=self.settings.preview, parent=self)
        e = self.engine
        e.model_loading.connect(self._on_model_loading)
        e.model_ready.connect(self._on_model_ready)
        e.model_failed.connect(self._on_model_failed)
        e.plan_ready.connect(self._on_plan_ready)
        e.progress.connect(self._on_progress)
        e.preview.connect(self._on_preview)
        e.finished.connect(self._on_finished)
        e.failed.connect(self._on_failed)
        e.cancelled.connect(self._on_cancelled)
        e.queue_changed.connect(self._on_queue_changed)
        self.load_model(self.model_path or self.settings.active_model)

    def load_model(self, path: str) -> None:
        if self.engine is None:
            return
        self.model_ready = False
        self.engine.load_model(path, self.settings.device, self.settings.precision)

    def _on_model_loading(self, text: str) -> None:
        self.model_label.setText(text)
        self.model_progress.setVisible(True)
        self.statusBar().showMessage(text)

    def _on_model_ready(self, name: str) -> None:
        self.model_ready = True
        self.model_label.setText(f"Model: {name}")
        self.model_progress.setVisible(False)
        self.show_message(f"Model {name} is ready.")
        defaults = self.engine.model_defaults if self.engine is not None else None
        if defaults is not None:
            self.generation.apply_model_defaults(defaults)
        if self.instruction.text():
            self.request_live_plan()

    def _on_model_failed(self, message: str) -> None:
        self.model_ready = False
        self.model_label.setText("Model: not loaded")
        self.model_progress.setVisible(False)
        hint = "" if "settings" in message.lower() else " Choose another model folder in File ▸ Settings."
        self.show_message(message + hint, ERROR)

    def shutdown(self) -> None:
        self.play_timer.stop()
        self.autosave_timer.stop()
        if self.engine is not None:
            self.engine.shutdown()
        self.frame_reader.wait(5000)
        self.compare_reader.wait(5000)
        self.pool.waitForDone(10000)

    def closeEvent(self, e: Any) -> None:  # noqa: N802
        if self._export_cancel is not None:
            self._export_cancel.set()
        self.shutdown()
        try:
            pf.clear_recovery(self.document.path, self.document.project, self.recovery_root) if not self.document.dirty else None
        except Exception:
            pass
        super().closeEvent(e)

    # ================================================================ project paths
    def work_path(self) -> Path:
        """Where the project's media folder is: its saved path, or a per-project untitled folder."""
        if self.document.path:
            return Path(self.document.path)
        root = self.data_root / "untitled" if self.data_root else None
        return pf.untitled_project_path(self.document.project, root)

    def media_file(self, media_id: str) -> Path:
        return pf.media_path(self.work_path(), self.document.project.media_item(media_id))

    def _update_title(self) -> None:
        name = Path(self.document.path).name if self.document.path else "Untitled"
        self.setWindowTitle(f"{'*' if self.document.dirty else ''}{name} — MetaCanvas Studio")

    # ================================================================ import
    def import_dialog(self) -> None:
        dlg = QFileDialog(self, "Import media")
        dlg.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dlg.setNameFilter("Media (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff *.mp4 *.m4v *.mov *.mkv *.webm *.avi);;All files (*)")
        dlg.filesSelected.connect(self.import_files)
        dlg.open()  # non-blocking: no nested event loop

    def import_files(self, paths: list[str], add_clip: bool = True) -> None:
        """Check, copy and add each file off the GUI thread; each becomes a media item and a clip."""
        work = self.work_path()
        for path in paths:
            snapshot = Project.from_dict(self.document.project.to_dict())  # the worker must not read live state
            self.statusBar().showMessage(f"Importing {Path(path).name}…")
            run_task(self.pool, _import_with_recipe, snapshot, work, path,
                     on_done=lambda done, add=add_clip: self._on_imported(done[0], add, done[1]),
                     on_error=lambda e, p=path: self._on_import_failed(p, e), owner=self)

    def _on_imported(self, change: dict, add_clip: bool, request: dict | None = None) -> None:
        """`request`: the recipe a generated PNG carried (app.media.generation_info), or None. The clip
        then remembers it as its original's request, and its instruction, seed, steps and guidance
        come back into the panels when the clip is selected."""
        project = self.document.project
        if not add_clip:
            self.document.push(change)
            return
        # Build the clip with the project's own builder, then undo the trial apply: the push applies
        # both as one undo step ("Import" = media + clip).
        project.apply(change)
        try:
            clip_change = project.add_clip_change(change["item"]["id"])
        finally:
            project.apply(invert(change))
        if request:
            clip_change["clip"]["versions"][0]["request"] = dict(request)
            clip_change["clip"]["instruction"] = request.get("instruction", "")
        self.document.push({"kind": "batch", "label": f"import {change['item']['name']}", "changes": [change, clip_change]})
        self.timeline.view.select([clip_change["clip"]["id"]])
        self.show_message(f"Imported {change['item']['name']}.")

    def _on_import_failed(self, path: str, error: BaseException) -> None:
        name = Path(path).name
        if isinstance(error, (MediaError, ProjectError)):
            text = str(error)
        elif isinstance(error, FileNotFoundError):
            text = f"'{name}' was not found."
        elif isinstance(error, MemoryError):
            text = f"'{name}' is too large to open."
        else:
            text = f"Could not import '{name}': {error}"
        self.show_message(f"Import failed: {text}", ERROR)

    def add_media_to_timeline(self, media_ids: list[str]) -> None:
        changes = []
        project = self.document.project
        applied = []
        try:
            for mid in media_ids:
                if mid is None:
                    continue
                ch = project.add_clip_change(mid)
                project.apply(ch)  # so the next clip appends after this one
                applied.append(ch)
                changes.append(ch)
        finally:
            for ch in reversed(applied):
                project.apply(invert(ch))
        if changes:
            self.document.push({"kind": "batch", "label": "add to timeline", "changes": changes})

    def dragEnterEvent(self, e: Any) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e: Any) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.import_files(paths)

    # ================================================================ project -> widgets
    def _on_project_reset(self) -> None:
        self._input_cache.clear()
        self.current_plan = None
        self.viewer.set_plan(None)
        self._refresh_all()
        self._update_title()

    def _on_project_changed(self, change: dict) -> None:
        self._refresh_all()
        self._update_title()

    def _refresh_all(self) -> None:
        project = self.document.project
        self.media_bin.set_items([(m.id, m.name, m.kind) for m in project.media.values()])
        for m in project.media.values():
            self._request_bin_icon(m.id)
        clips = []
        for track in (IMAGE_TRACK, VIDEO_TRACK):
            for c in project.tracks[track]:
                item = project.media_item(c.active.media_id)
                label = item.name + (f"  [v{c.active_version}]" if c.active_version else "")
                clips.append(TimelineClip(c.id, track, c.start, c.duration, label,
                                          frames=item.frames, fps=item.fps or project.settings.fps))
        self.timeline.view.set_clips(clips)
        for c in clips:
            self._request_clip_thumbnails(c.id)
        self._refresh_selection_views()

    def _request_bin_icon(self, media_id: str) -> None:
        key = ("bin", media_id)
        if key in self._thumb_started:
            return
        self._thumb_started.add(key)
        from app.media.probe import thumbnail
        run_task(self.pool, thumbnail, self.media_file(media_id), 96,
                 on_done=lambda arr, mid=media_id: self.media_bin.set_icon(mid, QIcon(QPixmap.fromImage(rgb_to_qimage(arr)))),
                 on_error=lambda e: None, owner=self)  # the bin keeps the name; import already reported errors

    def _request_clip_thumbnails(self, clip_id: str) -> None:
        project = self.document.project
        clip = project.clip(clip_id)
        item = project.media_item(clip.active.media_id)
        key = ("clip", clip_id, item.id)
        if key in self._thumb_started:
            return
        self._thumb_started.add(key)
        path = self.media_file(item.id)

        def decode() -> list[np.ndarray]:
            from app.media.probe import iter_video_frames, thumbnail
            if item.kind == "image":
                return [thumbnail(path, 64)]
            n = min(TIMELINE_THUMBS, item.frames)
            idx = sorted({int(i * (item.frames - 1) / max(n - 1, 1)) for i in range(n)})
            return list(iter_video_frames(path, idx, max_side=64))

        run_task(self.pool, decode,
                 on_done=lambda frames, cid=clip_id: self.timeline.view.set_thumbnails(cid, [rgb_to_qimage(f) for f in frames]),
                 on_error=lambda e: None, owner=self)

    # ================================================================ selection, scrubbing, playback
    def selected_clips(self) -> list[str]:
        return list(self.timeline.view.selected)

    def _on_selection_changed(self, ids: list[str]) -> None:
        self._refresh_selection_views()
        clip = self._primary_clip()
        if clip is not None:
            # Jump the playhead into the selected clip if it sits outside it.
            if not clip.start <= self.timeline.view.playhead < clip.end:
                self.timeline.view.set_playhead(clip.start)
            if clip.instruction and not self.instruction.text():
                self.instruction.set_text(clip.instruction)
            self._recall_settings(clip.versions[0].request if clip.versions else {})
        self._show_frame()
        self._request_plan_soon()

    def _recall_settings(self, request: dict) -> None:
        """Put the seed, steps and guidance that made a clip (a generated one, or an imported PNG that
        carried its recipe) back in the generation panel, so Generate can make it again or vary it."""
        g = self.generation
        for box, key, kind in ((g.seed, "seed", int), (g.steps, "steps", int), (g.guidance, "guidance", float)):
            value = request.get(key) if request else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and box.minimum() <= value <= box.maximum():
                box.setValue(kind(value))

    def _primary_clip(self) -> Any:
        ids = self.selected_clips()
        if not ids:
            return None
        try:
            return self.document.project.clip(ids[0])
        except ProjectError:
            return None

    def _refresh_selection_views(self) -> None:
        clip = self._primary_clip()
        if clip is None:
            self.versions.set_versions([], 0)
            self.viewer.set_video_mode(False)
            self.viewer.set_compare(None)
        else:
            self.versions.set_versions(clip.versions, clip.active_version)
            kind = self.document.project.media_item(clip.active.media_id).kind
            self.viewer.set_video_mode(kind == "video")
        self._update_task()

    def current_task(self) -> Task:
        kinds = [self.document.clip_kind(cid) for cid in self.selected_clips() if self._has_clip(cid)]
        return choose_task(kinds, self.instruction.make_video.isChecked())

    def _has_clip(self, clip_id: str) -> bool:
        try:
            self.document.project.clip(clip_id)
            return True
        except ProjectError:
            return False

    def _update_task(self) -> None:
        ids = [c for c in self.selected_clips() if self._has_clip(c)]
        task = self.current_task()
        if not ids:
            target = "new generation"
        elif len(ids) == 1:
            target = self.timeline.view.clip(ids[0]).name if self.timeline.view.clip(ids[0]) else ids[0]
        else:
            target = f"{len(ids)} reference images"
        self.instruction.set_task(task, target)
        self.generation.frames.setEnabled(task.makes_video)

    def _on_scrub(self, seconds: float) -> None:
        self._show_frame()
        clip = self._primary_clip()
        if clip is not None and clip.duration > 0:
            self.viewer.set_time_fraction((seconds - clip.start) / clip.duration)

    def _frame_source(self, clip: Any, version_index: int, seconds: float) -> tuple[Path, str, int]:
        """(file, kind, frame index) of `clip`'s version at timeline time `seconds`."""
        project = self.document.project
        version = clip.versions[version_index]
        item = project.media_item(version.media_id)
        if item.kind == "image":
            return self.media_file(item.id), "image", 0
        # The original plays from the in point; a generated version from its own start (app.media's rule).
        offset = clip.in_point if version.media_id == clip.media_id else 0.0
        t = max(0.0, offset + seconds - clip.start)
        return self.media_file(item.id), "video", int(min(item.frames - 1, t * item.fps + 1e-6))

    def _show_frame(self) -> None:
        clip = self._primary_clip()
        if clip is None:
            return
        seconds = min(max(self.timeline.view.playhead, clip.start), clip.end - 1e-6)
        path, kind, index = self._frame_source(clip, clip.active_version, seconds)
        self.frame_reader.request((str(path), index), lambda: _read(path, kind, index))
        if clip.active_version > 0:
            bpath, bkind, bindex = self._frame_source(clip, clip.active_version - 1, seconds)
            self.compare_reader.request((str(bpath), bindex), lambda: _read(bpath, bkind, bindex))
        else:
            self.viewer.set_compare(None)

    def _on_frame_ready(self, key: Any, frame: np.ndarray) -> None:
        self.viewer.set_frame(frame)
        self.last_frame = frame

    def toggle_play(self) -> None:
        self.viewer.play_button.setChecked(not self.viewer.play_button.isChecked())

    def set_playing(self, on: bool) -> None:
        clip = self._primary_clip()
        if not on or clip is None or self.document.clip_kind(clip.id) != "video":
            self.play_timer.stop()
            if on:
                self.viewer.play_button.setChecked(False)
            return
        fps = self.document.project.media_item(clip.active.media_id).fps or 24.0
        self._play_clock = (time.perf_counter(), self.timeline.view.playhead)
        self.play_timer.start(int(1000 / fps))

    def _play_tick(self) -> None:
        clip = self._primary_clip()
        if clip is None:
            self.viewer.play_button.setChecked(False)
            return
        t0, p0 = self._play_clock
        # Wall-clock based: a slow decode drops frames (latest-request-wins) instead of slowing time.
        t = p0 + time.perf_counter() - t0
        if t >= clip.end:
            t = clip.start
            self._play_clock = (time.perf_counter(), t)
        self.timeline.view.set_playhead(t, emit=True)

    # ================================================================ live plan
    def _on_instruction_changed(self, text: str) -> None:
        self.plan_requested_at = time.perf_counter()
        self._request_plan_soon()

    def _request_plan_soon(self) -> None:
        self.plan_debounce.poke()

    def request_live_plan(self) -> None:
        if self.engine is None or not self.model_ready:
            return
        if not self.instruction.text():
            self.current_plan = None
            self.viewer.set_plan(None)
            self.instruction.set_words([])
            return
        try:
            request = self.build_request(seed=self.generation.seed.value())
            request.validate()
        except (ValueError, MediaError, ProjectError):
            return  # the plan waits until the request makes sense; Generate reports why
        self.latest_plan_job = self.engine.request_plan(request)

    def _on_plan_ready(self, job_id: int, plan: Any) -> None:
        if job_id != self.latest_plan_job:
            return  # an older keystroke's plan: the newer one is on its way
        self.current_plan = plan
        self.viewer.set_plan(plan)
        self.instruction.set_words([w for w, _ in (plan.words[0] if plan.words else [])])
        self.viewer.canvas.repaint() if self.viewer.isVisible() else None

    # ================================================================ requests and generation
    def _input_image(self, clip: Any) -> np.ndarray:
        """The selected clip's active version as the model's input (the frame under the playhead for video)."""
        seconds = min(max(self.timeline.view.playhead, clip.start), clip.end - 1e-6)
        path, kind, index = self._frame_source(clip, clip.active_version, seconds)
        key = (str(path), index)
        if key not in self._input_cache:
            self._input_cache[key] = _read(path, kind, index, INPUT_MAX_SIDE)
        return self._input_cache[key]

    def _input_video(self, clip: Any, frames: int) -> np.ndarray:
        from app.media.probe import read_video_frames
        version = clip.active
        item = self.document.project.media_item(version.media_id)
        offset = clip.in_point if version.media_id == clip.media_id else 0.0
        start = int(offset * item.fps)
        key = (str(self.media_file(item.id)), "video", start, frames)
        if key not in self._input_cache:
            self._input_cache[key] = read_video_frames(self.media_file(item.id), start, frames, max_side=INPUT_MAX_SIDE)
        return self._input_cache[key]

    def build_request(self, seed: int | None = None) -> GenerationRequest:
        task = self.current_task()
        g = self.generation
        ids = [c for c in self.selected_clips() if self._has_clip(c)]
        clips = [self.document.project.clip(c) for c in ids]
        frames = g.frames.value() if task.makes_video else 1
        images: list[np.ndarray] = []
        video = None
        if task in (Task.IMAGE_EDIT, Task.IMAGE_TO_VIDEO, Task.REFERENCE_TO_VIDEO):
            images = [self._input_image(c) for c in clips]
        elif task is Task.VIDEO_EDIT:
            video = self._input_video(clips[0], frames)
            frames = min(frames, len(video))
        return GenerationRequest(task=task, instruction=self.instruction.text(), images=images, video=video,
                                 width=g.width_box.value(), height=g.height_box.value(), frames=frames,
                                 steps=g.steps.value(), guidance=g.guidance.value(),
                                 seed=g.seed.value() if seed is None else seed)

    def generate(self) -> int | None:
        if self.engine is None:
            self.show_message("The engine is still starting; try again in a moment.", WARNING)
            return None
        try:
            request = self.build_request(seed=self.generation.next_seed())
            request.validate()
        except (ValueError, MediaError, ProjectError) as e:
            self.show_message(str(e), ERROR)
            return None
        defaults = self.engine.model_defaults
        if defaults is not None and request.task.value not in defaults.tasks:
            # Say so at once rather than queueing a job that can only fail.
            self.show_message(f"The loaded model does not do {request.task.value.replace('_', ' ')}; it does: "
                              f"{', '.join(t.replace('_', ' ') for t in defaults.tasks)}. Load a model that does "
                              f"(File ▸ Settings ▸ model folder).", ERROR)
            return None
        ids = [c for c in self.selected_clips() if self._has_clip(c)]
        clip_id = ids[0] if ids else None
        if clip_id is not None and self.instruction.text():
            clip = self.document.project.clip(clip_id)
            if clip.instruction != self.instruction.text():
                self.document.push(self.document.project.set_clip_instruction_change(clip_id, self.instruction.text()))
        # Reuse the live plan only when it was made for exactly this request; otherwise plan again.
        job_id = self.engine.submit(request)
        desc = f"{request.task.label}: {request.instruction[:40] or '(no text)'} (seed {request.seed})"
        self.jobs[job_id] = JobInfo(job_id, request, clip_id, desc)
        self.generation.add_job(job_id, desc)
        self.generation.cancel_button.setEnabled(True)
        self.show_message(f"Queued job #{job_id}: {desc}")
        return job_id

    def cancel_running(self) -> None:
        running = next((j for j in self.jobs.values() if j.state == "running"), None)
        if running is not None and self.engine is not None:
            self.engine.cancel(running.job_id)
            self.statusBar().showMessage(f"Cancelling job #{running.job_id}…")

    def cancel_job(self, job_id: int) -> None:
        if self.engine is not None and job_id in self.jobs:
            self.engine.cancel(job_id)

    def _mark_running(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state == "queued":
            job.state = "running"
            self.generation.set_job_running(job_id)
            self.generation.cancel_button.setEnabled(True)

    def _on_queue_changed(self, pending: list) -> None:
        running = self.engine.running_job if self.engine is not None else None
        if running in self.jobs:
            self._mark_running(running)

    def _on_progress(self, job_id: int, step: int, total: int) -> None:
        if job_id in self.jobs:
            self._mark_running(job_id)
            self.generation.set_progress(step, total)

    def _on_preview(self, job_id: int, image: QImage) -> None:
        if job_id in self.jobs and self.jobs[job_id].state == "running":
            self.viewer.set_preview(image)

    def _end_job(self, job_id: int) -> JobInfo | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        job.state = "done"
        self.generation.remove_job(job_id)
        if not any(j.state == "running" for j in self.jobs.values()):
            self.viewer.set_preview(None)
            self.generation.set_idle()
        self.generation.cancel_button.setEnabled(any(j.state != "done" for j in self.jobs.values()))
        return job

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id == self.latest_plan_job:
            self.statusBar().showMessage(f"Plan: {message}", 8000)  # typing is not an error worth a banner
            return
        job = self._end_job(job_id)
        if job is not None:
            self.show_message(f"Job #{job_id} failed: {message}", ERROR)

    def _on_cancelled(self, job_id: int) -> None:
        job = self._end_job(job_id)
        if job is not None:
            self.show_message(f"Job #{job_id} was cancelled; the project is unchanged.", WARNING)

    def _on_finished(self, job_id: int, result: Any) -> None:
        job = self._end_job(job_id)
        if job is None:
            return
        self.statusBar().showMessage(f"Job #{job_id} done in {getattr(result, 'seconds', 0):.1f} s; saving the result…")
        frames = np.asarray(result.frames)
        fps = self.document.project.settings.fps
        work = self.work_path()
        run_task(self.pool, _write_result, work, frames, fps, result.plan,
                 on_done=lambda written, j=job, r=result: self._store_result(j, r, written),
                 on_error=lambda e, j=job_id: self.show_message(f"Job #{j} finished but its result could not be saved: {e}", ERROR),
                 owner=self)

    def _store_result(self, job: JobInfo, result: Any, written: dict) -> None:
        """Turn a written result into project changes: a new version of its clip, or a new clip."""
        project = self.document.project
        request = job.request.to_dict()
        kind = written["kind"]
        media = project.add_media_change(written["name"], kind, written["width"], written["height"],
                                         written["frames"], written["fps"], name=written["name"])
        clip_id = job.clip_id if job.clip_id is not None and self._has_clip(job.clip_id) else None
        if clip_id is not None and self.document.clip_kind(clip_id) == kind:
            change = project.add_result_change(clip_id, written["name"], kind, written["width"], written["height"],
                                               written["frames"], written["fps"], request=request,
                                               plan=written["plan"], name=written["name"])
        else:
            # No clip, or an image turned into a video (image-to-video, reference-to-video): the result
            # starts a new clip on the track of its kind, with the request recorded on its first version.
            project.apply(media)
            try:
                clip_change = project.add_clip_change(media["item"]["id"])
            finally:
                project.apply(invert(media))
            clip_change["clip"]["versions"][0]["request"] = request
            clip_change["clip"]["versions"][0]["plan"] = written["plan"]
            clip_change["clip"]["instruction"] = job.request.instruction
            change = {"kind": "batch", "label": "generated clip", "changes": [media, clip_change]}
            clip_id = clip_change["clip"]["id"]
        self.document.push(change, f"Generate: {job.request.instruction[:30]}")
        self.timeline.view.select([clip_id])
        self._show_frame()
        self.show_message(f"Job #{job.job_id}: new version of the clip ready.")
        self.result_stored.emit(clip_id)

    # ================================================================ versions
    def _on_version_clicked(self, index: int) -> None:
        clip = self._primary_clip()
        if clip is not None and index != clip.active_version:
            self.document.push(self.document.project.set_active_version_change(clip.id, index))
            self._show_frame()

    def _on_judge(self, version_id: str, verdict: Any) -> None:
        clip = self._primary_clip()
        if clip is not None:
            self.document.push(self.document.project.set_accepted_change(clip.id, version_id, verdict))

    def remove_selected_clip(self) -> None:
        if self.instruction.edit.hasFocus():
            return
        for cid in self.selected_clips():
            if self._has_clip(cid):
                self.document.push(self.document.project.remove_clip_change(cid))

    # ================================================================ projects
    def new_project(self) -> None:
        self.document.replace(Project(), None)
        self.show_message("New project.")

    def open_dialog(self) -> None:
        dlg = QFileDialog(self, "Open project", "", f"MetaCanvas projects (*{pf.PROJECT_SUFFIX})")
        dlg.setFileMode(QFileDialog.FileMode.ExistingFile)
        dlg.fileSelected.connect(self.open_project)
        dlg.open()

    def open_project(self, path: str) -> bool:
        try:
            project = pf.open_project(path)
        except ProjectError as e:
            self.show_message(f"Could not open the project: {e}", ERROR)
            return False
        self._thumb_started.clear()
        self.document.replace(project, str(Path(path)))
        missing = pf.missing_media(project, path)
        if missing:
            self.show_message(f"{len(missing)} media file(s) are missing from the project folder: "
                              + ", ".join(m.name for m in missing[:5]), WARNING)
        self.settings.add_recent(path)
        self.show_message(f"Opened {Path(path).name}.")
        return True

    def save(self) -> bool:
        if not self.document.path:
            self.save_as_dialog()
            return False
        return self.save_as(self.document.path)

    def save_as_dialog(self) -> None:
        dlg = QFileDialog(self, "Save project as", "", f"MetaCanvas projects (*{pf.PROJECT_SUFFIX})")
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setDefaultSuffix(pf.PROJECT_SUFFIX.lstrip("."))
        dlg.fileSelected.connect(self.save_as)
        dlg.open()

    def save_as(self, path: str) -> bool:
        """Save synchronously: a project document is small JSON and the user expects 'saved' to mean saved.
        Media copies for a first save / Save As are file copies of what was imported."""
        old = self.work_path()
        try:
            written = pf.save_project(self.document.project, path, media_from=old)
        except ProjectError as e:
            self.show_message(str(e), ERROR)
            return False
        pf.clear_recovery(self.document.path, self.document.project, self.recovery_root)
        self.document.mark_saved(str(written))
        self.settings.add_recent(str(written))
        self.show_message(f"Saved {written.name}.")
        return True

    # ================================================================ autosave and recovery
    def _apply_autosave_interval(self) -> None:
        minutes = self.settings.autosave_minutes
        if minutes > 0:
            self.autosave_timer.start(minutes * 60_000)
        else:
            self.autosave_timer.stop()

    def autosave(self) -> None:
        """Write a recovery copy off the GUI thread; the snapshot is taken here, so it is consistent."""
        if not self.document.dirty or self._saving_autosave:
            return
        self._saving_autosave = True
        snapshot = Project.from_dict(self.document.project.to_dict())
        path = self.document.path
        media_of = None if path else self.work_path()

        def done(target: Any) -> None:
            self._saving_autosave = False
            self.statusBar().showMessage(f"Autosaved a recovery copy ({Path(target).name}).", 4000)

        def failed(e: BaseException) -> None:
            self._saving_autosave = False
            self.show_message(f"Autosave failed: {e}", WARNING)
        run_task(self.pool, pf.write_recovery, snapshot, path, self.recovery_root, media_of,
                 on_done=done, on_error=failed, owner=self)

    def check_recoveries(self) -> None:
        self.pending_recoveries = pf.find_recoveries(self.recovery_root)
        if self.pending_recoveries:
            r = self.pending_recoveries[0]
            when = time.strftime("%H:%M %d %b", time.localtime(r.saved_at))
            self.banner.show_action(f"A recovery copy of '{r.name}' from {when} is newer than its last save.",
                                    "Recover", lambda: self.recover(r))

    def recover(self, recovery: pf.Recovery) -> bool:
        try:
            project = pf.load_recovery(recovery)
        except ProjectError as e:
            self.show_message(str(e), ERROR)
            return False
        if recovery.project_path is not None:
            path: str | None = str(recovery.project_path)
        else:
            path = None
            project.id = project.id  # the untitled folder is named by the id, so media are found again
        self._thumb_started.clear()
        self.document.replace(project, path)
        # Recovered changes are unsaved: mark the document dirty so Save is offered and autosave continues.
        self.document.undo_stack.resetClean()
        self.show_message(f"Recovered '{recovery.name}'. Save it to keep it.")
        return True

    # ================================================================ export
    def export_still_dialog(self) -> None:
        dlg = QFileDialog(self, "Export still", "", "PNG (*.png);;JPEG (*.jpg *.jpeg)")
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setDefaultSuffix("png")
        dlg.fileSelected.connect(self.export_still)
        dlg.open()

    def export_still(self, path: str) -> None:
        frame = getattr(self, "last_frame", None)
        if frame is None:
            self.show_message("Select a clip first: there is no frame to export.", ERROR)
            return
        from app.media.export import export_image
        self._run_export(f"Exporting {Path(path).name}", lambda report, cancel: export_image(frame, path, overwrite=True), path)

    def export_clip_dialog(self) -> None:
        dlg = QFileDialog(self, "Export clip", "", "H.264 MP4 (*.mp4)")
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setDefaultSuffix("mp4")
        dlg.fileSelected.connect(self.export_clip)
        dlg.open()

    def export_clip(self, path: str, clip_id: str | None = None) -> None:
        """The clip's active version (its trimmed segment for the original) as an H.264 MP4."""
        from app.media.export import export_video
        from app.media.probe import iter_video_frames, load_image
        clip = self.document.project.clip(clip_id) if clip_id else self._primary_clip()
        if clip is None:
            self.show_message("Select a clip to export.", ERROR)
            return
        project = self.document.project
        version = clip.active
        item = project.media_item(version.media_id)
        file = self.media_file(item.id)
        fps = item.fps or project.settings.fps
        if item.kind == "image":
            n = max(1, int(round(clip.duration * fps)))

            def frames():  # a still held for the clip's duration
                picture = load_image(file)
                for _ in range(n):
                    yield picture
        else:
            offset = clip.in_point if version.media_id == clip.media_id else 0.0
            first = int(offset * fps + 1e-6)
            n = max(1, min(item.frames - first, int(round(clip.duration * fps))))

            def frames():
                return iter_video_frames(file, range(first, first + n))
        self._run_export(f"Exporting {Path(path).name}",
                         lambda report, cancel: export_video(frames(), path, fps, progress=report, cancel=cancel,
                                                             total=n, overwrite=True), path)

    def export_track_dialog(self) -> None:
        dlg = QFileDialog(self, "Export video track", "", "H.264 MP4 (*.mp4)")
        dlg.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dlg.setDefaultSuffix("mp4")
        dlg.fileSelected.connect(self.export_track)
        dlg.open()

    def export_track(self, path: str) -> None:
        from app.media.export import export_timeline
        snapshot = Project.from_dict(self.document.project.to_dict())
        work = self.work_path()
        self._run_export(f"Exporting the video track to {Path(path).name}",
                         lambda report, cancel: export_timeline(snapshot, work, path, progress=report, cancel=cancel,
                                                                overwrite=True), path)

    def _run_export(self, title: str, job: Any, path: str) -> None:
        """Run `job(report, cancel)` in the pool with a non-modal progress dialog that can cancel it."""
        if self._exporting:
            self.show_message("An export is already running; wait for it or cancel it.", WARNING)
            return
        self._exporting = True
        cancel = threading.Event()
        self._export_cancel = cancel
        dlg = QProgressDialog(title, "Cancel", 0, 0, self)
        dlg.setWindowModality(Qt.WindowModality.NonModal)
        dlg.setMinimumDuration(300)
        dlg.canceled.connect(cancel.set)
        self._export_dialog = dlg

        def progress(value: Any) -> None:
            done, total = value
            if total:
                dlg.setMaximum(int(total))
                dlg.setValue(min(int(done), int(total)))

        def finish(ok: bool, message: str, level: str) -> None:
            self._exporting = False
            self._export_cancel = None
            dlg.reset()
            dlg.hide()
            dlg.deleteLater()
            self._export_dialog = None
            self.show_message(message, level)
            if ok:
                self.export_done.emit(path)

        def failed(e: BaseException) -> None:
            if isinstance(e, ExportCancelled) or cancel.is_set():
                finish(False, "Export cancelled; nothing was written.", WARNING)
            elif isinstance(e, (ExportError, MediaError, ProjectError)):
                finish(False, f"Export failed: {e}", ERROR)
            else:
                finish(False, f"Export failed: {type(e).__name__}: {e}", ERROR)

        run_task(self.pool, lambda report: job(lambda d, t=None: report((d, t)), cancel),
                 on_done=lambda _: finish(True, f"Exported {Path(path).name}.", INFO), on_error=failed,
                 on_progress=progress, owner=self)

    def cancel_export(self) -> None:
        if self._export_cancel is not None:
            self._export_cancel.set()

    # ================================================================ settings
    def settings_dialog(self) -> SettingsDialog:
        dlg = SettingsDialog(self.settings, self)
        dlg.settings_accepted.connect(self.apply_settings)
        dlg.open()
        return dlg

    def apply_settings(self, new: Settings) -> None:
        reload = (new.active_model, new.device, new.precision) != (
            self.settings.active_model, self.settings.device, self.settings.precision)
        self.settings = new
        try:
            new.save()
        except OSError as e:
            self.show_message(f"Settings could not be saved: {e}", WARNING)
        if self.engine is not None:
            self.engine.set_previews(new.preview)
            if reload:
                from app.core.checkpoints import ModelFolderError, validate_model_folder
                try:
                    validate_model_folder(new.active_model)
                except ModelFolderError as e:
                    self.show_message(f"Bad model folder: {e}", ERROR)
                    return
                self.load_model(new.active_model)
        self._apply_autosave_interval()


# ==================================================================== worker functions (no Qt)
def _prewarm() -> None:
    import av  # noqa: F401
    import cv2  # noqa: F401
    import PIL.Image  # noqa: F401

    import app.media.export  # noqa: F401
    import app.media.probe  # noqa: F401


def _import_with_recipe(project: Project, work: Path, path: str) -> tuple[dict, dict | None]:
    """Import `path` (project_file.import_media) and read the recipe a generated PNG carries in its
    text chunks, from the copy now in the media folder: (add_media change, request dict or None)."""
    from app.media.generation_info import read_generation_info

    change = pf.import_media(project, work, path)
    info = None
    if change["item"]["kind"] == "image":
        from app.media.project import MediaItem

        info = read_generation_info(pf.media_path(work, MediaItem(**change["item"])))
    return change, (info or {}).get("request")


def _read(path: Path, kind: str, index: int, max_side: int | None = None) -> np.ndarray:
    from app.media.probe import load_image, read_frame
    if kind == "image":
        img = load_image(path)
        if max_side and max(img.shape[:2]) > max_side:
            from PIL import Image
            pil = Image.fromarray(img)
            pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            img = np.asarray(pil)
        return img
    return read_frame(path, index, max_side=max_side)


def _write_result(work: Path, frames: np.ndarray, fps: float, plan: Any) -> dict:
    """Write a result (and its plan) as NEW files in the media folder; never overwrites anything."""
    from app.media.export import export_image, export_video
    folder = pf.media_dir(work)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"result-{int(time.time() * 1000)}-{threading.get_ident() % 10000}"
    plan_name = None
    if plan is not None and hasattr(plan, "save"):
        plan_name = f"{stem}.plan.safetensors"
        plan.save(folder / plan_name)
    if frames.ndim == 3 or frames.shape[0] == 1:
        image = frames if frames.ndim == 3 else frames[0]
        name = f"{stem}.png"
        export_image(image, folder / name, "png")
        return {"name": name, "kind": "image", "width": image.shape[1], "height": image.shape[0],
                "frames": 1, "fps": 0.0, "plan": plan_name}
    name = f"{stem}.mp4"
    w, h = export_video(list(frames), folder / name, fps)
    return {"name": name, "kind": "video", "width": w, "height": h, "frames": len(frames), "fps": float(fps),
            "plan": plan_name}
