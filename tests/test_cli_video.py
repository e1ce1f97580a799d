"""The command line's four video tasks (issue 25): real H.264 files of the right length, the plan as a clip,
existing files kept, bad inputs refused in one line; `generate --prompts` and `eval` on clips.

They run on the tiny untrained video model (tests/conftest.py) and, when it is there, on the committed
models/metacanvas-shapes-video: the same files, flags and messages either way. `main()` runs in this process
(a model loads in about a second); one test runs `python main.py` itself."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.video_files import audio_only, broken, cut_short, shapes_clip, too_large, too_long

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "models" / "metacanvas-shapes-video"
STILL_MODEL = ROOT / "models" / "metacanvas-shapes"


@pytest.fixture(params=["tiny", "committed"])
def model(request):
    if request.param == "committed":
        if not (COMMITTED / "model_index.json").is_file():
            pytest.skip("models/metacanvas-shapes-video is not there yet")
        return COMMITTED
    return request.getfixturevalue("tiny_video_model")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video-inputs")
    clip = shapes_clip(folder / "source.mp4")
    shapes_clip(folder / "long_source.mp4", frames=30, seed=5, fps=10)
    Image.fromarray(clip[0]).save(folder / "first.png")
    Image.fromarray(clip[8]).save(folder / "second.png")
    return folder


def cli(capsys, *args):
    """`python main.py ARGS` in this process: (exit code, stdout, stderr)."""
    from app.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def clip_file(path: Path) -> tuple[str, int, int, int]:
    """(codec, decoded frames, width, height) of a video file, as PyAV reads it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, sum(1 for _ in container.decode(stream)), stream.width, stream.height


TASKS = {
    "text to video": ("a red circle moves to the right", []),
    "image to video": ("a red circle moves up", ["--image", "first.png"]),
    "video edit": ("remove the star", ["--video", "source.mp4"]),
    "reference to video": ("the circle from the first image moves right and the star from the second image moves "
                           "left", ["--reference", "first.png", "second.png"]),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_each_video_task_writes_an_h264_clip_of_the_models_length(model, inputs, tmp_path, capsys, task):
    words, extra = TASKS[task]
    extra = [str(inputs / a) if a.endswith((".png", ".mp4")) else a for a in extra]
    out = tmp_path / "out.mp4"
    code, stdout, err = cli(capsys, "video", words, "-o", out, "--seed", 2, "--model", model, *extra)
    assert code == 0, err
    assert task in stdout and "17 frames" in stdout
    assert "at 8 fps" in stdout  # the model's rate (its index says 8); the source's for an edit (8 too)
    assert clip_file(out) == ("h264", 17, 48, 48)
    assert "step" in err  # the progress bar is on stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary left


def test_image_to_video_keeps_the_given_first_frame(model, inputs, tmp_path, capsys):
    from app.eval.video_eval import psnr
    from app.media.probe import load_image, read_video_frames

    out = tmp_path / "i2v.mp4"
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", out, "--image", inputs / "first.png",
                       "--model", model)
    assert code == 0, err
    assert psnr(read_video_frames(out)[0], load_image(inputs / "first.png")) > 30  # H.264 4:2:0 at crf 18


def test_an_object_named_as_given_that_the_input_lacks_is_said_and_a_second_image_needs_a_second_still(
        inputs, tmp_path, capsys):
    """first.png holds a star and two triangles. "the circle moves left" of it: the circle is drawn where the draft
    put it, and that is said; "the star moves left" says nothing of it. Reference video naming a second image with
    one still is refused before anything runs."""
    code, out, err = cli(capsys, "video", "the circle moves left", "-o", tmp_path / "a.mp4", "--image",
                         inputs / "first.png", "--model", COMMITTED)
    assert code == 0 and "the image shows no circle as the model's detector sees it" in out, err
    code, out, err = cli(capsys, "video", "the star moves left", "-o", tmp_path / "b.mp4", "--image",
                         inputs / "first.png", "--model", COMMITTED)
    assert code == 0 and "shows no" not in out, err
    code, _, err = cli(capsys, "video", "make the star blue and the triangle red", "-o", tmp_path / "e.mp4",
                       "--video", inputs / "source.mp4", "--model", COMMITTED)  # two changes: neither was made
    assert code == 2 and "this model makes one change an edit" in one_error_line(err)
    code, _, err = cli(capsys, "video", "the star from the second image moves left", "-o", tmp_path / "c.mp4",
                       "--reference", inputs / "first.png", "--model", COMMITTED)
    assert code == 2 and "the words name a second image, and 1 reference still is given" in one_error_line(err)
    assert not (tmp_path / "c.mp4").exists()
    # "the image" of two stills says not which: refused, with the words that say it.
    code, _, err = cli(capsys, "video", "the star from the image moves left", "-o", tmp_path / "d.mp4",
                       "--reference", inputs / "first.png", inputs / "first.png", "--model", COMMITTED)
    assert code == 2 and 'say which, "the first image" or "the second image"' in one_error_line(err)
    assert not (tmp_path / "d.mp4").exists()


def test_an_image_with_nothing_the_model_knows_is_animated_undrafted_and_that_is_said(inputs, tmp_path, capsys):
    """The committed model drafts a clip from a still of its world; from an image it finds no object in, it
    plans undrafted (a track placed anywhere would fight the image) and says so."""
    code, out, err = cli(capsys, "video", "a red circle moves up", "-o", tmp_path / "a.mp4", "--image",
                         inputs / "first.png", "--model", COMMITTED)
    assert code == 0 and "without a drafted track" not in out, err
    plain = tmp_path / "plain.png"
    Image.fromarray(np.full((48, 48, 3), 40, np.uint8)).save(plain)
    code, out, err = cli(capsys, "video", "a red circle moves up", "-o", tmp_path / "b.mp4", "--image", plain,
                         "--model", COMMITTED)
    assert code == 0 and "planned without a drafted track" in out, err
    # Reference stills alike: from stills of its world the clip is drafted, from a plain one it is not.
    words = "the circle from the image moves right"
    code, out, err = cli(capsys, "video", words, "-o", tmp_path / "c.mp4", "--model", COMMITTED,
                         "--reference", inputs / "first.png")
    assert code == 0 and "without a drafted track" not in out, err
    code, out, err = cli(capsys, "video", words, "-o", tmp_path / "d.mp4", "--model", COMMITTED, "--reference", plain)
    assert code == 0 and "its detector found no object of its world in the reference stills" in out, err
    # Video edits alike: a clip of its world is edited from its drafted tracks, a plain one undrafted, said so.
    code, out, err = cli(capsys, "video", "make the star green", "-o", tmp_path / "e.mp4", "--model", COMMITTED,
                         "--video", inputs / "source.mp4")  # the clip holds a star and two triangles
    assert code == 0 and "without a drafted track" not in out, err
    flat = tmp_path / "flat.mp4"
    from app.media.export import export_video
    export_video(np.full((17, 48, 48, 3), 40, np.uint8), flat, fps=8)
    code, out, err = cli(capsys, "video", "make the circle green", "-o", tmp_path / "f.mp4", "--model", COMMITTED,
                         "--video", flat)
    assert code == 0 and "its detector found no object of its world in the source clip" in out, err


