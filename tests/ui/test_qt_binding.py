"""The Qt binding the studio runs on keeps Python's reference counts: a binding that drops a reference to None on
every call (PySide6 6.12.0) aborts the studio after minutes of playback on Python 3.11 ("none_dealloc")."""
from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget


def test_qt_calls_and_paints_keep_nones_reference_count(qtbot):
    """A widget's void setter called 2,000 times and 500 Python paint events, as playback makes them: None's
    reference count stays where it was (within a little noise), where PySide6 6.12.0 lost one per call."""
    class Painted(QWidget):
        painted = 0

        def paintEvent(self, event):  # noqa: N802 - Qt's name
            Painted.painted += 1

    w = Painted()
    qtbot.addWidget(w)
    w.show()
    before = sys.getrefcount(None)
    for _ in range(2000):
        w.setToolTip("x")
    timer = QTimer()
    timer.timeout.connect(w.update)
    timer.start(0)
    qtbot.waitUntil(lambda: Painted.painted >= 500, timeout=30_000)
    timer.stop()
    lost = before - sys.getrefcount(None)
    assert lost < 200, f"None lost {lost} references in 2,000 Qt calls and {Painted.painted} paints"
