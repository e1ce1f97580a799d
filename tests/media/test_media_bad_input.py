"""Issue 24, the media layer: bad input gets a clear message and loses nothing.

Pipes, devices and folders given as media or projects are refused at once (never waited on); a
huge image is decoded at the size that is needed; a damaged or hostile project file is refused
with a message naming the field and the clip; killed saves leave no temporary files for ever; and
a failed write (full disk, read-only folder) says why and leaves the existing file as it was.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.media import atomic
from app.media import project_file as pf
from app.media.errors import ExportError, MediaError, ProjectError
from app.media.export import export_image, export_video, timeline_frames
from app.media.probe import (PREVIEW_MAX_SIDE, MediaLimits, load_image, load_preview, media_kind, probe_video,
                             thumbnail)
from app.media.project import Project

from media_helpers import frame_index, indexed_frames

posix_only = pytest.mark.skipif(os.name != "posix", reason="named pipes and /dev/zero are POSIX")
DEAD_PID = 999_999_999  # above any system's pid_max: no process has it


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- 1. pipes, devices, folders


@pytest.fixture
def fifo(tmp_path):
    """A named pipe called photo.png. A watchdog opens its other end after 3 s, so a reader stuck
    on it (the old behaviour) fails the test instead of hanging the suite."""
    path = tmp_path / "photo.png"
    os.mkfifo(path)
    done = threading.Event()

    def watchdog():
        while not done.wait(3.0):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # nobody is reading: nothing to unblock
    threading.Thread(target=watchdog, daemon=True).start()
    yield path
    done.set()


@posix_only
def test_named_pipe_is_refused_at_once_not_waited_on(fifo, tmp_path):
    t0 = time.perf_counter()
    for fn in (load_image, load_preview, thumbnail, probe_video, media_kind):
        with pytest.raises(MediaError, match=r"photo\.png' is not a regular file \(it is a named pipe"):
            fn(fifo)
    with pytest.raises(MediaError, match="not a regular file"):
        pf.import_media(Project(), tmp_path / "P.mcproj", fifo)
    project_pipe = tmp_path / "Pipe.mcproj"
    os.mkfifo(project_pipe)
    with pytest.raises(ProjectError, match="not a regular file.*named pipe"):
        pf.open_project(project_pipe)
    with pytest.raises(ExportError, match="not a regular file"):  # nor is one written over
        export_image(np.zeros((4, 4, 3), np.uint8), fifo, overwrite=True)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert time.perf_counter() - t0 < 1.0
    assert not (tmp_path / "P_media").exists() or _listing(tmp_path / "P_media") == []


@posix_only
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_are_refused_even_behind_a_media_name(tmp_path):
    disguised = tmp_path / "holiday.jpg"
    disguised.symlink_to("/dev/zero")
    t0 = time.perf_counter()
    for path in (Path("/dev/zero"), disguised):
        with pytest.raises(MediaError, match="not a regular file.*character device"):
            load_image(path)
        with pytest.raises(MediaError, match="not a regular file"):
            pf.import_media(Project(), tmp_path / "P.mcproj", path)
    with pytest.raises(ProjectError, match="not a regular file.*character device"):
        pf.open_project("/dev/zero")
    assert time.perf_counter() - t0 < 1.0


def test_a_folder_is_not_media_nor_a_project_file(tmp_path):
    folder = tmp_path / "photos.png"
    folder.mkdir()
    with pytest.raises(MediaError, match="is a folder"):
        pf.import_media(Project(), tmp_path / "P.mcproj", folder)
    with pytest.raises(MediaError, match="is a folder"):
        load_preview(folder)


# ----------------------------------------------------------------------------- 2. large images


def _photo(path: Path, w: int, h: int, **save) -> np.ndarray:
    """Left half red, right half blue, a gradient down: easy to recognise at any size."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (220, 20, 30)
    arr[:, w // 2:] = (20, 40, 210)
    arr[:, :, 1] = np.linspace(0, 120, h, dtype=np.uint8)[:, None]
    Image.fromarray(arr).save(path, **save)
    return arr


@pytest.fixture
def decoded_sizes(monkeypatch):
    """The sizes at which PIL really decodes files (ImageFile.load), to see what was avoided."""
    from PIL import ImageFile

    seen = []
    real = ImageFile.ImageFile.load

    def spy(self):
        if getattr(self, "tile", None):
            seen.append(self.size)
        return real(self)
    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return seen


def test_big_jpeg_preview_never_decodes_full_resolution(tmp_path, decoded_sizes):
    path = tmp_path / "big.jpg"
    _photo(path, 4000, 3000, quality=90)
    preview = load_preview(path, max_side=500)
    assert preview.shape == (375, 500, 3) and preview.dtype == np.uint8
    assert decoded_sizes == [(500, 375)]  # libjpeg's 1/8 scale: the 12 MP picture never existed
    assert abs(preview[187, 100].astype(int) - (220, 60, 30)).max() < 20  # still the same picture
    assert abs(preview[187, 400].astype(int) - (20, 60, 210)).max() < 20
    decoded_sizes.clear()
    assert load_preview(path, max_side=1500).shape == (1125, 1500, 3) and decoded_sizes == [(2000, 1500)]  # 1/2 scale
    assert PREVIEW_MAX_SIDE == 2048  # the viewer's default: a 56 MP photo (9152 px wide) decodes at 1/4 scale


def test_big_png_preview_is_shrunk_and_matches_the_full_picture(tmp_path):
    path = tmp_path / "big.png"
    full = _photo(path, 3001, 2003, compress_level=1)
    small = load_image(path, max_side=300)
    assert small.shape == (200, 300, 3)
    expected = np.asarray(Image.fromarray(full).resize((300, 200), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - expected).mean() < 3
    assert load_image(path, max_side=5000).shape == full.shape  # never enlarged
    assert np.array_equal(load_image(path), full)  # without max_side: every pixel, as before


def test_preview_keeps_exif_orientation_and_alpha(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    _photo(path, 800, 400, exif=exif.tobytes())
    assert load_preview(path, max_side=100).shape == (100, 50, 3)  # upright: tall, as the phone showed it
    rgba = np.zeros((600, 900, 4), np.uint8)
    rgba[:, :450] = (255, 0, 0, 255)  # the right half is transparent: white, as in the full-size load
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    shown = load_preview(tmp_path / "cut.png", max_side=90)
    assert shown.shape == (60, 90, 3) and tuple(shown[30, 10]) == (255, 0, 0) and tuple(shown[30, 80]) == (255, 255, 255)


def test_preview_of_a_video_is_its_frame(indexed_clip):
    frame = load_preview(indexed_clip, max_side=32, frame=5)
    assert frame.shape == (24, 32, 3) and frame_index(frame) == 5


def test_pils_own_bomb_guard_gives_a_clear_message(tmp_path):
    from test_media_probe import _png_header_only

    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 100_000, 100_000)
    # Even with our own limit lifted, PIL's decompression-bomb guard fires: a message, no traceback.
    with pytest.raises(MediaError, match=r"'bomb\.png' is too large to open safely \(10000 megapixels\)"):
        load_preview(bomb, limits=MediaLimits(max_image_pixels=10**12))


# ----------------------------------------------------------------------------- 3. project files


def _saved(tmp_path, png_file) -> tuple[Project, Path]:
    path = tmp_path / "Trip.mcproj"
    p = Project("Trip")
    change = pf.import_media(p, path, png_file)
    p.apply(change)
    p.add_clip(change["item"]["id"], track="video", instruction="make it blue")
    pf.save_project(p, path)
    return p, path


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc["project"], doc["project"]["tracks"]["video"][0])
    path.write_text(json.dumps(doc))


def _set(field, value):
    return lambda project, clip: clip.__setitem__(field, value)


BAD_PROJECTS = {
    "string start": (_set("start", "5"), r"clip 1 on the video track \(id '\w+'\): 'start' must be a number.*string \('5'\)"),
    "null out_point": (_set("out_point", None), r"clip 1 on the video track.*'out_point' must be a number.*not null"),
    "NaN start": (_set("start", float("nan")), r"'start' must be a finite number, not nan"),
    "infinite in_point": (_set("in_point", float("inf")), r"'in_point' must be a finite number, not inf"),
    "negative start": (_set("start", -2.0), r"'start' is -2.0 seconds; it must be at least 0"),
    "out before in": (lambda p, c: c.update(in_point=2.0, out_point=1.0), r"'out_point' is 1 s, before the in point"),
    "a clip lasting 1e7 s": (_set("out_point", 1e7), r"'out_point' is 10000000.0 seconds; it must be at least 0 and at most 86400"),
    "a clip ending after a day": (_set("start", 86_399.0), r"'start' places the clip's end at 86402 s; the timeline ends at 24 hours"),
    "versions not a list": (_set("versions", "v1"), r"'versions' must be a list, not a string"),
    "no active version": (_set("active_version", 3), r"'active_version' is 3; it must be at least 0 and at most 0"),
    "boolean start": (_set("start", True), r"'start' must be a number.*not true or false"),
    "unknown field": (_set("surprise", 1), r"clip 1 on the video track.*unknown field 'surprise'"),
    "string width": (lambda p, c: next(iter(p["media"].values())).__setitem__("width", "50"),
                     r"media 'picture\.png': 'width' must be a whole number of pixels, not a string \('50'\)"),
    "media path outside": (lambda p, c: next(iter(p["media"].values())).__setitem__("path", "../../secret.png"),
                           r"media 'picture\.png': 'path' goes up out of the project's media folder"),
    "absolute media path": (lambda p, c: next(iter(p["media"].values())).__setitem__("path", "/etc/passwd"),
                            r"'path' is absolute"),
    "zero fps": (lambda p, c: p["settings"].__setitem__("fps", 0), r"project settings: 'fps' is 0 frames per second"),
    # The studio reads a version's request back (its task, frames, seed...): a wrong type failed the timeline's
    # drawing after the project had opened, and every later change with it.
    "request frames as words": (lambda p, c: c["versions"][0].__setitem__("request", {"frames": "17 frames"}),
                                r"version 0, its request: 'frames' must be a whole number of frames, not a string"),
    "request task unknown": (lambda p, c: c["versions"][0].__setitem__("request", {"task": "paint"}),
                             r"its request: 'task' must be one of text_to_image, .*not a string \('paint'\)"),
    "request plan edits": (lambda p, c: c["versions"][0].__setitem__("request", {"plan_edits": [3]}),
                           r"its request: 'plan_edits' must be a list of edits"),
    "deep request": (lambda p, c: c["versions"][0].__setitem__("request", json.loads("[" * 200 + "]" * 200)),
                     r"nested more than 64 levels"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROJECTS))
def test_damaged_project_fields_are_named(tmp_path, png_file, case):
    _, path = _saved(tmp_path, png_file)
    change, message = BAD_PROJECTS[case]
    _edit(path, change)
    damaged = path.read_bytes()
    with pytest.raises(ProjectError, match=r"^'Trip\.mcproj' is damaged: .*" + message):
        pf.open_project(path)
    assert path.read_bytes() == damaged  # opening never rewrites


def test_json_nested_200000_deep_and_huge_numbers(tmp_path, png_file):
    _, path = _saved(tmp_path, png_file)
    doc = path.read_text()
    deep = doc.replace('"request":{}', '"request":' + "[" * 200_000 + "]" * 200_000, 1)
    assert deep != doc
    path.write_text(deep)
    t0 = time.perf_counter()
    with pytest.raises(ProjectError, match="damaged: its data is nested thousands of levels deep"):
        pf.open_project(path)
    assert time.perf_counter() - t0 < 1.0
    path.write_text(doc.replace('"start":0.0', '"start":' + "9" * 5000, 1))
    with pytest.raises(ProjectError, match="damaged: it holds a value that cannot be read"):
        pf.open_project(path)


def test_an_oversized_project_file_is_refused_before_reading(tmp_path, png_file, monkeypatch):
    _, path = _saved(tmp_path, png_file)
    monkeypatch.setattr(pf, "MAX_PROJECT_BYTES", 100)
    with pytest.raises(ProjectError, match=r"'Trip\.mcproj' is too large.*cannot be opened"):
        pf.open_project(path)


def test_render_of_a_day_long_project_refuses_at_once(tmp_path, png_file):
    from app.media.render import render_project

    _, path = _saved(tmp_path, png_file)
    _edit(path, _set("out_point", 1e7))
    t0 = time.perf_counter()
    with pytest.raises(ProjectError, match="clip 1 on the video track.*'out_point'"):
        render_project(path, tmp_path / "out.mp4")
    assert time.perf_counter() - t0 < 1.0 and not (tmp_path / "out.mp4").exists()


def test_timeline_frames_are_streamed_not_listed(tmp_path, png_file):
    """An in-memory project bypasses the file check; the renderer must still hold nothing per frame
    (the old one built a list of every frame's clip: 8 GB for this timeline)."""
    p, path = _saved(tmp_path, png_file)
    p.settings.fps = 1000.0
    clip = p.tracks["video"][0]
    clip.start = 1_000_000.0  # 10^9 frames of black first
    t0 = time.perf_counter()
    frames, total, size = timeline_frames(p, path)
    assert total == 1_000_003_000 and size == (50, 30)
    assert [f.max() for f in (next(frames), next(frames))] == [0, 0]
    assert time.perf_counter() - t0 < 1.0


def test_overlapping_clips_last_placed_wins(tmp_path, indexed_clip):
    p = Project("overlap")
    p.settings.fps = 10
    path = tmp_path / "o.mcproj"
    change = pf.import_media(p, path, indexed_clip)
    p.apply(change)
    mid = change["item"]["id"]
    p.add_clip(mid, "video", start=0.0, in_point=0.0, out_point=2.0)  # frames 0..19 of the source
    p.add_clip(mid, "video", start=0.5, in_point=3.0, out_point=3.5)  # on top at 0.5..1.0 s: 30..34
    frames, total, _ = timeline_frames(p, path)
    assert total == 20
    assert [frame_index(f) for f in frames] == [0, 1, 2, 3, 4, 30, 31, 32, 33, 34] + list(range(10, 20))


def test_a_link_out_of_the_media_folder_is_refused(tmp_path, png_file):
    p, path = _saved(tmp_path, png_file)
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_file.read_bytes())
    item = next(iter(p.media.values()))
    inside = pf.media_path(path, item)
    inside.unlink()
    inside.symlink_to(secret)
    with pytest.raises(ProjectError, match=r"cannot be opened: media 'picture\.png'.*link to a file outside"):
        pf.open_project(path)


