"""The command line's four video tasks on the committed video model: real H.264 files of the model's
length, existing files kept, bad inputs refused in one line."""
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from app.media.export import export_video
from app.shapes.motion import random_motion_scene, render_clip

ROOT = Path(__file__).resolve().parents[1]
VIDEO_MODEL = ROOT / "models" / "metacanvas-shapes-video"


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "main.py", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def frames_of(path: Path) -> tuple[str, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, sum(1 for _ in container.decode(stream))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video-inputs")
    clip = render_clip(random_motion_scene(np.random.default_rng(4)), 17, 48)
    Image.fromarray(clip[0]).save(folder / "first.png")
    Image.fromarray(clip[8]).save(folder / "ref.png")
    export_video(list(clip), folder / "source.mp4", fps=8)
    return folder


@pytest.mark.parametrize("task,extra", [
    ("text to video", []),
    ("image to video", ["--image", "first.png"]),
    ("reference to video", ["--reference", "first.png", "ref.png"]),
    ("video edit", ["--video", "source.mp4"]),
])
def test_each_video_task_writes_an_h264_clip(inputs, tmp_path, task, extra):
    out = tmp_path / "out.mp4"
    extra = [str(inputs / a) if a.endswith((".png", ".mp4")) else a for a in extra]
    result = run("video", "a red circle moves to the right", "-o", str(out), "--seed", "2", *extra,
                 "--model", str(VIDEO_MODEL))
    assert result.returncode == 0, result.stderr[-800:]
    assert task in result.stdout
    codec, n = frames_of(out)
    assert codec == "h264" and n == 17


def test_an_existing_output_is_kept_and_bad_inputs_get_one_line(inputs, tmp_path):
    out = tmp_path / "kept.mp4"
    out.write_bytes(b"the user's own file")
    result = run("video", "a red circle moves up", "-o", str(out), "--model", str(VIDEO_MODEL))
    assert result.returncode != 0 and "exists" in result.stderr
    assert out.read_bytes() == b"the user's own file"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    result = run("video", "remove the circle", "-o", str(tmp_path / "o.mp4"), "--video", str(broken),
                 "--model", str(VIDEO_MODEL))
    assert result.returncode != 0 and "error:" in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) < 400 and "Traceback" not in result.stderr
    result = run("video", "a red circle moves up", "-o", str(tmp_path / "o.mp4"), "--frames", "16",
                 "--model", str(VIDEO_MODEL))
    assert result.returncode != 0 and "nearest is 17" in result.stderr
