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
    # Stopped part way (two pictures gone): --resume makes those two alone, the same as the first run made them.
    from PIL import Image

    lost = [out / "00002" / "samples" / "0001.png", out / "00004" / "samples" / "0000.png"]
    before = [(Image.open(p).text["metacanvas"], np.asarray(Image.open(p), int)) for p in lost]
    for p in lost:
        p.unlink()
    r = run("generate", "--prompts", str(meta), "--out", str(out), "--n", "2", "--steps", "3", "--resume")
    assert r.returncode == 0 and "wrote 2 images" in r.stdout and "(10 from the earlier run kept)" in r.stdout, r.stderr
    for p, (recipe, pixels) in zip(lost, before):  # the same request and seed; a batch of 2, not 12: float rounding
        assert Image.open(p).text["metacanvas"] == recipe and np.abs(np.asarray(Image.open(p), int) - pixels).max() <= 8


def test_video_tasks_need_a_video_model(tmp_path):
    r = run("video", "a red circle moves right", "-o", str(tmp_path / "v.mp4"), "--frames", "5",
            "--model", "models/metacanvas-shapes")
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
    assert f"of {source.width}x{source.height} (every clip" in r.stdout  # the size it was rendered at is said
    before = out.read_bytes()
    r = run("render", str(path), "-o", str(out))
    assert r.returncode == 2 and out.read_bytes() == before
    assert "--overwrite" in r.stderr and "render:" not in r.stderr  # the way out named, before any progress bar
    # What the render leaves out is said, as the studio's Export track says it: a still on the image track.
    still = import_media(project, path, REPO / "resources" / "samples" / "red_circle_64.png")
    project.apply(still)
    project.add_clip(still["item"]["id"], "image", start=0.0)
    save_project(project, path)
    r = run("render", str(path), "-o", str(tmp_path / "with_still.mp4"))
    assert r.returncode == 0 and "1 clip(s) on the image track are not in it" in r.stdout, r.stderr
    r = run("render", str(path), "-o", str(tmp_path / "track.gif"))
    assert r.returncode == 2 and ".mp4" in r.stderr and not (tmp_path / "track.gif").exists()
    r = run("render", str(tmp_path / "missing.mcproj"), "-o", str(tmp_path / "x.mp4"))
    assert r.returncode == 2 and "not found" in r.stderr and "render:" not in r.stderr


def test_render_takes_a_project_folder_and_never_writes_into_its_media(tmp_path):
    """`render Holiday` (the folder) looked for its media beside the folder ("media file ... is missing"); `-o`
    inside the media folder with --overwrite replaced a clip's own footage, beyond undo (the studio refuses)."""
    from app.media.project import Project
    from app.media.project_file import import_media, media_path, save_project

    folder = tmp_path / "Holiday"
    folder.mkdir()
    path = folder / "Holiday.mcproj"
    project = Project("holiday")
    project.apply(import_media(project, path, REPO / "resources" / "samples" / "ball_rolls_right.mp4"))
    item = next(iter(project.media.values()))
    project.add_clip(item.id, "video", start=0.0)
    save_project(project, path)
    r = run("render", str(folder), "-o", str(tmp_path / "holiday.mp4"))
    assert r.returncode == 0 and (tmp_path / "holiday.mp4").is_file(), r.stderr
    footage = media_path(path, item)
    before = footage.read_bytes()
    r = run("render", str(path), "-o", str(footage), "--overwrite")
    assert r.returncode == 2 and "media folder" in r.stderr
    assert footage.read_bytes() == before


# ---------------------------------------------------------------------------------------------------
# What a diffusers or ComfyUI user expects of the command line (issue 28). These run `main()` in this
# process (one model load is about a second once warm) with 1-2 denoising steps.

PROMPT = "a red circle left of a blue star"


