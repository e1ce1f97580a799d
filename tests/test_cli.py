"""The command line with the committed embedded model: generate, edit, plan, eval, render, errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "metacanvas-shapes"


def run(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("studio", "generate", "edit", "video", "plan", "train", "eval", "render", "bench"):
        assert command in out.stdout


def test_generate_and_edit_write_images_and_plans(tmp_path):
    out_png, plan_png = tmp_path / "out.png", tmp_path / "plan.png"
    r = run("generate", "a red circle left of a blue star", "-o", str(out_png), "--plan", str(plan_png),
            "--seed", "1", "--steps", "4")
    assert r.returncode == 0, r.stderr
    image = np.asarray(Image.open(out_png))
    assert image.shape == (64, 64, 3)
    plan = np.asarray(Image.open(plan_png))
    assert plan.shape[0] == 64 * 4 and plan.shape[1] > 3 * 64 * 4  # result | heatmap | PCA colours

    edited = tmp_path / "edited.png"
    r = run("edit", str(out_png), "make the circle green", "-o", str(edited), "--steps", "4")
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(edited)).shape == (64, 64, 3)
    # The source is never overwritten.
    r = run("edit", str(out_png), "make the circle green", "-o", str(out_png), "--steps", "2")
    assert r.returncode == 2 and "overwrite" in r.stderr
    assert np.array_equal(np.asarray(Image.open(out_png)), image)


def test_unknown_words_and_bad_models_are_one_clear_line(tmp_path):
    r = run("generate", "a photo of a dragon", "-o", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "'dragon'" in r.stderr and "It knows:" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("generate", "a red circle", "-o", str(tmp_path / "x.png"), "--model", str(tmp_path))
    assert r.returncode == 2 and "model_index.json" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_geneval_layout_generation_and_scoring(tmp_path):
    from app.eval.geneval import make_geneval_metadata

    meta = tmp_path / "evaluation_metadata.jsonl"
    meta.write_text("\n".join(json.dumps(m) for m in make_geneval_metadata(6, seed=1)) + "\n")
    out = tmp_path / "samples"
    r = run("generate", "--prompts", str(meta), "--out", str(out), "--n", "2", "--steps", "3")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "00000" / "samples").iterdir()) == ["0000.png", "0001.png"]
    assert json.loads((out / "00005" / "metadata.jsonl").read_text())["prompt"]
    r = run("eval", str(out))
    assert r.returncode == 0, r.stderr
    assert "overall" in r.stdout
    summary = json.loads((out / "geneval_summary.json").read_text())
    assert summary["total_images"] == 12 and 0.0 <= summary["overall"] <= 1.0
    assert (out / "geneval_summary.png").is_file()


def test_video_tasks_need_a_video_model(tmp_path):
    r = run("video", "a red circle moves right", "-o", str(tmp_path / "v.mp4"), "--frames", "5")
    assert r.returncode == 2 and "does not do text to video" in r.stderr
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize("args", [[], ["studio"]])
def test_main_opens_the_studio_and_keeps_running(tmp_path, args):
    """`python main.py` (and `python main.py studio`) opens the window and runs until closed."""
    import os
    import time

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "METACANVAS_CONFIG_DIR": str(tmp_path / "cfg"),
           "METACANVAS_DATA_DIR": str(tmp_path / "data"), "METACANVAS_RECOVERY_DIR": str(tmp_path / "rec")}
    proc = subprocess.Popen([sys.executable, str(REPO / "main.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)
        still_running = proc.poll() is None
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert still_running, err
    assert "Traceback" not in err, err


def test_render_writes_the_video_track_and_never_overwrites(tmp_path):
    from app.media.probe import probe_video
    from app.media.project import Project
    from app.media.project_file import import_media, save_project

    sample = REPO / "resources" / "samples" / "ball_rolls_right.mp4"
    path = tmp_path / "p.mcproj"
    project = Project("render")
    change = import_media(project, path, sample)
    project.apply(change)
    media_id = next(iter(project.media))
    project.add_clip(media_id, "video", start=0.0)
    save_project(project, path)
    out = tmp_path / "out.mp4"
    r = run("render", str(path), "-o", str(out))
    assert r.returncode == 0, r.stderr
    source, rendered = probe_video(sample), probe_video(out)
    assert rendered.codec == "h264" and (rendered.width, rendered.height) == (source.width, source.height)
    # The timeline renders at the project's frame rate, over the clip's whole duration.
    assert abs(rendered.duration - source.duration) < 0.1
    assert rendered.frames == round(source.duration * project.settings.fps)
    before = out.read_bytes()
    r = run("render", str(path), "-o", str(out))
    assert r.returncode == 2 and out.read_bytes() == before
