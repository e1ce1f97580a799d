"""Shared pieces of the UI tests: building the real window and waiting on it like a user would."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import REPO_ROOT, Settings

SAMPLES = REPO_ROOT / "resources" / "samples"
SAMPLE_IMAGE = SAMPLES / "red_circle_64.png"
SAMPLE_VIDEO = SAMPLES / "ball_rolls_right.mp4"
MODEL = REPO_ROOT / "models" / "metacanvas-shapes"


def make_window(qtbot, tmp_path: Path, start_engine: bool = False, model_path: str | None = None,
                video_model: str | None = None, **kw):
    from app.ui.main_window import MainWindow

    settings = Settings(autosave_minutes=0)
    if video_model is not None:
        settings.video_model = video_model
    w = MainWindow(settings=settings, model_path=model_path, data_root=tmp_path / "data",
                   recovery_root=tmp_path / "recovery", start_engine=start_engine, **kw)
    qtbot.addWidget(w)
    w.show()
    return w


def import_and_wait(qtbot, w, path: Path, timeout: int = 10000) -> str:
    """Import one file the way the Import dialog does and return the new clip's id."""
    before = {c.id for clips in w.document.project.tracks.values() for c in clips}
    w.import_files([str(path)])
    qtbot.waitUntil(lambda: bool({c.id for clips in w.document.project.tracks.values() for c in clips} - before),
                    timeout=timeout)
    (new,) = {c.id for clips in w.document.project.tracks.values() for c in clips} - before
    return new


def choose_task(w, task) -> None:
    """Pick `task` in the instruction box's task chooser, as a user would."""
    box = w.instruction.task_box
    index = box.findData(task.value)
    assert index >= 0, f"{task} is not offered for this selection"
    box.setCurrentIndex(index)
    box.activated.emit(index)


@pytest.fixture
def model_studio(qtbot, tmp_path):
    """The window with its engine running and the embedded default loaded (closed after the test)."""
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    yield w
    w.shutdown()