def cli(capsys, *args):
    """`python main.py ARGS` in this process: (exit code, stdout, stderr)."""
    from app.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def recipe(path):
    """The recipe a result carries in its PNG text chunks, as any PNG reader sees it."""
    with Image.open(path) as im:
        return json.loads(im.text["metacanvas"]), im.text["parameters"]


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_n_images_from_a_random_seed_carry_their_recipe_and_reproduce(tmp_path, capsys):
    out = tmp_path / "out.png"
    code, stdout, err = cli(capsys, "generate", PROMPT, "-o", out, "--n", 2, "--seed", "random", "--steps", 2,
                            "--guidance", 2.5, "--plan", tmp_path / "plan.png")
    assert code == 0, err
    seed = int(stdout.split("seed: ")[1].split()[0])  # printed, so the user can make it again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-1.png", "out-2.png", "plan-1.png", "plan-2.png"]
    assert "generate" in err and "4/4" in err  # one per-step progress bar on stderr: 2 images x 2 steps
    for i, name in enumerate(["out-1.png", "out-2.png"]):
        info, parameters = recipe(tmp_path / name)
        r = info["request"]
        assert (r["instruction"], r["seed"], r["steps"], r["guidance"], r["width"], r["height"]) == \
            (PROMPT, seed + i, 2, 2.5, 64, 64)
        assert info["model"] == "metacanvas-shapes" and info["dtype"] == "float32"  # no settings: float32
        assert parameters.splitlines()[0] == PROMPT and f"Seed: {seed + i}" in parameters and "Steps: 2" in parameters
    # The stored seed makes the same picture again.
    again = tmp_path / "again.png"
    code, _, err = cli(capsys, "generate", PROMPT, "-o", again, "--seed", seed + 1, "--steps", 2, "--guidance", 2.5)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(tmp_path / "out-2.png")))


def test_precision_follows_the_settings_unless_dtype_says_otherwise(tmp_path, capsys, monkeypatch):
    from app.settings import Settings, settings_path

    Settings(precision="bfloat16").save()
    out = tmp_path / "out.png"
    code, _, err = cli(capsys, "generate", PROMPT, "-o", out, "--steps", 1)
    assert code == 0, err
    assert recipe(out)[0]["dtype"] == "bfloat16" and "Dtype: bfloat16" in recipe(out)[1]
    assert np.asarray(Image.open(out)).std() > 1  # a picture, not a blank
    code, _, err = cli(capsys, "generate", PROMPT, "-o", out, "--steps", 1, "--dtype", "float16", "--overwrite")
    assert code == 0, err
    assert recipe(out)[0]["dtype"] == "float16"
    # A broken settings file does not stop the command line: the defaults (float32) apply.
    settings_path().write_text("{ not json")
    code, _, err = cli(capsys, "generate", PROMPT, "-o", out, "--steps", 1, "--overwrite")
    assert code == 0, err
    assert "warning:" in err and recipe(out)[0]["dtype"] == "float32"


def test_sizes_the_model_allows_and_one_line_for_those_it_cannot(tmp_path, capsys):
    wide = tmp_path / "wide.png"
    code, _, err = cli(capsys, "generate", PROMPT, "-o", wide, "--width", 96, "--height", 64, "--steps", 1)
    assert code == 0, err
    assert np.asarray(Image.open(wide)).shape == (64, 96, 3)
    assert recipe(wide)[0]["request"]["width"] == 96
    edited = tmp_path / "edited.png"
    code, _, err = cli(capsys, "edit", wide, "make the circle green", "-o", edited, "--width", 96, "--height", 64,
                       "--steps", 1)
    assert code == 0, err
    assert np.asarray(Image.open(edited)).shape == (64, 96, 3)
    for args, words in [(["--width", 100], "multiple of 8"), (["--width", 100000], "too large"),
                        (["--width", 4096, "--height", 4096], "too large"), (["--height", 0], "positive")]:
        bad = tmp_path / "bad.png"
        code, _, err = cli(capsys, "generate", PROMPT, "-o", bad, *args)
        assert code == 2 and words in one_error_line(err), (args, err)
        assert not bad.exists()