def test_the_plan_is_written_as_a_clip_beside_the_result(model, tmp_path, capsys):
    out, plan = tmp_path / "out.mp4", tmp_path / "plan.mp4"
    code, stdout, err = cli(capsys, "video", "a blue square moves down", "-o", out, "--plan", plan, "--model", model)
    assert code == 0, err
    assert "plan: " in stdout
    codec, frames, width, height = clip_file(plan)
    # Per frame: the result | the drafted tracks over it (a drafting model) | the canvas effect over it | PCA
    # colours, each 4 x 48 px, 4 px apart.
    panels = 4 if "layout_drafter" in json.loads((Path(model) / "model_index.json").read_text()) else 3
    assert (codec, frames, height) == ("h264", 17, 192) and width == panels * 192 + (panels - 1) * 4


def test_a_run_stopped_while_its_plan_is_written_says_the_clip_is_there_and_leaves_no_part_file(
        tiny_video_model, tmp_path, capsys, monkeypatch):
    """Ctrl-C as the plan clip was written left a whole clip at -o with only "interrupted" said (a rerun was then
    refused, "already exists"); SIGTERM left hidden ".part" files beside the outputs."""
    import os
    import signal

    import app.commands_video as commands_video

    made = commands_video.plan_video_frames

    def plan_frames_then(stop):
        def frames(*args, **kw):
            for k, frame in enumerate(made(*args, **kw)):
                if k == 3:
                    stop()
                yield frame
        return frames

    def ctrl_c():
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGTERM)
    for stop, code, said in ((ctrl_c, 130, "interrupted"),
                             (lambda: os.kill(os.getpid(), signal.SIGTERM), 143, "terminated")):
        folder = tmp_path / said
        folder.mkdir()
        out, plan = folder / "out.mp4", folder / "plan.mp4"
        monkeypatch.setattr(commands_video, "plan_video_frames", plan_frames_then(stop))
        got, _, err = cli(capsys, "video", "a blue square moves down", "-o", out, "--plan", plan,
                          "--model", tiny_video_model)
        assert got == code and err.splitlines()[-1] == said, err
        assert f"wrote {out}" in err and f"interrupted before the plan {plan} was written" in err
        assert clip_file(out)[1] > 0 and sorted(p.name for p in folder.iterdir()) == ["out.mp4"]
    assert signal.getsignal(signal.SIGTERM) is before  # the command's own handler is gone with it


def test_each_panel_of_the_plan_clip_is_named_in_its_corner():
    """White words, outlined, in each panel's top-left corner; a panel too small for words is left bare."""
    import torch

    from app.commands_video import plan_video_frames
    from app.core.plan import Plan

    frames = np.full((5, 48, 48, 3), 245, np.uint8)
    plan = Plan(canvas=torch.randn(1, 3, 6, 6, 8), context=torch.zeros(1, 2, 8), context_mask=torch.ones(1, 2, dtype=torch.bool),
                words=[[]])
    named = plan_video_frames(plan, frames, 4)[0]
    plain = plan_video_frames(plan, frames, 4, named=False)[0]
    words = (named != plain).any(-1)
    for k in range(3):  # result | canvas effect | PCA colours (no draft in this plan)
        assert words[:20, k * 196:k * 196 + 100].sum() > 50, k  # the name, in the corner
    corner = np.zeros(words.shape, bool)
    for k in range(3):
        corner[:20, k * 196:k * 196 + 110] = True
    assert not words[~corner].any()  # and nothing else of the panel touched
    small = plan_video_frames(plan, frames, 4, scale=1)[0]
    assert np.array_equal(small, plan_video_frames(plan, frames, 4, scale=1, named=False)[0])


def test_the_plan_clip_follows_the_keyframes_as_the_model_spreads_them():
    from app.commands_video import keyframe_weights, latent_frame_of

    assert [latent_frame_of(f, 4) for f in range(17)] == [0] + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    w = keyframe_weights(3, 5)  # 3 keyframes over 5 latent frames: on 0, 2 and 4, halves between
    assert np.allclose(w, [[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, .5, .5], [0, 0, 1]])
    assert np.allclose(keyframe_weights(1, 5), 1)


def test_a_source_clip_is_edited_at_the_models_length_unless_frames_says(model, inputs, tmp_path, capsys):
    source = inputs / "long_source.mp4"  # 30 frames at 10 fps
    for extra, frames in [([], 17), (["--frames", 9], 9), (["--frames", 29], 29)]:
        out = tmp_path / f"edit{frames}.mp4"
        code, stdout, err = cli(capsys, "video", "remove the circle", "-o", out, "--video", source, "--model", model,
                                *extra)
        assert code == 0, err
        assert clip_file(out)[:2] == ("h264", frames) and "at 10 fps" in stdout  # the source's frame rate
        # Both models' recipes train on 17-frame clips alone: other lengths run, and are said to be worse.
        assert ("trained on 17-frame clips alone" in stdout) == (frames != 17)
    for extra, words in [(["--frames", 10], "nearest is 9"), (["--frames", 33], "more than the source's 30 frames")]:
        code, _, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "bad.mp4", "--video", source,
                           "--model", model, *extra)
        assert code == 2 and words in one_error_line(err)
    assert not (tmp_path / "bad.mp4").exists()


def test_an_existing_output_is_kept_unless_overwrite_and_the_source_never(model, inputs, tmp_path, capsys):
    out = tmp_path / "kept.mp4"
    out.write_bytes(b"the user's own file")
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", out, "--model", model)
    assert code == 2 and "already exists" in one_error_line(err) and "--overwrite" in err
    assert out.read_bytes() == b"the user's own file"
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", out, "--model", model, "--overwrite")
    assert code == 0, err
    assert clip_file(out)[:2] == ("h264", 17)
    source = tmp_path / "source.mp4"
    source.write_bytes((inputs / "source.mp4").read_bytes())
    before = source.read_bytes()
    code, _, err = cli(capsys, "video", "remove the circle", "-o", source, "--video", source, "--model", model,
                       "--overwrite")
    assert code == 2 and "overwrite the source" in one_error_line(err)
    assert source.read_bytes() == before


