"""Reading images and videos, with every failure turned into a `MediaError` the user can act on.

What a file *is* comes from its first bytes, not its name: a PNG renamed to .mp4 or a text file
renamed to .png is reported as what it really is. Sizes are checked from headers before anything is
decoded, so a huge or hostile file (a decompression bomb) is refused instead of eating the memory.

Frame indices of videos map to timestamps through the stream's average frame rate (index k starts
at start_time + k / fps). That is exact for constant-frame-rate clips, which is what cameras, our
own exports and the generator write; for variable-frame-rate clips it picks the frame showing at
that time. A clip's picture is shown as its display matrix turns it (a phone's portrait clip, stored landscape).

Why about 730 lines: images and clips share the sniffing, limits and messages that make every failure one
clear line; the video half (from `_open_container` down) is the next to move into a module of its own.
"""
from __future__ import annotations

import math
import os
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from .errors import MediaError
from .files import NotRegularFile, describe_os_error, read_regular, stat_regular

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}


@dataclass
class MediaLimits:
    """What we agree to open. Checked from headers, before decoding.

    max_image_pixels: 64 MP is above any camera still most users have and far below what would
    exhaust a laptop (64 MP x 3 bytes = 192 MB per decoded copy).
    max_decoded_bytes: a cap on one `read_video_frames` call's result, so asking for a whole long
    clip at full size fails with advice instead of swapping the machine to death.
    """

    max_image_pixels: int = 64_000_000
    max_video_pixels: int = 8192 * 4352  # one frame: a little above 8K UHD
    max_video_seconds: float = 4 * 3600.0
    max_video_frames: int = 1_000_000
    max_decoded_bytes: int = 2 * 1024**3


LIMITS = MediaLimits()


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as shown: a portrait phone clip stored landscape is taller than wide here
    height: int
    frames: int
    fps: float
    duration: float  # seconds
    has_audio: bool
    codec: str = ""
    rotation: int = 0  # degrees counterclockwise (0, 90, 180, 270) the stored frames are turned to be shown


# --------------------------------------------------------------------------------------------
# What a file really is


@dataclass(frozen=True)
class Sniffed:
    kind: str  # image | video | audio | text | document | archive | unknown
    label: str  # for messages: "a PNG image", "an MP4 video", "a text file"


def _sniff_bytes(head: bytes) -> Sniffed:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "a PNG image")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "a JPEG image")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "a GIF image")
    if head.startswith(b"BM") and len(head) >= 26:
        return Sniffed("image", "a BMP image")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", "a TIFF image")
    if head[:4] == b"RIFF":
        sub = head[8:12]
        if sub == b"WEBP":
            return Sniffed("image", "a WebP image")
        if sub == b"AVI ":
            return Sniffed("video", "an AVI video")
        if sub == b"WAVE":
            return Sniffed("audio", "a WAV audio file")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return Sniffed("audio", "an M4A audio file")
        if brand in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
            return Sniffed("unknown", "a HEIC/AVIF image (not supported yet)")
        if brand == b"qt  ":
            return Sniffed("video", "a QuickTime (MOV) video")
        return Sniffed("video", "an MP4 video")
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return Sniffed("video", "a QuickTime (MOV) video")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "a Matroska/WebM video")
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return Sniffed("audio", "an MP3 audio file")
    if head.startswith(b"OggS") or head.startswith(b"fLaC"):
        return Sniffed("audio", "an Ogg/FLAC audio file")
    if head.startswith(b"%PDF"):
        return Sniffed("document", "a PDF document")
    if head.startswith(b"PK\x03\x04"):
        return Sniffed("archive", "a ZIP archive (or an Office document)")
    if head[:6] == b"7z\xbc\xaf\x27\x1c" or head[:3] == b"\x1f\x8b\x08":
        return Sniffed("archive", "a compressed archive")
    if _looks_like_text(head):
        return Sniffed("text", "a text file")
    return Sniffed("unknown", "not a media file we recognise")


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)