@pytest.mark.parametrize("args, words", [
    (["--steps", 0], "--steps must be between 1"), (["--steps", -3], "--steps must be between 1"),
    (["--n", 0], "--n must be at least 1"), (["--guidance", -1], "--guidance must be a number >= 0"),
    (["--seed", "abc"], "--seed must be a whole number"), (["--seed", -1], "--seed must be a whole number"),
    (["-o", "out.txt"], "must name a .png file"),
])
def test_numbers_a_run_cannot_use_are_refused_before_loading_the_model(tmp_path, capsys, monkeypatch, args, words):
    def no_load(*a, **k):
        raise AssertionError("the model was loaded for a run that was refused")

    monkeypatch.setattr("app.core.checkpoints.load_model", no_load)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "generate", PROMPT, "-o", "out.png", *args)
    assert code == 2 and words in one_error_line(err), err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_partial_png_and_keeps_the_old_one(tmp_path, capsys, monkeypatch):
    import errno

    out = tmp_path / "out.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(out)
    before = out.read_bytes()

    def disk_full(self, fp, *a, **k):
        fp.write(b"\x89PNG\r\n\x1a\n half a picture")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    code, _, err = cli(capsys, "generate", PROMPT, "-o", out, "--steps", 1, "--overwrite")
    assert code == 2 and "disk is full" in one_error_line(err) and "unchanged" in err
    assert out.read_bytes() == before
    code, _, err = cli(capsys, "generate", PROMPT, "-o", tmp_path / "new.png", "--steps", 1)
    assert code == 2 and "disk is full" in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no 0-byte file, no temporary left


def test_the_studio_reads_the_recipe_back_on_import(tmp_path, capsys, qtbot):
    from tests.ui.helpers import import_and_wait, make_window

    png = tmp_path / "made.png"
    code, _, err = cli(capsys, "generate", PROMPT, "-o", png, "--seed", 7, "--steps", 3, "--guidance", 2.5)
    assert code == 0, err
    w = make_window(qtbot, tmp_path)
    w.generation.seed.setValue(0)
    clip_id = import_and_wait(qtbot, w, png)
    clip = w.document.project.clip(clip_id)
    assert clip.instruction == PROMPT
    r = clip.versions[0].request
    assert (r["instruction"], r["seed"], r["steps"], r["guidance"]) == (PROMPT, 7, 3, 2.5)
    w.timeline.view.select([])
    w.instruction.set_text("")
    w.timeline.view.select([clip_id])
    assert w.instruction.text() == PROMPT
    assert PROMPT in w.versions.list.item(0).text() and "seed 7" in w.versions.list.item(0).text()
    w.versions.list.setCurrentRow(0)
    w.versions.reuse_button.click()  # "Use these settings again"
    assert (w.generation.seed.value(), w.generation.steps.value(), w.generation.guidance.value()) == (7, 3, 2.5)

    # A PNG whose recipe is damaged, not ours or huge imports as a plain picture.
    from PIL.PngImagePlugin import PngInfo

    pixels = np.asarray(Image.open(png))
    for i, text in enumerate(["{ not json", json.dumps({"format": 1, "request": {"task": "x", "instruction": 3}}),
                              json.dumps({"format": 1, "request": {"task": "text_to_image", "instruction": "a",
                                                                   "pad": "x" * 100_000}})]):
        meta = PngInfo()
        meta.add_text("metacanvas", text)
        odd = tmp_path / f"odd{i}.png"
        Image.fromarray(pixels).save(odd, pnginfo=meta)
        clip = w.document.project.clip(import_and_wait(qtbot, w, odd))
        assert clip.versions[0].request == {} and clip.instruction == ""
    w.close()