def test_save_refuses_what_it_could_not_open_again(tmp_path, png_file):
    p, path = _saved(tmp_path, png_file)
    good = path.read_bytes()
    p.tracks["video"][0].start = "5"  # e.g. a buggy caller
    with pytest.raises(ProjectError, match="cannot be saved.*'start' must be a number.*previous save is unchanged"):
        pf.save_project(p, path)
    assert path.read_bytes() == good


# ----------------------------------------------------------------------------- 4. stale .part files


def _age(path: Path, seconds: float) -> Path:
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_stale_part_files_are_removed_on_open_and_save_and_nothing_else(tmp_path, png_file):
    p, path = _saved(tmp_path, png_file)
    media = pf.media_dir(path)
    stale = [tmp_path / f".Trip.mcproj.mcs-{DEAD_PID}-deadbeef.part",  # a killed save
             tmp_path / f".Trip.mcproj.bak.mcs-{DEAD_PID}-0badf00d.part",  # its backup
             media / f".holiday-1a2b3c4d.mp4.mcs-{DEAD_PID}-12345678.mp4.part",  # a killed import
             tmp_path / ".Trip.mcproj.4000000000.abcdef01.part"]  # the old unmarked naming
    users = [tmp_path / ".notes.part", tmp_path / "movie.mp4.part", media / ".photo.png.part",
             tmp_path / ".diary.txt.4000000000.abcdef01.part"]  # old-style name, but not a project's
    live = [atomic.temp_path_for(path),  # this process, saving right now
            tmp_path / f".Trip.mcproj.mcs-{os.getppid()}-cafecafe.part"]  # another process that is running
    for f in stale + users:
        f.write_bytes(b"mine")
        _age(f, 3600)
    for f in live:
        f.write_bytes(b"mine")
    keep = users + live
    pf.open_project(path)
    assert [f.exists() for f in stale] == [False] * len(stale)
    assert all(f.read_bytes() == b"mine" for f in keep)
    again = media / f".result-9.png.mcs-{DEAD_PID}-aaaabbbb.part"
    again.write_bytes(b"half a picture")
    _age(again, 600)
    pf.save_project(p, path)
    assert not again.exists() and all(f.read_bytes() == b"mine" for f in keep)


