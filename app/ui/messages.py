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
    """A non-modal strip at the top of the window: shows the last warning/error until dismissed or timed out.

    An offer (a question with a button: Recover, Save As…, Try seed N) waits for its answer: a message posted
    after it shows for its while and then gives the strip back to the offer, which a warning used to replace for
    good (a result the project folder could not take lost its Save As to the next import warning)."""

    TIMEOUT_MS = 8000
    MAX_OFFERS = 5  # the newest; an older one beyond them is dropped

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton(self)
        self.action_button.hide()
        self.action_button.clicked.connect(self._run_action)
        # (text, button, action, of the project, still holds: a callable or None), newest last
        self._offers: list[tuple[str, str, object, bool, object]] = []
        self._showing_offer = False
        self.dismiss_button = QPushButton("Dismiss", self)
        self.dismiss_button.clicked.connect(self._dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action_button)
        lay.addWidget(self.dismiss_button)
        self._timer = QTimer(self, singleShot=True, interval=self.TIMEOUT_MS)
        self._timer.timeout.connect(self._show_next)
        self.hide()

    @property
    def _action(self):
        """The action of the offer shown (None while a message or nothing is shown)."""
        return self._offers[-1][2] if self._showing_offer and self._offers else None

    def show_message(self, level: str, text: str) -> None:
        self._show(level, text)
        self.action_button.hide()
        self._showing_offer = False
        self._timer.start()

    def _show(self, level: str, text: str) -> None:
        self.setProperty("level", level)
        # Re-polish so the QSS [level="error"] selector picks the new property up.
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        self.show()

    def show_action(self, text: str, button: str, action, of_project: bool = False, holds=None) -> None:
        """A question that waits for the user without blocking anything (e.g. "Recover?"). `of_project`: the
        offer acts on the open project (a retry of its job) and goes when that project is closed. `holds`: asked
        before the offer comes back from under a later message; False drops it (a Save As for results that have
        been saved since). An offer with the same button as one still waiting takes its place (the newer words say
        more)."""
        self._offers = [o for o in self._offers if o[1] != button][-(self.MAX_OFFERS - 1):]
        self._offers.append((text, button, action, of_project, holds))
        self._show_offer()

    def _show_offer(self) -> None:
        text, button = self._offers[-1][:2]
        self._timer.stop()  # an offer stays until answered or dismissed
        self._show("warning", text)
        self.action_button.setText(button)
        self.action_button.show()
        self._showing_offer = True

    def _show_next(self) -> None:
        """The message's while is over (or it was dismissed): an offer still waiting, and still holding, comes
        back, else the strip hides."""
        self._offers = [o for o in self._offers if o[4] is None or o[4]()]
        if self._offers:
            self._show_offer()
        else:
            self._showing_offer = False
            self.action_button.hide()
            self.hide()

    def _dismiss(self) -> None:
        if self._showing_offer and self._offers:
            self._offers.pop()  # the offer shown is answered "no"
        self._timer.stop()
        self._show_next()

    def drop_project_action(self) -> None:
        """The project was closed: an offer that acts on it no longer holds (its button gone). Others stay: the
        startup offer to recover a crashed session's work is not the open project's to take away."""
        kept = [o for o in self._offers if not o[3]]
        if len(kept) == len(self._offers):
            return
        self._offers = kept
        if self._showing_offer:
            self._show_next()

    def _run_action(self) -> None:
        action = self._action
        if self._showing_offer and self._offers:
            self._offers.pop()
        self._show_next()
        if action is not None:
            action()


def connect_status_bar(center: MessageCenter, bar: QStatusBar, banner: MessageBanner) -> None:
    def on_post(level: str, text: str) -> None:
        bar.showMessage(text, 10000 if level == INFO else 20000)
        if level != INFO:
            banner.show_message(level, text)
    center.posted.connect(on_post)
