"""Generation settings (seed, steps, guidance, size, frames), Generate / Cancel, and the job queue.

It shows the studio model's `Params` and jobs and reports edits back (`param_changed`); the queue
list is rebuilt from the model's jobs by id, and "Cancel selected" cancels exactly the selected id,
so cancel can never hit the wrong job.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.ui.studio_state import JobState

NOT_LOADED_TEXT = "…"  # what a model setting shows until the model that owns it has loaded


class _BlankUntilLoaded:
    """A spin box that shows NOT_LOADED_TEXT instead of its number while `blank`: the number it holds
    then is a placeholder (or settings kept for the model being loaded), not the model's own."""
    blank = False

    def textFromValue(self, value):  # noqa: N802 (Qt's name)
        return NOT_LOADED_TEXT if self.blank else super().textFromValue(value)

    def set_blank(self, blank: bool) -> None:
        if blank != self.blank:
            self.blank = blank
            self.setSpecialValueText(self.specialValueText())  # Qt redraws the text only on this or a new value
            self.updateGeometry()  # its size hint was worked out for the other text


class _ModelSpinBox(_BlankUntilLoaded, QSpinBox):
    pass


class _ModelDoubleSpinBox(_BlankUntilLoaded, QDoubleSpinBox):
    pass


class GenerationPanel(QWidget):
    generate_clicked = Signal()
    cancel_clicked = Signal()  # cancel the running job
    cancel_job = Signal(int)  # cancel one queued job by id
    param_changed = Signal(str, object)  # Params field name, new value
    FRAMES_REACH = 257  # the Frames box's reach while no model says its own longest clip

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.random_seed = QCheckBox("Random", self)
        self.random_seed.setToolTip("A new seed for every generation (the seed used is stored with the version)")
        self.steps = _ModelSpinBox(self)
        self.steps.setRange(1, 200)
        self.steps.setValue(20)
        self.guidance = _ModelDoubleSpinBox(self)
        self.guidance.setRange(1.0, 20.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setValue(3.0)
        self.width_box = _ModelSpinBox(self)
        self.height_box = _ModelSpinBox(self)
        for box in (self.width_box, self.height_box):
            # even sizes: H.264 with yuv420p cannot encode odd widths or heights
            box.setRange(16, 2048)
            box.setSingleStep(16)
            box.setValue(32)
        self.frames = _ModelSpinBox(self)
        self.frames.setRange(1, self.FRAMES_REACH)
        self.frames.setValue(8)
        self.frames.setToolTip("Frames of a generated video (stills always have 1)")
        for name, box in (("seed", self.seed), ("steps", self.steps), ("guidance", self.guidance),
                          ("width", self.width_box), ("height", self.height_box), ("frames", self.frames)):
            box.valueChanged.connect(lambda v, n=name: self.param_changed.emit(n, v))
        self.random_seed.toggled.connect(lambda on: self.param_changed.emit("random_seed", on))
        self.set_model_loaded(False, makes_video=False)  # no model yet

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_box)
        size_row.addWidget(QLabel("×", self))
        size_row.addWidget(self.height_box)
        form = QFormLayout()
        form.addRow("Seed", seed_row)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Size", size_row)
        form.addRow("Frames", self.frames)

        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setToolTip("Generate a new version (Ctrl+Enter)")
        self.generate_button.clicked.connect(self.generate_clicked)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.cancel_button.clicked.connect(self.cancel_clicked)
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")

        self.queue = QListWidget(self)
        self.queue.setObjectName("queueList")
        self.queue.setMaximumHeight(110)
        self.cancel_selected = QPushButton("Cancel selected job", self)
        self.cancel_selected.clicked.connect(self._cancel_selected)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(QLabel("Queue", self))
        lay.addWidget(self.queue)
        lay.addWidget(self.cancel_selected)
        lay.addStretch(1)

    def show_params(self, params) -> None:
        """Show the studio model's Params (model defaults, "use these settings again") without echoing."""
        for box, value in ((self.seed, params.seed), (self.steps, params.steps), (self.guidance, params.guidance),
                           (self.width_box, params.width), (self.height_box, params.height),
                           (self.frames, params.frames), (self.random_seed, params.random_seed)):
            box.blockSignals(True)
            box.setChecked(value) if box is self.random_seed else box.setValue(value)
            box.blockSignals(False)

    def set_model_loaded(self, loaded: bool, makes_video: bool) -> None:
        """The model's settings (steps, guidance, size, frames) are its own once it loads and replace what
        is shown: until then they are greyed out and show no number, so nothing typed is silently replaced
        and no placeholder or other model's numbers pass for its own. Frames only for a video task."""
        for box in (self.steps, self.guidance, self.width_box, self.height_box, self.frames):
            box.setEnabled(loaded and (makes_video or box is not self.frames))
            box.set_blank(not loaded)  # no number until the model's own replace the placeholders

    def set_frame_step(self, step: int, most: int = 0) -> None:
        """A video model makes clips of 1 + a multiple of `step` frames: the arrows step through those, and
        stop at `most`, the longest clip it makes (0: it does not say), so the box never offers a length the
        model would refuse."""
        step = max(1, int(step))
        self.frames.setSingleStep(step)
        self.frames.setMaximum(int(most) if most > 0 else self.FRAMES_REACH)
        self.frames.setToolTip("Frames of a generated video (stills always have 1); a video edit edits at most "
                               "this many frames of the clip." + (f" This model makes clips of 1 + a multiple of "
                                                                 f"{step} frames; other numbers are rounded to the "
                                                                 f"nearest." if step > 1 else ""))

    def describe_guidance(self, interval: tuple[float, float]) -> None:
        lo, hi = interval
        where = "at every step" if (lo, hi) == (0.0, 1.0) else f"at noise levels {lo:g} to {hi:g} (1 = pure noise) only"
        self.guidance.setToolTip(f"Classifier-free guidance scale; this model applies it {where}")

    # -- queue mirror --------------------------------------------------------------------------------
    def show_jobs(self, jobs: list) -> None:
        """`jobs`: the studio model's active Jobs (queued or running), in submission order."""
        selected = self.queue.currentItem().data(Qt.ItemDataRole.UserRole) if self.queue.currentItem() else None
        self.queue.clear()
        for job in jobs:
            it = QListWidgetItem(f"#{job.id} {job.state.value} — {job.description}")
            it.setData(Qt.ItemDataRole.UserRole, job.id)
            self.queue.addItem(it)
            if job.id == selected:
                self.queue.setCurrentItem(it)
        running = next((j for j in jobs if j.state is JobState.RUNNING), None)
        if running is not None and running.total:
            self.progress.setRange(0, running.total)
            self.progress.setValue(running.step)
            self.progress.setFormat(f"job #{running.id}: step {running.step}/{running.total}")
        elif running is not None or jobs:
            self.progress.setRange(0, 0)  # busy: planning, or waiting for the engine to take the job
            self.progress.setFormat(f"job #{running.id}: planning…" if running is not None else "queued…")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("idle")
        self.cancel_button.setEnabled(bool(jobs))
        self.cancel_selected.setEnabled(bool(jobs))

    def job_ids(self) -> list[int]:
        return [self.queue.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.queue.count())]

    def select_job(self, job_id: int) -> None:
        for i in range(self.queue.count()):
            if self.queue.item(i).data(Qt.ItemDataRole.UserRole) == job_id:
                self.queue.setCurrentRow(i)

    def _cancel_selected(self) -> None:
        it = self.queue.currentItem()
        if it is not None:
            self.cancel_job.emit(int(it.data(Qt.ItemDataRole.UserRole)))
