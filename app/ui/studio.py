"""The studio's entry point: `run_studio(argv, model_path=None) -> int` (main.py calls it)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

_T0 = time.perf_counter()  # launch time, for the "launch to visible window" measurement


def load_theme(app) -> None:
    from app.ui.main_window import THEME_FILE
    try:
        app.setStyleSheet(Path(THEME_FILE).read_text(encoding="utf-8"))
    except OSError:
        pass  # a missing theme leaves the platform look; nothing else depends on it


def create_app(argv: list[str] | None = None):
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("MetaCanvas Studio")
    app.setOrganizationName("MetaCanvas")
    app.setStyle("Fusion")  # Fusion honours the QSS palette the same way on every platform
    load_theme(app)
    return app


def run_studio(argv: list[str] | None = None, model_path: str | None = None) -> int:
    """Open the studio window on a new project; the model loads in the background after it shows.
    A `.mcproj` path in argv is opened."""
    argv = list(sys.argv if argv is None else argv)
    app = create_app(argv)
    from app.ui.main_window import MainWindow
    window = MainWindow(model_path=model_path)
    window.show()
    window.launch_seconds = time.perf_counter() - _T0
    for arg in argv[1:]:
        if arg.endswith(".mcproj"):
            window.open_project(arg)
    return app.exec()


if __name__ == "__main__":
    sys.exit(run_studio(sys.argv))
