"""Reading media: right pixels, exact frames, and a clear MediaError (never a crash or a hang) for
anything missing, empty, damaged, mislabelled or too large."""
from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.media.errors import MediaError
from app.media.probe import (MediaLimits, load_image, media_kind, probe_video, read_frame, read_video_frames,
                             thumbnail)

from media_helpers import N_FRAMES, frame_index, index_colour

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def test_load_image_gives_rgb_pixels(png_file):
    img = load_image(png_file)
    assert img.shape == (30, 50, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (200, 30, 40) and tuple(img[0, 40]) == (0, 0, 0)


def test_transparent_areas_show_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 255)  # left half opaque red, right half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert tuple(img[0, 0]) == (255, 0, 0) and tuple(img[0, 7]) == (255, 255, 255)


def test_probe_video(indexed_clip, clip_with_audio):
    info = probe_video(indexed_clip)
    assert (info.width, info.height, info.frames, info.fps, info.has_audio) == (64, 48, N_FRAMES, 10.0, False)
    assert info.duration == pytest.approx(4.0, abs=0.05)
    assert probe_video(clip_with_audio).has_audio


@pytest.mark.parametrize("k", [0, 1, 7, 8, 9, 17, 23, 31, 38, 39])
def test_read_frame_is_frame_exact(indexed_clip, k):
    frame = read_frame(indexed_clip, k)
    assert frame.shape == (48, 64, 3)
    assert frame_index(frame) == k
    assert abs(float(frame.mean()) - index_colour(k)) < 2


def test_read_video_frames_range_and_size(indexed_clip):
    frames = read_video_frames(indexed_clip, start=13, count=5)
    assert [frame_index(f) for f in frames] == [13, 14, 15, 16, 17]
    everything = read_video_frames(indexed_clip)
    assert [frame_index(f) for f in everything] == list(range(N_FRAMES))
    small = read_video_frames(indexed_clip, start=38, count=10, max_side=32)  # count past the end is clipped
    assert small.shape == (2, 24, 32, 3)


def test_reading_past_the_end_is_a_media_error(indexed_clip):
    with pytest.raises(MediaError, match="40 frames"):
        read_frame(indexed_clip, N_FRAMES)


def test_thumbnails(indexed_clip, png_file):
    assert thumbnail(png_file, 20).shape == (12, 20, 3)
    assert thumbnail(indexed_clip, 32).shape == (24, 32, 3)
    assert thumbnail(png_file, 500).shape == (30, 50, 3)  # never enlarged


# ----------------------------------------------------------------------------- failures


def test_missing_file(tmp_path):
    for fn in (load_image, probe_video, media_kind):
        with pytest.raises(MediaError, match="not found"):
            fn(tmp_path / "gone.png")


def test_zero_byte_file(tmp_path):
    for name, fn in (("empty.png", load_image), ("empty.mp4", probe_video), ("empty.mp4", thumbnail)):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(MediaError, match="empty"):
            fn(tmp_path / name)


def test_folder_is_not_media(tmp_path):
    with pytest.raises(MediaError, match="folder"):
        load_image(tmp_path)


def test_png_named_mp4_says_what_it_is(png_file, tmp_path):
    fake = tmp_path / "clip.mp4"
    shutil.copy(png_file, fake)
    with pytest.raises(MediaError) as e:
        probe_video(fake)
    assert "PNG image" in str(e.value) and "not a video" in str(e.value) and ".mp4" in str(e.value)
    assert media_kind(fake) == "image"  # the UI can still place it on the image track


def test_video_named_png_says_what_it_is(indexed_clip, tmp_path):
    fake = tmp_path / "photo.png"
    shutil.copy(indexed_clip, fake)
    with pytest.raises(MediaError, match="MP4 video.*not an image"):
        load_image(fake)


def test_text_file_named_png_is_not_media(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("shopping list: eggs, milk\n" * 20)
    for fn in (load_image, probe_video, media_kind):
        with pytest.raises(MediaError, match="text file"):
            fn(fake)


def test_unknown_binary_is_not_media(tmp_path):
    fake = tmp_path / "blob.mp4"
    fake.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(MediaError, match="not an image or a video"):
        probe_video(fake)


def test_truncated_png_is_damaged(png_file, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(big)
    cut = tmp_path / "cut.png"
    cut.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    with pytest.raises(MediaError, match="damaged|truncated"):
        load_image(cut)
    broken_header = tmp_path / "header.png"
    broken_header.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(MediaError, match="damaged"):
        load_image(broken_header)


def test_damaged_videos(indexed_clip, tmp_path):
    data = indexed_clip.read_bytes()
    header_only = tmp_path / "header_only.mp4"
    header_only.write_bytes(data[:32])  # a real ftyp box, nothing else
    with pytest.raises(MediaError, match="damaged|no frames|contains no"):
        probe_video(header_only)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(data[:32] + bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8)))
    with pytest.raises(MediaError):
        read_video_frames(garbage)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError):
        read_video_frames(truncated)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height, with almost no data: a decompression-bomb probe."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


