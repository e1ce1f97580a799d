"""Video files the tests feed to the video command and the media layer: a clip of the shapes world, and the
bad ones (broken, audio only, too long, too large, a song with its cover picture, a too-fast frame rate) a user
may pick by mistake, and a phone's portrait clip (landscape frames with a display matrix)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def shapes_clip(path: Path, frames: int = 17, size: int = 48, seed: int = 4, fps: float = 8) -> np.ndarray:
    """A rendered clip of the shapes world written as H.264; returns its frames."""
    from app.media.export import export_video
    from app.shapes.motion import random_motion_scene, render_clip

    clip = render_clip(random_motion_scene(np.random.default_rng(seed)), frames, size)
    export_video(list(clip), path, fps=fps)
    return clip


def audio_only(path: Path, cover: bool = False) -> Path:
    """An MP4 holding one second of AAC and no picture; with `cover`, a song's cover picture: a one-frame
    MJPEG stream marked as an attached picture (what a video reader sees as a "video" stream)."""
    import av

    rate = 8000
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        if cover:
            picture = out.add_stream("mjpeg", rate=1)
            picture.width, picture.height, picture.pix_fmt = 64, 64, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
            still = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
            still = still.reformat(format="yuvj420p")
            still.pts, still.time_base = 0, Fraction(1, 1)
            for packet in [*picture.encode(still), *picture.encode(None)]:
                out.mux(packet)
        t = np.arange(rate, dtype=np.float32) / rate
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                           format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _h264(path: Path, width: int, height: int, pts: list[int], time_base: Fraction, rate=1,
          picture: np.ndarray | None = None, rotation: int = 0) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        if rotation:
            stream.set_display_rotation(rotation)
        for p in pts:
            frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8) if picture is None else picture,
                                               format="rgb24")
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def too_long(path: Path) -> Path:
    """Two tiny frames five hours apart: a 300-minute clip in 1.5 kB."""
    return _h264(path, 16, 16, [0, 5 * 3600], Fraction(1, 1))


def too_large(path: Path) -> Path:
    """One black 8448 x 4480 frame (37.8 MP, above the 36 MP a frame the media layer opens): 110 kB."""
    return _h264(path, 8448, 4480, [0], Fraction(1, 1))


def too_fast(path: Path) -> Path:
    """Twelve frames at 1,200 frames a second: above the 1,000 a project file holds (app/media/schema.py)."""
    return _h264(path, 16, 16, list(range(12)), Fraction(1, 1200), rate=1200)


def portrait(path: Path, rotation: int = 90) -> Path:
    """Nine 64 x 32 stored frames, white in their left quarter, with a display matrix turning them `rotation`
    degrees counterclockwise: shown upright, 32 wide and 64 tall (a phone's portrait clip)."""
    picture = np.zeros((32, 64, 3), np.uint8)
    picture[:, :16] = 255
    return _h264(path, 64, 32, list(range(9)), Fraction(1, 8), rate=8, picture=picture, rotation=rotation)


def cut_short(path: Path) -> Path:
    """A clip whose header (written first, as a streaming copy has it) states 24 frames over the pictures of
    the first few: a copy that did not finish. Its header reads whole; its pictures stop part way."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(24):  # noise: every frame costs bytes, so a third of the file is a third of the frames
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def broken(path: Path, good: Path, truncated: bool = False) -> Path:
    """`good`'s first half (truncated), or its real MP4 header followed by random bytes."""
    data = good.read_bytes()
    noise = np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    path.write_bytes(data[: len(data) // 2] if truncated else data[:32] + noise)
    return path
