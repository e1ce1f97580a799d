"""Fixtures for the media tests (the helpers live in media_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media_helpers import indexed_frames, write_clip_with_audio


@pytest.fixture(scope="session")
def indexed_clip(tmp_path_factory) -> Path:
    """40 frames at 10 fps, a keyframe every 8 frames, so reading frame k needs a real seek."""
    from app.media.export import export_video

    path = tmp_path_factory.mktemp("clips") / "indexed.mp4"
    export_video(indexed_frames(), path, fps=10, crf=10, keyframe_interval=8)
    return path


@pytest.fixture(scope="session")
def clip_with_audio(tmp_path_factory) -> Path:
    return write_clip_with_audio(tmp_path_factory.mktemp("clips") / "with_audio.mp4")


@pytest.fixture
def png_file(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "picture.png"
    arr = np.zeros((30, 50, 3), np.uint8)
    arr[:, :25] = (200, 30, 40)
    Image.fromarray(arr).save(path)
    return path