def _check_file(path: Path) -> int:
    """Missing / not a regular file / unreadable / empty -> MediaError. Returns the size in bytes.

    Decided from os.stat before anything opens the file: a named pipe would block open() until a
    writer came (this froze `edit` and the studio), /dev/zero would never end."""
    return _open_checked(path, head=0)[0]


def _open_checked(path: Path, head: int) -> tuple[int, bytes]:
    """(size, first `head` bytes) of a regular, readable, non-empty file; MediaError otherwise."""
    try:
        st = stat_regular(path)
        size = st.st_size
        if size == 0:
            raise MediaError(f"'{path.name}' is empty (0 bytes): the file was not fully written or copied.")
        data = read_regular(path, head=head)
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(f"'{path}' was not found. It may have been moved, renamed or deleted.") from None
    except NotRegularFile as e:
        if stat.S_ISDIR(e.mode):
            raise MediaError(f"'{path}' is a folder, not a media file.") from None
        raise MediaError(str(e)) from None
    except PermissionError:
        raise MediaError(f"'{path}' cannot be read: permission denied.") from None
    except OSError as e:
        raise MediaError(f"'{path}' cannot be read: {describe_os_error(e)}.") from None
    except ValueError as e:  # a NUL byte in the name and the like
        raise MediaError(f"{str(path)!r} is not a usable file name ({e}).") from None
    return size, data


def sniff(path: str | os.PathLike) -> Sniffed:
    """What the file's content says it is (after the missing/not-a-regular-file/empty checks)."""
    path = Path(path)
    _, head = _open_checked(path, head=512)
    return _sniff_bytes(head)


def media_kind(path: str | os.PathLike) -> str:
    """'image' or 'video' by content, whatever the name says; MediaError for anything else.
    The UI calls this on drop to know which reader and which track to use."""
    path = Path(path)
    s = sniff(path)
    if s.kind in ("image", "video"):
        return s.kind
    raise MediaError(_not_media_message(path, s))


def _not_media_message(path: Path, s: Sniffed) -> str:
    if s.kind == "unknown" and s.label.startswith("not"):
        return f"'{path.name}' is not an image or a video we can read (its content is not a known media format)."
    if "not supported" in s.label:
        return f"'{path.name}' is {s.label.replace(' (not supported yet)', '')}, which is not supported yet. Convert it to PNG or JPEG."
    if s.kind == "audio":
        return f"'{path.name}' is {s.label}, not an image or a video. Audio-only files are not supported."
    return f"'{path.name}' is {s.label}, not an image or a video."


def _name_note(path: Path, s: Sniffed) -> str:
    ext = path.suffix.lower()
    return f" (its name ends in '{ext}', but the content is {s.label})" if ext else ""


def _expect(path: Path, want: str) -> Sniffed:
    s = sniff(path)
    if s.kind == want:
        return s
    if s.kind in ("image", "video"):
        other = "an image" if want == "image" else "a video"
        is_kind = "a video" if s.kind == "video" else "an image"
        ext = path.suffix.lower()
        named = "video" if ext in VIDEO_EXTENSIONS else "image" if ext in IMAGE_EXTENSIONS else None
        if named == s.kind:  # named for what it is: the wrong file was picked, not misnamed
            # An animated GIF is a clip to its user, a picture to the studio (its first frame): say the way on.
            gif = (f" An animated GIF is read as its first frame; to use it as a clip, convert it to a video "
                   f"first (e.g. ffmpeg -i '{path.name}' '{path.stem}.mp4').") if want == "video" and \
                s.label == "a GIF image" else ""
            raise MediaError(f"'{path.name}' is {s.label}, not {other}: {other} is needed here, not {is_kind}.{gif}")
        raise MediaError(f"'{path.name}' is {s.label}, not {other}{_name_note(path, s)}. "
                         f"Rename it with the right extension or open it as {is_kind}.")
    raise MediaError(_not_media_message(path, s))


# --------------------------------------------------------------------------------------------
# Images


PREVIEW_MAX_SIDE = 2048  # what the studio's viewer needs: longest side of a display picture