def test_temp_names_are_recognisably_ours(tmp_path):
    tmp = atomic.temp_path_for(tmp_path / "clip.mp4", ".mp4")
    assert tmp.name.startswith(".clip.mp4.mcs-") and tmp.name.endswith(".mp4.part")
    assert atomic.parse_temp_name(tmp.name) == ("clip.mp4", os.getpid())
    for name in (".notes.part", "clip.mp4.part", ".clip.mp4.123.part", ".a.mcs-12-XYZ.part"):
        assert atomic.parse_temp_name(name) is None
    long = atomic.temp_path_for(tmp_path / ("é" * 120 + ".png"))
    assert len(long.name.encode()) < 200 and atomic.parse_temp_name(long.name)


# ----------------------------------------------------------------------------- 5. failed writes


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _open_on_full_disk(path, mode="r", *args, **kwargs):
    """open() whose files take a few bytes, then fail as a full disk does."""
    f = open(path, mode, *args, **kwargs)

    class Full:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            f.close()

        def write(self, data):
            f.write(data[:10])
            f.flush()
            _disk_full()

        def __getattr__(self, name):
            return getattr(f, name)
    return Full()


def test_png_and_jpeg_export_on_a_full_disk_keep_the_existing_file(tmp_path, monkeypatch):
    real_save = Image.Image.save

    def save_half_then_fail(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half of it")
        _disk_full()
    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    for name in ("still.png", "still.jpg"):
        dest = tmp_path / name
        dest.write_bytes(b"yesterday's export")
        with pytest.raises(ExportError, match=rf"Could not write '{name}': No space left on device \(the disk is full\)\. "
                                              r"The existing file is unchanged\."):
            export_image(np.zeros((8, 8, 3), np.uint8), dest, overwrite=True)
        assert dest.read_bytes() == b"yesterday's export"
    with pytest.raises(ExportError, match=r"disk is full\)\. Nothing was written\."):
        export_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "new.png")
    assert _listing(tmp_path) == ["still.jpg", "still.png"]
    monkeypatch.setattr(Image.Image, "save", real_save)