@pytest.mark.parametrize("make, words", [
    (lambda p, good: broken(p, good), "damaged"),
    (lambda p, good: broken(p, good, truncated=True), "damaged"),
    (lambda p, good: audio_only(p), "no video picture"),
    (lambda p, good: too_long(p), "too long"),
    (lambda p, good: too_large(p), "too large"),
    (lambda p, good: p.with_name("missing.mp4"), "not found"),
    (lambda p, good: cut_short(p), "cut short"),
    (lambda p, good: (shapes_clip(p, frames=1), p)[1], "too short to edit: 1 frame"),
], ids=["garbage", "truncated", "audio-only", "too-long", "too-large", "missing", "cut-short", "one-frame"])
def test_bad_source_clips_get_one_clear_line_before_the_model_loads(tiny_video_model, inputs, tmp_path, capsys,
                                                                     monkeypatch, make, words):
    import app.commands_video

    def no_load(*args, **kwargs):
        raise AssertionError("the model loaded before a bad source was said")

    monkeypatch.setattr(app.commands_video, "load_video_pipeline", no_load)
    source = make(tmp_path / "source.mp4", inputs / "source.mp4")
    out = tmp_path / "out.mp4"
    code, _, err = cli(capsys, "video", "remove the circle", "-o", out, "--video", source, "--model", tiny_video_model)
    line = one_error_line(err)
    assert code == 2 and words in line.lower(), err
    assert "Errno" not in line  # FFmpeg's own words, not its error number
    assert not out.exists()


def test_wrong_words_models_and_inputs_get_one_clear_line(tiny_video_model, inputs, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    cases = [
        (["a red dragon moves up"], "'dragon'"),
        (["a red circle moves up", "--frames", 16], "nearest is 17"),
        (["a red circle moves up", "--model", tmp_path], "model_index.json"),
        (["a red circle moves up", "--model", STILL_MODEL], "does not do text to video"),
        (["a red circle moves up", "--image", inputs / "first.png", "--video", inputs / "source.mp4"],
         "give one of --image"),
        (["the circle from the first image moves up", "--reference", *[inputs / "first.png"] * 3], "one or two"),
        (["remove the circle", "--video", inputs / "first.png"], "not a video"),
        (["a red circle moves up", "--image", inputs / "source.mp4"], "not an image"),
        # Longer or wider than the backbone's positions reach: refused before any work, not a reshape error.
        (["a red circle moves up", "--frames", 257], "at most 253 frames"),
        # A clip from an image is the image and frames made after it: one frame is no clip.
        (["a red circle moves up", "--image", inputs / "first.png", "--frames", 1], "at least 5 frames"),
        (["a red circle moves up", "--image", inputs / "first.png", "--frames", 2], "nearest is 5"),
        (["a red circle moves up", "--no-canvas", "--plan", tmp_path / "plan.mp4"], "leave one out"),
        (["a red circle moves up", "--width", 520, "--height", 48], "at most 512 pixels wide"),
    ]
    for args, words in cases:
        if "--model" not in args:
            args = [*args, "--model", tiny_video_model]
        code, _, err = cli(capsys, "video", *args, "-o", out)
        assert code == 2 and words in one_error_line(err), (args, err)
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", tmp_path / "out.png")
    assert code == 2 and ".mp4" in one_error_line(err)
    # The words after --reference are read as one more still: said so, with the way out.
    code, _, err = cli(capsys, "video", "-o", out, "--model", tiny_video_model, "--reference", inputs / "first.png",
                       "the circle from the first image moves up")
    assert code == 2 and "put the instruction before --reference" in one_error_line(err)
    code, _, err = cli(capsys, "video", "-o", out, "--model", tiny_video_model)
    assert code == 2 and "no instruction" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_the_video_model_is_the_default(monkeypatch, tmp_path, capsys):
    """`video` loads the settings' video model (models/metacanvas-shapes-video), `generate` the still one."""
    loaded = []

    def load(folder, **kw):
        loaded.append(Path(folder).name)
        raise ValueError("stop here")

    monkeypatch.setattr("app.core.checkpoints.load_model", load)
    from app.settings import Settings

    Settings(video_model=str(COMMITTED)).save()
    cli(capsys, "video", "a red circle moves up", "-o", tmp_path / "v.mp4")
    cli(capsys, "generate", "a red circle", "-o", tmp_path / "g.png")
    assert loaded in (["metacanvas-shapes-video", "metacanvas-shapes"], ["metacanvas-shapes"])
    Settings(video_model=str(tmp_path / "nowhere")).save()
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", tmp_path / "v.mp4")
    assert code == 2 and "nowhere" in one_error_line(err) and "--model" in err


def test_python_main_py_video_end_to_end(tiny_video_model, tmp_path):
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "video", "a green star moves left", "-o", str(out),
                        "--model", str(tiny_video_model), "--seed", "random"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-800:]
    assert "seed: " in r.stdout and "wrote" in r.stdout and "text to video" in r.stderr  # the bar's label
    assert clip_file(out)[:2] == ("h264", 17)