# Modes PIL can shrink (reduce + LANCZOS resize) as they are; others become RGB first.
_SHRINKABLE = {"L", "RGB", "RGBA", "LA", "RGBX", "CMYK", "YCbCr", "I", "F"}

# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def _bomb_message(path: Path, e: BaseException, limits: MediaLimits) -> str:
    import re

    m = re.search(r"\((\d+) pixels\)", str(e))
    size = f" ({int(m.group(1)) / 1e6:.0f} megapixels)" if m else ""
    return (f"'{path.name}' is too large to open safely{size}: the limit is "
            f"{limits.max_image_pixels / 1e6:.0f} megapixels. Scale it down first.")


def _open_image(path: Path, limits: MediaLimits) -> Image.Image:
    _expect(path, "image")
    try:
        # We check the pixel count ourselves below, from the header; PIL's own warning would only
        # spam the log, and its hard error (at 2x its limit) is turned into our message.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise MediaError(_bomb_message(path, e, limits)) from None
    except Exception as e:
        raise MediaError(f"'{path.name}' is damaged or not a complete image and cannot be opened ({_short(e)}).") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        img.close()
        raise MediaError(f"'{path.name}' is damaged: it says it is {w}x{h} pixels.")
    if w * h > limits.max_image_pixels:
        img.close()
        raise MediaError(f"'{path.name}' is too large: {w}x{h} = {w * h / 1e6:.0f} megapixels, above the "
                         f"limit of {limits.max_image_pixels / 1e6:.0f} megapixels. Scale it down first.")
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with transparent areas shown on white (what users expect from a photo viewer, where a
    plain convert would turn them black) and 16-bit greys scaled rather than clipped.
    An RGB image is returned as is (no copy: for a 56 MP photo a copy is 220 MB)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    """Fit inside max_side x max_side (aspect kept, never enlarged): first a cheap integer box
    reduction to about twice the target (PIL's reduce, as Image.thumbnail's reducing_gap does),
    then LANCZOS to the exact size. Each step makes a smaller image; the big one can be freed."""
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    tw, th = _fit(w, h, max_side)
    factor = max(w, h) // (2 * max_side)
    if factor > 1:
        img = img.reduce(factor)
    return img.resize((tw, th), Image.Resampling.LANCZOS)


def _decode(path: Path, limits: MediaLimits, max_side: int | None) -> Image.Image:
    """The picture as an upright RGB PIL image, fitted inside max_side (when given) as cheaply as the
    format allows: JPEG is decoded straight at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, via
    draft()), so the full-resolution picture never exists in memory; other formats are decoded
    once and shrunk before any other copy is made (no full-size RGB/array copies)."""
    img = _open_image(path, limits)
    try:
        with img:
            if max_side and max(img.size) > max_side:
                img.draft("RGB", _fit(*img.size, max_side))  # JPEG only; a no-op for other formats
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:
                orientation = 1
            out = img
            if max_side:
                if out.mode not in _SHRINKABLE:
                    out = _to_rgb(out)
                out = _shrink(out, max_side)
            out = _to_rgb(out)
            if orientation in _ORIENTATION:
                # What ImageOps.exif_transpose does, but on the (smaller) result, and without its full
                # copy when there is nothing to turn.
                out = out.transpose(_ORIENTATION[orientation])
            return out
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        raise MediaError(_bomb_message(path, e, limits)) from None
    except MemoryError:
        raise MediaError(f"'{path.name}' is too large to fit in memory.") from None
    except Exception as e:
        raise MediaError(f"'{path.name}' is damaged or truncated and cannot be read ({_short(e)}).") from None


def load_image(path: str | os.PathLike, limits: MediaLimits | None = None, max_side: int | None = None) -> np.ndarray:
    """The image as uint8 [H, W, 3] RGB, turned upright by its EXIF orientation (phone photos).
    Animated images give their first frame.

    max_side: fit the result inside max_side x max_side (aspect kept, never enlarged). Pass it
    whenever the full resolution is not needed (display, the model's input): a JPEG is then decoded
    at reduced scale without ever holding the full picture, and other formats are shrunk right
    after decoding. For a 56 MP photo this is the difference between ~1 GB and ~60 MB (JPEG) of
    peak memory. Safe to call from a worker thread (PIL releases the GIL while decoding).
    """
    path = Path(path)
    img = _decode(path, limits or LIMITS, max_side)
    try:
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    except MemoryError:
        raise MediaError(f"'{path.name}' is too large to fit in memory.") from None