@pytest.mark.parametrize("command", [
    ["generate", PROMPT], ["edit", "SOURCE", "make the circle green"], ["plan", "a red circle"],
    ["generate", PROMPT, "--n", 2],
])
def test_an_existing_output_is_kept_unless_overwrite_is_said(tmp_path, capsys, monkeypatch, command):
    """generate, edit and plan keep a file already at -o (or at one of --n's numbered names), as video and
    render do: refused before the model loads, the file untouched; --overwrite replaces it."""
    source = tmp_path / "source.png"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(source)
    command = [str(source) if a == "SOURCE" else a for a in command]
    out = tmp_path / "mine.png"
    taken = out.with_name("mine-2.png") if "--n" in command else out
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(taken)
    before = taken.read_bytes()
    code, _, err = cli(capsys, *command, "-o", out, "--steps", 1)
    assert code == 2 and "already exists" in one_error_line(err) and "--overwrite" in err
    assert taken.read_bytes() == before
    code, _, err = cli(capsys, *command, "-o", out, "--steps", 1, "--overwrite")
    assert code == 0, err
    assert taken.read_bytes() != before


@pytest.mark.parametrize("flag, name", [("-o", "out.png"), ("--plan", "plan.png"), ("--plan-out", "plan.safetensors")])
def test_a_file_that_appears_at_an_output_while_the_model_runs_is_kept(tmp_path, capsys, monkeypatch, flag, name):
    """The check before the model loads found no file there; one the user saved there during the run (minutes on
    a long --n) was replaced all the same, without --overwrite. It is kept, the made file is written beside it,
    and the run says so."""
    import app.commands as commands

    outputs = {"-o": tmp_path / "out.png", "--plan": tmp_path / "plan.png",
               "--plan-out": tmp_path / "plan.safetensors"}
    theirs = outputs[flag]
    real = commands.load_pipeline

    def load_then_the_user_saves(*a, **k):
        pipe = real(*a, **k)
        theirs.write_bytes(b"the user's own file")
        return pipe

    monkeypatch.setattr(commands, "load_pipeline", load_then_the_user_saves)
    code, out, err = cli(capsys, "generate", PROMPT, "--steps", 1, *[x for f, p in outputs.items() for x in (f, p)])
    assert code == 0, err
    assert theirs.read_bytes() == b"the user's own file"
    beside = theirs.with_name(f"{theirs.stem}-new{theirs.suffix}")
    assert beside.stat().st_size > 1000  # the made picture or plan, whole
    assert f"{theirs.name} appeared during the run and is kept: wrote {beside.name} instead" in out


@pytest.mark.parametrize("command, outputs", [
    (["generate", PROMPT], ["-o", "a.png", "--plan", "a.png"]),
    (["generate", PROMPT, "--n", "2"], ["-o", "a.png", "--plan", "a.png"]),
    (["edit", "SOURCE", "make the circle green"], ["-o", "out.png", "--plan", "SOURCE", "--overwrite"]),
    (["plan", "a red circle", "--image", "SOURCE"], ["-o", "SOURCE", "--overwrite"]),
])
def test_two_outputs_naming_one_file_or_the_source_are_refused(tmp_path, capsys, command, outputs):
    """-o and --plan naming one file (the plan picture would silently replace the made picture), or an output
    naming the source image (even with --overwrite): refused before the model loads, nothing written."""
    source = tmp_path / "source.png"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(source)
    before = source.read_bytes()
    args = [str(source) if a == "SOURCE" else str(tmp_path / a) if a.endswith(".png") else a
            for a in command + outputs]
    code, _, err = cli(capsys, *args, "--steps", 1)
    assert code == 2 and "one file would replace the other" in one_error_line(err)
    if "SOURCE" in outputs:  # named as the command takes it: edit's IMAGE argument, plan's --image
        assert f"the source image ({'IMAGE' if command[0] == 'edit' else '--image'})" in err
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.png"]


