"""Helpers for the media tests: clips whose frames say their own index, and a clip with sound.
(A uniquely named module, not conftest, so other test folders' conftest files cannot shadow it.)"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

N_FRAMES = 40
STEP = 6  # grey level step between frames: far above the error of near-lossless H.264 on flat frames


def index_colour(k: int) -> int:
    return 10 + STEP * k


def indexed_frames(n: int = N_FRAMES, w: int = 64, h: int = 48) -> list[np.ndarray]:
    return [np.full((h, w, 3), index_colour(k), np.uint8) for k in range(n)]


def frame_index(frame: np.ndarray) -> int:
    """Which indexed frame this decoded picture is."""
    return int(round((float(frame.mean()) - 10) / STEP))


def write_clip_with_audio(path: Path, frames: int = 24, fps: int = 12, seconds: float = 2.0, rate: int = 44100) -> Path:
    """A camera-like source: H.264 picture plus an AAC sine tone, written straight with PyAV."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "stereo"
        for k in range(frames):
            vf = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index_colour(k % 40), np.uint8), format="rgb24")
            vf.pts = k
            vf.time_base = Fraction(1, fps)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        t = np.arange(int(seconds * rate), dtype=np.float32) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        af.sample_rate, af.pts, af.time_base = rate, 0, Fraction(1, rate)
        for p in aus.encode(af):
            out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
    return path