def load_preview(path: str | os.PathLike, max_side: int = PREVIEW_MAX_SIDE, frame: int = 0,
                 limits: MediaLimits | None = None) -> np.ndarray:
    """A display picture of an image (or of frame `frame` of a video), longest side at most
    `max_side` (default PREVIEW_MAX_SIDE = 2048), uint8 [h, w, 3] RGB, upright.

    The studio calls this from a worker thread (never the GUI thread) for its viewer; with
    max_side = the model's input size it is also what the planner needs. Bounded cost: see
    load_image(max_side=...). Raises MediaError with a message for the user on any problem (not a
    regular file, damaged, too many pixels, ...)."""
    path = Path(path)
    if media_kind(path) == "video":
        return read_frame(path, frame, max_side=max_side, limits=limits)
    return load_image(path, limits, max_side=max_side)


def image_size(path: str | os.PathLike, limits: MediaLimits | None = None) -> tuple[int, int]:
    """(width, height) from the header, upright, without decoding the pixels."""
    path = Path(path)
    img = _open_image(path, limits or LIMITS)
    with img:
        w, h = img.size
        try:
            # Pillow decodes a whole PNG to find an eXIf chunk written after the pixels (0.4 s for 56 MP, the GIL
            # held much of it: the import's GUI stall); its chunks are walked instead.
            orientation = _png_orientation(path) if img.format == "PNG" else img.getexif().get(0x0112, 1)
            if orientation in (5, 6, 7, 8):  # orientations that swap the axes
                w, h = h, w
        except Exception:
            pass
    return w, h


def _png_orientation(path: Path) -> int:
    """The EXIF orientation of a PNG (its eXIf chunk, before or after the pixels), from the chunk headers alone:
    no pixel is inflated. 1 when it has none."""
    import struct

    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return 1
        while True:
            head = f.read(8)
            if len(head) < 8:
                return 1
            length, kind = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                exif = Image.Exif()
                exif.load(f.read(min(length, 1 << 20)))
                return int(exif.get(0x0112, 1) or 1)
            if kind == b"IEND":
                return 1
            f.seek(length + 4, os.SEEK_CUR)  # the data and its checksum


PNG_DECODE_CHECK_PIXELS = 16_000_000


def check_image_complete(path: str | os.PathLike, limits: MediaLimits | None = None) -> int:
    """Refuse (MediaError) a still whose pixels do not all read, at import rather than at every later look; the
    number of frames it holds (an animated GIF or WebP: more than 1, of which the studio keeps the first).
    A PNG's chunks are checked against their checksums without inflating them (Pillow's verify: a 56 MP PNG in a
    fraction of its decode); other formats are decoded at a small size (a JPEG at 1/8 scale by its DCT)."""
    path = Path(path)
    limits = limits or LIMITS
    with _open_image(path, limits) as img:
        fmt, frames = img.format, int(getattr(img, "n_frames", 1) or 1)
        pixels = img.size[0] * img.size[1]
        if fmt == "PNG":
            try:
                img.verify()
            except Exception as e:
                raise MediaError(f"'{path.name}' is damaged or truncated and cannot be read ({_short(e)}).") from None
    # A PNG's checksums say nothing of a damaged compressed stream written with good ones: inflated too, up to
    # PNG_DECODE_CHECK_PIXELS (a 12 MP photo's PNG in about 0.1 s; a larger one is checked by its chunks alone).
    if fmt != "PNG" or pixels <= PNG_DECODE_CHECK_PIXELS:
        _decode(path, limits, 64).close()
    return frames


# --------------------------------------------------------------------------------------------
# Videos