def test_generate_and_eval_take_video_prompt_files(tiny_video_model, tmp_path, capsys):
    from app.eval.video_eval import write_sample_clip
    from app.shapes.motion import render_clip
    from app.shapes.video_prompts import make_video_metadata, scene_for_video_metadata, write_video_metadata

    records = make_video_metadata(7, seed=3, frames=17)  # one of each tag
    prompts = write_video_metadata(tmp_path / "video_metadata.jsonl", records)
    out = tmp_path / "samples"
    code, stdout, err = cli(capsys, "generate", "--prompts", prompts, "--out", out, "--n", 2, "--model",
                            tiny_video_model)
    assert code == 0, err
    assert "14 clips for 7 prompts" in stdout
    assert sorted(p.name for p in (out / "00003" / "samples").iterdir()) == ["0000.mp4", "0001.mp4"]
    assert json.loads((out / "00006" / "metadata.jsonl").read_text()) == records[6]
    assert clip_file(out / "00000" / "samples" / "0001.mp4") == ("h264", 17, 48, 48)
    code, stdout, err = cli(capsys, "eval", out)
    assert code == 0, err
    summary = json.loads((out / "video_summary.json").read_text())
    assert summary["clips"] == 14 and summary["total_prompts"] == 7 and set(summary["tags"]) == \
        {r["tag"] for r in records} and 0 <= summary["overall"] <= 1 and "overall" in stdout
    assert len((out / "video_results.jsonl").read_text().splitlines()) == 14
    # Run again into the same --out: refused (its clips would be scored with the old ones), or with --overwrite
    # the earlier prompt folders go first; what else the folder holds stays.
    fewer = write_video_metadata(tmp_path / "two.jsonl", records[:2])
    code, _, err = cli(capsys, "generate", "--prompts", fewer, "--out", out, "--n", 1, "--model", tiny_video_model)
    assert code == 2 and "7 prompt folders of an earlier run" in one_error_line(err) and "--resume" in err
    (out / "2024").mkdir()  # the user's own folder beside the run's: never the run's to remove
    code, _, err = cli(capsys, "generate", "--prompts", fewer, "--out", out, "--n", 1, "--model", STILL_MODEL,
                       "--overwrite")  # refused once the model is loaded: the earlier run is still there
    assert code == 2 and len([p for p in out.iterdir() if p.is_dir()]) == 8, err
    code, stdout, err = cli(capsys, "generate", "--prompts", fewer, "--out", out, "--n", 1, "--model",
                            tiny_video_model, "--overwrite")
    assert code == 0 and "2 clips for 2 prompts" in stdout, err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["00000", "00001", "2024"]
    assert (out / "video_summary.json").exists()
    # A run stopped part way goes on with --resume: only the clips it lacks are made, with its own seeds.
    first = (out / "00001" / "samples" / "0000.mp4").read_bytes()
    (out / "00000" / "samples" / "0000.mp4").unlink()
    code, stdout, err = cli(capsys, "generate", "--prompts", fewer, "--out", out, "--n", 1, "--model",
                            tiny_video_model, "--resume", "--seed", 5)
    assert code == 0 and "1 clip for 2 prompts" in stdout and "(1 from the earlier run kept)" in stdout, err
    assert (out / "00001" / "samples" / "0000.mp4").read_bytes() == first
    code, _, err = cli(capsys, "generate", "--prompts", fewer, "--out", out, "--n", 2, "--model", tiny_video_model,
                       "--resume")
    assert code == 2 and "other options than the earlier run's (n" in one_error_line(err)
    code, _, err = cli(capsys, "generate", "--prompts", prompts, "--out", out, "--n", 1, "--model", tiny_video_model,
                       "--resume")
    assert code == 2 and "a run of other prompts" in one_error_line(err)
    import shutil

    retrained = tmp_path / "retrained"
    shutil.copytree(tiny_video_model, retrained)
    weights = sorted(retrained.rglob("*.safetensors"))[-1]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # a last weight's last byte: another checkpoint of the same name
    weights.write_bytes(bytes(data))
    code, _, err = cli(capsys, "generate", "--prompts", fewer, "--out", out, "--n", 1, "--model", retrained,
                       "--resume")
    assert code == 2 and "a run of other weights" in one_error_line(err)

    # The same layout holding ground-truth clips scores 1.0: the files keep what the detector needs.
    truth = tmp_path / "truth"
    rng = np.random.default_rng(0)
    for i, record in enumerate(records):
        (truth / f"{i:05d}" / "samples").mkdir(parents=True)
        (truth / f"{i:05d}" / "metadata.jsonl").write_text(json.dumps(record) + "\n")
        for j in range(2):
            write_sample_clip(render_clip(scene_for_video_metadata(record, rng), 17, 48),
                              truth / f"{i:05d}" / "samples" / f"{j:04d}.mp4")
    code, stdout, err = cli(capsys, "eval", truth, "--out", tmp_path / "report")
    assert code == 0, err
    assert json.loads((tmp_path / "report" / "video_summary.json").read_text())["overall"] == 1.0
    # A damaged clip is named by its folder and left out; the rest are scored.
    damaged = truth / "00002" / "samples" / "0001.mp4"
    damaged.write_bytes(damaged.read_bytes()[:300])
    code, stdout, err = cli(capsys, "eval", truth, "--out", tmp_path / "report")
    assert code == 0 and "left out 00002/samples/0001.mp4" in err, err
    assert json.loads((tmp_path / "report" / "video_summary.json").read_text())["clips"] == 13
    # A folder holding pictures beside the clips is refused, not scored as one kind with the other left out.
    (truth / "00003" / "samples" / "0002.png").write_bytes(b"")
    code, _, err = cli(capsys, "eval", truth)
    assert code == 2 and "holds clips (00000/samples/) and pictures (00003/samples/)" in one_error_line(err)


def test_a_prompt_file_mixing_stills_and_clips_is_refused(tmp_path, capsys):
    from app.shapes.video_prompts import make_video_metadata

    still = {"tag": "single_object", "prompt": "a photo of a red circle",
             "include": [{"class": "circle", "count": 1, "color": "red"}]}
    prompts = tmp_path / "mixed.jsonl"
    prompts.write_text(json.dumps(make_video_metadata(1, seed=3)[0]) + "\n" + json.dumps(still) + "\n")
    code, _, err = cli(capsys, "generate", "--prompts", prompts, "--out", tmp_path / "o", "--model", STILL_MODEL)
    assert code == 2 and "mixes video records (record 1) and image records (record 2)" in one_error_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("line, words", [
    ('{"prompt": "a red circle moves right", "include": [{"class": "circle", "color": "red", "count": 1, '
     '"action": "moves", "direction": "right"}]}', 'line 2: its "tag" is None'),
    ('{"tag": "one_moves", "prompt": "a red circle flies", "include": [{"class": "circle", "color": "red", '
     '"count": 1, "action": "flies"}]}', '"action" is one of moves'),
    ('{"tag": "one_moves", "prompt": "a red circle moves", "include": [{"class": "circle", "color": "red", '
     '"count": 1, "action": "moves"}]}', "a mover's \"direction\""),
    ("not json", "line 2 is not JSON"),
    ('{"tag": "one_moves", "prompt": "a red circle moves", "include": null}', 'line 2: its "include"'),
    ('{"tag": "one_moves", "prompt": "a red circle moves", "include": [1]}', 'line 2: its "include"'),
])
def test_a_prompt_file_with_a_bad_line_is_refused_naming_it(tmp_path, capsys, line, words):
    from app.shapes.video_prompts import make_video_metadata

    good = json.dumps(make_video_metadata(1, seed=3)[0])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(good + "\n" + line + "\n")
    code, _, err = cli(capsys, "generate", "--prompts", prompts, "--out", tmp_path / "o", "--model", STILL_MODEL)
    assert code == 2 and words in one_error_line(err) and "p.jsonl" in err
    assert not (tmp_path / "o").exists()
    code, _, err = cli(capsys, "eval", tmp_path / "nowhere")
    assert code == 2 and "is not a folder" in one_error_line(err)


