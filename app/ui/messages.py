"""The one path every user-facing message takes.

Errors (a corrupt file, a bad model folder, out of memory, a cancelled job) all go through
`MessageCenter.post`, so the status bar, the in-window banner and the tests see the same thing, and no
modal dialog can ever block an event loop (a modal box during a test hangs CI; during generation it
hides the progress the user is waiting on).
"""
from __future__ import annotations

from dataclasses import dataclass
import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QStatusBar, QWidget

INFO, WARNING, ERROR = "info", "warning", "error"


@dataclass
class Message:
    level: str
    text: str
    time: float


class MessageCenter(QObject):
    posted = Signal(str, str)  # level, text

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history: list[Message] = []

    def post(self, text: str, level: str = INFO) -> None:
        self.history.append(Message(level, text, time.time()))
        self.posted.emit(level, text)

    def errors(self) -> list[str]:
        return [m.text for m in self.history if m.level == ERROR]


class MessageBanner(QFrame):
    """A non-modal strip at the top of the window: shows the last warning/error until dismissed or timed out."""

    TIMEOUT_MS = 8000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton(self)
        self.action_button.hide()
        self.action_button.clicked.connect(self._run_action)
        self._action = None
        self._of_project = False
        close = QPushButton("Dismiss", self)
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action_button)
        lay.addWidget(close)
        self._timer = QTimer(self, singleShot=True, interval=self.TIMEOUT_MS)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        self.setProperty("level", level)
        # Re-polish so the QSS [level="error"] selector picks the new property up.
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        self.action_button.hide()
        self._action = None
        self.show()
        self._timer.start()

    def show_action(self, text: str, button: str, action, of_project: bool = False) -> None:
        """A question that waits for the user without blocking anything (e.g. "Recover?"). `of_project`: the
        offer acts on the open project (a retry of its job) and goes when that project is closed."""
        self.show_message("warning", text)
        self._timer.stop()  # an offer stays until answered or dismissed
        self._action = action
        self._of_project = of_project
        self.action_button.setText(button)
        self.action_button.show()

    def drop_project_action(self) -> None:
        """The project was closed: an offer that acts on it no longer holds (hidden, its button gone). Others
        stay: the startup offer to recover a crashed session's work is not the open project's to take away."""
        if self._action is not None and self._of_project:
            self._action = None
            self.action_button.hide()
            self.hide()

    def _run_action(self) -> None:
        action, self._action = self._action, None
        self.hide()
        if action is not None:
            action()


def connect_status_bar(center: MessageCenter, bar: QStatusBar, banner: MessageBanner) -> None:
    def on_post(level: str, text: str) -> None:
        bar.showMessage(text, 10000 if level == INFO else 20000)
        if level != INFO:
            banner.show_message(level, text)
    center.posted.connect(on_post)