def _short(e: BaseException) -> str:
    # An OSError's or FFmpeg's own words, without "[Errno 1094995529] ... : '/the/path'" (the file is named already).
    words = getattr(e, "strerror", None)
    text = (words if isinstance(words, str) else "") or str(e).strip() or type(e).__name__
    return text if len(text) < 160 else text[:157] + "..."


def _open_container(path: Path):
    import av

    _expect(path, "video")
    try:
        container = av.open(str(path.absolute()), "r")  # "take:1.mp4" is a file, not an FFmpeg protocol
    except Exception as e:
        raise MediaError(f"'{path.name}' is damaged or not a complete video and cannot be opened ({_short(e)}).") from None
    if _picture_stream(container) is None:
        cover = bool(container.streams.video)
        container.close()
        raise MediaError(f"'{path.name}' contains no video picture (it is audio only"
                         f"{', with a cover picture' if cover else ''}).")
    return container


def _picture_stream(container):
    """The clip's moving picture: the first video stream that is not an attached picture (the cover art of a
    song or podcast file is a one-frame "video" stream, which read as a clip claims tens of thousands of
    frames a second). None when there is none."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _display_rotation(container, stream) -> int:
    """Degrees counterclockwise (0, 90, 180, 270) the stored frames are turned to be shown upright: a phone
    stores a portrait clip as landscape frames with a display matrix. PyAV gives the matrix on decoded frames,
    not on the stream, so the first frame is decoded (about a millisecond at 64 px). Callers seek before
    decoding frames of their own. A clip whose first pictures do not decode reads as unturned here: its damage is
    said where its frames are read, as for any clip whose header is whole."""
    try:
        for n, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return int(round((frame.rotation or 0) / 90)) % 4 * 90
            if n >= 64:  # a decoder holds back a few frames at most; past that the pictures are broken
                break
    except Exception:  # PyAV's decode errors (InvalidDataError and kin)
        pass
    return 0


def _stream_fps(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    raise MediaError("the video does not state its frame rate")


def _info_from_container(path: Path, container, limits: MediaLimits) -> VideoInfo:
    from .schema import MAX_FPS

    stream = _picture_stream(container)
    cc = stream.codec_context
    width, height = int(cc.width or 0), int(cc.height or 0)
    if width <= 0 or height <= 0:
        raise MediaError(f"'{path.name}' is damaged: its video stream has no picture size.")
    try:
        fps = _stream_fps(stream)
    except MediaError:
        raise MediaError(f"'{path.name}' does not state its frame rate and cannot be used.") from None
    if fps > MAX_FPS:  # what a project file holds (app/media/schema.py): taken in, the project could not be saved
        raise MediaError(f"'{path.name}' plays at {float(fps):,.0f} frames a second; clips of up to {MAX_FPS:,.0f} "
                         f"are taken. Convert it to a usual frame rate first.")
    duration = 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        # MKV / WebM: the container's duration runs from time 0 to its end, while the pictures start at their own
        # first timestamp (a recording's clock, pictures after the sound): counted from 0, a whole file of 48
        # pictures starting 1.4 s in was taken for 65 frames and refused as cut short.
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        duration = container.duration / 1_000_000 - max(0.0, start)
    frames = int(stream.frames or 0)
    if frames <= 0:  # WebM/MKV do not store a frame count
        frames = int(round(duration * float(fps)))
    if duration <= 0 and frames > 0:
        duration = frames / float(fps)
    if frames <= 0:
        raise MediaError(f"'{path.name}' contains no frames (or does not say how long it is).")
    if width * height > limits.max_video_pixels:
        raise MediaError(f"'{path.name}' is too large: {width}x{height} frames are above the limit of "
                         f"{limits.max_video_pixels / 1e6:.0f} megapixels per frame.")
    if duration > limits.max_video_seconds or frames > limits.max_video_frames:
        raise MediaError(f"'{path.name}' is too long: {duration / 60:.0f} minutes ({frames} frames); the limit is "
                         f"{limits.max_video_seconds / 60:.0f} minutes / {limits.max_video_frames} frames. Trim it first.")
    codec = cc.name or ""
    if codec and _decoder_missing(codec):
        raise MediaError(f"'{path.name}' uses the {codec} video codec, which this build cannot decode.")
    rotation = _display_rotation(container, stream)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(width, height, frames, float(fps), duration, bool(container.streams.audio), codec, rotation)


def _decoder_missing(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "r")
        return False
    except Exception:
        return True


@contextmanager
def _reading(path: Path, damaged: str):
    """The clip's container, opened; any error but a MediaError while it is read is said as "'NAME' is damaged
    and `damaged` (why)", and the container is closed whatever happens."""
    container = _open_container(path)
    try:
        yield container
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"'{path.name}' is damaged and {damaged} ({_short(e)}).") from None
    finally:
        container.close()