def test_an_output_folder_that_takes_no_file_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    """A read-only folder for --plan (or -o): said before the model loads, and nothing written at -o either."""
    import errno
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    real = tempfile.NamedTemporaryFile

    def refuse_locked(*a, dir=None, **k):
        if dir is not None and Path(dir) == locked:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse_locked)
    code, _, err = cli(capsys, "generate", PROMPT, "-o", tmp_path / "ok.png", "--plan", locked / "plan.png", "--steps", 1)
    assert code == 2 and "--plan" in one_error_line(err) and "cannot be written" in err
    assert not (tmp_path / "ok.png").exists()
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", tmp_path / "ok.mp4", "--plan",
                       locked / "plan.mp4", "--steps", 1)
    assert code == 2 and "cannot be written" in one_error_line(err) and not (tmp_path / "ok.mp4").exists()


def test_a_device_this_machine_lacks_is_said_once_and_the_run_goes_on_the_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run("generate", PROMPT, "-o", str(tmp_path / "out.png"), "--steps", "1", "--device", "cuda")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("not available") == 1 and "running on the cpu" in r.stderr


def test_edit_says_a_picture_of_another_shape_was_stretched(tmp_path, capsys):
    """`edit` squashed a 16:9 photo into the model's square without a word (the studio and `video` say it); and the
    way out it gives is one the image model has (sizes near its own), not "own size only"."""
    source = tmp_path / "wide.png"
    Image.fromarray(np.full((64, 96, 3), 200, np.uint8)).save(source)
    code, out, err = cli(capsys, "edit", source, "make the circle green", "-o", tmp_path / "out.png", "--steps", 1)
    assert code == 0, err
    assert "the image wide.png's 96x64 was stretched to 64x64 (--width / --height of its shape" in out, out
    assert "own size only" not in out


def test_an_edit_naming_what_the_detector_does_not_read_in_the_picture_says_so(tmp_path, capsys):
    """A flat circle larger than the shapes world's, edited "make the circle green": the check named only the plan's
    objects ("does not show a green circle", "a green square"), as if the picture held them; the detector reads no
    circle there, which is now said. The bundled sample's circle is read, and nothing of the kind is said."""
    from PIL import ImageDraw

    big = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(big).ellipse((17, 17, 47, 47), fill=(200, 30, 30))
    big.save(tmp_path / "big.png")
    for source, said in ((tmp_path / "big.png", True), (REPO / "resources" / "samples" / "red_circle_64.png", False)):
        code, out, err = cli(capsys, "edit", source, "make the circle green", "-o", tmp_path / "out.png", "--seed", 1,
                             "--overwrite")
        assert code == 0, err
        assert ("the image shows no circle as the model's detector sees it" in out) is said, out


@pytest.mark.parametrize("prompt", ["", "   "])
def test_an_empty_or_blank_prompt_is_said_as_one(tmp_path, capsys, prompt):
    """`generate ""` answered with the usage line (as if no prompt were given), `generate "   "` with what to do."""
    code, _, err = cli(capsys, "generate", prompt, "-o", tmp_path / "out.png")
    assert code == 2 and "Type an instruction first" in one_error_line(err)
    assert not (tmp_path / "out.png").exists()


def test_an_output_written_beside_never_takes_another_outputs_name(tmp_path, capsys, monkeypatch):
    """`-o a.png --plan a-new.png` with a.png appearing during the run: the picture went to a-new.png (the plan's
    name), the plan's write then failed, and nothing said where the picture was."""
    import app.commands as commands

    real = commands.load_pipeline

    def load_then_the_user_saves(*a, **k):
        pipe = real(*a, **k)
        (tmp_path / "a.png").write_bytes(b"the user's own file")
        return pipe

    monkeypatch.setattr(commands, "load_pipeline", load_then_the_user_saves)
    code, out, err = cli(capsys, "generate", PROMPT, "--steps", 1, "-o", tmp_path / "a.png",
                         "--plan", tmp_path / "a-new.png")
    assert code == 0, err
    assert (tmp_path / "a.png").read_bytes() == b"the user's own file"
    assert "wrote a-new2.png instead" in out and (tmp_path / "a-new2.png").stat().st_size > 1000
    assert (tmp_path / "a-new.png").stat().st_size > 1000  # the plan picture, at its own name
