"""`generate`/`edit` with --plan-edit, --plan-in and --plan-out on the committed embedded model: a moved object
moves in the image, a saved plan is reused and edited, and every malformed edit or unfit plan file is one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.core.plan import Plan
from app.shapes.detect import detect

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "metacanvas-shapes"

pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").is_file(),
                                reason="the embedded default model (models/metacanvas-shapes) is not built yet")

PROMPT = "a red circle left of a blue star"
SEED = "3"
TARGET = (0.2, 0.8)  # object 1 (the red circle) goes to the bottom left; seed 3 drafts it near the centre


def run(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, the `error:` lines of stderr: the loaders' progress bars left out)."""
    code = main([*args, "--model", str(MODEL), "--device", "cpu"])
    out = capsys.readouterr()
    return code, out.out, "\n".join(line for line in out.err.splitlines() if line.startswith("error:"))


def red_centre(path: Path) -> np.ndarray:
    image = np.asarray(Image.open(path).convert("RGB"))
    found = [d for d in detect(image) if d.color == "red"]
    assert found, f"no red object in {path.name}"
    return np.array(max(found, key=lambda d: d.area).center)


def test_a_moved_object_moves_in_the_image_and_a_saved_plan_is_reused(capsys, tmp_path):
    planned, moved, reused = tmp_path / "planned.png", tmp_path / "moved.png", tmp_path / "reused.png"
    saved = tmp_path / "plan.safetensors"
    code, _, err = run(capsys, "generate", PROMPT, "-o", str(planned), "--seed", SEED, "--plan-out", str(saved),
                       "--plan", str(tmp_path / "plan.png"))
    assert code == 0, err
    plan = Plan.load(saved)
    assert plan.batch_size == 2 and len(plan.objects(0)) == 2  # with the empty instruction's row, for guidance

    code, _, err = run(capsys, "generate", PROMPT, "-o", str(moved), "--seed", SEED,
                       "--plan-edit", f"move 1 to {TARGET[0]},{TARGET[1]}")
    assert code == 0, err
    target = np.array(TARGET) * 64
    assert np.hypot(*(red_centre(moved) - target)) <= 6.0
    assert np.hypot(*(red_centre(planned) - target)) > 15.0

    # The saved plan, used as it is, makes the same image; edited, its object moves too (its cells moved).
    code, _, err = run(capsys, "generate", PROMPT, "-o", str(reused), "--seed", SEED, "--plan-in", str(saved))
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(reused)), np.asarray(Image.open(planned)))
    edited_plan = tmp_path / "edited.safetensors"
    code, _, err = run(capsys, "generate", PROMPT, "-o", str(reused), "--seed", SEED, "--plan-in", str(saved),
                       "--plan-edit", f"move 1 to {TARGET[0]},{TARGET[1]}", "--plan-out", str(edited_plan), "--overwrite")
    assert code == 0, err
    assert np.hypot(*(red_centre(reused) - target)) <= 6.0
    (_, x, y, _), _ = Plan.load(edited_plan).objects(0)
    assert np.hypot(x - TARGET[0], y - TARGET[1]) <= 1 / 16  # the edited plan, written for the next run


def test_erase_delete_resize_and_add_run(capsys, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "generate", PROMPT, "-o", str(out), "--seed", SEED, "--plan-edit", "delete 2",
                       "--plan-edit", "add green square at 0.75,0.25 size 0.2", "--plan-edit", "resize 1 to 0.25",
                       "--plan-edit", "erase 0,0.75,0.25,1")
    assert code == 0, err
    source = tmp_path / "source.png"
    assert run(capsys, "generate", PROMPT, "-o", str(source), "--seed", SEED)[0] == 0
    code, _, err = run(capsys, "edit", str(source), "make the circle green", "-o", str(out), "--seed", SEED,
                       "--plan-edit", "move 1 by 0.1,0", "--overwrite")
    assert code == 0, err


@pytest.mark.parametrize("edit, words", [
    ("move one to 0.5,0.5", "this is not a move edit; edits read: move N to X,Y"),
    ("jump 1 to 0.5,0.5", "unknown edit 'jump'"),
    ("move 7 to 0.5,0.5", "there is no object 7: the draft has objects 1 to 2"),
    ("move 1 to 1.5,0.5", "x must be a fraction of the frame from 0 to 1, not 1.5"),
    ("erase 0.5,0.5,0.2,0.9", "a box is LEFT,TOP,RIGHT,BOTTOM with right > left"),
    ("add circle at 0.5,0.5", "name its colour too, e.g. add red circle"),
    ("add pink circle at 0.5,0.5", "unknown object 'pink circle'"),
])
def test_a_malformed_edit_is_one_clear_line(capsys, tmp_path, edit, words):
    code, out, err = run(capsys, "generate", PROMPT, "-o", str(tmp_path / "x.png"), "--seed", SEED, "--plan-edit", edit)
    assert code == 2 and not (tmp_path / "x.png").exists()
    assert err.startswith(f"error: --plan-edit {edit!r}: ") and words in err, err
    assert len(err.splitlines()) == 1


def test_a_plan_file_that_does_not_fit_is_one_clear_line(capsys, tmp_path):
    saved = tmp_path / "plan.safetensors"
    code, _, _ = run(capsys, "generate", PROMPT, "-o", str(tmp_path / "a.png"), "--seed", SEED, "--plan-out", str(saved))
    assert code == 0
    cases = [
        (["--width", "96"], saved, "is a plan of 1 x 8 x 8 canvas cells"),
        ([], tmp_path / "a.png", "is not a plan file"),
        ([], tmp_path / "missing.safetensors", "no plan file at"),
        (["--plan-edit", "add blue star at 0.5,0.5"], saved, "adding an object needs the model to plan it"),
    ]
    for extra, plan_file, words in cases:
        code, _, err = run(capsys, "generate", PROMPT, "-o", str(tmp_path / "x.png"), "--plan-in", str(plan_file),
                           *extra)
        assert code == 2 and words in err and len(err.splitlines()) == 1, err
    single = tmp_path / "single.safetensors"
    Plan.load(saved).select(0).save(single)  # the conditional row alone: no plan for guidance's empty instruction
    code, _, err = run(capsys, "generate", PROMPT, "-o", str(tmp_path / "x.png"), "--plan-in", str(single))
    assert code == 2 and "holds no plan for the empty instruction" in err
    code, _, err = run(capsys, "generate", "a blue star", "-o", str(tmp_path / "x.png"), "--plan-in", str(saved))
    assert code == 2 and "the plan was made for 'a red circle left of a blue star'" in err
    code, _, err = run(capsys, "generate", PROMPT, "-o", str(tmp_path / "x.png"), "--plan-out", str(tmp_path / "p.png"))
    assert code == 2 and "--plan-out must name a .safetensors file" in err
    # States of the same width from another model (the text-only twin's planner) mean nothing to this one.
    code = main(["generate", PROMPT, "-o", str(tmp_path / "x.png"), "--plan-in", str(saved), "--device", "cpu",
                 "--model", str(REPO / "models" / "metacanvas-shapes-text-only")])
    err = capsys.readouterr().err
    assert code == 2 and "was made by 'metacanvas-shapes', not 'metacanvas-shapes-text-only'" in err