def test_video_prompts_need_a_video_model(tmp_path, capsys):
    from app.shapes.video_prompts import make_video_metadata, write_video_metadata

    prompts = write_video_metadata(tmp_path / "p.jsonl", make_video_metadata(2, seed=3))
    code, _, err = cli(capsys, "generate", "--prompts", prompts, "--out", tmp_path / "o", "--model", STILL_MODEL)
    assert code == 2 and "does not do text to video" in one_error_line(err)


def test_a_video_edit_keeps_its_sources_sound_and_refuses_a_source_too_short_to_edit(tiny_video_model, tmp_path,
                                                                                    capsys):
    from tests.media.media_helpers import write_clip_with_audio

    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    out = tmp_path / "edited.mp4"
    code, stdout, err = cli(capsys, "video", "remove the circle", "-o", out, "--video", source, "--model",
                            tiny_video_model, "--steps", 1)
    assert code == 0, err
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].codec_context.name == "aac"
    short = tmp_path / "short.mp4"
    shapes_clip(short, frames=3)
    code, _, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "no.mp4", "--video", short, "--model",
                       tiny_video_model)
    assert code == 2 and "too short to edit: 3 frames" in one_error_line(err)
    assert not (tmp_path / "no.mp4").exists()


def test_a_video_edit_whose_sources_sound_cannot_be_read_is_written_without_it_and_says_so(tiny_video_model,
                                                                                          tmp_path, capsys,
                                                                                          monkeypatch):
    """The edit carries its source's sound; a sound that cannot be decoded (here its decoder made to fail part way)
    failed the whole export after the model's run, and the made clip was lost. It is written without sound, said."""
    import app.media.export as export
    from tests.media.media_helpers import write_clip_with_audio

    def damaged_sound(*a, **k):
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(export, "_write_audio", damaged_sound)
    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    out = tmp_path / "edited.mp4"
    code, stdout, err = cli(capsys, "video", "remove the circle", "-o", out, "--video", source, "--model",
                            tiny_video_model, "--steps", 1)
    assert code == 0, err
    assert "without sound: the sound of 'camera.mp4' could not be read" in stdout
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video"] and container.streams.video[0].frames == 17


def test_the_longest_clip_a_model_names_is_one_it_makes(tiny_video_model, tmp_path, capsys):
    """The limit in the refusal is real: the tiny model (the committed one's positions) makes 253 frames."""
    from app.core.checkpoints import load_model
    from app.core.request import Task

    pipe = load_model(tiny_video_model)
    assert (pipe.max_frames(Task.TEXT_TO_VIDEO), pipe.max_frames(Task.VIDEO_EDIT),
            pipe.max_frames(Task.REFERENCE_TO_VIDEO, 2)) == (253, 125, 245)
    with pytest.raises(ValueError, match="at most 125 frames for a video edit"):
        pipe.check_frames(129, Task.VIDEO_EDIT)
    # A length too long and not packed: the limit is said, not "the nearest is 1001" (refused next).
    with pytest.raises(ValueError, match="at most 253 frames; 1000 were asked for"):
        pipe.check_frames(1000, Task.TEXT_TO_VIDEO)
    with pytest.raises(ValueError, match="the nearest is 9"):  # an unpacked length within the limit: the nearest
        pipe.check_frames(10, Task.TEXT_TO_VIDEO)
    out = tmp_path / "long.mp4"
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", out, "--frames", 253, "--steps", 1,
                       "--model", tiny_video_model)
    assert code == 0, err
    assert clip_file(out)[:2] == ("h264", 253)


@pytest.mark.parametrize("rate", ["0", "-3", "5000", "nan", "fast"])
def test_a_frame_rate_out_of_bounds_is_refused_before_anything_runs(tmp_path, capsys, rate):
    out = tmp_path / "out.mp4"
    with pytest.raises(SystemExit) as stop:
        cli(capsys, "video", "a red circle moves up", "-o", out, "--fps", rate)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "frame rate" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("stated, written", [(12.0, "at 12 fps"), (None, "at 24 fps")])
def test_a_new_clip_is_written_at_its_models_frame_rate_else_the_projects(tiny_video_model, tmp_path, capsys,
                                                                          stated, written):
    import shutil

    folder = shutil.copytree(tiny_video_model, tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    index["defaults"].pop("fps", None)
    if stated is not None:
        index["defaults"]["fps"] = stated
    (folder / "model_index.json").write_text(json.dumps(index))
    code, stdout, err = cli(capsys, "video", "a red circle moves up", "-o", tmp_path / "out.mp4", "--model", folder)
    assert code == 0 and written in stdout, err


def test_a_retimed_edit_drops_the_sound_and_says_so(tiny_video_model, tmp_path, capsys):
    from app.media.probe import probe_video
    from tests.media.media_helpers import write_clip_with_audio

    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    kept, retimed = tmp_path / "kept.mp4", tmp_path / "retimed.mp4"
    code, stdout, err = cli(capsys, "video", "remove the circle", "-o", kept, "--video", source,
                            "--model", tiny_video_model)
    assert code == 0 and "at 12 fps" in stdout and probe_video(kept).has_audio, err
    code, stdout, err = cli(capsys, "video", "remove the circle", "-o", retimed, "--video", source, "--fps", 6,
                            "--model", tiny_video_model)
    assert code == 0 and "without the source's sound" in stdout and not probe_video(retimed).has_audio, err


@pytest.mark.parametrize("frames, words", [(1, "too few for a video edit"), (3, "1 + a multiple of 4")])
def test_too_few_frames_for_an_edit_is_said_of_frames_not_of_the_source(tiny_video_model, inputs, tmp_path, capsys,
                                                                         frames, words):
    code, _, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "o.mp4", "--video",
                       inputs / "long_source.mp4", "--frames", frames, "--model", tiny_video_model)
    assert code == 2 and words in one_error_line(err) and "too short" not in err


def test_a_length_suggested_for_an_edit_is_one_its_source_holds(tiny_video_model, tmp_path, capsys):
    """--frames 24 of a 24-frame source: the nearest length the model makes is 25, which the source lacks;
    the one suggested is 21, and it runs."""
    from tests.media.media_helpers import write_clip_with_audio

    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    code, _, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "o.mp4", "--video", source,
                       "--frames", 24, "--model", tiny_video_model)
    assert code == 2 and "the nearest is 21" in one_error_line(err), err
    code, _, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "o.mp4", "--video", source,
                       "--frames", 21, "--model", tiny_video_model)
    assert code == 0, err