def test_mp4_export_on_a_full_disk_keeps_the_existing_file(tmp_path, monkeypatch):
    dest = tmp_path / "clip.mp4"
    dest.write_bytes(b"yesterday's export")
    monkeypatch.setattr(atomic, "fsync_file", _disk_full)
    with pytest.raises(ExportError, match=r"'clip\.mp4': No space left.*disk is full.*existing file is unchanged"):
        export_video(indexed_frames(4), dest, fps=4, overwrite=True)
    assert dest.read_bytes() == b"yesterday's export" and _listing(tmp_path) == ["clip.mp4"]


def test_project_save_and_import_on_a_full_disk(tmp_path, png_file, monkeypatch):
    p, path = _saved(tmp_path, png_file)
    good = path.read_bytes()
    media_before = _listing(pf.media_dir(path))
    p.name = "changed"
    monkeypatch.setattr("shutil.copyfileobj", _disk_full)
    with pytest.raises(MediaError, match=r"Could not copy 'picture\.png'.*No space left.*disk is full.*Nothing was added"):
        pf.import_media(p, path, png_file)
    monkeypatch.setattr(atomic, "open", _open_on_full_disk, raising=False)  # the JSON's write fails half-way
    with pytest.raises(ProjectError, match=r"Could not save 'Trip\.mcproj': No space left.*disk is full.*previous save is unchanged"):
        pf.save_project(p, path)
    monkeypatch.undo()
    assert path.read_bytes() == good and _listing(pf.media_dir(path)) == media_before
    assert not [x for x in tmp_path.iterdir() if x.name.endswith(".part")]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, png_file):
    p, path = _saved(tmp_path, png_file)
    good = path.read_bytes()
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ProjectError, match="Permission denied.*read-only.*previous save is unchanged"):
            pf.save_project(p, path)
        with pytest.raises(ExportError, match="Permission denied.*read-only"):
            export_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.png")
    finally:
        tmp_path.chmod(0o755)
    assert path.read_bytes() == good


