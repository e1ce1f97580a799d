"""The studio's main window: widgets and their wiring to the studio model, nothing more.

State lives in `StudioModel` (inputs, jobs, plans, results), project files in `ProjectActions`, exports
in `ExportActions`, decoded pictures in `Pictures`. The window builds the widgets, shows what those
hold, and turns user actions into their calls. Its one rule: what the viewer, the timeline and the
panels show is recomputed from the current state on every change (`_refresh_all`,
`_on_target_changed`), never patched, so no view can keep showing a state that is gone.
Every message to the user goes through `show_message` (status bar + non-modal banner + log).
Why one file of about 700 lines: it is the wiring of every widget to the studio model, read top to bottom;
the jobs each part does already live in the classes above (and plan_editing, timeline_editing, imports).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QThreadPool, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QDockWidget, QLabel, QMainWindow, QProgressBar, QSplitter,
                               QVBoxLayout, QWidget)

from app.media import project_file as pf
from app.media.errors import ProjectError
from app.settings import REPO_ROOT, Settings, studio_cpu_threads
from app.ui.document import ProjectDocument
from app.ui.export_actions import ExportActions
from app.ui.generation_panel import GenerationPanel
from app.ui.import_actions import ImportActions
from app.ui.instruction import InstructionBox
from app.ui.media_bin import MediaBin, sample_files
from app.ui.messages import ERROR, INFO, WARNING, MessageBanner, MessageCenter, connect_status_bar
from app.ui.pictures import Pictures
from app.ui.project_actions import ProjectActions
from app.ui.settings_dialog import SettingsDialog
from app.core.request import Task
from app.ui.studio_model import StudioModel
from app.ui.studio_state import MAX_REFERENCES, ModelState
from app.ui.timeline import IMAGE_TRACK, VIDEO_TRACK, TailStrip, Timeline, TimelineClip
from app.ui.timeline_editing import TimelineEditing
from app.ui.versions_panel import VersionsPanel
from app.ui.viewer import Viewer
from app.ui.workers import run_task

log = logging.getLogger(__name__)

SAMPLES_DIR = REPO_ROOT / "resources" / "samples"
THEME_FILE = REPO_ROOT / "resources" / "theme.qss"
FRAME_FAILURE_WAIT_MS = 300  # the model's read of an input fails within this when the viewer's frame does


class MainWindow(QMainWindow):
    """The studio. The engine starts one event-loop turn after the window shows (tests may skip it)."""

    plan_shown = Signal(float)  # perf_counter() when a live plan reached the screen (benchmarks)
    result_stored = Signal(str)  # clip id that got a new version
    export_done = Signal(str)  # path written

    def __init__(self, settings: Settings | None = None, model_path: str | None = None,
                 data_root: str | Path | None = None, recovery_root: str | Path | None = None,
                 start_engine: bool = True, offer_recovery: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings.load()
        self.model_path = model_path
        self.engine: Any = None
        self.last_frame: np.ndarray | None = None
        self.setWindowTitle("MetaCanvas Studio")
        self.resize(1280, 800)
        self.messages = MessageCenter(self)
        self.document = ProjectDocument(parent=self)
        self.files = ProjectActions(self, self.document, self.show_message,
                                    Path(data_root) if data_root else None, Path(recovery_root) if recovery_root else None)
        self.studio = StudioModel(self.document, self.settings, self.files.work_path, parent=self)
        self.imports = ImportActions(self, self.studio, self.show_message)
        self.exports = ExportActions(self, self.show_message)
        self.exports.export_done.connect(self.export_done)
        self.pictures = Pictures(self)

        self._build_widgets()
        self.timeline_editing = TimelineEditing(self.document, self.timeline.view, self.show_message)
        self._build_menus()
        connect_status_bar(self.messages, self.statusBar(), self.banner)
        self._bind()
        if self.settings.warning:
            self.show_message(self.settings.warning, WARNING)
        self._on_project_reset()
        if start_engine:
            # The window shows first; the engine thread and the model load come one event-loop turn
            # later, so launch-to-window never waits for torch or the weights.
            QTimer.singleShot(0, self, self.start_engine)
        if offer_recovery:
            QTimer.singleShot(0, self, self.files.check_recoveries)
        # Import the decoding/encoding libraries once, early, in the pool: a first import inside an
        # export or a scrub holds the GIL long enough to freeze the GUI for ~100 ms. With an engine this
        # waits for the model (ready about 0.14 s sooner: the two import bursts do not share 2 cores).
        self._prewarmed = False
        if not start_engine:
            QTimer.singleShot(200, self, self._prewarm_codecs)

    # ================================================================ construction
    def _build_widgets(self) -> None:
        self.banner = MessageBanner(self)
        self.viewer = Viewer(self)
        self.instruction = InstructionBox(self)
        self.timeline = Timeline(self)
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
        self.generation = GenerationPanel(self)
        self.versions = VersionsPanel(self)
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

    def _build_menus(self) -> None:
        m = self.menuBar()
        file = m.addMenu("&File")
        file.addAction("New", self.files.new_project, QKeySequence.StandardKey.New)
        file.addAction("Open…", self.files.open_dialog, QKeySequence.StandardKey.Open)
        file.addAction("Save", self.files.save, QKeySequence.StandardKey.Save)
        file.addAction("Save As…", self.files.save_as_dialog, QKeySequence.StandardKey.SaveAs)
        file.addSeparator()
        file.addAction("Import media…", self.imports.import_dialog, QKeySequence("Ctrl+I"))
        samples = file.addMenu("Import sample")
        for p in sample_files(SAMPLES_DIR):
            samples.addAction(p.name, lambda p=p: self.import_files([str(p)]))
        file.addSeparator()
        file.addAction("Export still (PNG/JPEG)…", self.exports.export_still_dialog)
        file.addAction("Export clip (MP4)…", self.exports.export_clip_dialog)
        file.addAction("Export video track (MP4)…", self.exports.export_track_dialog)
        file.addSeparator()
        file.addAction("Settings…", self.settings_dialog)
        file.addAction("Models…", self.models_dialog)
        file.addAction("Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = m.addMenu("&Edit")
        # Through the document, not the stack's own actions: words typed and not yet stored go in first, so Undo
        # takes back the typing (the stack's actions undid the step before it, and the words then ended the redo).
        stack = self.document.undo_stack
        self.act_undo = QAction("Undo", self, enabled=stack.canUndo())
        self.act_undo.triggered.connect(self.document.undo)
        stack.canUndoChanged.connect(self.act_undo.setEnabled)
        stack.undoTextChanged.connect(lambda text: self.act_undo.setText(f"Undo {text}".strip()))
        self.act_undo.setShortcuts([QKeySequence("Ctrl+Z")])
        self.act_redo = QAction("Redo", self, enabled=stack.canRedo())
        self.act_redo.triggered.connect(self.document.redo)
        stack.canRedoChanged.connect(self.act_redo.setEnabled)
        stack.redoTextChanged.connect(lambda text: self.act_redo.setText(f"Redo {text}".strip()))
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit.addAction(self.act_undo)
        edit.addAction(self.act_redo)
        edit.addSeparator()
        edit.addAction("Remove selected clip", self.remove_selected_clip, QKeySequence.StandardKey.Delete)
        # A plain key: text fields claim it first (ShortcutOverride), so typing an "s" never splits.
        self.act_split = edit.addAction("Split at playhead", self.timeline_editing.split_at_playhead, QKeySequence("S"))
        gen = m.addMenu("&Generate")
        self.act_generate = gen.addAction("Generate", self.generate)
        self.act_generate.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        gen.addAction("Cancel running job", self.studio.cancel_running, QKeySequence("Esc"))
        # Space must not fire while typing an instruction: QPlainTextEdit claims plain keys through
        # ShortcutOverride, so this window-level shortcut only sees Space elsewhere.
        self.play_shortcut = QShortcut(QKeySequence("Space"), self, activated=self.toggle_play)
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_tick)

    def _bind(self) -> None:
        s = self.studio
        s.message.connect(self.show_message)
        s.memory_retry.offered.connect(self.offer_action)
        s.unsaved_result.connect(lambda text: self.banner.show_action(text, "Save As…", self.files.save_as_dialog, True,
                                                                      holds=lambda: s.unsaved_results() > 0))
        # said already (a warning): the button joins it
        s.seed_retry.offered.connect(lambda text, button, act, holds: self.banner.show_action(text, button, act, True,
                                                                                              holds=holds))
        s.model_state_changed.connect(self._on_model_state)
        s.params_changed.connect(lambda: self.generation.show_params(s.params))
        s.target_changed.connect(self._on_target_changed)
        s.jobs_changed.connect(lambda: self.generation.show_jobs(s.active_jobs()))
        s.preview.connect(self.viewer.set_preview)
        s.plan_editing.shown_plan_changed.connect(self._on_plan_changed)  # the plan as the user edited it
        s.plan_editing.compare_changed.connect(self._on_compare_changed)
        self.viewer.edit_tool.edits_made.connect(s.plan_editing.add)
        self.viewer.edit_bar.clear_clicked.connect(s.plan_editing.clear)
        self.viewer.edit_bar.compare_clicked.connect(s.plan_editing.compare_as_planned)
        s.plan_problem.connect(self.instruction.set_problem)
        s.select_requested.connect(self.timeline.view.select)
        s.result_stored.connect(self.result_stored)
        # The studio model, connected first, has already sent target_changed for the change (its handler
        # always does): the panels that show the selection are not drawn a second time in the same pass.
        self.document.changed.connect(lambda _change: self._refresh_all(target=False))
        self.document.reset.connect(self._on_project_reset)
        self.document.path_changed.connect(lambda _path: self._update_title())
        self.instruction.instruction_changed.connect(s.set_instruction)
        self.instruction.task_chosen.connect(s.set_task)
        self.instruction.word_clicked.connect(lambda i: self.viewer.show_word(None if i < 0 else i))
        self.generation.param_changed.connect(s.set_param)
        self.generation.generate_clicked.connect(self.generate)
        self.generation.cancel_clicked.connect(s.cancel_running)
        self.generation.cancel_job.connect(s.cancel_job)
        self.versions.activate.connect(self._on_version_clicked)
        self.versions.judge.connect(self._on_judge)
        self.versions.remove.connect(self.remove_version)
        self.versions.reuse.connect(s.reuse_version)
        self.timeline.view.selection_changed.connect(self._on_selection_changed)
        self.timeline.view.scrubbed.connect(self._on_scrub)
        self.media_bin.import_clicked.connect(self.imports.import_dialog)
        self.media_bin.files_dropped.connect(self.import_files)
        self.media_bin.add_to_timeline.connect(self.imports.add_media_to_timeline)
        self.viewer.play_toggled.connect(self.set_playing)
        self.viewer.canvas.plan_drawn.connect(self.plan_shown)
        self.pictures.icon_ready.connect(self._on_icon)
        self.pictures.thumbs_ready.connect(self._on_thumbs)
        self.pictures.plan_keyframes_ready.connect(self.timeline.view.set_plan_keyframes)
        self.media_bin.use_as_references.connect(self.use_as_references)
        self.pictures.frame_ready.connect(self._on_frame)
        self.pictures.compare_ready.connect(self.viewer.set_compare)
        self.pictures.frame_failed.connect(self._on_frame_failed)
        self.generation.show_params(s.params)

    # ================================================================ the few entry points tests and scripts use
    @property
    def jobs(self) -> dict:
        return self.studio.jobs

    @property
    def model_ready(self) -> bool:
        return self.studio.model_ready

    @property
    def current_plan(self) -> Any:
        return self.studio.current_plan

    def generate(self) -> int | None:
        return self.studio.generate()

    def import_files(self, paths: list[str]) -> None:
        self.imports.import_files(paths)

    def open_project(self, path: str) -> bool:
        return self.files.open_project(path)

    def save_as(self, path: str) -> bool:
        return self.files.save_as(path)

    def work_path(self) -> Path:
        return self.files.work_path()

    def media_file(self, media_id: str) -> Path:
        return pf.media_path(self.work_path(), self.document.project.media_item(media_id))

    def show_message(self, text: str, level: str = INFO) -> None:
        """Every user-facing message goes here: status bar, banner for warnings/errors, the log."""
        (log.warning if level != INFO else log.info)("%s", text)
        self.messages.post(text, level)

    def offer_action(self, text: str, button: str, action: Any) -> None:
        """An error the user can act on (retry with offload after running out of memory): shown like any error,
        with a button in the banner that acts."""
        self.show_message(text, ERROR)
        self.banner.show_action(text, button, action, of_project=True)

    # ================================================================ engine
    def start_engine(self) -> None:
        from app.engine.engine import Engine

        self.engine = Engine(previews=self.settings.preview, cpu_threads=studio_cpu_threads(self.settings.cpu_threads),
                             parent=self)
        self.studio.attach_engine(self.engine)
        self.studio.load_model(self.model_path or self.settings.active_model)

    def _prewarm_codecs(self) -> None:
        if not self._prewarmed:
            self._prewarmed = True
            run_task(QThreadPool.globalInstance(), _prewarm, on_error=lambda e: None, owner=self)

    def _on_model_state(self, state: ModelState) -> None:
        """`state`: the state of the model the selection's task needs (the studio has two, see StudioModel)."""
        if state in (ModelState.READY, ModelState.FAILED):
            self._prewarm_codecs()
        self.model_label.setText(self.studio.state_text)
        self.model_progress.setVisible(any(m.state is ModelState.LOADING for m in self.studio.slots.values()))
        defaults = (self.engine.defaults_for(self.studio.slot.kind)
                    if state is ModelState.READY and self.engine is not None else None)
        if defaults is not None:
            self.generation.describe_guidance(defaults.guidance_interval)
        self.generation.generate_button.setText("Generate (when the model is ready)"
                                                if state is ModelState.LOADING else "Generate")
        self.generation.set_model_loaded(state is ModelState.READY, self.studio.task.makes_video)
        self.generation.set_frame_step(self.studio.frame_step, self.studio.max_frames)

    def shutdown(self) -> None:
        self.play_timer.stop()
        self.files.autosave_timer.stop()
        if self.engine is not None:
            self.engine.shutdown()
        self.pictures.wait(5000)
        QThreadPool.globalInstance().waitForDone(10000)

    def closeEvent(self, e: Any) -> None:  # noqa: N802
        if not self.files.may_quit_while_exporting() or not self.files.closing():
            e.ignore()  # the user chose Keep working (an export runs) or Cancel in "save changes?"
            return
        self.exports.cancel()
        # Gone from the screen before the engine is waited for: a model load cannot be interrupted (a FLUX or Wan
        # folder loads for minutes), and a window that stays up frozen until it ends looks hung.
        self.hide()
        QApplication.processEvents()
        self.shutdown()
        super().closeEvent(e)

    def _update_title(self) -> None:
        self.setWindowTitle(f"{'*' if self.document.dirty else ''}{self.files.display_name()} — MetaCanvas Studio")

    def dragEnterEvent(self, e: Any) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e: Any) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.import_files(paths)

    # ================================================================ project -> widgets
    def _on_project_reset(self) -> None:
        self.banner.drop_project_action()  # a retry offered for the project closed would run into no project
        self.pictures.forget_all()
        self.timeline.view.select([])
        self._refresh_all()
        self._update_title()

    def _refresh_all(self, target: bool = True) -> None:
        project = self.document.project
        self.media_bin.set_items([(m.id, shown.get(m.id, m.name), m.kind) for shown in [_version_names(project)]
                                  for m in project.media.values()])
        for m in project.media.values():
            icon = self.pictures.icon(m.id, self.media_file(m.id))
            if icon is not None:
                self.media_bin.set_icon(m.id, icon)
        clips = []
        for track in (IMAGE_TRACK, VIDEO_TRACK):
            for c in project.tracks[track]:
                item = project.media_item(c.active.media_id)
                label = self.studio.clip_name(c) + (f"  [v{c.active_version}]" if c.active_version else "")
                thumbs = self.pictures.thumbnails(item.id, self.media_file(item.id), item.kind, item.frames)
                original = project.media_item(c.media_id)
                clip = TimelineClip(c.id, track, c.start, c.duration, label, frames=item.frames,
                                    fps=item.fps or project.settings.fps, thumbnails=thumbs or [], media_id=item.id,
                                    kind=original.kind, in_point=c.in_point,
                                    source_duration=original.duration if original.kind == "video" else None)
                if item.kind == "video" and pf.edit_source(c, c.active) is not None and item.fps > 0 and c.duration > 0:
                    clip.thumb_share = min(1.0, item.frames / item.fps / c.duration)  # the rest plays as it was
                    clip.tails = self._tail_strips(c)
                if item.kind == "video" and c.active.plan:
                    # The plan that made this clip, keyframe by keyframe along it (plan scrubbing).
                    plan_path = pf.media_dir(self.work_path()) / c.active.plan
                    clip.plan_key = str(plan_path)
                    clip.plan_keyframes = self.pictures.plan_keyframe_images(plan_path) or []
                    clip.plan_frames = int(c.active.request.get("frames") or item.frames)
                    if item.fps > 0 and c.duration > 0:  # a partial edit's plan lays out its first part only
                        clip.plan_share = clip.plan_frames / item.fps / c.duration
                        if c.active.media_id == c.media_id:  # its own frames, from its in point
                            clip.plan_offset = c.in_point / c.duration
                        else:
                            clip.plan_share = min(1.0, clip.plan_share)
                    clip.plan_step = self.studio.frame_step
                clips.append(clip)
        self.timeline.view.set_clips(clips)
        self._update_title()
        if target:
            self._on_target_changed()

    def _tail_strips(self, clip) -> list[TailStrip]:
        """Where each version a partial edit plays on into shows (project_file.chain_spans): from where the
        versions before it end to where it ends (the last one to the clip's end), each with its thumbnails
        spread as on its own strip (the clip's own footage over the whole clip)."""
        project = self.document.project
        spans = pf.chain_spans(project, clip, clip.active)
        reached, strips = min(1.0, spans[0][1] / clip.duration), []
        for k, (item, seconds) in enumerate(spans[1:], start=1):
            last = k == len(spans) - 1
            span = 1.0 if item.id == clip.media_id or seconds == float("inf") else min(1.0, seconds / clip.duration)
            end = 1.0 if last else span
            if end > reached:
                thumbs = self.pictures.thumbnails(item.id, self.media_file(item.id), item.kind, item.frames) or []
                strips.append(TailStrip(item.id, span, reached, end, thumbs))
                reached = end
        return strips

    def _on_icon(self, media_id: str, icon: Any) -> None:
        self.media_bin.set_icon(media_id, icon)
        self.versions.set_icon(media_id, icon)

    def _on_thumbs(self, media_id: str, images: list) -> None:
        self.timeline.view.set_media_thumbnails(media_id, images)

    # ================================================================ selection, frames, playback
    def _on_selection_changed(self, ids: list[str]) -> None:
        first = self.document.project.clip(ids[0]) if ids and self.studio.has_clip(ids[0]) else None
        if first is not None and not first.start <= self.timeline.view.playhead < first.end:
            self.timeline.view.set_playhead(first.start)  # jump into the selected clip
        self.studio.playhead = self.timeline.view.playhead
        self.studio.set_selection(ids)
        self._on_target_changed()

    def _on_target_changed(self) -> None:
        """Everything that shows the selection, recomputed from the studio model."""
        s = self.studio
        clip = s.primary_clip()
        self.instruction.set_task(s.task, s.target_name(), s.tasks(), on_clip=len(s.selected_clips()) == 1)
        self.instruction.set_text(s.instruction)
        self.generation.set_model_loaded(s.slot.state is ModelState.READY, s.task.makes_video)
        self.generation.set_frame_step(s.frame_step, s.max_frames)
        if clip is None:
            self.versions.set_versions([], 0)
            self.viewer.set_video_mode(False)
        else:
            icons = {v.media_id: self.pictures.icons[v.media_id] for v in clip.versions
                     if v.media_id in self.pictures.icons}
            for v in clip.versions:
                self.pictures.icon(v.media_id, self.media_file(v.media_id))
            self.versions.set_versions(clip.versions, clip.active_version, s.clip_name(clip), icons)
            self.viewer.set_video_mode(self.document.clip_kind(clip.id) == "video")
        self._show_frame()

    def frame_source(self, version_offset: int = 0) -> tuple[Path, str, int] | None:
        """(file, kind, frame index) the viewer shows: the selected clip's active version (or the one
        `version_offset` before it) under the playhead; None with no clip or no such version."""
        clip = self.studio.primary_clip()
        index = clip.active_version - version_offset if clip is not None else -1
        if clip is None or index < 0:
            return None
        version = clip.versions[index]
        item = self.document.project.media_item(version.media_id)
        if item.kind == "image":
            return self.media_file(item.id), "image", 0
        seconds = min(max(self.timeline.view.playhead, clip.start), clip.end - 1e-6)
        shown, frame = pf.version_frame(self.document.project, clip, version, max(0.0, seconds - clip.start))
        return self.media_file(shown.id), "video", frame

    def _footage_aspect(self) -> float | None:
        """Width / height of the selected clip's own footage when its active version is an edit of it: the
        edit was made at the model's size (stretched), so it is shown stretched back, as it is exported
        (export.clip_frames), and the clip keeps one shape as it plays on into its footage."""
        clip = self.studio.primary_clip()
        if clip is None or clip.active.media_id == clip.media_id:
            return None
        root = pf.chain_spans(self.document.project, clip, clip.active)[-1][0]
        if root.id != clip.media_id or root.kind != "video" or root.height <= 0:
            return None
        return root.width / root.height

    def _show_frame(self) -> None:
        source = self.frame_source()
        if source is None:
            self.pictures.clear_frame()
            # Nothing selected: the plan of a new generation is drawn on a blank of the size it will have.
            self.viewer.set_target_size(self.studio.params.width, self.studio.params.height)
            return
        self.pictures.request_frame(*source)
        self.pictures.request_compare(*(self.frame_source(self.studio.plan_editing.compare_offset()) or (None,)))

    def _on_frame(self, frame: np.ndarray | None) -> None:
        aspect = self._footage_aspect() if frame is not None else None
        if aspect is not None and abs(frame.shape[1] / frame.shape[0] / aspect - 1) > 0.02:
            import cv2  # the edit stretched back to its footage's shape (its height kept)

            frame = cv2.resize(frame, (max(1, round(frame.shape[0] * aspect)), frame.shape[0]),
                               interpolation=cv2.INTER_LINEAR)
        self.last_frame = frame
        self.viewer.set_frame(frame)

    def _on_frame_failed(self, why: str) -> None:
        self._on_frame(None)
        why = self.studio.as_imported(why)
        # Said a moment later, and only if nothing of the last 10 s holds it already: scrubbing asks for frames
        # many times a second (a missing file is said once, not once per frame), and the model's read of the same
        # file, started by the same selection, says "Could not read the input 'x': <this>" (it was said twice).
        QTimer.singleShot(FRAME_FAILURE_WAIT_MS, self, lambda: self._say_frame_failure(why))

    def _say_frame_failure(self, why: str) -> None:
        if not any(why in m.text and time.time() - m.time <= 10 for m in self.messages.history[-5:]):
            self.show_message(why, WARNING)

    def _on_scrub(self, seconds: float) -> None:
        self.studio.playhead = seconds
        self._show_frame()
        self._plan_follows_playhead()

    def _plan_follows_playhead(self) -> None:
        """The plan over the viewer is the one for the frame under the playhead: for a clip, the frame's
        place in the clip the plan lays out (both start at the clip's in point, or a version's start);
        for a still, its share of the still's time on the timeline."""
        clip = self.studio.primary_clip()
        self.viewer.edit_bar.offer_keyframe_choice(clip is None)  # a new clip's plan: no clip to scrub
        if clip is None or clip.duration <= 0:
            return
        seconds = min(max(self.timeline.view.playhead, clip.start), clip.end - 1e-6) - clip.start
        item = self.document.project.media_item(clip.active.media_id)
        if item.kind == "video" and item.fps > 0 and self.studio.plan_frames > 1:
            if clip.active.media_id == clip.media_id and self.studio.plan_caption.startswith("Plan stored"):
                # The plan that made the clip's own frames lays them out from their first; the clip shows them
                # from its in point (a clip made from words, trimmed at its start, or a split's second half).
                seconds += clip.in_point
            self.viewer.set_plan_frame(int(seconds * item.fps + 1e-6), self.studio.plan_frames, self.studio.frame_step)
        else:
            self.viewer.set_time_fraction(seconds / clip.duration)

    def toggle_play(self) -> None:
        self.viewer.play_button.setChecked(not self.viewer.play_button.isChecked())

    def set_playing(self, on: bool) -> None:
        clip = self.studio.primary_clip()
        if not on or clip is None or self.document.clip_kind(clip.id) != "video":
            self.play_timer.stop()
            if on:
                self.viewer.play_button.setChecked(False)
            return
        fps = self.document.project.media_item(clip.active.media_id).fps or 24.0
        self._play_clock = (time.perf_counter(), self.timeline.view.playhead)
        self.play_timer.start(int(1000 / fps))

    def _play_tick(self) -> None:
        clip = self.studio.primary_clip()
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

    # ================================================================ plan, versions, clips
    def _on_plan_changed(self, plan: Any, caption: str) -> None:
        with self.viewer.batched_overlay():  # the plan and its frame's blend: one overlay, not two
            self.viewer.set_plan(plan, caption or None)
            self._plan_follows_playhead()
        self.instruction.set_words([w for w, _ in (plan.words[0] if plan is not None and plan.words else [])])
        if self.viewer.isVisible():
            # update, not repaint: painted with the next frame rather than inside this handler. A stored edit's
            # plan arrives while its clip plays; painted at once, it stalled the GUI 22-43 ms (3 of 6 runs over
            # 30), painted with the next frame 20-30 ms (none over), bench gui --only video, 2026-12-06.
            self.viewer.canvas.update()

    def _on_compare_changed(self) -> None:
        """A/B compares with another version ("as planned"): show it, named, side by side."""
        editing = self.studio.plan_editing
        self.viewer.set_compare_labels(*editing.compare_labels())
        self._show_frame()
        if editing.compare_index() is not None:
            self.viewer.compare_split.setChecked(True)

    def _on_version_clicked(self, index: int) -> None:
        clip = self.studio.primary_clip()
        if clip is not None and index != clip.active_version:
            self.document.push(self.document.project.set_active_version_change(clip.id, index))
            self.studio.show_version_plan(index)

    def _on_judge(self, version_id: str, verdict: Any) -> None:
        clip = self.studio.primary_clip()
        if clip is not None:
            self.document.push(self.document.project.set_accepted_change(clip.id, version_id, verdict))

    def remove_version(self, version_id: str) -> None:
        """Take a version off the selected clip, one undo step (its file stays in the project). An edit
        that plays on into it keeps it: that edit would otherwise stop at its own end."""
        clip = self.studio.primary_clip()
        if clip is None:
            return
        index = next((i for i, v in enumerate(clip.versions) if v.id == version_id), 0)
        version = clip.versions[index]
        needs = [i for i, v in enumerate(clip.versions) if v is not version and pf.edit_source(clip, v) is version]
        if needs:
            self.show_message(f"v{index} stays: v{needs[0]} is an edit of it and plays on into it past its own end. "
                              f"Remove v{needs[0]} first.", WARNING)
            return
        if any(job.edited_version == version_id for job in self.studio.active_jobs()):
            self.show_message(f"v{index} stays while a queued edit is made from it (it plays on into it); remove it "
                              f"once that edit is in, or cancel the edit.", WARNING)
            return
        try:
            self.document.push(self.document.project.remove_version_change(clip.id, version_id))
        except ProjectError as e:
            self.show_message(str(e), WARNING)
            return
        self.show_message(f"Removed v{index} from the clip (Undo brings it back).")

    def use_as_references(self, media_ids: list[str]) -> None:
        """Media-bin stills become the references of a new video: the timeline clips that show them are
        selected (a still not on the timeline yet is placed on the image track first, one undo step) and the
        task becomes "Video from references"."""
        project = self.document.project
        stills = [m for m in media_ids if m in project.media and project.media[m].kind == "image"]
        if not stills or len(stills) > MAX_REFERENCES:
            self.show_message("Select one or two stills in the Media bin to make a video from references.", WARNING)
            return
        missing = [m for m in stills if not any(c.active.media_id == m for c in project.tracks[IMAGE_TRACK])]
        if missing:
            self.imports.add_media_to_timeline(missing)
        ids = [next(c.id for c in project.tracks[IMAGE_TRACK] if c.active.media_id == m) for m in stills]
        self.timeline.view.select(ids)
        self.studio.set_task(Task.REFERENCE_TO_VIDEO)
        self._on_target_changed()

    def remove_selected_clip(self) -> None:
        if self.instruction.edit.hasFocus():
            return
        self.document.settle()  # the words just typed for a clip are in it before it is kept for the undo
        for clip in self.studio.selected_clips():
            self.document.push(self.document.project.remove_clip_change(clip.id))

    # ================================================================ settings
    def models_dialog(self):
        """The model manager (app/ui/models_dialog.py): a model chosen there applies as a settings change."""
        from app.ui.models_dialog import ModelsDialog

        dlg = ModelsDialog(self.settings, self)
        dlg.settings_accepted.connect(self.apply_settings)
        dlg.open()
        return dlg

    def settings_dialog(self) -> SettingsDialog:
        dlg = SettingsDialog(self.settings, self)
        dlg.settings_accepted.connect(self.apply_settings)
        dlg.open()
        return dlg

    def apply_settings(self, new: Settings) -> None:
        """A model folder that does not load is reported and not kept as the active one, so the next
        launch still finds the model that worked."""
        reload = (new.active_model, new.placement()) != (self.settings.active_model, self.settings.placement())
        reload_video = (new.video_model, new.placement()) != (self.settings.video_model, self.settings.placement())
        if new.active_model != self.settings.active_model:
            from app.core.checkpoints import ModelFolderError, validate_model_folder
            try:
                _refuse_wrong_kind(validate_model_folder(new.active_model), new.active_model, clips=False)
            except ModelFolderError as e:
                self.show_message(f"Bad model folder: {e} The model in use stays {self.settings.active_model}.", ERROR)
                if new.active_model in new.model_folders:
                    new.model_folders.remove(new.active_model)
                new.active_model = self.settings.active_model
                reload = new.placement() != self.settings.placement()
        if new.video_model != self.settings.video_model:
            from app.core.checkpoints import ModelFolderError, validate_model_folder
            try:
                _refuse_wrong_kind(validate_model_folder(new.video_model), new.video_model, clips=True)
            except ModelFolderError as e:
                self.show_message(f"Bad video model folder: {e} The video model stays {self.settings.video_model}.",
                                  ERROR)
                if new.video_model in new.video_model_folders:
                    new.video_model_folders.remove(new.video_model)
                new.video_model = self.settings.video_model
                reload_video = new.placement() != self.settings.placement()
        self.settings = self.studio.settings = new
        try:
            new.save()
        except OSError as e:
            self.show_message(f"Settings could not be saved: {e}", WARNING)
        if self.engine is not None:
            self.engine.set_previews(new.preview)
            self.engine.set_cpu_threads(studio_cpu_threads(new.cpu_threads))
            if reload:
                self.studio.load_model(new.active_model)
            if reload_video:
                self.studio.forget_video_model()  # loaded again now if a video task had asked for it