def test_an_output_naming_the_source_clip_is_said_to_be_it_with_or_without_overwrite(tiny_video_model, tmp_path,
                                                                                      capsys):
    """-o naming the source clip said "already exists; add --overwrite", whose advice then met "would overwrite
    the source clip": both ways it is said to be the source, and the source is untouched."""
    from tests.media.media_helpers import write_clip_with_audio

    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    before = source.read_bytes()
    # Another name for the same file: a hard link here; on a case-insensitive disk (macOS, Windows) 'Camera.MP4'.
    other_name = tmp_path / "Camera.MP4"
    os.link(source, other_name)
    for output in (source, other_name):
        for extra in ([], ["--overwrite"]):
            code, _, err = cli(capsys, "video", "remove the circle", "-o", output, "--video", source, *extra,
                               "--model", tiny_video_model)
            assert code == 2 and "would overwrite the source clip" in one_error_line(err), err
    assert source.read_bytes() == before


def test_outputs_a_run_cannot_write_are_refused_before_the_clip_is_made(tiny_video_model, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    for extra, words in ((["-o", tmp_path / "nope" / "x.mp4"], "the folder of -o"),
                         (["-o", out, "--plan", tmp_path / "nope" / "p.mp4"], "the folder of --plan")):
        code, _, err = cli(capsys, "video", "a red circle moves up", *extra, "--model", tiny_video_model)
        assert code == 2 and words in one_error_line(err) and "step" not in err  # no progress bar: nothing ran
    assert not out.exists()  # the -o of the run refused for its --plan was not written either
    code, _, err = cli(capsys, "video", "   ", "-o", out, "--model", tiny_video_model)
    assert code == 2 and "no instruction" in one_error_line(err)


def test_what_an_edit_leaves_out_or_stretches_is_said(tiny_video_model, inputs, tmp_path, capsys):
    from tests.media.media_helpers import write_clip_with_audio

    code, stdout, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "a.mp4", "--video",
                            inputs / "long_source.mp4", "--model", tiny_video_model)
    assert code == 0 and "first 17 of 30 frames, the rest is not in it (--frames up to 29" in stdout, err
    assert "stretched" not in stdout  # 48 x 48 into 48 x 48
    wide = write_clip_with_audio(tmp_path / "camera.mp4", frames=17, fps=12)  # 64 x 48
    code, stdout, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "b.mp4", "--video", wide,
                            "--model", tiny_video_model)
    # The model saw it stretched, but the edit comes back at the source's size and shape.
    assert code == 0 and "at the source's 64x48" in stdout and "rest is not" not in stdout, err
    assert clip_file(tmp_path / "b.mp4")[2:] == (64, 48)
    code, stdout, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "c.mp4", "--video", wide,
                            "--model", tiny_video_model, "--as-drawn")
    assert code == 0 and "the source's 64x48 was stretched to 48x48" in stdout, err


def test_as_drawn_is_for_edits_and_clips_from_an_image_alone(model, inputs, tmp_path, capsys):
    out = tmp_path / "drawn.mp4"
    code, _, err = cli(capsys, "video", "a red circle moves up", "-o", out, "--model", model, "--as-drawn")
    assert code == 2 and "--as-drawn is for video edits (--video SOURCE) and clips from an image" in \
        one_error_line(err) and not out.exists()
    code, _, err = cli(capsys, "video", "the star moves left", "-o", tmp_path / "i2v.mp4", "--image",
                       inputs / "first.png", "--model", model, "--as-drawn")
    assert code == 0, err
    from app.media.probe import read_video_frames

    kept = tmp_path / "kept.mp4"
    for path, extra in [(out, ["--as-drawn"]), (kept, [])]:
        code, _, err = cli(capsys, "video", "remove the star", "-o", path, "--video", inputs / "source.mp4",
                           "--model", model, "--seed", 2, *extra)  # the clip holds a star and two triangles
        assert code == 0, err
        assert clip_file(path)[:2] == ("h264", 17)
    if model == COMMITTED:  # it keeps an edit's unchanged pixels (the untrained one changes every pixel)
        assert not np.array_equal(read_video_frames(out), read_video_frames(kept))


def test_an_edit_the_model_did_not_make_is_said(tiny_video_model, inputs, tmp_path, capsys, monkeypatch):
    """When the edited clip is its source again, pixel for pixel, the user is told the edit was not made."""
    from app.core.keep_source import source_as_made
    from app.core.pipeline import MetaCanvasPipeline

    monkeypatch.setattr(MetaCanvasPipeline, "keep_source", lambda self, source, frames, allowed=None: source_as_made(source, frames))
    code, out, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "same.mp4", "--video",
                         inputs / "source.mp4", "--model", tiny_video_model)
    assert code == 0 and "the model changed nothing" in out, err
    monkeypatch.undo()
    code, out, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "other.mp4", "--video",
                         inputs / "source.mp4", "--model", tiny_video_model)
    assert code == 0 and "changed nothing" not in out, err


def test_an_edit_whose_clip_falls_short_of_its_plan_is_said(inputs, tmp_path, capsys, monkeypatch):
    """The committed model checks a drafted edit's clip against its plan: a clip that holds other objects than
    the drafted ones (here the model's result swapped for another scene's clip) is reported as not made as planned, with
    what it lacks and what it holds unplanned; the file is written all the same."""
    from app.core.pipeline import MetaCanvasPipeline
    from app.shapes.motion import random_motion_scene, render_clip

    other = render_clip(random_motion_scene(np.random.default_rng(99)), 17, 48)
    monkeypatch.setattr(MetaCanvasPipeline, "keep_source", lambda self, source, frames, allowed=None: other)
    code, out, err = cli(capsys, "video", "remove the star", "-o", tmp_path / "short.mp4", "--video",
                         inputs / "source.mp4", "--model", COMMITTED)
    assert code == 0, err
    assert "the edit was not made as planned: the clip " in out and ("does not show a" in out or "off the path" in out)
    assert clip_file(tmp_path / "short.mp4")[:2] == ("h264", 17)
    # With the canvas off the DiT never saw the draft: the clip is not checked against it.
    code, out, err = cli(capsys, "video", "remove the star", "-o", tmp_path / "off.mp4", "--video",
                         inputs / "source.mp4", "--model", COMMITTED, "--no-canvas")
    assert code == 0, err
    assert "not made as planned" not in out and (tmp_path / "off.mp4").exists()