def probe_video(path: str | os.PathLike, limits: MediaLimits | None = None) -> VideoInfo:
    path = Path(path)
    with _reading(path, "cannot be read") as container:
        return _info_from_container(path, container, limits or LIMITS)


def check_complete(path: str | os.PathLike, limits: MediaLimits | None = None) -> VideoInfo:
    """`probe_video`, and MediaError unless the clip's pictures are all there: its first frame decodes and its
    stream holds a packet for each frame its header states. A copy or recording that did not finish keeps a whole
    header over missing pictures; imported, it showed no frame or stopped part way, and every export of a track
    holding it failed. Demuxing reads packets without decoding them: 18,000 frames in about 0.1 s."""
    path = Path(path)
    info = probe_video(path, limits)
    with _reading(path, "could not be decoded") as container:
        stream = _picture_stream(container)
        stated = int(stream.frames or 0)  # MP4 and MOV state their samples; WebM and MKV do not (estimated)
        first = None
        packets = 0
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
                if first is None:
                    first = packet.decode()  # raises on a picture that does not decode
        # An estimated count (from the duration) may be a frame or two off; a stated one is exact.
        short = packets < stated - 1 if stated else packets < info.frames * 0.95 - 2
        if packets == 0 or short:
            raise MediaError(f"'{path.name}' is cut short: it holds the pictures of {packets} of its {info.frames} "
                             f"frames (a copy or recording that did not finish?).")
    return info


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def iter_video_frames(path: str | os.PathLike, indices: Iterable[int], max_side: int | None = None,
                      limits: MediaLimits | None = None) -> Iterator[np.ndarray]:
    """Yield the frames at `indices` (non-decreasing; repeats allowed) as uint8 [H, W, 3], decoding
    forward and seeking only when the next wanted frame is far ahead. The timeline renderer uses
    this to stream a clip without holding it in memory.

    Indices past the end raise MediaError; so does a file that turns out damaged mid-way.
    """
    path = Path(path)
    limits = limits or LIMITS
    container = _open_container(path)
    try:
        stream = _picture_stream(container)
        stream.thread_type = "AUTO"  # before any decoding: _info_from_container decodes the first frame
        info = _info_from_container(path, container, limits)
        fps = _stream_fps(stream)
        tb = stream.time_base
        start_pts = stream.start_time or 0
        out_w, out_h = _fit(info.width, info.height, max_side)
        turns = info.rotation // 90  # np.rot90 turns counterclockwise, as the display matrix does
        stored_w, stored_h = (out_h, out_w) if turns % 2 else (out_w, out_h)
        # Timestamps of frame k: start + k/fps. A frame "is" index k if its pts is within half a
        # frame of that, which tolerates the rounding of the container's time base.
        half = Fraction(1, 2) / fps / tb

        def target(k: int) -> Fraction:
            return start_pts + Fraction(k) / fps / tb

        decoder = None
        current = None  # (pts, array) of the last decoded frame
        last_index = -1
        for k in indices:
            k = int(k)
            if k < 0 or k >= info.frames:
                raise MediaError(f"'{path.name}' has {info.frames} frames; frame {k} does not exist.")
            if k < last_index:
                raise ValueError("indices must not decrease")
            t = target(k)
            # Seek when starting, or when the wanted frame is more than ~2 s ahead (a keyframe is
            # likely in between, so seeking beats decoding everything up to it).
            if decoder is None or (current is not None and t - current[0] > 2 / tb):
                container.seek(int(max(start_pts, math.floor(t - half))), backward=True, any_frame=False, stream=stream)
                decoder = container.decode(stream)
                current = None
            while current is None or current[0] < t - half:
                try:
                    frame = next(decoder)
                except StopIteration:
                    if current is not None and k >= info.frames - 2:
                        break  # the header's frame count was rounded up; show the last real frame
                    raise MediaError(f"'{path.name}' ended early: frame {k} of {info.frames} could not be decoded "
                                     f"(the file may be truncated).") from None
                if frame.pts is None:
                    raise MediaError(f"'{path.name}' has frames without timestamps; frame-exact reading is not possible.")
                current = (frame.pts, frame)
            last_index = k
            frame = current[1]
            if not isinstance(frame, np.ndarray):
                if (stored_w, stored_h) != (frame.width, frame.height):
                    frame = frame.reformat(width=stored_w, height=stored_h, format="rgb24", interpolation="AREA")
                arr = frame.to_ndarray(format="rgb24")
                if turns:
                    arr = np.ascontiguousarray(np.rot90(arr, turns))
                current = (current[0], arr)
            yield current[1]
    except MediaError:
        raise
    except MemoryError:
        raise MediaError(f"'{path.name}': not enough memory to decode its frames.") from None
    except Exception as e:
        raise MediaError(f"'{path.name}' is damaged and could not be decoded ({_short(e)}).") from None
    finally:
        container.close()