def test_one_overwrite_rule(tmp_path, png_file):
    p, path = _saved(tmp_path, png_file)
    other = tmp_path / "Other.mcproj"
    other.write_bytes(b"someone else's project")
    with pytest.raises(ProjectError, match="already exists"):
        pf.save_project(p, other, media_from=path, overwrite=False)
    assert other.read_bytes() == b"someone else's project"
    pf.save_project(p, other, media_from=path, overwrite=True)  # asked: replaced
    assert pf.open_project(other).name == "Trip"
    still, clip = tmp_path / "mine.png", tmp_path / "mine.mp4"
    for dest in (still, clip):
        dest.write_bytes(b"the user's own file")
    with pytest.raises(ExportError, match="already exists"):
        export_image(np.zeros((4, 4, 3), np.uint8), still)  # not asked: refused
    with pytest.raises(ExportError, match="already exists"):
        export_video(indexed_frames(2), clip, fps=2)
    assert still.read_bytes() == clip.read_bytes() == b"the user's own file"


def test_save_as_skips_media_that_are_not_regular_files(tmp_path, png_file):
    if os.name != "posix":
        pytest.skip("named pipes are POSIX")
    p, path = _saved(tmp_path, png_file)
    item = next(iter(p.media.values()))
    target = pf.media_path(path, item)
    target.unlink()
    os.mkfifo(target)  # swapped for a pipe behind our back: Save As must not block on it
    t0 = time.perf_counter()
    new = pf.save_project(p, tmp_path / "copy" / "Copy.mcproj", media_from=path)
    assert time.perf_counter() - t0 < 1.0
    assert pf.missing_media(pf.open_project(new), new) == [item]  # offline, as a missing file is