def test_the_committed_video_model_refuses_a_size_it_was_not_trained_at(tmp_path, capsys):
    """Asked for 96x48 it drew a blank clip after the first frame; now it says so before making anything."""
    if not (COMMITTED / "model_index.json").is_file():
        pytest.skip("models/metacanvas-shapes-video is not there yet")
    out = tmp_path / "wide.mp4"
    code, _, err = cli(capsys, "video", "a red circle moves to the right", "-o", out, "--model", COMMITTED,
                       "--width", 96, "--height", 48)
    assert code == 2 and "makes 48x48 only" in one_error_line(err) and not out.exists()


def test_an_edit_comes_back_at_its_sources_size_with_the_untouched_pixels_its_own(inputs, tmp_path, capsys):
    """The committed model edits at 48x48; a 96x72 source gets a 96x72 clip, unless --as-drawn asks for the
    model's frames. What goes back in is the model's change alone (a made change, below, checked at full size)."""
    import cv2

    from app.commands_video import edit_at_source_size
    from app.core.checkpoints import load_model
    from app.core.keep_source import source_as_made
    from app.media.export import export_video
    from app.media.probe import read_video_frames

    if not (COMMITTED / "model_index.json").is_file():
        pytest.skip("models/metacanvas-shapes-video is not there yet")
    clip = shapes_clip(tmp_path / "square.mp4")
    wide = np.stack([cv2.resize(f, (96, 72), interpolation=cv2.INTER_LINEAR) for f in clip])
    export_video(list(wide), tmp_path / "wide.mp4", fps=8)
    out = tmp_path / "edited.mp4"
    code, stdout, err = cli(capsys, "video", "make the star blue", "-o", out, "--video", tmp_path / "wide.mp4",
                            "--model", COMMITTED, "--seed", 1)
    assert code == 0, err
    assert clip_file(out) == ("h264", 17, 96, 72) and "at the source's 96x72" in stdout
    assert "stretched" not in stdout  # the clip has the source's shape again
    assert "% of the clip) drawn at 48x48 and scaled up, every other pixel the source's own" in stdout
    # Footage outside the model's world is redrawn whole: the note does not promise the source's pixels then.
    noise = np.random.default_rng(0).integers(0, 256, (17, 72, 96, 3), dtype=np.uint8)
    export_video(list(noise), tmp_path / "noise.mp4", fps=8)
    code, stdout, err = cli(capsys, "video", "make the circle green", "-o", tmp_path / "noise-edit.mp4", "--video",
                            tmp_path / "noise.mp4", "--model", COMMITTED)
    assert code == 0 and "the model redrew the whole clip at 48x48" in stdout and "every other pixel" not in stdout, err
    assert "finds no circle" not in stdout  # nothing found at all: edited undrafted, not refused
    code, stdout, err = cli(capsys, "video", "make the star blue", "-o", tmp_path / "drawn.mp4", "--video",
                            tmp_path / "wide.mp4", "--model", COMMITTED, "--seed", 1, "--as-drawn")
    assert code == 0 and clip_file(tmp_path / "drawn.mp4") == ("h264", 17, 48, 48) and "stretched to 48x48" in stdout
    # The composite itself: a change made at 48x48 lands at 96x72, and nothing else moves.
    footage = read_video_frames(tmp_path / "wide.mp4")[:17]
    given = source_as_made(footage, np.zeros((17, 48, 48, 3), np.uint8))
    made = given.copy()
    made[:, 30:40, 4:14] = (40, 90, 220)  # a blue block the model "drew"
    frames, size = edit_at_source_size(load_model(COMMITTED), tmp_path / "wide.mp4", given, made)
    full = np.stack(list(frames))
    assert size == (96, 72) and full.shape == (17, 72, 96, 3)
    assert np.abs(full[:, 52, 18].astype(int) - (40, 90, 220)).max() <= 3
    outside = np.ones(full.shape[:3], bool)
    outside[:, 41:64, 4:32] = False  # the block at 96x72 (rows 45-60, columns 8-28) and its grown border
    assert np.array_equal(full[outside], footage[outside])


def test_an_edit_naming_an_object_the_clip_lacks_writes_nothing_and_says_why(inputs, tmp_path, capsys):
    """'remove the circle' of a clip holding a star and two triangles: the drafter must not pick another
    object to remove; nothing is written (neither -o nor --plan: a copy of the source is no edit), the exit
    status says the edit was not made, and the user is told why."""
    if not (COMMITTED / "model_index.json").is_file():
        pytest.skip("models/metacanvas-shapes-video is not there yet")
    code, out, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "none.mp4", "--video",
                         inputs / "source.mp4", "--plan", tmp_path / "plan.mp4", "--model", COMMITTED, "--seed", 1)
    assert code == 1
    assert "it finds no circle in the clip" in one_error_line(err) and "nothing written" in err
    assert "reads the clip at" not in err  # the clip is at the model's size: nothing is lost in reading it
    assert list(tmp_path.iterdir()) == []
    # A larger clip is read shrunk to the model's size: that is said, since small objects can be lost there.
    from app.media.export import export_video
    from app.media.probe import read_video_frames

    big = tmp_path / "big" / "source.mp4"
    big.parent.mkdir()
    export_video(np.repeat(np.repeat(read_video_frames(inputs / "source.mp4"), 2, axis=1), 2, axis=2), big, fps=8)
    code, _, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "none.mp4", "--video", big,
                       "--model", COMMITTED, "--seed", 1)
    assert code == 1 and "reads the clip at 48x48 px, the source's 96x96 shrunk" in one_error_line(err), err


def test_an_edit_is_refused_as_naming_what_the_clip_lacks_only_where_the_detector_finds_objects(
        inputs, tmp_path, capsys, monkeypatch):
    """The check that the words' object is in the clip reads the detector's tracks of the source; where it
    finds nothing at all (footage outside the model's world), nothing can be said to be missing: the edit is
    made, not refused. (The draft itself is made as before: only the check's reading is emptied here.)"""
    import torch

    import app.core.pipeline as pipeline

    if not (COMMITTED / "model_index.json").is_file():
        pytest.skip("models/metacanvas-shapes-video is not there yet")

    def nothing_found(planner, clips, config):
        rows = torch.full((len(clips), config.length, config.columns), -1, dtype=torch.long)
        rows[:, 0, 0] = 0  # the stop row first: no track
        return rows

    monkeypatch.setattr(pipeline, "source_tracks", nothing_found)
    code, out, err = cli(capsys, "video", "remove the circle", "-o", tmp_path / "made.mp4", "--video",
                         inputs / "source.mp4", "--model", COMMITTED, "--seed", 1)
    assert code == 0 and (tmp_path / "made.mp4").is_file(), err
    assert "finds no circle" not in out + err


