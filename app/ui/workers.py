"""Work that must not run on the GUI thread: decoding thumbnails and frames, exporting, autosaving.

Everything here runs a plain Python callable on a QThreadPool and reports back through a `_Relay`
QObject created on the GUI thread, so results arrive as queued signals on the GUI thread and widgets
are only ever touched there.
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(object)
    error = Signal(object)  # the exception
    progress = Signal(object)


class Task(QRunnable):
    """Runs `fn(*args)` in a pool; `fn` may take a `report` keyword to send progress to the GUI."""

    def __init__(self, fn: Callable[..., Any], *args: Any, wants_progress: bool = False) -> None:
        super().__init__()
        self.fn, self.args, self.wants_progress = fn, args, wants_progress
        self.relay = _Relay()
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            if self.wants_progress:
                result = self.fn(*self.args, report=self.relay.progress.emit)
            else:
                result = self.fn(*self.args)
        except BaseException as exc:  # the pool thread must never die on a bad file
            log.debug("background task failed: %s", traceback.format_exc())
            self.relay.error.emit(exc)
            return
        self.relay.done.emit(result)


def run_task(pool: QThreadPool, fn: Callable[..., Any], *args: Any,
             on_done: Callable[[Any], None] | None = None, on_error: Callable[[BaseException], None] | None = None,
             on_progress: Callable[[Any], None] | None = None, owner: QObject | None = None) -> Task:
    task = Task(fn, *args, wants_progress=on_progress is not None)
    relay = task.relay
    # The relay must outlive the runnable (auto-deleted) until its queued signals are delivered:
    # parenting it to a GUI object keeps the Python wrapper and the C++ object alive.
    if owner is not None:
        relay.setParent(owner)
    if on_done is not None:
        relay.done.connect(on_done)
    if on_error is not None:
        relay.error.connect(on_error)
    if on_progress is not None:
        relay.progress.connect(on_progress)

    def _cleanup(*_: Any) -> None:
        relay.deleteLater()
    relay.done.connect(_cleanup)
    relay.error.connect(_cleanup)
    pool.start(task)
    return task


class LatestOnly(QObject):
    """Runs at most one decode at a time and only the newest request after it (latest request wins).

    Scrubbing asks for dozens of frames a second; decoding each would pile up seconds of stale work.
    Requests made while one is decoding overwrite each other; only the last starts when the decoder
    is free, and a result that is no longer the newest request is dropped.
    """

    ready = Signal(object, object)  # key, result
    failed = Signal(object, object)  # key, exception

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._busy = False
        self._pending: tuple[Any, Callable[[], Any]] | None = None
        self._latest_key: Any = None

    def request(self, key: Any, fn: Callable[[], Any]) -> None:
        self._latest_key = key
        if self._busy:
            self._pending = (key, fn)
            return
        self._start(key, fn)

    def _start(self, key: Any, fn: Callable[[], Any]) -> None:
        self._busy = True
        run_task(self.pool, fn, on_done=lambda r, k=key: self._finish(k, r, None),
                 on_error=lambda e, k=key: self._finish(k, None, e), owner=self)

    def _finish(self, key: Any, result: Any, error: BaseException | None) -> None:
        self._busy = False
        if key == self._latest_key:
            if error is None:
                self.ready.emit(key, result)
            else:
                self.failed.emit(key, error)
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(*pending)

    @property
    def busy(self) -> bool:
        return self._busy

    def wait(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)


class CancelFlag:
    """Shared between the GUI (sets it) and a worker (checks it between frames)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