# ----------------------------------------------------------------------------- 6. video files a user picks by mistake


def test_video_without_picture_too_long_or_too_large_is_refused_from_its_header(tmp_path):
    """Issue 25: the clips the video command refuses, refused by the media layer in one line, before any
    frame is decoded (the 8448 x 4480 frame would be 113 MB decoded; the long clip claims 300 minutes)."""
    from app.media.probe import read_video_frames
    from tests.video_files import audio_only, too_fast, too_large, too_long

    def song(path):
        return audio_only(path, cover=True)

    # A song's cover picture is a "video" stream of one frame claiming 90,000 frames a second, and a clip faster
    # than a project file holds: taken in, either made every later save of the project fail (and its autosave
    # unrecoverable).
    for make, words in [(audio_only, "contains no video picture"), (too_long, "is too long"),
                        (too_large, "is too large"), (song, "audio only, with a cover picture"),
                        (too_fast, "plays at 1,200 frames a second")]:
        path = make(tmp_path / f"{make.__name__}.mp4")
        for read in (probe_video, read_video_frames, lambda p: thumbnail(p, 64)):
            with pytest.raises(MediaError, match=words) as err:
                read(path)
            assert "\n" not in str(err.value) and path.name in str(err.value)


@pytest.mark.parametrize("rotation, white_rows", [(90, slice(48, 64)), (-90, slice(0, 16))])
def test_a_phone_portrait_clip_is_read_upright(tmp_path, rotation, white_rows):
    """A phone stores a portrait clip as landscape frames and a display matrix; read as stored it was imported,
    shown, edited and exported lying on its side. Its size is the shown one and every frame comes turned as the
    matrix says (white in the stored left quarter: at the bottom turned counterclockwise, at the top clockwise),
    so an export of it plays upright in any player."""
    from app.media.export import export_video
    from app.media.probe import read_video_frames
    from tests.video_files import portrait

    path = portrait(tmp_path / "portrait.mp4", rotation)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (32, 64, rotation % 360)
    frames = read_video_frames(path)
    assert frames.shape == (9, 64, 32, 3)
    assert frames[:, white_rows].min() > 200
    others = np.ones(64, bool)
    others[white_rows] = False
    assert frames[:, others].max() < 60
    assert thumbnail(path, 16).shape == (16, 8, 3)
    assert read_video_frames(path, max_side=32).shape == (9, 32, 16, 3)
    export_video(list(frames), tmp_path / "upright.mp4", fps=8)
    back = probe_video(tmp_path / "upright.mp4")
    assert (back.width, back.height, back.rotation) == (32, 64, 0)