def test_an_edit_of_a_source_too_big_or_odd_sized_says_the_size_it_was_written_at(inputs, tmp_path, capsys):
    import cv2

    if not (COMMITTED / "model_index.json").is_file():
        pytest.skip("models/metacanvas-shapes-video is not there yet")
    clip = shapes_clip(tmp_path / "square.mp4")
    for size, said, written in (((2000, 48), "at 1920x46, the source's 2000x48 scaled down to 1920 px a side",
                                 (1920, 46)),
                                ((101, 77), "at the source's 101x77, written 102x78", (102, 78))):
        source = tmp_path / f"{size[0]}.mkv"  # FFV1 keeps an odd size (H.264 files are even)
        with av.open(str(source), "w") as container:
            stream = container.add_stream("ffv1", rate=8)
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv444p"
            for f in clip:
                frame = av.VideoFrame.from_ndarray(cv2.resize(f, size, interpolation=cv2.INTER_LINEAR), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        out = tmp_path / f"{size[0]}-edited.mp4"
        code, stdout, err = cli(capsys, "video", "make the star blue", "-o", out, "--video", source, "--model",
                                COMMITTED, "--seed", 1)
        assert code == 0 and said in stdout, (stdout, err)
        assert clip_file(out)[2:] == written


@pytest.mark.parametrize("words, untrained", [("two blue squares move up", "'two', 'squares', 'move'"),
                                               ("a blue square move up", "'move'")])
def test_words_the_video_model_never_trained_on_are_refused_before_a_clip_is_made(tmp_path, capsys, monkeypatch,
                                                                                   words, untrained):
    """The committed video model's planner knows the stills' words, but no clip it was taught on used counts,
    plurals or "move": "a blue square move up" made a square moving down. Refused, naming them, nothing written,
    and before the model loads (read from the folder's files: seconds sooner)."""
    import app.core.checkpoints

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded to refuse a word")

    monkeypatch.setattr(app.core.checkpoints, "load_model", no_loading)
    code, _, err = cli(capsys, "video", words, "-o", tmp_path / "c.mp4", "--model", COMMITTED)
    said = one_error_line(err)
    assert code == 2 and any(f"does not know the {w} {untrained}" in said for w in ("word", "words")), err
    assert "moves" in err and "squares" not in err.split("It knows:")[1]
    assert not (tmp_path / "c.mp4").exists()



@pytest.mark.parametrize("folder", [COMMITTED, STILL_MODEL], ids=["video", "still"])
def test_the_word_check_read_from_a_model_folder_says_what_the_loaded_model_says(folder):
    """The CLI checks words from the folder's files before loading (app/core/words.py); it must refuse exactly
    what the loaded model refuses, with the same message, and pass what it passes."""
    from app.core.checkpoints import load_model
    from app.core.request import Task
    from app.core.words import check_words_in_folder

    pipe = load_model(folder)
    for text, edit in [("a red circle moves right, a blue star moves left.", False),
                       ("two blue squares move up", False), ("the circle from the first picture moves right", False),
                       ("make the circle blue and remove the star", True), ("make the circle blue and", False),
                       ("a red circle above a blue square", False), ("a red circle near a bleu square!", False),
                       ("The Circle moves to the LEFT instead", True)]:
        task = Task.VIDEO_EDIT if edit and Task.VIDEO_EDIT.value in pipe.tasks else None
        said = []
        for check in (lambda: pipe.check_instruction(text, task),
                      lambda: check_words_in_folder(folder, text, getattr(task, "value", None))):
            try:
                check()
                said.append(None)
            except ValueError as e:
                said.append(str(e))
        assert said[0] == said[1], text
    with pytest.raises(ValueError, match="does not know the word 'bleu'"):
        check_words_in_folder(folder, "a bleu circle")


def test_the_video_models_own_captions_with_their_punctuation_pass_its_word_check():
    """Its training captions join clauses with commas; a typed one may end with a full stop: punctuation is the
    tokenizer's own and never held to the words its clips were taught."""
    from app.core.checkpoints import load_model
    from app.core.request import Task

    pipe = load_model(COMMITTED)
    pipe.check_instruction("a red circle moves right, a blue star moves left and a green square stays still.")
    pipe.check_instruction("The circle moves to the left instead.", Task.VIDEO_EDIT)


def test_a_motion_edit_whose_plan_went_another_way_is_said(inputs, tmp_path, capsys, monkeypatch):
    """The clip can match its plan and the plan not the words (the drafter drafted the star staying put for "the
    star moves up instead"): said, with the way to another draft."""
    import app.core.pipeline as pipeline

    monkeypatch.setattr(pipeline, "plan_off_words", lambda words, rows: "the star staying put")
    code, out, err = cli(capsys, "video", "the star moves up instead", "-o", tmp_path / "a.mp4", "--video",
                         inputs / "source.mp4", "--model", COMMITTED)
    assert code == 0 and "its plan did not follow the words: it has the star staying put (another --seed" in out, err


def test_a_reference_clip_that_lost_a_named_object_is_said(tmp_path, capsys, monkeypatch):
    """The edit check, for reference clips too: a clip that does not show an object its words name from a still
    (here the model's frames swapped for a blank clip) is written, and said short of its plan, naming what it
    lacks; a clip that shows its plan is not."""
    from app.core.latents import PixelCodec

    samples = ROOT / "resources" / "samples"
    words = "the circle from the first image moves right and the star from the second image moves left"
    stills = [samples / "red_circle_64.png", samples / "yellow_star_64.png"]
    real = PixelCodec.decode
    monkeypatch.setattr(PixelCodec, "decode", lambda self, latents: np.full_like(real(self, latents), 255))
    code, stdout, err = cli(capsys, "video", words, "--reference", *stills, "-o", tmp_path / "blank.mp4",
                            "--model", COMMITTED, "--seed", 0)
    assert code == 0 and (tmp_path / "blank.mp4").exists(), err
    assert "the clip was not made as planned: the clip does not show" in stdout
    assert "red circle" in stdout and "yellow star" in stdout and "another --seed" in stdout
    monkeypatch.setattr(PixelCodec, "decode", real)
    code, stdout, err = cli(capsys, "video", words, "--reference", *stills, "-o", tmp_path / "made.mp4",
                            "--model", COMMITTED, "--seed", 0)
    assert code == 0 and "not made as planned" not in stdout, stdout
