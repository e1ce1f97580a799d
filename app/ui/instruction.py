"""The instruction box: what the user asks for, the task for the selection (shown and chosen here,
per clip: the studio model remembers each clip's own), why there is no plan yet, and the
instruction's words as buttons that show where the plan puts each one.
"""
from __future__ import annotations


from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QScrollArea,
                               QVBoxLayout, QWidget)

from app.core.request import Task
from app.ui.studio_state import TASK_NAMES


# Word buttons drawn at most (a pasted page of words plans whole; a row of thousands of buttons helps nobody and took
# seconds to lay out).
MAX_WORD_BUTTONS = 120
TASK_HINTS = {
    Task.TEXT_TO_IMAGE: "Describe a new image, e.g. “a red circle on the left”",
    Task.TEXT_TO_VIDEO: "Describe a new clip, e.g. “a blue square moves to the right”",
    Task.IMAGE_EDIT: "Say how to change the selected image, e.g. “make the circle green”",
    Task.IMAGE_TO_VIDEO: "Say how the selected image should move, naming what moves as it looks, e.g. "
                         "“the red circle moves to the right”",
    Task.VIDEO_EDIT: "Say how to change the selected clip, e.g. “make the square red”",
    Task.REFERENCE_TO_VIDEO: "Describe a clip with the selected stills, e.g. “the circle from the first image "
                             "moves right and the star from the second image moves left”",
}

# How to get a video from references, said where the instruction is typed: the selection is the picker.
REFERENCES_HINT = ("Video from references: Ctrl+click one or two stills on the timeline, or select them in the "
                   "Media bin and press “Use as references”.")


