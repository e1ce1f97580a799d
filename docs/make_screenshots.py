"""Screenshots of a short studio session, offscreen: import a sample, type an instruction, see the plan,
generate, compare. Writes PNGs to docs/screenshots/ (QWidget.grab()).

    python docs/make_screenshots.py [--model models/metacanvas-shapes]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "docs" / "screenshots"


from bench_gui import wait_until  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models" / "metacanvas-shapes"))
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="mc-shots-")
    os.environ["METACANVAS_CONFIG_DIR"] = tmp
    os.environ["METACANVAS_RECOVERY_DIR"] = tmp

    from app.settings import Settings
    from app.ui.studio import create_app
    app = create_app([])
    from app.ui.main_window import MainWindow
    from PySide6.QtTest import QTest

    w = MainWindow(settings=Settings(autosave_minutes=0), model_path=args.model, data_root=tmp, recovery_root=tmp,
                   offer_recovery=False)
    w.resize(1400, 900)
    w.show()

    def shot(name: str) -> None:
        wait_until(app, lambda: False, 0.3)  # let thumbnails and repaints land
        path = OUT / f"{name}.png"
        w.grab().save(str(path))
        print("wrote", path.relative_to(ROOT))

    shot("01-empty-project")
    if not wait_until(app, lambda: w.model_ready or bool(w.messages.errors()), 300):
        print("model did not load in time", file=sys.stderr)
    w.import_files([str(ROOT / "resources" / "samples" / "three_shapes_256.png")])
    wait_until(app, lambda: bool(w.document.project.tracks["image"]), 30)
    wait_until(app, lambda: w.viewer.canvas.frame is not None, 10)
    shot("02-imported-sample")
    w.instruction.edit.setFocus()
    QTest.keyClicks(w.instruction.edit, "make the circle green")
    wait_until(app, lambda: w.viewer.overlay_array() is not None, 20)
    shot("03-live-plan-heatmap")
    w.viewer.pca_radio.setChecked(True)
    shot("04-live-plan-pca")
    w.viewer.heat_radio.setChecked(True)
    if w.instruction.word_buttons:
        w.instruction.word_buttons[-1].click()
        shot("05-word-map")
        w.instruction.word_buttons[-1].click()
    w.generation.steps.setValue(args.steps)
    stored: list[str] = []
    w.result_stored.connect(stored.append)
    w.generate()
    wait_until(app, lambda: w.generation.progress.value() >= max(2, args.steps // 2) or bool(stored), 120)
    shot("06-generating-preview")
    wait_until(app, lambda: bool(stored) or bool(w.messages.errors()), 300)
    wait_until(app, lambda: w.viewer.canvas.compare is not None, 10)
    shot("07-new-version")
    w.viewer.compare_split.setChecked(True)
    shot("08-ab-split")
    w.shutdown()
    errors = w.messages.errors()
    if errors:
        print("messages:", *errors, sep="\n  ", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
