"""Generation settings (seed, steps, guidance, size, frames), Generate / Cancel, and the job queue.

The queue list mirrors the engine: the window tells it about submitted, running and ended jobs by id,
and "Cancel selected" cancels exactly the selected id, so cancel can never hit the wrong job.
"""
from __future__ import annotations

import random

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)


class GenerationPanel(QWidget):
    generate_clicked = Signal()
    cancel_clicked = Signal()  # cancel the running job
    cancel_job = Signal(int)  # cancel one queued job by id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.random_seed = QCheckBox("Random", self)
        self.random_seed.setToolTip("A new seed for every generation (the seed used is stored with the version)")
        self.steps = QSpinBox(self)
        self.steps.setRange(1, 200)
        self.steps.setValue(20)
        self.guidance = QDoubleSpinBox(self)
        self.guidance.setRange(1.0, 20.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setValue(3.0)
        self.width_box = QSpinBox(self)
        self.height_box = QSpinBox(self)
        for box in (self.width_box, self.height_box):
            # even sizes: H.264 with yuv420p cannot encode odd widths or heights
            box.setRange(16, 2048)
            box.setSingleStep(16)
            box.setValue(32)
        self.frames = QSpinBox(self)
        self.frames.setRange(1, 257)
        self.frames.setValue(8)
        self.frames.setToolTip("Frames of a generated video (stills always have 1)")

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

    def apply_model_defaults(self, defaults) -> None:
        """Start from what the loaded model was trained for (its size, steps and guidance)."""
        self.width_box.setValue(int(defaults.width))
        self.height_box.setValue(int(defaults.height))
        self.steps.setValue(int(defaults.steps))
        self.guidance.setValue(float(defaults.guidance))
        lo, hi = defaults.guidance_interval
        where = "at every step" if (lo, hi) == (0.0, 1.0) else f"at noise levels {lo:g} to {hi:g} (1 = pure noise) only"
        self.guidance.setToolTip(f"Classifier-free guidance scale; this model applies it {where}")

    def next_seed(self) -> int:
        """The seed for the next request; a random one is written back so the user sees what ran."""
        if self.random_seed.isChecked():
            self.seed.setValue(random.randrange(0, 2**31 - 1))
        return self.seed.value()

    # -- queue mirror --------------------------------------------------------------------------------
    def _item(self, job_id: int) -> QListWidgetItem | None:
        for i in range(self.queue.count()):
            it = self.queue.item(i)
            if it.data(Qt.ItemDataRole.UserRole) == job_id:
                return it
        return None

    def add_job(self, job_id: int, description: str) -> None:
        it = QListWidgetItem(f"#{job_id} queued — {description}")
        it.setData(Qt.ItemDataRole.UserRole, job_id)
        it.setData(Qt.ItemDataRole.UserRole + 1, description)
        self.queue.addItem(it)

    def set_job_running(self, job_id: int) -> None:
        it = self._item(job_id)
        if it is not None:
            it.setText(f"#{job_id} running — {it.data(Qt.ItemDataRole.UserRole + 1)}")

    def remove_job(self, job_id: int) -> None:
        it = self._item(job_id)
        if it is not None:
            self.queue.takeItem(self.queue.row(it))

    def job_ids(self) -> list[int]:
        return [self.queue.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.queue.count())]

    def select_job(self, job_id: int) -> None:
        it = self._item(job_id)
        if it is not None:
            self.queue.setCurrentItem(it)

    def _cancel_selected(self) -> None:
        it = self.queue.currentItem()
        if it is not None:
            self.cancel_job.emit(int(it.data(Qt.ItemDataRole.UserRole)))

    def set_progress(self, step: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(step)
        self.progress.setFormat(f"step {step}/{total}")

    def set_idle(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