def test_huge_image_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 100_000, 100_000)  # 10 gigapixels: 30 GB if decoded
    with pytest.raises(MediaError, match="too large"):
        load_image(bomb)
    with pytest.raises(MediaError, match="too large"):
        thumbnail(bomb, 64)


def test_limits_are_configurable(png_file, indexed_clip):
    with pytest.raises(MediaError, match="too large"):
        load_image(png_file, limits=MediaLimits(max_image_pixels=1000))
    with pytest.raises(MediaError, match="too long"):
        probe_video(indexed_clip, limits=MediaLimits(max_video_frames=10))
    with pytest.raises(MediaError, match="memory"):
        read_video_frames(indexed_clip, limits=MediaLimits(max_decoded_bytes=10_000))


def test_samples_are_readable_and_small():
    files = sorted(SAMPLES.iterdir())
    assert sum(f.stat().st_size for f in files) < 300_000
    images = [f for f in files if f.suffix == ".png"]
    assert {load_image(f).shape[:2] for f in images} == {(64, 64), (256, 256)}
    assert tuple(load_image(SAMPLES / "red_circle_64.png")[0, 0]) == (245, 245, 245)
    clip = SAMPLES / "ball_rolls_right.mp4"
    assert media_kind(clip) == "video" and probe_video(clip).frames == 24
    frames = read_video_frames(clip)

    def ball_x(f):  # the red ball's column: it must move right
        red = (f[..., 0] > 150) & (f[..., 1] < 100)
        return np.nonzero(red)[1].mean()
    assert ball_x(frames[0]) < ball_x(frames[12]) < ball_x(frames[23])


def test_a_still_picked_where_a_clip_is_needed_is_not_called_misnamed(png_file, tmp_path):
    """A .png given for a clip is the wrong file, not a wrong name: no advice to rename it."""
    still = tmp_path / "first.png"
    shutil.copy(png_file, still)
    with pytest.raises(MediaError) as e:
        probe_video(still)
    assert "not a video" in str(e.value) and "a video is needed here" in str(e.value)
    assert "rename" not in str(e.value).lower() and "but the content" not in str(e.value)


def test_an_animated_gif_given_as_a_clip_is_told_how_to_become_one(tmp_path):
    from PIL import Image

    frames = [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(4)]
    gif = tmp_path / "wave.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(MediaError) as e:
        probe_video(gif)
    assert "not a video" in str(e.value) and "convert it to a video" in str(e.value) and "wave.mp4" in str(e.value)


@pytest.mark.parametrize("after_pixels", [False, True])
def test_a_pngs_exif_turn_is_read_without_decoding_it(tmp_path, after_pixels, monkeypatch):
    """A PNG's size at import read its EXIF orientation through Pillow, which decodes the whole picture to find an
    eXIf chunk written after the pixels: 0.4 s of a 56 MP import, much of it holding the GIL (the import's GUI
    stall). The chunks are walked instead, wherever the eXIf chunk sits; the size is the upright one."""
    import struct

    from PIL import Image, ImageFile

    from app.media.probe import image_size

    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: width and height swap
    path = tmp_path / "phone.png"
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(path, exif=exif)
    data = path.read_bytes()
    if after_pixels:  # moved behind the image data, where other writers put it
        at = data.find(b"eXIf") - 4
        length = struct.unpack(">I", data[at:at + 4])[0]
        chunk = data[at:at + 12 + length]
        data = data[:at] + data[at + 12 + length:]
        end = data.find(b"IEND") - 4
        data = data[:end] + chunk + data[end:]
        path.write_bytes(data)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("the pixels were decoded"))
    assert image_size(path) == (10, 20)


@pytest.mark.parametrize("audio_offset, video_offset", [(1.4, 1.4), (0.0, 0.5)])
def test_a_matroska_recording_whose_pictures_start_late_counts_its_own_frames(tmp_path, audio_offset, video_offset):
    """MKV and WebM state no frame count: it was estimated from the container's duration, which runs from time 0,
    so 48 pictures starting 1.4 s in were taken for 65 frames and the whole file refused as cut short."""
    from media_helpers import write_flash_and_click

    from app.media.probe import check_complete

    source = write_flash_and_click(tmp_path / "recording.mkv", seconds=4.0, flash=2.5, container="matroska",
                                   audio_offset=audio_offset, video_offset=video_offset)
    assert check_complete(source).frames == 48 == len(read_video_frames(source))
