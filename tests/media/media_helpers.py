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


def write_flash_and_click(path: Path, fps: int = 12, seconds: float = 3.0, flash: float = 1.0, rate: int = 44100,
                          audio_codec: str = "aac", container: str = "mp4", audio_offset: float = 0.0,
                          video_offset: float = 0.0) -> Path:
    """A source whose picture flashes white and whose sound clicks at one moment (`flash` seconds after its
    first picture). Its picture stream starts at `video_offset` seconds, its sound at `audio_offset`, as a
    recording's streams may (a camera's sound a little after its pictures; a remuxed broadcast's clock)."""
    import av

    layout, planar = "stereo", audio_codec == "aac"
    with av.open(str(path), "w", format=container) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        vs.options = {"preset": "ultrafast", "bframes": "0"}
        aus = out.add_stream(audio_codec, rate=rate)
        aus.layout = layout
        for k in range(int(seconds * fps)):
            level = 255 if k == round(flash * fps) else 0
            vf = av.VideoFrame.from_ndarray(np.full((32, 32, 3), level, np.uint8), format="rgb24")
            vf.pts, vf.time_base = int(round((k / fps + video_offset) * 1000)), Fraction(1, 1000)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        signal = np.zeros(int(seconds * rate), np.float32)
        click = int(round((flash + video_offset - audio_offset) * rate))
        signal[click:click + rate // 50] = 0.8
        for s in range(0, len(signal), 1024):
            part = np.stack([signal[s:s + 1024]] * 2)
            if planar:
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="fltp", layout=layout)
            else:
                af = av.AudioFrame.from_ndarray((part.T * 30000).astype(np.int16).reshape(1, -1), format="s16",
                                                layout=layout)
            af.sample_rate, af.pts, af.time_base = rate, s + int(round(audio_offset * rate)), Fraction(1, rate)
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    return path


def flash_and_click(path: Path) -> tuple[float, float, int]:
    """(seconds from the first picture to the white one, seconds from it to the click, the sound's rate)."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [(float(f.pts * v.time_base), f.to_ndarray(format="gray").mean()) for f in c.decode(v)]
    origin = times[0][0]
    flash = next(t for t, level in times if level > 128) - origin
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        first, chunks = None, []
        for f in c.decode(a):
            first = float(f.pts * a.time_base) if first is None else first
            data = f.to_ndarray()
            chunks.append(data[0] if f.format.is_planar else data.reshape(-1, len(f.layout.channels))[:, 0])
        signal = np.abs(np.concatenate(chunks).astype(np.float32))
        click = first + int(np.argmax(signal > 0.3 * signal.max())) / a.rate - origin
        return flash, click, a.rate