@pytest.mark.parametrize("cut", ["pictures zeroed", "end cut off"])
def test_a_clip_cut_short_is_refused_at_import_and_nothing_is_added(tmp_path, cut):
    """A copy or recording that did not finish keeps a whole header over missing pictures: imported, it showed no
    frame (or stopped part way) and every export of a track holding it failed. Refused at import, in one line."""
    from app.media import project_file as pf
    from app.media.project import Project
    from tests.video_files import shapes_clip

    source = tmp_path / "camera.mp4"
    shapes_clip(source, frames=33)
    data = bytearray(source.read_bytes())
    start, end = data.find(b"mdat") + 8, data.find(b"moov")
    if start > end:  # the index first (faststart): the pictures run to the end of the file
        end = len(data)
    if cut == "pictures zeroed":
        data[start:end] = bytes(end - start)
    else:  # the last tenth of the pictures gone, the header (and its frame count) whole
        data[end - (end - start) // 10:end] = b""
    source.write_bytes(bytes(data))
    project = Project()
    with pytest.raises(MediaError, match="cut short|damaged") as err:
        pf.import_media(project, tmp_path / "p.mcproj", source)
    assert "\n" not in str(err.value) and "camera.mp4" in str(err.value)
    assert not project.media and not any(pf.media_dir(tmp_path / "p.mcproj").glob("*.mp4"))
    whole = tmp_path / "whole.mp4"
    shapes_clip(whole, frames=33)
    change = pf.import_media(project, tmp_path / "p.mcproj", whole)  # a whole clip still imports
    assert change["item"]["frames"] == 33


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_still_cut_short_is_refused_at_import_and_nothing_is_added(tmp_path, fmt):
    """A PNG whose end is missing was imported ("Imported truncated.png."), then every look at it said it was
    damaged, three or four times a click, and every export failed. Refused at import, as a cut-short clip is."""
    from PIL import Image

    from app.media import project_file as pf
    from app.media.project import Project

    rng = np.random.default_rng(0)
    source = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(source, fmt)
    whole = source.read_bytes()
    project = Project()
    assert pf.import_media(project, tmp_path / "p.mcproj", source)["item"]["width"] == 128  # whole: imports
    source.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(MediaError, match="damaged") as err:
        pf.import_media(project, tmp_path / "p.mcproj", source)
    assert "\n" not in str(err.value) and "photo" in str(err.value)
    assert len(list(pf.media_dir(tmp_path / "p.mcproj").glob("photo*"))) == 1  # only the whole one's copy


def test_a_png_whose_pictures_are_damaged_under_good_checksums_is_refused_at_import(tmp_path):
    """A PNG's chunk checksums were all the import checked: a damaged compressed stream written with good checksums
    (a faulty writer) was imported and failed at every look. A still of a usual size is inflated too."""
    import struct
    import zlib

    from PIL import Image

    from app.media import project_file as pf
    from app.media.project import Project

    source = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(source)
    data = bytearray(source.read_bytes())
    at = data.find(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    body = bytearray(data[at + 4:at + 4 + length])
    body[len(body) // 2:len(body) // 2 + 8] = b"\xff" * 8  # the stream damaged...
    data[at + 4:at + 4 + length] = body
    data[at + 4 + length:at + 8 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))  # ...its checksum good
    source.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="'scan.png' is damaged"):
        pf.import_media(Project(), tmp_path / "p.mcproj", source)


def test_a_file_system_without_inode_numbers_tells_files_apart_by_their_paths(tmp_path, monkeypatch):
    """st_ino is 0 where a file system has none (some Windows ones): two files were one "identity", so an output
    was refused as the source it is not."""
    import os

    from app.media import files

    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    real = os.stat

    def no_inodes(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        return os.stat_result((st.st_mode, 0, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
                               int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))

    monkeypatch.setattr(files.os, "stat", no_inodes)
    assert files.file_key(a) != files.file_key(b) and files.file_key(a) == files.file_key(tmp_path / "." / "a.mp4")
