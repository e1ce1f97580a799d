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


def faster_pyside_import_hook() -> None:
    """Make PySide6's check of every newly imported module read the file instead of inspecting it.

    Once PySide6 is imported it looks at each module imported after it (shibokensupport.feature:
    `_mod_uses_pyside`, for its `__feature__` switches), with `inspect.getsource(module)`, for the
    string "PySide6". Through inspect and linecache that is ~0.25 ms a module: ~0.5 s of the ~3 s the
    engine spends importing torch, transformers and diffusers (~2,000 modules) on 2 cores. The same
    question, asked of the file's bytes, costs a tenth. Anything but a plain .py file goes to PySide's
    own check; a PySide without this function is left as it is.
    """
    feature = sys.modules.get("shibokensupport.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if original is None or getattr(original, "reads_the_file", False):
        return

    def mod_uses_pyside(module) -> bool:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            return original(module)
        try:
            with open(path, "rb") as f:
                return b"PySide6" in f.read()
        except OSError:
            return original(module)

    mod_uses_pyside.reads_the_file = True
    feature._mod_uses_pyside = mod_uses_pyside


def create_app(argv: list[str] | None = None):
    from PySide6.QtWidgets import QApplication
    faster_pyside_import_hook()
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("MetaCanvas Studio")
    app.setOrganizationName("MetaCanvas")
    app.setStyle("Fusion")  # Fusion honours the QSS palette the same way on every platform
    load_theme(app)
    return app


def import_before_window() -> None:
    """Import torch here, on the GUI thread, before the window shows (~0.7 s of the launch).

    The engine imports the rest of what a model needs in its own thread while the window is up, and
    Python threads share one interpreter lock: most import work hands it back every 5 ms, but loading
    torch's shared libraries (dlopen of libtorch_cpu.so, ~150 ms on 2 cores) and its extension's init
    hold it throughout, and the GUI stood still that long. Imported here, that happens before there is
    a window to freeze. transformers and diffusers (~2 s more) stay in the engine thread: their imports
    do yield, and the window would otherwise take ~3 s to appear. The collector is paused over it for
    the same reason as in the engine (app/engine/engine.py: imports_without_gc_pauses).
    """
    from app.engine.loading import imports_without_gc_pauses

    with imports_without_gc_pauses():
        import torch  # noqa: F401


def open_studio(argv: list[str] | None = None, model_path: str | None = None, **window_options):
    """The launch up to a visible window -> (app, window); the model then loads in the background.
    `window_options` go to MainWindow (benchmarks and tests pass settings, data_root, ...)."""
    app = create_app(argv)
    from app.ui.main_window import MainWindow
    import_before_window()
    window = MainWindow(model_path=model_path, **window_options)
    window.show()
    window.launch_seconds = time.perf_counter() - _T0
    return app, window


def run_studio(argv: list[str] | None = None, model_path: str | None = None) -> int:
    """Open the studio window on a new project; the model loads in the background after it shows.
    A `.mcproj` path in argv is opened."""
    argv = list(sys.argv if argv is None else argv)
    app, window = open_studio(argv, model_path=model_path)
    for arg in argv[1:]:
        if arg.endswith(".mcproj"):
            window.open_project(arg)
    return app.exec()


if __name__ == "__main__":
    sys.exit(run_studio(sys.argv))
