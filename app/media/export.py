"""Export: still images (PNG/JPEG) and H.264 MP4 clips, and the whole video track.

These are plain functions that may take long; the UI runs them in a worker thread and passes
`progress(done, total)` (called from that thread) and a `threading.Event` to cancel. They never
touch the destination until the output is complete: everything is written to a hidden temporary
file beside it and moved into place at the end (see atomic.py). On cancel or error the temporary
file is removed and the destination is exactly as before. An existing destination file is only
replaced with `overwrite=True` (the one overwrite rule of app/media; `render --overwrite`); a
destination that is a folder, a pipe or a device is always refused. A failed write (full disk,
read-only folder) raises ExportError saying why, and that any existing file is unchanged.

Video: libx264, yuv420p, `crf` quality (18: visually lossless, 23: x264's default), no B-frames (the same
frames make the same file in every process; see export_video). yuv420p needs
an even width and height; odd sizes are PADDED by one row/column repeating the edge pixels, never
scaled, so no picture is resampled or cropped (a 65x47 input gives a 66x48 clip).
Audio: with `audio_source`, its first audio stream is transcoded to AAC (always AAC, so any source
codec works in MP4) and cut to the clip's length, starting at `audio_start` seconds.
"""
from __future__ import annotations

import heapq
import itertools
import os
import stat
import threading
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from . import atomic
from .errors import ExportCancelled, ExportError, MediaError, SoundError
from .files import describe_os_error, not_regular_message

Progress = Callable[[int, "int | None"], None]


def _check_destination(path: Path, overwrite: bool) -> None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ExportError(f"'{path}' is a folder; choose a file name to export to.")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ExportError(f"Cannot export there: {not_regular_message(path, st.st_mode)}")
    if st is not None and not overwrite:
        raise ExportError(f"'{path.name}' already exists. Choose another name or allow replacing it.")
    if not path.parent.is_dir():
        if path.parent.exists():
            raise ExportError(f"'{path.parent}' is a file, not a folder; choose a file name in a folder.")
        raise ExportError(f"The folder '{path.parent}' does not exist.")


def write_failed(path: Path, e: OSError) -> ExportError:
    """The message for an OSError while writing `path`: why, and that nothing was lost."""
    kept = " The existing file is unchanged." if os.path.lexists(path) else " Nothing was written."
    return ExportError(f"Could not write '{path.name}': {describe_os_error(e)}.{kept}")


def _finish(tmp: Path, path: Path, overwrite: bool) -> None:
    try:
        atomic.commit_temp(tmp, path, overwrite)
    except FileExistsError:
        raise ExportError(f"'{path.name}' appeared while exporting; it was left untouched.") from None
    except OSError as e:
        raise write_failed(path, e) from None