class InstructionBox(QWidget):
    """Emits `instruction_changed(text)` on every keystroke (the studio model debounces), `task_chosen`
    and `word_clicked`."""

    instruction_changed = Signal(str)
    word_clicked = Signal(int)  # index into plan.words[0]; -1 shows the whole plan again
    task_chosen = Signal(object)  # Task

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task_box = QComboBox(self)
        self.task_box.setObjectName("taskBox")
        # Its choices change with the selection ("Remake from words" after "New image"): sized to each set, not to
        # the first one shown (the default), which cut the longer names short ("Remake fro").
        self.task_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.task_box.setToolTip("What Generate does with the selection. Each clip keeps its own choice.")
        self.task_box.activated.connect(lambda i: self.task_chosen.emit(Task(self.task_box.itemData(i))))
        self.target_label = QLabel(self)
        self.target_label.setObjectName("targetLabel")
        self.edit = QPlainTextEdit(self)
        self.edit.setObjectName("instructionEdit")
        self.edit.setFixedHeight(64)
        self.edit.textChanged.connect(lambda: self.instruction_changed.emit(self.text()))
        self.references_hint = QLabel(REFERENCES_HINT, self)
        self.references_hint.setObjectName("hint")
        self.references_hint.setWordWrap(True)
        self.problem = QLabel("", self)
        self.problem.setObjectName("planProblem")
        self.problem.setWordWrap(True)
        self.problem.setVisible(False)
        # The plan's words scroll sideways in a row of fixed height: laid out in the panel, a long instruction's
        # buttons made the whole window wider (and relaid out every dock: 60 ms a plan, 2.2 s for a pasted page).
        self.words_area = QScrollArea(self)
        self.words_area.setFrameShape(QFrame.Shape.NoFrame)
        self.words_area.setWidgetResizable(True)
        self.words_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.words_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        words = QWidget(self.words_area)
        self.words_row = QHBoxLayout(words)
        self.words_row.setContentsMargins(0, 0, 0, 0)
        self.words_row.setSpacing(3)
        self.words_area.setWidget(words)
        self.words_area.setFixedHeight(QPushButton("word").sizeHint().height()
                                       + self.words_area.horizontalScrollBar().sizeHint().height() + 2)
        self.word_buttons: list[QPushButton] = []
        self.more_words = QLabel("", words)  # "+N more words": past MAX_WORD_BUTTONS, said rather than drawn
        self.more_words.setObjectName("hint")
        self.words_hint = QLabel("Plan words: click one to see where the plan puts it", self)
        self.words_hint.setObjectName("hint")

        head = QHBoxLayout()
        head.addWidget(QLabel("Task:", self))
        head.addWidget(self.task_box)
        head.addWidget(self.target_label, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(head)
        lay.addWidget(self.edit)
        lay.addWidget(self.references_hint)
        lay.addWidget(self.problem)
        lay.addWidget(self.words_hint)
        lay.addWidget(self.words_area)
        self.task = Task.TEXT_TO_IMAGE
        self.set_task(Task.TEXT_TO_IMAGE, "new generation", [Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO])

    def text(self) -> str:
        return self.edit.toPlainText().strip()

    def set_text(self, text: str) -> None:
        """Show `text` (the target's own instruction); a no-op when it is already shown, so the cursor
        stays where the user is typing."""
        if self.edit.toPlainText().strip() != text.strip():
            self.edit.setPlainText(text)
            self.edit.moveCursor(QTextCursor.MoveOperation.End)  # typing goes on after the words, not before them

    def set_task(self, task: Task, target: str, choices: list[Task] | None = None, on_clip: bool = False) -> None:
        """`on_clip`: one clip is the target, so making it again from words adds a version to it (named
        so: "New video" there would promise a clip of its own)."""
        self.task = task
        choices = choices or [task]
        self.task_box.blockSignals(True)
        self.task_box.clear()
        for t in choices:
            name = "Remake from words" if on_clip and t in (Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO) else TASK_NAMES[t]
            self.task_box.addItem(name, t.value)  # Qt keeps str-enums as plain str
        self.task_box.setCurrentIndex(choices.index(task) if task in choices else 0)
        self.task_box.setEnabled(len(choices) > 1)
        self.task_box.blockSignals(False)
        self.target_label.setText(f"— {target}")
        self.edit.setPlaceholderText("Describe it again: a new version of the selected clip from these words"
                                     if on_clip and task in (Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO) else TASK_HINTS[task])
        # Shown where references are one click away (nothing or one still selected) or in use.
        self.references_hint.setVisible(Task.REFERENCE_TO_VIDEO in choices or Task.TEXT_TO_VIDEO in choices
                                        and Task.VIDEO_EDIT not in choices)

    def chosen_task(self) -> Task:
        return Task(self.task_box.currentData())

    def set_problem(self, text: str) -> None:
        """Why there is no plan for what is typed ('' hides it); the model says it once typing pauses."""
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def set_words(self, words: list[str]) -> None:
        """One button per instruction word of the current plan (plan.words[0]), the first MAX_WORD_BUTTONS of them."""
        more = max(0, len(words) - MAX_WORD_BUTTONS)
        words = words[:MAX_WORD_BUTTONS]
        label = f"+{more} more word{'s' if more != 1 else ''}"
        if [b.text() for b in self.word_buttons] == words and self.more_words.isVisibleTo(self) == bool(more) \
                and (not more or self.more_words.text() == label):
            return
        for b in self.word_buttons:
            self.words_row.removeWidget(b)
            b.deleteLater()
        self.word_buttons = []
        self.words_row.removeWidget(self.more_words)
        parent = self.words_area.widget()
        for i, w in enumerate(words):
            b = QPushButton(w, parent)
            b.setCheckable(True)
            b.setObjectName("wordButton")
            b.clicked.connect(lambda checked, i=i: self._on_word(i, checked))
            self.words_row.insertWidget(i, b)
            self.word_buttons.append(b)
        self.more_words.setText(label)
        self.more_words.setVisible(bool(more))
        self.words_row.insertWidget(len(words), self.more_words)
        if self.words_row.itemAt(self.words_row.count() - 1).widget() is not None:
            self.words_row.addStretch(1)

    def _on_word(self, index: int, checked: bool) -> None:
        for i, b in enumerate(self.word_buttons):
            if i != index:
                b.setChecked(False)
        self.word_clicked.emit(index if checked else -1)
