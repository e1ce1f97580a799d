"""Export: exact pictures, playable H.264, sound kept, and never a broken or overwritten file at the
destination, whatever happens (cancel, error, existing file)."""
from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from app.media.errors import ExportCancelled, ExportError, SoundError
from app.media.export import export_image, export_timeline, export_video
from app.media.probe import load_image, probe_video, read_frame, read_video_frames

from media_helpers import (flash_and_click, frame_index, index_colour, indexed_frames, write_clip_with_audio,
                           write_flash_and_click)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _stream_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        facts = {"codec": v.codec_context.name, "pix_fmt": v.codec_context.pix_fmt,
                 "frames": sum(1 for _ in c.decode(v))}
    with av.open(str(path)) as c:
        facts["audio"] = [(a.codec_context.name, float(a.duration * a.time_base) if a.duration else None)
                          for a in c.streams.audio]
    return facts


# ----------------------------------------------------------------------------- images


def test_export_png_is_exact_and_jpeg_close(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    export_image(img, tmp_path / "a.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), img)
    smooth = np.tile(np.linspace(0, 255, 47, dtype=np.uint8)[None, :, None], (33, 1, 3))
    export_image(smooth, tmp_path / "b.jpg", quality=95)
    assert Image.open(tmp_path / "b.jpg").format == "JPEG"
    assert np.abs(load_image(tmp_path / "b.jpg").astype(int) - smooth).mean() < 3
    assert _leftovers(tmp_path, {"a.png", "b.jpg"}) == []


def test_export_image_never_overwrites_unless_asked(tmp_path):
    dest = tmp_path / "mine.png"
    dest.write_bytes(b"the user's own file")
    with pytest.raises(ExportError, match="already exists"):
        export_image(np.zeros((4, 4, 3), np.uint8), dest)
    assert dest.read_bytes() == b"the user's own file"
    export_image(np.zeros((4, 4, 3), np.uint8), dest, overwrite=True)
    assert load_image(dest).shape == (4, 4, 3)
    with pytest.raises(ExportError, match="PNG or JPEG"):
        export_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.gif")
    assert _leftovers(tmp_path, {"mine.png"}) == []


# ----------------------------------------------------------------------------- video


def test_export_video_is_h264_with_every_frame(tmp_path):
    out = tmp_path / "out.mp4"
    seen = []
    size = export_video(indexed_frames(30), out, fps=12, progress=lambda d, t: seen.append((d, t)))
    assert size == (64, 48)
    facts = _stream_facts(out)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["frames"] == 30
    assert facts["audio"] == []
    assert probe_video(out).fps == 12.0
    assert seen[-1] == (30, 30) and [d for d, _ in seen] == list(range(1, 31))
    assert [frame_index(f) for f in read_video_frames(out)] == list(range(30))


_SAME_FRAMES_ANOTHER_PROCESS = """
import sys
import numpy as np
rng = np.random.default_rng(int(sys.argv[1]))  # each process's memory left with other leftovers, as after a model ran
junk = [rng.integers(0, 255, int(n), dtype=np.uint8).tobytes() for n in rng.integers(1000, 60000, 3000)]
del junk
from app.media.export import export_video
yy, xx = np.mgrid[0:48, 0:48]
frames = [np.stack([(((xx - 4 - 2 * k) ** 2 + (yy - 20) ** 2) < 64) * 220, (xx * 5 + k * 7) % 256, yy * 5], -1)
          .astype(np.uint8) for k in range(17)]
export_video(frames, sys.argv[2], fps=8)
"""


def test_the_same_frames_make_the_same_file_in_every_process(tmp_path):
    """`video --seed 1` run twice made two clips whose pixels differed by up to 24 levels: the model's frames
    were the same, x264's B-frame rate control read memory it had not written. (Before the fix 3 of 4 such
    processes wrote another file.)"""
    import subprocess
    import sys

    made = []
    for run in range(4):
        out = tmp_path / f"run{run}.mp4"
        r = subprocess.run([sys.executable, "-c", _SAME_FRAMES_ANOTHER_PROCESS, str(run), str(out)],
                           cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        made.append(out.read_bytes())
    assert all(m == made[0] for m in made)


def test_odd_size_is_padded_to_even(tmp_path):
    frames = [np.full((47, 65, 3), index_colour(k), np.uint8) for k in range(6)]
    frames[0][:, -1] = 250  # the last column, which padding repeats
    out = tmp_path / "odd.mp4"
    assert export_video(iter(frames), out, fps=6, total=6) == (66, 48)  # a generator works too
    info = probe_video(out)
    assert (info.width, info.height, info.frames) == (66, 48, 6)
    first = read_frame(out, 0).astype(int)
    assert abs(first[:, -2:].mean() - 250) < 8  # padded column repeats the edge, no black stripe
    assert abs(first[-1, :60].mean() - index_colour(0)) < 4


def test_audio_of_the_source_is_kept(clip_with_audio, tmp_path):
    out = tmp_path / "with_sound.mp4"
    export_video(indexed_frames(12), out, fps=12, audio_source=clip_with_audio)  # 1 s of picture, 2 s of sound
    facts = _stream_facts(out)
    assert facts["frames"] == 12 and len(facts["audio"]) == 1
    codec, seconds = facts["audio"][0]
    assert codec == "aac" and seconds == pytest.approx(1.0, abs=0.06)  # cut to the picture's length
    assert probe_video(out).has_audio


def test_audio_from_a_silent_source_is_no_error(tmp_path, indexed_clip):
    out = tmp_path / "silent.mp4"
    export_video(indexed_frames(5), out, fps=5, audio_source=indexed_clip)
    assert _stream_facts(out)["audio"] == []
    with pytest.raises(ExportError, match="sound"):
        export_video(indexed_frames(5), tmp_path / "x.mp4", fps=5, audio_source=tmp_path / "nowhere.mp4")
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("audio_offset, video_offset, start", [
    (0.5, 0.0, 0.0),  # the sound starts half a second after the pictures (silence first)
    (0.0, 0.5, 0.0),  # the pictures start half a second after the sound (the sound before them cut)
    (0.0, 0.5, 0.5),  # the same, trimmed at 0.5 s
    (1.4, 1.4, 0.0),  # both start 1.4 s in (a broadcast recording remuxed keeps its clock)
    (1.4, 1.4, 2.0),  # the same, trimmed at 2 s
])
def test_exported_sound_stays_in_step_with_the_pictures_however_the_sources_streams_start(
        tmp_path, audio_offset, video_offset, start):
    """A clip's sound was cut at the in point on the sound's own clock and written from 0: a trimmed clip whose
    streams start 1.4 s in clicked 1.4 s after its flash; sound starting late came early."""
    from app.media.probe import iter_video_frames

    source = write_flash_and_click(tmp_path / "camera.mp4", seconds=4.0, flash=2.5, audio_offset=audio_offset,
                                   video_offset=video_offset)
    info = probe_video(source)
    first = int(start * info.fps + 1e-6)
    out = tmp_path / "out.mp4"
    export_video(iter_video_frames(source, range(first, info.frames)), out, fps=info.fps, audio_source=source,
                 audio_start=start, total=info.frames - first)
    flash, click, _ = flash_and_click(out)
    assert flash == pytest.approx(2.5 - start, abs=1e-3)
    assert click == pytest.approx(flash, abs=0.5 / info.fps)  # within half a frame, as the source has it


@pytest.mark.parametrize("rate, codec, container, suffix", [
    (192000, "pcm_s16le", "mov", ".mov"), (37800, "pcm_s16le", "matroska", ".mkv")])
def test_sound_at_a_rate_aac_does_not_take_is_kept_at_the_nearest_it_does(tmp_path, rate, codec, container, suffix):
    """192 kHz PCM (a field recorder's MOV) or 37.8 kHz failed the whole export at the AAC encoder's open."""
    source = write_flash_and_click(tmp_path / f"recorder{suffix}", seconds=2.0, rate=rate, audio_codec=codec,
                                   container=container)
    out = tmp_path / "out.mp4"
    export_video(read_video_frames(source), out, fps=12, audio_source=source)
    flash, click, written_rate = flash_and_click(out)
    assert written_rate == {192000: 96000, 37800: 32000}[rate]  # AAC's nearest
    assert click == pytest.approx(flash, abs=0.04)


def test_a_sound_source_gone_or_damaged_is_a_sound_error_the_pictures_survive(tmp_path, clip_with_audio):
    """Said as the sound's (SoundError), which the studio and the CLI answer by writing the pictures without it;
    as a plain export error the CLI lost the clip its model had just made."""
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(clip_with_audio.read_bytes()[:64] + b"\0" * 4096)
    for source in (tmp_path / "gone.mp4", damaged):
        with pytest.raises(SoundError, match="sound"):
            export_video(indexed_frames(5), tmp_path / "x.mp4", fps=5, audio_source=source)
        assert not (tmp_path / "x.mp4").exists()


def test_a_relative_name_with_a_colon_is_a_file_not_an_ffmpeg_protocol(tmp_path, clip_with_audio, monkeypatch):
    """'take:1.mp4' was read by FFmpeg as protocol 'take' ("Protocol not found"): probed as damaged, not
    exported."""
    monkeypatch.chdir(tmp_path)
    Path("take:1.mp4").write_bytes(clip_with_audio.read_bytes())
    assert probe_video("take:1.mp4").has_audio
    export_video(read_video_frames("take:1.mp4"), "2024-05-01T10:30.mp4", fps=12, audio_source="take:1.mp4")
    assert probe_video(tmp_path / "2024-05-01T10:30.mp4").has_audio


def _cancel_after(n: int, cancel: threading.Event, frames):
    for k, f in enumerate(frames):
        if k == n:
            cancel.set()
        yield f


def test_cancel_leaves_nothing_at_the_destination(tmp_path):
    cancel = threading.Event()
    out = tmp_path / "cancelled.mp4"
    with pytest.raises(ExportCancelled):
        export_video(_cancel_after(5, cancel, indexed_frames(30)), out, fps=10, cancel=cancel)
    assert not out.exists()
    assert _leftovers(tmp_path, set()) == []


def test_cancel_keeps_an_existing_destination_untouched(tmp_path):
    out = tmp_path / "precious.mp4"
    out.write_bytes(b"yesterday's export")
    cancel = threading.Event()
    with pytest.raises(ExportCancelled):
        export_video(_cancel_after(3, cancel, indexed_frames(30)), out, fps=10, cancel=cancel, overwrite=True)
    assert out.read_bytes() == b"yesterday's export"
    with pytest.raises(ExportError, match="already exists"):
        export_video(indexed_frames(3), out, fps=10)
    assert out.read_bytes() == b"yesterday's export"
    assert _leftovers(tmp_path, {"precious.mp4"}) == []


def test_error_mid_export_leaves_nothing(tmp_path):
    frames = indexed_frames(5) + [np.zeros((10, 10, 3), np.uint8)]
    with pytest.raises(ExportError, match="one size"):
        export_video(frames, tmp_path / "bad.mp4", fps=10)
    with pytest.raises(ExportError, match="no frames"):
        export_video([], tmp_path / "empty.mp4", fps=10)
    assert _leftovers(tmp_path, set()) == []


def test_export_in_a_worker_thread_can_be_cancelled_from_the_ui_thread(tmp_path):
    """What the UI does: run the export in a thread, watch progress, press Cancel."""
    cancel, started, outcome = threading.Event(), threading.Event(), []

    def slow_frames():
        for f in indexed_frames(40):
            started.set()
            threading.Event().wait(0.01)
            yield f

    def work():
        try:
            export_video(slow_frames(), tmp_path / "t.mp4", fps=10, cancel=cancel, total=40)
            outcome.append("finished")
        except ExportCancelled:
            outcome.append("cancelled")

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(10)
    cancel.set()
    worker.join(10)
    assert outcome == ["cancelled"] and not (tmp_path / "t.mp4").exists()


# ----------------------------------------------------------------------------- timeline


def test_export_timeline_plays_clips_in_order(tmp_path, indexed_clip):
    from app.media.project import Project
    from app.media.project_file import import_media, save_project
    from app.media.render import render_project

    still = tmp_path / "still.png"
    Image.fromarray(np.full((24, 32, 3), (200, 0, 0), np.uint8)).save(still)  # other size and aspect
    path = tmp_path / "p.mcproj"
    project = Project("timeline")
    project.settings.fps = 10
    video = project.media_item(_apply(project, import_media(project, path, indexed_clip)))
    image = project.media_item(_apply(project, import_media(project, path, still)))
    # video 2.0..3.0 s of the source at 0..1 s; a 0.5 s gap; the still for 1 s; the video again at 4.5..5.0 s
    project.add_clip(video.id, "video", start=0.0, in_point=2.0, out_point=3.0)
    project.add_clip(image.id, "video", start=1.5, out_point=1.0)
    project.add_clip(video.id, "video", start=2.5, in_point=0.0, out_point=0.5)
    save_project(project, path)

    out = tmp_path / "render.mp4"
    calls = []
    render_project(path, out, progress=lambda d, t: calls.append((d, t)))
    frames = read_video_frames(out)
    assert len(frames) == 30 and calls[-1] == (30, 30)
    assert frames.shape[1:] == (48, 64, 3)  # the first clip's size
    assert [frame_index(f) for f in frames[:10]] == list(range(20, 30))
    assert frames[12].max() < 20  # the gap is black
    mid = frames[17].astype(int)
    assert abs(mid[24, 32] - (200, 0, 0)).max() < 25  # the still, fitted into the frame
    assert [frame_index(f) for f in frames[25:30]] == [0, 1, 2, 3, 4]

    with pytest.raises(ExportError, match="already exists"):
        export_timeline(project, path, out)

    # A media file deleted behind the project's back: a clear error before any encoding, no output.
    from app.media.project_file import media_path
    media_path(path, image).unlink()
    with pytest.raises(ExportError, match="missing"):
        render_project(path, tmp_path / "second.mp4")
    assert not (tmp_path / "second.mp4").exists()


def _apply(project, change) -> str:
    project.apply(change)
    return change["item"]["id"]


def test_a_destination_inside_a_file_is_said_to_be_a_file(tmp_path):
    """`-o existing.mp4/x.mp4`: the message names the file in the way, not a missing folder."""
    blocker = tmp_path / "existing.mp4"
    blocker.write_bytes(b"a file")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_video(indexed_frames(2), blocker / "x.mp4", fps=5)
    assert blocker.read_bytes() == b"a file"


def test_a_clip_edited_over_its_first_frames_goes_on_with_its_source(tmp_path, indexed_clip):
    """A video edit made from a clip's first frames covers them; past its end the clip shows its own source
    (not the edit's last frame held), in the render and in the viewer's frame choice alike. Any other
    generated version still holds its last frame."""
    from app.media.project import Project
    from app.media.project_file import import_media, save_project, store_result, version_frame

    path = tmp_path / "p.mcproj"
    project = Project("edit")
    project.settings.fps = 10
    video = project.media_item(_apply(project, import_media(project, path, indexed_clip)))
    clip = project.add_clip(video.id, "video", start=0.0, in_point=1.0, out_point=3.0)  # source frames 10..29
    clip_id = clip.id
    edit = [np.full((48, 64, 3), index_colour(30 + k), np.uint8) for k in range(8)]
    project.apply(store_result(project, path, clip_id, edit, fps=10, request={"task": "video_edit"}))
    save_project(project, path)
    clip = project.clip(clip_id)
    assert clip.active_version == 1
    frames = read_video_frames(export_timeline(project, path, tmp_path / "edited.mp4"))
    assert len(frames) == 20
    assert [frame_index(f) for f in frames] == list(range(30, 38)) + list(range(18, 30))
    item, index = version_frame(project, clip, clip.active, 1.25)
    assert (item.id, index) == (video.id, 22)
    # What Export clip fits its frames to: the files actually shown, the source only where the edit ends first.
    from app.media.export import clip_media
    assert [m.id for m in clip_media(project, clip, clip.active, 10)] == [clip.active.media_id, video.id]
    assert [m.id for m in clip_media(project, clip, clip.active, 10, count=8)] == [clip.active.media_id]

    project.apply(store_result(project, path, clip_id, edit, fps=10, request={"task": "text_to_video"}))
    clip = project.clip(clip_id)
    frames = read_video_frames(export_timeline(project, path, tmp_path / "made.mp4"))
    assert [frame_index(f) for f in frames] == list(range(30, 38)) + [37] * 12


def test_an_edit_goes_on_with_the_version_it_edited_and_keeps_sound_only_from_the_original(tmp_path, indexed_clip):
    """Past its end a video edit plays on as the version it was made from plays: an edit of a shorter
    generated version goes on with that version (holding its last frame), never with footage that version
    did not show; an edit of that edit chains on. Only edits that lead back to the original carry its sound.
    A request saved before edits recorded their source is read as made from the original."""
    from app.media.project import Project
    from app.media.project_file import (EDITED_VERSION, clip_audio, import_media, media_path, store_result,
                                        version_frame)

    path = tmp_path / "p.mcproj"
    project = Project("chain")
    project.settings.fps = 10
    video = project.media_item(_apply(project, import_media(project, path, indexed_clip)))
    clip_id = project.add_clip(video.id, "video", start=0.0, in_point=1.0, out_point=3.0).id  # frames 10..29
    made = [np.full((48, 64, 3), index_colour(k), np.uint8) for k in range(12)]  # a 12-frame version
    project.apply(store_result(project, path, clip_id, made, fps=10, request={"task": "text_to_video"}))
    generated = project.clip(clip_id).active
    edit = [np.full((48, 64, 3), index_colour(20 + k), np.uint8) for k in range(5)]
    project.apply(store_result(project, path, clip_id, edit, fps=10,
                               request={"task": "video_edit", EDITED_VERSION: generated.id}))
    clip = project.clip(clip_id)
    shown = [version_frame(project, clip, clip.active, k / 10) for k in range(20)]
    assert [(item.id, i) for item, i in shown] == ([(clip.active.media_id, k) for k in range(5)]
                                                  + [(generated.media_id, k) for k in range(5, 12)]
                                                  + [(generated.media_id, 11)] * 8)
    # Exported, it is as long as what it shows reaches (the 12-frame version), not the whole 2 s clip held.
    from app.media.export import clip_media
    from app.media.project_file import chain_spans
    assert max(length for _, length in chain_spans(project, clip, clip.active)) == pytest.approx(1.2)
    assert [m.id for m in clip_media(project, clip, clip.active, 10)] == [clip.active.media_id, generated.media_id]
    # An edit of that edit chains on through it.
    first_edit = clip.active
    project.apply(store_result(project, path, clip_id, edit[:3], fps=10,
                               request={"task": "video_edit", EDITED_VERSION: first_edit.id}))
    clip = project.clip(clip_id)
    assert [version_frame(project, clip, clip.active, k / 10)[0].id for k in (2, 3, 6)] == [
        clip.active.media_id, first_edit.media_id, generated.media_id]
    # An older project's edit (no recorded source) goes on with the original from the clip's in point.
    project.apply(store_result(project, path, clip_id, edit, fps=10, request={"task": "video_edit"}))
    clip = project.clip(clip_id)
    assert [(item.id, i) for item, i in (version_frame(project, clip, clip.active, t) for t in (0.4, 0.5))] == [
        (clip.active.media_id, 4), (video.id, 15)]

    # Sound: a camera clip's edit carries the camera's sound; an edit of a version made from words does not.
    camera = project.media_item(_apply(project, import_media(project, path, write_clip_with_audio(
        tmp_path / "camera.mp4", frames=24, fps=12))))
    sound_id = project.add_clip(camera.id, "video", start=5.0, in_point=0.5, out_point=2.0).id
    project.apply(store_result(project, path, sound_id, edit, fps=12, request={"task": "video_edit"}))
    assert clip_audio(project, path, sound_id) == (media_path(path, camera), 0.5)
    project.apply(store_result(project, path, sound_id, made, fps=12, request={"task": "text_to_video"}))
    words = project.clip(sound_id).active
    project.apply(store_result(project, path, sound_id, edit, fps=12,
                               request={"task": "video_edit", EDITED_VERSION: words.id}))
    assert clip_audio(project, path, sound_id) is None


def test_an_edit_made_at_the_models_size_is_stretched_back_to_its_footage_in_the_render(tmp_path, indexed_clip):
    """A square model edits a 4:3 clip's first frames at its own 32 x 32: rendered, the edit comes back at the
    footage's 64 x 48 (the whole frame, no black bars), and the clip keeps one size before and after the edit."""
    from app.media.project import Project
    from app.media.project_file import import_media, store_result

    path = tmp_path / "p.mcproj"
    project = Project("shape")
    project.settings.fps = 10
    video = project.media_item(_apply(project, import_media(project, path, indexed_clip)))
    clip_id = project.add_clip(video.id, "video", start=0.0, in_point=0.0, out_point=2.0).id
    edit = [np.full((32, 32, 3), index_colour(30 + k), np.uint8) for k in range(8)]
    project.apply(store_result(project, path, clip_id, edit, fps=10, request={"task": "video_edit"}))
    frames = read_video_frames(export_timeline(project, path, tmp_path / "out.mp4"))
    assert len(frames) == 20 and {f.shape for f in frames} == {(48, 64, 3)}
    assert [frame_index(f) for f in frames] == list(range(30, 38)) + list(range(8, 20))
    assert all(abs(float(f[:, :6].mean()) - index_colour(30 + k)) < 4 for k, f in enumerate(frames[:8]))  # no bars