def read_video_frames(path: str | os.PathLike, start: int = 0, count: int | None = None,
                      max_side: int | None = None, limits: MediaLimits | None = None) -> np.ndarray:
    """Frames start .. start+count-1 (to the end when count is None) as uint8 [F, H, W, 3],
    scaled so the longer side is at most `max_side` when given."""
    path = Path(path)
    limits = limits or LIMITS
    info = probe_video(path, limits)
    if start < 0 or start >= info.frames:
        raise MediaError(f"'{path.name}' has {info.frames} frames; cannot start at frame {start}.")
    end = info.frames if count is None else min(info.frames, start + max(0, int(count)))
    w, h = _fit(info.width, info.height, max_side)
    n = end - start
    if n * w * h * 3 > limits.max_decoded_bytes:
        raise MediaError(f"'{path.name}': {n} frames at {w}x{h} need {n * w * h * 3 / 2**30:.1f} GB of memory, "
                         f"above the limit of {limits.max_decoded_bytes / 2**30:.1f} GB. Read fewer frames or a smaller size.")
    out = np.empty((n, h, w, 3), np.uint8)
    filled = 0
    for i, frame in enumerate(iter_video_frames(path, range(start, end), max_side, limits)):
        out[i] = frame
        filled += 1
    return out[:filled]


def read_frame(path: str | os.PathLike, index: int, max_side: int | None = None,
               limits: MediaLimits | None = None) -> np.ndarray:
    """Exactly frame `index` (seek to the keyframe before it, decode forward to its timestamp)."""
    for frame in iter_video_frames(path, [index], max_side, limits):
        return frame
    raise MediaError(f"'{Path(path).name}': frame {index} could not be read.")


def thumbnail(path: str | os.PathLike, size: int | Sequence[int] = 128, limits: MediaLimits | None = None) -> np.ndarray:
    """A small picture of an image or a video's first frame, fitting inside size x size (or (w, h)),
    aspect kept, never enlarged. uint8 [h, w, 3]."""
    path = Path(path)
    limits = limits or LIMITS
    box = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if media_kind(path) == "video":
        frame = read_frame(path, 0, max_side=max(box), limits=limits)
        img = Image.fromarray(frame)
    else:
        img = _decode(path, limits, max(box))  # JPEG decodes at 1/2..1/8 scale: big photos thumbnail fast
    img.thumbnail(box, Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