def _refuse_wrong_kind(index: dict, folder: str, clips: bool) -> None:
    """ModelFolderError when a model folder's index says its model makes none of the slot's kind (a stills model
    set as the video model was kept and saved, and said only when a clip was asked for). A folder that does not
    say its tasks (a real checkpoint assembled) is judged when it loads."""
    from app.core.checkpoints import ModelFolderError
    from app.core.request import Task

    tasks = (index.get("defaults") or {}).get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return
    known = [Task(t) for t in tasks if t in {k.value for k in Task}]
    if known and not any(t.makes_video == clips for t in known):
        does = ", ".join(t.value.replace("_", " ") for t in known)
        raise ModelFolderError(f"'{Path(folder).name}' makes no {'clips' if clips else 'pictures'} (it does: {does}).")


# ==================================================================== worker functions (no Qt)
def _prewarm() -> None:
    import av  # noqa: F401
    import cv2  # noqa: F401
    import PIL.Image  # noqa: F401

    import app.media.export  # noqa: F401
    import app.media.probe  # noqa: F401


def _version_names(project) -> dict[str, str]:
    """The media bin's names for generated versions: "photo.png — v2" (the clip's name and the version's number, as
    the versions panel counts them) rather than the file's own name in the media folder ("result-f60f18c3.png")."""
    names: dict[str, str] = {}
    originals = {clip.versions[0].media_id for clips in project.tracks.values() for clip in clips if clip.versions}
    for clips in project.tracks.values():
        for clip in clips:
            base = project.media[clip.media_id].name if clip.media_id in project.media else ""
            for k, version in enumerate(clip.versions[1:], 1):
                if base and version.media_id not in originals:  # a picture imported on its own keeps its name
                    names.setdefault(version.media_id, f"{base} — v{k}")
    return names
