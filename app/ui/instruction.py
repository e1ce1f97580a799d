"""The instruction box: what the user asks for, the task the studio chose from the selection (shown,
never hidden), and the instruction's words as buttons that show where the plan puts each one.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from app.core.request import Task


def choose_task(kinds: list[str], make_video: bool) -> Task:
    """The task implied by the selected clips' kinds ("image"/"video") and the "make a video" toggle.

    One rule table, so the label the user sees and the request that is sent can never disagree.
    """
    images = [k for k in kinds if k == "image"]
    videos = [k for k in kinds if k == "video"]
    if videos:
        return Task.VIDEO_EDIT
    if len(images) >= 2:
        return Task.REFERENCE_TO_VIDEO
    if len(images) == 1:
        return Task.IMAGE_TO_VIDEO if make_video else Task.IMAGE_EDIT
    return Task.TEXT_TO_VIDEO if make_video else Task.TEXT_TO_IMAGE


TASK_HINTS = {
    Task.TEXT_TO_IMAGE: "Describe a new image, e.g. “a red circle on the left”",
    Task.TEXT_TO_VIDEO: "Describe a new clip, e.g. “a blue square moves to the right”",
    Task.IMAGE_EDIT: "Say how to change the selected image, e.g. “make the circle green”",
    Task.IMAGE_TO_VIDEO: "Say how the selected image should move, e.g. “the ball rolls to the right”",
    Task.VIDEO_EDIT: "Say how to change the selected clip, e.g. “make the square red”",
    Task.REFERENCE_TO_VIDEO: "Describe a clip using the selected reference images",
}


class InstructionBox(QWidget):
    """Emits `instruction_changed(text)` on every keystroke (the window debounces) and `word_clicked`."""

    instruction_changed = Signal(str)
    word_clicked = Signal(int)  # index into plan.words[0]; -1 shows the whole plan again
    make_video_changed = Signal(bool)
    submit = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task_label = QLabel(self)
        self.task_label.setObjectName("taskLabel")
        self.target_label = QLabel(self)
        self.target_label.setObjectName("targetLabel")
        self.make_video = QCheckBox("Make a video", self)
        self.make_video.setToolTip("With no clip selected: text-to-video instead of text-to-image.\n"
                                   "With one image selected: image-to-video instead of an edit.")
        self.make_video.toggled.connect(self.make_video_changed)
        self.edit = QPlainTextEdit(self)
        self.edit.setObjectName("instructionEdit")
        self.edit.setFixedHeight(64)
        self.edit.textChanged.connect(lambda: self.instruction_changed.emit(self.text()))
        self.words_row = QHBoxLayout()
        self.words_row.setContentsMargins(0, 0, 0, 0)
        self.words_row.setSpacing(3)
        self.word_buttons: list[QPushButton] = []
        self.words_hint = QLabel("Plan words: click one to see where the plan puts it", self)
        self.words_hint.setObjectName("hint")

        head = QHBoxLayout()
        head.addWidget(QLabel("Task:", self))
        head.addWidget(self.task_label)
        head.addWidget(self.target_label, 1)
        head.addWidget(self.make_video)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(head)
        lay.addWidget(self.edit)
        lay.addWidget(self.words_hint)
        lay.addLayout(self.words_row)
        self.task = Task.TEXT_TO_IMAGE
        self.set_task(Task.TEXT_TO_IMAGE, "new generation")

    def text(self) -> str:
        return self.edit.toPlainText().strip()

    def set_text(self, text: str) -> None:
        self.edit.setPlainText(text)

    def set_task(self, task: Task, target: str) -> None:
        self.task = task
        self.task_label.setText(task.label)
        self.target_label.setText(f"— {target}")
        self.edit.setPlaceholderText(TASK_HINTS[task])
        # The toggle means something only where a choice exists.
        self.make_video.setEnabled(task in (Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO, Task.IMAGE_EDIT, Task.IMAGE_TO_VIDEO))

    def set_words(self, words: list[str]) -> None:
        """One button per instruction word of the current plan (plan.words[0])."""
        if [b.text() for b in self.word_buttons] == words:
            return
        for b in self.word_buttons:
            self.words_row.removeWidget(b)
            b.deleteLater()
        self.word_buttons = []
        for i, w in enumerate(words):
            b = QPushButton(w, self)
            b.setCheckable(True)
            b.setObjectName("wordButton")
            b.clicked.connect(lambda checked, i=i: self._on_word(i, checked))
            self.words_row.insertWidget(i, b)
            self.word_buttons.append(b)
        if not self.words_row.count() or self.words_row.itemAt(self.words_row.count() - 1).widget() is not None:
            self.words_row.addStretch(1)

    def _on_word(self, index: int, checked: bool) -> None:
        for i, b in enumerate(self.word_buttons):
            if i != index:
                b.setChecked(False)
        self.word_clicked.emit(index if checked else -1)

    def keyPressEvent(self, e: Any) -> None:  # noqa: N802
        super().keyPressEvent(e)


class Debouncer(QTimer):
    """Coalesces bursts (keystrokes) into one call `interval` ms after the last one."""

    def __init__(self, interval_ms: int, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSingleShot(True)
        self.setInterval(interval_ms)

    def poke(self) -> None:
        self.start()  # restarting a running single-shot timer pushes the deadline back