def _as_frame(frame) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ExportError(f"a frame must be an [H, W, 3] picture, got shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            # float pictures are taken as 0..1, the convention of the pipeline's decoders
            arr = np.clip(arr * 255.0 + 0.5, 0, 255)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def export_image(frame, path: str | os.PathLike, format: str | None = None, quality: int = 95,
                 overwrite: bool = False) -> Path:
    """Save one picture (uint8 [H, W, 3]) as PNG or JPEG (`format` from the extension when None)."""
    from PIL import Image

    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    fmt = {"jpg": "jpeg"}.get(fmt, fmt)
    if fmt not in ("png", "jpeg"):
        raise ExportError(f"Cannot export an image as '{fmt or path.suffix}': choose PNG or JPEG.")
    _check_destination(path, overwrite)
    arr = _as_frame(frame)
    tmp = atomic.temp_path_for(path)
    try:
        with open(tmp, "xb") as f:
            options = {"quality": int(max(1, min(100, quality))), "subsampling": 0 if quality >= 90 else 2} \
                if fmt == "jpeg" else {"compress_level": 6}
            Image.fromarray(arr, "RGB").save(f, format=fmt.upper(), **options)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        atomic.remove_quietly(tmp)
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise
    _finish(tmp, path, overwrite)
    return path


def _even_pad(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return arr
    return np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def export_video(frames: Iterable, path: str | os.PathLike, fps: float = 24.0, progress: Progress | None = None,
                 cancel: threading.Event | None = None, audio_source: str | os.PathLike | None = None,
                 audio_start: float = 0.0, crf: int = 18, total: int | None = None,
                 overwrite: bool = False, keyframe_interval: int | None = None) -> tuple[int, int]:
    """Encode `frames` (any iterable of uint8 [H, W, 3], all one size; a list, an array or a
    generator that produces them lazily) to an H.264 MP4 at `path`. Returns the (width, height)
    written (even). `total` is the frame count for progress when `frames` has no len().
    `keyframe_interval`: frames between keyframes (None: x264's default, 250); short intervals make
    a clip quicker to scrub at the cost of size."""
    import av

    path = Path(path)
    from .schema import MAX_FPS

    if not 0 < fps <= MAX_FPS:  # nan too
        raise ExportError(f"The frame rate must be above 0 and at most {MAX_FPS:g} frames per second, not {fps:g}.")
    _check_destination(path, overwrite)
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)  # type: ignore[arg-type]
    audio_info = _check_audio_source(audio_source)
    tmp = atomic.temp_path_for(path, ".mp4")
    done = 0
    size = None
    container = None
    try:
        # faststart puts the index first, so players and browsers can start before the end arrives
        container = av.open(_av_path(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        stream = audio_stream = None
        for frame in frames:
            if cancel is not None and cancel.is_set():
                raise ExportCancelled("Export cancelled.")
            arr = _as_frame(frame)
            if size is None:
                size = arr.shape[:2]
                h, w = size[0] + size[0] % 2, size[1] + size[1] % 2
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                # No B-frames: with them, x264's macroblock-tree rate control read memory it had not written
                # (its SIMD path), so the same frames gave another file in each process (decoded pixels up to
                # 24 levels apart on a 48 x 48 clip): "the same seed, the same clip" did not hold. Without
                # them the file is the same in every run, 2-5 % larger at the same quality (research/LOG.md),
                # and a frame decodes without frames after it, which also helps scrubbing.
                stream.options = {"crf": str(int(crf)), "preset": "medium", "x264-params": "bframes=0"}
                if keyframe_interval:
                    stream.codec_context.gop_size = int(keyframe_interval)
                # Every stream must exist before the first packet is muxed (the MP4 header lists them).
                audio_stream = _add_audio_stream(container, Path(audio_source)) if audio_info else None
            elif arr.shape[:2] != size:
                raise ExportError(f"Frame {done} is {arr.shape[1]}x{arr.shape[0]} but the clip is "
                                  f"{size[1]}x{size[0]}; all frames must have one size.")
            vf = av.VideoFrame.from_ndarray(_even_pad(arr), format="rgb24")
            vf.pts = done
            vf.time_base = 1 / rate
            for packet in stream.encode(vf):
                container.mux(packet)
            done += 1
            if progress is not None:
                progress(done, total)
        if stream is None:
            raise ExportError("There are no frames to export.")
        for packet in stream.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            try:
                _write_audio(container, audio_stream, Path(audio_source), audio_start, done / float(rate), cancel)
            except (ExportError, KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except Exception as e:  # the source's sound, not the writing: said as such (the caller may go on without)
                if isinstance(e, OSError) and (not isinstance(e, av.FFmpegError) or e.errno in _WRITE_ERRNOS):
                    raise
                raise SoundError(f"The sound of '{Path(audio_source).name}' could not be read ({e}).") from None
        container.close()
        container = None
        atomic.fsync_file(tmp)
    except BaseException as e:
        if container is not None:
            try:
                container.close()
            except Exception:
                pass
        atomic.remove_quietly(tmp)
        if isinstance(e, (ExportError, KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(e, OSError) and (not isinstance(e, av.FFmpegError) or e.errno in _WRITE_ERRNOS):
            raise write_failed(path, e) from None  # FFmpeg's write errors carry the errno too
        if isinstance(e, MemoryError):
            raise ExportError(f"Export of '{path.name}' ran out of memory. Nothing was written.") from None
        raise ExportError(f"Export of '{path.name}' failed: {e}") from None
    _finish(tmp, path, overwrite)
    return size[1] + size[1] % 2, size[0] + size[0] % 2


def _write_errnos() -> set:
    import errno

    return {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.ENAMETOOLONG,
            getattr(errno, "EDQUOT", errno.ENOSPC), getattr(errno, "EFBIG", errno.ENOSPC)}


_WRITE_ERRNOS = _write_errnos()


def _check_audio_source(audio_source) -> bool | None:
    """Fail before encoding (not after minutes of it) if the audio source is unusable: SoundError, which the
    callers answer by exporting the pictures without sound. None: no audio wanted, or the source has no audio
    stream (a silent clip is not an error)."""
    if audio_source is None:
        return None
    import av

    from .probe import sniff

    src = Path(audio_source)
    try:
        if sniff(src).kind not in ("video", "audio"):
            raise MediaError(f"'{src.name}' holds no audio.")
        with av.open(_av_path(src)) as c:
            return True if c.streams.audio else None
    except MediaError as e:
        raise SoundError(f"Cannot take the sound from '{src.name}': {e}") from None
    except Exception as e:
        raise SoundError(f"Cannot take the sound from '{src.name}': the file is damaged ({e}).") from None


def _av_path(path: Path) -> str:
    """The path FFmpeg is given: absolute, so that a relative name with a colon ('take:1.mp4',
    '2024-05-01T10:30.mp4') is read as a file and not as an FFmpeg protocol ("Protocol not found")."""
    return str(Path(path).absolute())


def _aac_rate(rate: int) -> int:
    """The AAC encoder's sample rate nearest `rate`: it takes 7,350-96,000 Hz from a fixed list, and a source of
    another rate (192 kHz or 37.8 kHz PCM in a MOV or MKV) failed the whole export at the encoder's open."""
    import av

    rates = av.codec.Codec("aac", "w").audio_rates or (48000,)
    return min(rates, key=lambda r: (abs(r - rate), -r))


def _add_audio_stream(container, source: Path):
    import av

    try:
        with av.open(_av_path(source)) as src:
            cc = src.streams.audio[0].codec_context
            rate = _aac_rate(cc.sample_rate or 48000)
            layout = "stereo" if (cc.channels or 2) >= 2 else "mono"
        stream = container.add_stream("aac", rate=rate)
        stream.layout = layout
        stream.codec_context.open()  # here, so that a refusal is the sound's, not the export's
    except Exception as e:
        raise SoundError(f"The sound of '{source.name}' could not be encoded ({e}).") from None
    return stream


def _picture_origin(src) -> float:
    """Seconds at which the source's pictures start (frame 0 of probe.iter_video_frames): the sound is cut
    against that clock, since a recording's picture and sound streams need not start at 0 or together."""
    from .probe import _picture_stream  # the stream the pictures are read from: not a cover picture

    video = _picture_stream(src)
    if video is None or video.start_time is None:
        return 0.0
    return float(video.start_time * video.time_base)


def _write_audio(container, out_stream, source: Path, start: float, duration: float,
                 cancel: threading.Event | None) -> None:
    """The source's sound from `start` seconds after its first picture, for `duration` seconds, each sample at
    its own time: sound that starts after the pictures begins after silence, and sound before them is cut."""
    import av

    rate = out_stream.codec_context.sample_rate
    layout = out_stream.codec_context.layout.name
    channels = out_stream.codec_context.channels
    wanted = int(round(duration * rate))
    written = 0

    def put(data: np.ndarray) -> None:
        nonlocal written
        data = data[:, : wanted - written]
        if data.shape[1] == 0:
            return
        out = av.AudioFrame.from_ndarray(np.ascontiguousarray(data, dtype=np.float32), format="fltp", layout=layout)
        out.sample_rate = rate
        out.pts = written
        out.time_base = Fraction(1, rate)
        for packet in out_stream.encode(out):
            container.mux(packet)
        written += data.shape[1]

    with av.open(_av_path(source)) as src:
        in_stream = src.streams.audio[0]
        window = _picture_origin(src) + start  # the source's time of the export's first sample
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        if window > 0:
            src.seek(int(window / in_stream.time_base), stream=in_stream, backward=True)
        at = None  # the next resampled sample's place in the export (samples after `window`)

        def place(chunks) -> None:
            nonlocal at
            for rf in chunks:
                data = rf.to_ndarray()  # [channels, samples] float32
                if at < 0:  # before the window: cut (a seek lands early)
                    cut = min(-at, data.shape[1])
                    data, at = data[:, cut:], at + cut
                if data.shape[1] and at > written:  # the sound starts after the window: silence first
                    put(np.zeros((channels, at - written), np.float32))
                if data.shape[1] and at >= written:
                    put(data)
                at += data.shape[1]

        for frame in src.decode(in_stream):
            if cancel is not None and cancel.is_set():
                raise ExportCancelled("Export cancelled.")
            if written >= wanted:
                break
            if at is None:
                when = float(frame.pts * in_stream.time_base) if frame.pts is not None else window
                at = int(round((when - window) * rate))
            place(resampler.resample(frame))
        if at is not None and written < wanted:
            place(resampler.resample(None))  # what a rate conversion holds back
        for packet in out_stream.encode(None):
            container.mux(packet)


# ------------------------------------------------------------------------------------ timeline


def timeline_frames(project, project_path, fps: float | None = None, size: tuple[int, int] | None = None,
                    limits=None) -> tuple[Iterator[np.ndarray], int, tuple[int, int]]:
    """The video track as a lazy stream of frames: (iterator, frame count, (width, height)).

    From time 0 to the end of the last clip, each output frame shows the clip under it (the one
    placed last in the track wins where clips overlap), its active version; gaps are black. Image
    clips show their picture for their duration. Every picture is fitted into the output size with
    its aspect kept (black bars), so mixed sizes are fine. The output size is `size`, else the
    project's setting, else the size of the first clip's own media (its footage, not an edit of it).
    """
    from .probe import load_image
    from .project_file import media_path

    fps = float(fps or project.settings.fps)
    clips = list(project.timeline("video"))
    if not clips:
        raise ExportError("The video track is empty: there is nothing to render.")
    if size is None:
        if project.settings.width and project.settings.height:
            size = (int(project.settings.width), int(project.settings.height))
        else:  # what the first clip shows: its footage for an edit of it (stretched back to it: clip_frames)
            from .project_file import chain_spans

            root = chain_spans(project, clips[0], clips[0].active)[-1][0]
            first = root if root.id == clips[0].media_id else project.media_item(clips[0].active.media_id)
            size = (first.width, first.height)
    # Missing files are reported before encoding starts, not minutes into the render.
    for clip in clips:  # each file the clip shows (a partial video edit goes on with what it edited)
        check_media_files(project, project_path, clip_media(project, clip, clip.active, fps))
    out_w, out_h = size
    n_frames = int(round(project.duration("video") * fps))
    segments = _timeline_segments(project, clips, fps, n_frames)

    def fit(picture: np.ndarray) -> np.ndarray:
        return fit_frame(picture, out_w, out_h)

    def generate() -> Iterator[np.ndarray]:
        # Frames are made one at a time as the encoder asks for them: nothing proportional to the
        # timeline's length is ever held (a long gap is the same black frame, yielded again).
        black = np.zeros((out_h, out_w, 3), np.uint8)
        longest = max(out_w, out_h)  # decoding bigger than this is wasted: fit() only shrinks to it
        for i, j, clip in segments:
            if clip is None:
                for _ in range(i, j):
                    yield black
                continue
            version = clip.active
            item = project.media_item(version.media_id)
            try:
                file = media_path(project_path, item)
                if item.kind == "image":
                    picture = fit(load_image(file, limits, max_side=longest))
                    for _ in range(i, j):
                        yield picture
                else:
                    for frame in clip_frames(project, project_path, clip, version, fps, i - clip.start * fps, j - i,
                                             max_side=longest, limits=limits):
                        yield fit(frame)
            except MediaError as e:  # said with the name the user imported, not the project's copy's
                said = str(e).replace(f"'{file.name}'", f"'{item.name}'") if item.name else str(e)
                raise ExportError(f"Cannot render clip '{item.name or file.name}': {said}") from None

    return generate(), n_frames, (out_w, out_h)


def fit_frame(picture: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """`picture` fitted into out_w x out_h with its aspect kept (black bars), never cropped."""
    import cv2

    h, w = picture.shape[:2]
    if (w, h) == (out_w, out_h):
        return picture
    scale = min(out_w / w, out_h / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(picture, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((out_h, out_w, 3), np.uint8)
    y, x = (out_h - nh) // 2, (out_w - nw) // 2
    canvas[y:y + nh, x:x + nw] = resized
    return canvas


def left_out_of_track(project, project_path) -> tuple[int, int]:
    """(clips on the image track, clips on the video track with sound): what a render of the video track
    leaves out (the image track is not part of the video; the track is rendered silent for now). Said after
    an export by the studio and the `render` command alike."""
    from .project_file import clip_audio

    with_sound = sum(clip_audio(project, project_path, c.id) is not None for c in project.tracks.get("video", []))
    return len(project.tracks.get("image", [])), with_sound


def clip_media(project, clip, version, fps: float, count: int | None = None) -> list:
    """The media items the first `count` frames (default: the whole clip) of a video clip shown with
    `version` come from, in order (project_file.version_frame: one, or an edit and what it goes on with).
    Worked out from each file's length, not frame by frame: an hour of clip costs what a second does."""
    from .project_file import chain_spans

    spans = chain_spans(project, clip, version)
    until = (int(round(clip.duration * fps)) if count is None else count) / fps
    shown, reached = [], 0.0  # reached: how far the versions before this one show
    for k, (item, length) in enumerate(spans):
        if reached >= until:
            break
        if k == len(spans) - 1 or length > reached:  # the last one shows (or holds) whatever is left
            shown.append(item)
        reached = max(reached, length)
    return list({item.id: item for item in shown}.values())


def check_media_files(project, project_path, items, doing: str = "render") -> None:
    """Raise ExportError naming the first of `items` whose file is missing (before any encoding)."""
    from .project_file import media_path

    for item in items:
        if not media_path(project_path, item).is_file():
            raise ExportError(f"Cannot {doing}: the media file of clip '{item.name}' is missing "
                              f"({media_path(project_path, item)}).")


def clip_frames(project, project_path, clip, version, fps: float, first: float, count: int,
                max_side: int | None = None, limits=None) -> Iterator[np.ndarray]:
    """`count` frames of a video clip shown with `version`, at `fps`, from `first` frames after the clip's
    start: each the frame project_file.version_frame names (a partial video edit goes on with what it
    edited, as it plays), decoded in runs of frames from one file. Frames of an edit of the clip's own
    footage come at the footage's size; frames of generated versions may differ in size (the caller fits them)."""
    import cv2

    from .probe import iter_video_frames
    from .project_file import chain_spans, media_path, version_frame

    # An edit that plays on into the clip's own footage was made from it stretched to the model's size:
    # its frames are stretched back to the footage's shape, so the whole clip has one size and aspect.
    root = chain_spans(project, clip, version)[-1][0]
    back = None
    if root.id == clip.media_id and root.kind == "video" and root.id != version.media_id:
        scale = min(1.0, max_side / max(root.width, root.height)) if max_side else 1.0
        back = (max(1, round(root.width * scale)), max(1, round(root.height * scale)))
    shown = (version_frame(project, clip, version, (first + k) / fps) for k in range(count))
    for item_id, run in itertools.groupby(shown, key=lambda pair: pair[0].id):
        source = project.media_item(item_id)
        for frame in iter_video_frames(media_path(project_path, source), (index for _, index in run),
                                       max_side=max_side, limits=limits):
            if back is not None and item_id != root.id and (frame.shape[1], frame.shape[0]) != back:
                frame = cv2.resize(frame, back, interpolation=cv2.INTER_LINEAR)
            yield frame


def _timeline_segments(project, clips, fps: float, n_frames: int) -> list[tuple[int, int, object]]:
    """[(first frame, end frame, clip or None for a gap)] covering 0..n_frames, in order: where clips
    overlap, the one placed last in the track wins. O(clips log clips), whatever the duration."""
    order = {c.id: i for i, c in enumerate(project.tracks["video"])}
    spans = []
    for clip in clips:
        a, b = int(round(clip.start * fps)), min(n_frames, int(round(clip.end * fps)))
        if b > a:
            spans.append((a, b, order[clip.id], clip))
    spans.sort(key=lambda s: s[0])
    bounds = sorted({0, n_frames} | {s[0] for s in spans} | {s[1] for s in spans})
    heap: list[tuple[int, int, int]] = []  # (-track order, end, index into spans): top = the clip on top
    segments: list[tuple[int, int, object]] = []
    k = 0
    for lo, hi in zip(bounds, bounds[1:]):
        while k < len(spans) and spans[k][0] <= lo:
            heapq.heappush(heap, (-spans[k][2], spans[k][1], k))
            k += 1
        while heap and heap[0][1] <= lo:
            heapq.heappop(heap)  # ended (entries below the top are dropped when they surface)
        owner = spans[heap[0][2]][3] if heap else None
        if segments and segments[-1][2] is owner and segments[-1][1] == lo:
            segments[-1] = (segments[-1][0], hi, owner)
        else:
            segments.append((lo, hi, owner))
    return segments


def export_timeline(project, project_path, out_path, fps: float | None = None, size: tuple[int, int] | None = None,
                    progress: Progress | None = None, cancel: threading.Event | None = None, crf: int = 18,
                    overwrite: bool = False) -> Path:
    """Render the project's video track to one H.264 MP4 (no sound yet; see timeline_frames).

    Clips play where they are placed and as trimmed (their start, in and out points); gaps are black. The
    render is silent as a whole, so a moved or trimmed clip cannot put sound out of step with its picture:
    when the track gets sound, each clip's audio must be cut at its in point and gaps must be silence."""
    frames, total, _ = timeline_frames(project, project_path, fps, size)
    export_video(frames, out_path, float(fps or project.settings.fps), progress=progress, cancel=cancel,
                 crf=crf, total=total, overwrite=overwrite)
    return Path(out_path)
