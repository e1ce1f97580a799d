"""The studio with a video model: a new clip from words onto the video track, a still animated (its first
frame kept), a clip edited into a new version (A/B, its sound kept on export), the plan over the viewer
following the playhead between keyframes, and a clip that cannot be edited refused with nothing lost.

The video model is the untrained tiny one of tests/conftest.py (`tiny_video_model`, the embedded video
model's format): a clip takes well under a second, so what is checked is the studio's part, not quality."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.core.request import Task
from app.ui.images import heatmap_rgba
from app.ui.studio_state import ModelState
from app.ui.timeline import VIDEO_TRACK
from tests.media.media_helpers import index_colour, write_clip_with_audio
from tests.ui.helpers import MODEL, SAMPLE_IMAGE, choose_task, import_and_wait, make_window

pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").is_file(),
                                reason="the studio starts with the embedded image model (models/metacanvas-shapes)")

WAIT = 60_000


@pytest.fixture
def studio(qtbot, tmp_path, tiny_video_model):
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL), video_model=str(tiny_video_model))
    qtbot.waitUntil(lambda: w.studio.slots["image"].state is ModelState.READY, timeout=120_000)
    yield w
    w.shutdown()


def _type(qtbot, w, text):
    w.instruction.edit.setFocus()
    qtbot.keyClicks(w.instruction.edit, text)


def _generate(qtbot, w):
    with qtbot.waitSignal(w.result_stored, timeout=WAIT) as stored:
        w.generate()
    return stored.args[0]


def _video_clips(w):
    return list(w.document.project.tracks["video"])


def _psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _still(tmp_path, name="still.png"):
    """A 48 x 48 still of the shapes world's kind: a red square on white."""
    from PIL import Image

    a = np.full((48, 48, 3), 255, np.uint8)
    a[14:30, 8:24] = (220, 30, 30)
    path = tmp_path / name
    Image.fromarray(a).save(path)
    return path, a


def _new_clip_from_words(qtbot, w):
    w.timeline.view.select([])
    choose_task(w, Task.TEXT_TO_VIDEO)  # asking for a video task loads the video model, in the background
    assert w.studio.slots["video"].state in (ModelState.LOADING, ModelState.READY)
    if w.studio.slots["video"].state is ModelState.LOADING:  # its settings are its own once loaded: greyed
        assert not w.generation.width_box.isEnabled() and not w.generation.frames.isEnabled()
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    assert w.generation.width_box.isEnabled() and w.generation.frames.isEnabled()
    _type(qtbot, w, "a red circle moves to the right")
    return _generate(qtbot, w)


# ------------------------------------------------------------------------------------------------ t2v
def test_a_new_clip_from_words_lands_on_the_video_track_and_plays(qtbot, studio):
    w = studio
    assert not w.studio.slots["video"].text  # not loaded before a video task is asked for
    clip_id = _new_clip_from_words(qtbot, w)
    # The video model's own settings were in the panel and made the clip.
    assert (w.generation.width_box.value(), w.generation.height_box.value(), w.generation.frames.value()) == (48, 48, 17)
    assert "Video: " in w.model_label.text()
    (clip,) = _video_clips(w)
    assert clip.id == clip_id and not w.document.project.tracks["image"]
    item = w.document.project.media_item(clip.active.media_id)
    assert (item.kind, item.frames, item.width, item.height) == ("video", 17, 48, 48)
    # It plays at the model's own rate (its index says 8 fps), as `main.py video` writes it, not the project's 24.
    assert item.fps == 8.0 and clip.duration == pytest.approx(17 / 8)
    assert clip.versions[0].request["task"] == "text_to_video" and clip.versions[0].plan
    assert w.timeline.view.clip(clip_id).track == VIDEO_TRACK
    assert w.timeline.view.selected == [clip_id]
    # Selected, it is edited, or made again from words as a new version of itself (not "New video").
    box = w.instruction.task_box
    assert sorted(box.itemText(i) for i in range(box.count())) == ["Edit video", "Remake from words"]
    qtbot.waitUntil(lambda: w.last_frame is not None and w.last_frame.shape == (48, 48, 3), timeout=WAIT)
    # Its plan's three keyframes are drawn along it on the timeline, first to last, inside the clip.
    qtbot.waitUntil(lambda: len(w.timeline.view.clip(clip_id).plan_keyframes) == 3, timeout=WAIT)
    view_clip = w.timeline.view.clip(clip_id)
    rects = w.timeline.view.plan_strip_rects(view_clip)
    box = w.timeline.view.clip_rect(view_clip)
    assert [r.center().x() for r in rects] == sorted(r.center().x() for r in rects)
    assert all(box.contains(r) for r in rects)
    # It plays in the viewer.
    assert w.viewer.play_button.isEnabled()
    w.timeline.view.set_playhead(clip.start, emit=True)
    qtbot.mouseClick(w.viewer.play_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.timeline.view.playhead > clip.start + 0.1, timeout=5000)
    qtbot.mouseClick(w.viewer.play_button, Qt.MouseButton.LeftButton)
    assert not w.play_timer.isActive()


def test_a_clip_asked_for_with_one_frame_is_still_a_clip_on_the_video_track(qtbot, studio):
    """Frames 1 (or 2) asks for no clip the model makes: the shortest clip is made, on the video track, not a
    picture stored on the image track."""
    w = studio
    w.timeline.view.select([])
    choose_task(w, Task.TEXT_TO_VIDEO)
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    w.generation.frames.setValue(1)
    _type(qtbot, w, "a red circle moves to the right")
    clip_id = _generate(qtbot, w)
    (clip,) = _video_clips(w)
    assert clip.id == clip_id and not w.document.project.tracks["image"]
    assert w.document.project.media_item(clip.active.media_id).frames == 5
    assert any("Frames 1 makes 5 frames: clips here are 1 + a multiple of 4, at least 5." in m.text
               for m in w.messages.history)  # said, as the CLI refuses it


# ------------------------------------------------------------------------------------------------ scrubbing
def test_scrubbing_moves_the_plan_overlay_between_keyframes(qtbot, studio):
    w = studio
    clip_id = _new_clip_from_words(qtbot, w)
    qtbot.waitUntil(lambda: w.viewer.plan is not None and w.viewer.plan_caption.text().startswith("Plan stored"),
                    timeout=WAIT)
    clip = w.document.project.clip(clip_id)
    fps = w.document.project.media_item(clip.active.media_id).fps
    plan = w.viewer.plan
    assert plan.keyframes == 3

    def at(frame):
        w.timeline.view.set_playhead(clip.start + (frame + 0.5) / fps, emit=True)
        return w.viewer.overlay_array().copy()

    def heat(*weights):
        return heatmap_rgba(sum(plan.canvas_effect(keyframe=k) * wt for k, wt in weights),
                            w.viewer.opacity.value() / 100)

    # Frame 0 is keyframe 0's; the last frame keyframe 2's; frame 8 (latent frame 2 of 5) keyframe 1's;
    # frame 2 (latent frame 1) halfway between keyframes 0 and 1: the model's own weights.
    first, middle, last = at(0), at(8), at(16)
    between = at(2)
    assert w.viewer.keyframe_weights == [(0, 0.5), (1, 0.5)]
    np.testing.assert_array_equal(first, heat((0, 1.0)))
    np.testing.assert_array_equal(middle, heat((1, 1.0)))
    np.testing.assert_array_equal(last, heat((2, 1.0)))
    np.testing.assert_array_equal(between, heatmap_rgba(
        (plan.canvas_effect(keyframe=0) + plan.canvas_effect(keyframe=1)) * np.float32(0.5),
        w.viewer.opacity.value() / 100))
    assert not np.array_equal(first, last) and not np.array_equal(first, middle)
    # The PCA view follows the playhead too.
    w.viewer.pca_radio.setChecked(True)
    pca_last = w.viewer.overlay_array().copy()
    assert not np.array_equal(at(0), pca_last)


# ------------------------------------------------------------------------------------------------ i2v, r2v
def test_a_still_animated_keeps_its_first_frame_in_a_new_clip_on_the_video_track(qtbot, tmp_path, studio):
    from PIL import Image

    from app.shapes.motion import render_clip
    from app.shapes.video_prompts import make_video_metadata, scene_for_video_metadata

    w = studio
    meta = next(m for m in make_video_metadata(20, seed=3) if m["tag"] == "one_moves")
    still = render_clip(scene_for_video_metadata(meta, np.random.default_rng(0)), 17, 48)[0]
    path = tmp_path / "scene.png"
    Image.fromarray(still).save(path)
    image_clip = import_and_wait(qtbot, w, path)
    choose_task(w, Task.IMAGE_TO_VIDEO)
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    _type(qtbot, w, meta["prompt"])
    clip_id = _generate(qtbot, w)
    assert clip_id != image_clip and [c.id for c in _video_clips(w)] == [clip_id]
    assert len(w.document.project.clip(image_clip).versions) == 1  # the still is left as it was
    clip = w.document.project.clip(clip_id)
    assert clip.versions[0].request["task"] == "image_to_video"
    from app.media.probe import read_frame

    first = read_frame(w.media_file(clip.active.media_id), 0)
    assert _psnr(first, still) >= 35, _psnr(first, still)
    # The new clip is selected and shows the plan that made it, not a live plan of an edit of it.
    assert w.timeline.view.selected == [clip_id]
    qtbot.waitUntil(lambda: w.viewer.plan_caption.text().startswith("Plan stored"), timeout=WAIT)


def test_the_embedded_video_model_drafts_an_animated_still_where_the_still_has_its_object(qtbot, tmp_path):
    """With the committed video model, a clip made from a still shows its drafted track beside the canvas,
    starting where the still has the named object."""
    from PIL import Image

    from app.shapes.motion import render_clip
    from app.shapes.video_prompts import make_video_metadata, scene_for_video_metadata

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL),
                    video_model="models/metacanvas-shapes-video")
    meta = next(m for m in make_video_metadata(20, seed=3) if m["tag"] == "one_moves")  # "a red star moves ..."
    scene = scene_for_video_metadata(meta, np.random.default_rng(0))
    path = tmp_path / "scene.png"
    Image.fromarray(render_clip(scene, 17, 48)[0]).save(path)
    still_clip = import_and_wait(qtbot, w, path)
    choose_task(w, Task.IMAGE_TO_VIDEO)
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    _type(qtbot, w, meta["prompt"])
    clip_id = _generate(qtbot, w)
    qtbot.waitUntil(lambda: w.viewer.plan_caption.text().startswith("Plan stored"), timeout=WAIT)
    assert w.viewer.has_draft() and w.viewer.draft_check.isEnabled()
    row = w.viewer.plan.draft[0, 0].tolist()
    obj = scene.objects[0].obj
    assert abs((row[1] + 0.5) / 16 - obj.cx) <= 1 / 16 and abs((row[2] + 0.5) / 16 - obj.cy) <= 1 / 16
    assert row[4] > row[1]  # "moves to the right"
    assert w.document.project.clip(clip_id).versions[0].request["task"] == "image_to_video"
    assert not any("without a drafted track" in m.text for m in w.messages.history)
    assert not any("shows no" in m.text for m in w.messages.history)
    # An object the words name as given that the still lacks: drawn where the draft put it, and said.
    w.timeline.view.select([still_clip])
    choose_task(w, Task.IMAGE_TO_VIDEO)
    w.instruction.set_text("the circle moves left")
    _generate(qtbot, w)
    assert any("The image shows no circle as the model's detector sees it" in m.text for m in w.messages.history)
    # A picture with nothing of the model's world in it is animated undrafted, and that is said.
    plain = tmp_path / "plain.png"
    Image.fromarray(np.full((48, 48, 3), 40, np.uint8)).save(plain)
    plain_clip = import_and_wait(qtbot, w, plain)
    choose_task(w, Task.IMAGE_TO_VIDEO)
    _type(qtbot, w, meta["prompt"])
    _generate(qtbot, w)
    assert any("without a drafted track: the model's detector found no object of its world in the image" in m.text
               for m in w.messages.history)
    # The same still as a reference: said of the reference stills.
    w.timeline.view.select([plain_clip])
    choose_task(w, Task.REFERENCE_TO_VIDEO)
    w.instruction.edit.clear()
    _type(qtbot, w, "the star from the image moves right")
    _generate(qtbot, w)
    assert any("no object of its world in the reference stills" in m.text for m in w.messages.history)


def test_references_are_picked_in_the_media_bin_and_make_a_clip(qtbot, tmp_path, studio):
    w = studio
    a = import_and_wait(qtbot, w, _still(tmp_path, "a.png")[0])
    b = import_and_wait(qtbot, w, _still(tmp_path, "b.png")[0])
    w.timeline.view.select([a])
    assert w.instruction.references_hint.isVisible()  # how to do it is said where one types
    ids = [w.document.project.clip(c).media_id for c in (a, b)]
    for row in range(w.media_bin.model.rowCount()):
        if w.media_bin.model.item(row).data(Qt.ItemDataRole.UserRole + 1) in ids:
            w.media_bin.view.selectionModel().select(w.media_bin.model.index(row, 0),
                                                     w.media_bin.view.selectionModel().SelectionFlag.Select)
    w.media_bin.references_button.click()
    assert w.timeline.view.selected == [a, b] and w.instruction.chosen_task() is Task.REFERENCE_TO_VIDEO
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    _type(qtbot, w, "the square from the first image moves right")
    clip_id = _generate(qtbot, w)
    clip = w.document.project.clip(clip_id)
    assert clip.versions[0].request["task"] == "reference_to_video" and len(clip.versions[0].request["images"]) == 2


# ------------------------------------------------------------------------------------------------ edit + export
def test_a_clip_edited_by_words_becomes_a_new_version_and_its_export_keeps_the_sound(qtbot, tmp_path, studio):
    import av

    from app.media.probe import probe_video

    w = studio
    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    original = source.read_bytes()
    clip_id = import_and_wait(qtbot, w, source)
    w.timeline.view.select([clip_id])
    assert w.instruction.chosen_task() is Task.VIDEO_EDIT
    _type(qtbot, w, "make the square blue")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    assert _generate(qtbot, w) == clip_id
    clip = w.document.project.clip(clip_id)
    assert len(clip.versions) == 2 and clip.active_version == 1
    request = clip.versions[1].request
    assert request["task"] == "video_edit" and request["frames"] == 17 and request["video"][0] == 17
    assert request["edited_version"] == clip.versions[0].id  # what plays on past the edit's end
    edited = w.document.project.media_item(clip.active.media_id)
    assert (edited.kind, edited.frames, edited.fps) == ("video", 17, 12.0)  # the source's frame rate
    # Made at 48x48, stored at the clip's 64x48: the model's change scaled up, the clip's own pixels elsewhere.
    assert (edited.width, edited.height) == (64, 48)
    said = " ".join(m.text for m in w.messages.history)
    assert "first 17 of the clip's 24 frames" in said
    assert "The clip's 64x48 was stretched to 48x48" in said  # a 4:3 camera clip, a square model: said, not hidden
    assert "The edit is stored at the clip's own size" in said
    assert w.media_file(clip.media_id).read_bytes() == original  # the source is never touched
    assert w.versions.count() == 2
    # A/B against the original, as for images.
    qtbot.waitUntil(lambda: w.viewer.compare_split.isEnabled(), timeout=WAIT)
    w.viewer.compare_split.setChecked(True)
    assert w.viewer.canvas.compare is not None
    w.viewer.compare_split.setChecked(False)
    # The edit's plan and thumbnails stand for its first 17 of 24 frames only, on the timeline and in the viewer.
    view_clip = w.timeline.view.clip(clip_id)
    assert view_clip.plan_share == pytest.approx(17 / 24) and view_clip.thumb_share == pytest.approx(17 / 24)
    qtbot.waitUntil(lambda: len(view_clip.plan_keyframes) == 3, timeout=WAIT)
    # Past the edit's end the strip shows the footage that plays there, not an empty box.
    qtbot.waitUntil(lambda: [len(t.thumbnails) > 0 for t in w.timeline.view.clip(clip_id).tails] == [True], timeout=WAIT)
    view_clip = w.timeline.view.clip(clip_id)
    (tail,) = view_clip.tails
    assert (tail.media_id, tail.start, tail.end) == (clip.media_id, pytest.approx(17 / 24), 1.0)
    strip = w.timeline.view.grab().toImage()
    box = w.timeline.view.clip_rect(view_clip)
    tail_y = int(box.top() + 12 + (box.height() - 14) / 3)  # in the thumbnails' row, above the plan strip
    tail = [strip.pixelColor(x, tail_y).getRgb()[:3] for x in range(int(box.left() + box.width() * 17 / 24) + 3,
                                                                       int(box.right()) - 3)]
    assert tail and any(rgb != (60, 78, 110) for rgb in tail), "the tail past the edit is drawn as a bare clip"
    box = w.timeline.view.clip_rect(view_clip)
    assert max(r.center().x() for r in w.timeline.view.plan_strip_rects(view_clip)) < box.left() + box.width() * 17 / 24
    qtbot.waitUntil(lambda: w.viewer.plan is not None and w.viewer.plan_caption.text().startswith("Plan stored"),
                    timeout=WAIT)
    w.timeline.view.set_playhead(clip.start + 10.5 / 12, emit=True)  # frame 10: the edit's
    assert w.viewer.overlay_array() is not None
    # The edit, made square at the model's 48 x 48, is shown at its 64 x 48 footage's shape, as it exports.
    qtbot.waitUntil(lambda: w.last_frame is not None and w.last_frame.shape == (48, 64, 3), timeout=WAIT)
    w.timeline.view.set_playhead(clip.start + 20.5 / 12, emit=True)  # frame 20: the source's own, not planned
    assert w.viewer.overlay_array() is None

    out = tmp_path / "edited.mp4"
    with qtbot.waitSignal(w.export_done, timeout=WAIT):
        w.exports.export_clip(str(out))
    info = probe_video(out)
    # The whole clip, as it plays: the edit's 17 frames, then the source's own 7, at the source's size.
    assert (info.frames, info.width, info.height) == (24, 64, 48) and info.has_audio
    from app.media.probe import iter_video_frames
    tail = list(iter_video_frames(out, range(17, 24)))
    assert [abs(int(f.mean()) - index_colour(17 + k)) <= 3 for k, f in enumerate(tail)] == [True] * 7
    with av.open(str(out)) as c:
        sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert len(sound) > 0 and float(np.sqrt(np.mean(sound.astype(np.float64) ** 2))) > 0.05  # the tone, not silence
    # The whole track is rendered without sound for now: the message says so instead of dropping it silently.
    track = tmp_path / "track.mp4"
    with qtbot.waitSignal(w.export_done, timeout=WAIT):
        w.exports.export_track(str(track))
    assert not probe_video(track).has_audio
    said = w.messages.history[-1]
    assert "no sound" in said.text and "Export clip keeps" in said.text and said.level == "warning"


# ------------------------------------------------------------------------------------------------ bad input
def test_a_clip_cut_short_is_refused_at_import_with_its_own_name_and_nothing_added(qtbot, tmp_path, studio):
    """A clip whose header is whole and its pictures are not (zeroed) imported, showed no frame and failed every
    export of its track: refused as it is imported, named as the user's file, the project unchanged."""
    w = studio
    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    data = bytearray(source.read_bytes())
    start, end = data.find(b"mdat") + 8, data.find(b"moov")
    data[start:end] = bytes(end - start)
    source.write_bytes(bytes(data))
    before = w.document.project.to_dict()
    w.import_files([str(source)])
    qtbot.waitUntil(lambda: any("camera.mp4" in m.text and "damaged" in m.text for m in w.messages.history),
                    timeout=WAIT)
    assert w.document.project.to_dict() == before and w.messages.history[-1].level in ("warning", "error")


def test_a_clip_too_large_to_read_is_refused_with_a_message_and_nothing_lost(qtbot, tmp_path, studio, monkeypatch):
    from app.media import probe

    w = studio
    source = write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12)
    # More to decode than this studio agrees to hold (the limit lowered: a real one would take minutes).
    monkeypatch.setattr(probe, "LIMITS", dataclasses.replace(probe.LIMITS, max_decoded_bytes=100_000))
    expected = "Read fewer frames or a smaller size"
    clip_id = import_and_wait(qtbot, w, source)
    media = w.media_file(w.document.project.clip(clip_id).media_id)
    kept = media.read_bytes()
    w.timeline.view.select([clip_id])
    before = w.document.project.to_dict()
    _type(qtbot, w, "make the square blue")
    w.generate()

    def refused():
        return sum("Could not read the input" in m.text and expected in m.text for m in w.messages.history)

    qtbot.waitUntil(lambda: refused() >= 2, timeout=WAIT)  # on selecting it, and on Generate
    qtbot.wait(200)
    assert not w.studio.jobs and w.document.project.to_dict() == before
    assert w.instruction.text() == "make the square blue" and media.read_bytes() == kept
    assert w.messages.history[-1].level == "error"
    said = w.messages.history[-1].text  # the name the user imported, not the project's copy's
    assert "'camera.mp4'" in said and media.name not in said


@pytest.mark.parametrize("other", ["a still", "another clip"])
def test_a_video_edit_with_more_than_its_clip_selected_says_so_and_edits_nothing(qtbot, tmp_path, studio, other):
    """A video edit reads one clip. With a still also selected the still was read as a clip (an error about a PNG
    not being a video); with two clips the second was left out without a word. Either is said, nothing queued."""
    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=17, fps=12))
    extra = import_and_wait(qtbot, w, _still(tmp_path, "still.png")[0]) if other == "a still" else \
        import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "second.mp4", frames=17, fps=12))
    w.timeline.view.select([extra, clip_id])
    choose_task(w, Task.VIDEO_EDIT)
    _type(qtbot, w, "make the square blue")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    before = w.document.project.to_dict()
    w.generate()
    qtbot.waitUntil(lambda: any("A video edit reads one clip; 2 are selected" in m.text for m in w.messages.history),
                    timeout=WAIT)
    assert not w.studio.jobs and w.document.project.to_dict() == before
    assert not any("not a video" in m.text for m in w.messages.history)


# ------------------------------------------------------------------------------------------------ the video model
@pytest.mark.parametrize("folder", ["missing", "image model"])
def test_a_missing_or_wrong_video_model_folder_is_said_plainly(qtbot, tmp_path, folder):
    path = str(tmp_path / "no-such-model") if folder == "missing" else str(MODEL)
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL), video_model=path)
    try:
        qtbot.waitUntil(lambda: w.studio.slots["image"].state is ModelState.READY, timeout=120_000)
        choose_task(w, Task.TEXT_TO_VIDEO)
        qtbot.waitUntil(lambda: w.studio.slots["video"].state is ModelState.FAILED, timeout=WAIT)
        said = w.messages.errors()[-1]
        assert ("does not exist" if folder == "missing" else "makes no clips") in said
        assert "Video model folder" in said and path.split("/")[-1] in said
        _type(qtbot, w, "a red circle moves to the right")
        assert w.generate() is None and "No video model is loaded" in w.messages.errors()[-1]
        # Stills still work: the image model is there.
        w.timeline.view.select([])
        choose_task(w, Task.TEXT_TO_IMAGE)
        assert w.model_ready
    finally:
        w.shutdown()


def test_a_video_model_folder_that_fails_to_load_gives_the_working_one_back(qtbot, tmp_path, studio,
                                                                            tiny_video_model):
    """The clip model's slot had no way back: a new video model folder that failed to load left video tasks with no
    model, and the saved settings named the broken folder."""
    import json
    import os
    import shutil

    from app.settings import Settings

    w = studio
    choose_task(w, Task.TEXT_TO_VIDEO)
    qtbot.waitUntil(lambda: w.studio.slots["video"].state is ModelState.READY, timeout=WAIT)
    broken = tmp_path / "broken-video"
    shutil.copytree(tiny_video_model, broken)
    weights = broken / "transformer" / "diffusion_pytorch_model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:1000])  # cut short: refused by the folder check, before anything loads
    w.apply_settings(w.settings.__class__(**{**w.settings.to_dict(), "video_model": str(broken)}))
    assert "copy it again" in w.messages.errors()[-1] and w.settings.video_model == str(tiny_video_model)
    weights.write_bytes(whole)
    config = broken / "transformer" / "config.json"  # edited under its weights: passes the check, fails to load
    config.write_text(json.dumps({**json.loads(config.read_text()), "num_layers": 7}))
    w.apply_settings(w.settings.__class__(**{**w.settings.to_dict(), "video_model": str(broken)}))
    qtbot.waitUntil(lambda: any("goes back to" in m for m in w.messages.errors()), timeout=WAIT)
    assert f"The video model goes back to {tiny_video_model.name}" in w.messages.errors()[-1]
    qtbot.waitUntil(lambda: w.studio.slots["video"].state is ModelState.READY, timeout=WAIT)
    assert w.studio.slots["video"].folder == os.path.abspath(tiny_video_model)
    assert w.settings.video_model == str(tiny_video_model) == Settings.load().video_model


def test_the_settings_show_and_change_the_video_model_folder(qtbot, tmp_path, tiny_video_model):
    from app.settings import Settings

    w = make_window(qtbot, tmp_path)
    dlg = w.settings_dialog()
    assert dlg.video_model.currentText().endswith("metacanvas-shapes-video")
    dlg.video_model.setCurrentText(str(tiny_video_model))
    dlg.accept()
    assert w.settings.video_model == str(tiny_video_model) and str(tiny_video_model) in w.settings.video_model_folders
    dlg = w.settings_dialog()
    dlg.video_model.setCurrentText(str(tmp_path / "nothing-here"))
    dlg.accept()
    assert "Bad video model folder" in w.messages.errors()[-1] and w.settings.video_model == str(tiny_video_model)
    # The stills model as the video model: refused at once, as the reverse is (it was kept and saved, and said
    # only when a clip was asked for), and not saved.
    dlg = w.settings_dialog()
    dlg.video_model.setCurrentText(str(MODEL))
    dlg.accept()
    said = w.messages.errors()[-1]
    assert "'metacanvas-shapes' makes no clips (it does: text to image, image edit)" in said
    assert w.settings.video_model == str(tiny_video_model) and str(MODEL) not in w.settings.video_model_folders
    assert Settings.load().video_model == str(tiny_video_model)


def test_settings_used_again_before_the_video_model_loads_are_kept_when_it_loads(qtbot, tmp_path, studio):
    from app.media import project_file as pf

    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, np.zeros((9, 48, 48, 3), np.uint8),
                                    fps=12, request={"task": "video_edit", "instruction": "remove the circle",
                                                     "seed": 5, "steps": 6, "guidance": 2.5, "width": 48,
                                                     "height": 48, "frames": 9}))
    assert w.studio.slots["video"].state is not ModelState.READY
    w.versions.list.setCurrentRow(1)
    w.versions.reuse_button.click()
    assert w.instruction.chosen_task() is Task.VIDEO_EDIT
    w.generate()  # loads the video model (its defaults: 4 steps, 17 frames) and runs once it is ready
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    g = w.generation
    assert (g.steps.value(), g.guidance.value(), g.frames.value(), g.seed.value()) == (6, 2.5, 9, 5)
    qtbot.waitUntil(lambda: len(w.document.project.clip(clip_id).versions) == 3, timeout=WAIT)
    made = w.document.project.clip(clip_id).versions[2].request
    assert (made["steps"], made["frames"], made["seed"]) == (6, 9, 5)


def test_a_result_does_not_pull_the_user_back_and_a_removed_clips_result_is_said(qtbot, tmp_path, studio):
    w = studio
    first = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "a.mp4", frames=24, fps=12))
    other = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "b.mp4", frames=24, fps=12))
    w.timeline.view.select([first])
    _type(qtbot, w, "remove the square")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    with qtbot.waitSignal(w.result_stored, timeout=WAIT):
        w.generate()
        w.timeline.view.select([other])  # the user moves on while it runs
    assert len(w.document.project.clip(first).versions) == 2  # it landed where it belongs ...
    assert w.timeline.view.selected == [other]  # ... and the user stays where they are
    assert "not selected" in w.messages.history[-1].text
    # The clip an edit was made from is removed while it runs: the result is kept as a clip of its own, and said.
    w.timeline.view.select([first])
    with qtbot.waitSignal(w.result_stored, timeout=WAIT) as stored:
        w.generate()
        qtbot.waitUntil(lambda: bool(w.studio.jobs), timeout=WAIT)  # queued (its input read)
        w.timeline.view.setFocus()  # Delete on the timeline, not in the instruction box
        w.remove_selected_clip()
        assert not w.studio.has_clip(first)
    assert stored.args[0] != first and w.document.project.clip(stored.args[0])
    assert "was removed" in w.messages.history[-1].text


def test_a_version_is_removed_in_one_undoable_step_unless_an_edit_plays_on_into_it(qtbot, tmp_path, studio):
    from app.media import project_file as pf
    from app.media.project_file import EDITED_VERSION

    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    project = w.document.project
    for k in range(2):
        w.document.push(pf.store_result(project, w.work_path(), clip_id, np.zeros((9, 48, 48, 3), np.uint8), fps=12,
                                        request={"task": "video_edit", EDITED_VERSION: project.clip(clip_id).active.id}))
    clip = project.clip(clip_id)  # v1 edits the original, v2 edits v1 (and plays on into it)
    w.timeline.view.select([])
    w.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: w.versions.count() == 3)
    w.versions.list.setCurrentRow(0)
    assert not w.versions.remove_button.isEnabled()  # the original stays
    w.versions.list.setCurrentRow(1)
    w.versions.remove_button.click()
    assert len(project.clip(clip_id).versions) == 3 and "v2 is an edit of it" in w.messages.history[-1].text
    w.versions.list.setCurrentRow(2)
    edit_of_v2 = dataclasses.replace(_job_stub(), edited_version=clip.versions[2].id)
    w.studio.jobs[-1] = edit_of_v2  # an edit of v2 waiting in the queue keeps v2
    w.versions.remove_button.click()
    assert len(project.clip(clip_id).versions) == 3 and "queued edit" in w.messages.history[-1].text
    del w.studio.jobs[-1]
    w.versions.remove_button.click()
    assert [v.id for v in project.clip(clip_id).versions] == [v.id for v in clip.versions[:2]]
    assert project.clip(clip_id).active_version == 1  # the one before it is shown
    w.document.undo_stack.undo()
    assert len(project.clip(clip_id).versions) == 3 and project.clip(clip_id).active_version == 2


def _job_stub():
    from app.core.request import GenerationRequest
    from app.ui.studio_state import Job

    return Job(-1, GenerationRequest(task=Task.VIDEO_EDIT, instruction="remove the circle"), None, "queued edit")


def test_frames_the_model_cannot_make_are_refused_before_anything_is_queued(qtbot, tmp_path, studio):
    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "long.mp4", frames=300, fps=30,
                                                              seconds=10.0))
    w.timeline.view.select([])
    w.timeline.view.select([clip_id])
    _type(qtbot, w, "remove the square")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    w.generation.frames.setValue(w.generation.frames.maximum())  # longer than the model's positions reach
    assert w.generate() is None  # the input is read first; then the press is judged
    qtbot.waitUntil(lambda: "makes at most" in w.messages.history[-1].text, timeout=WAIT)
    assert w.messages.history[-1].level == "error" and not w.studio.jobs


def test_the_frames_box_stops_at_the_longest_clip_the_loaded_model_makes(qtbot, tmp_path, studio):
    """The box reached 257 while the embedded model places at most 253 frames: a length it offered was refused
    at Generate. Once the model loads, the box stops at what it makes from words."""
    w = studio
    assert w.generation.frames.maximum() == 257  # no model says its reach yet
    choose_task(w, Task.TEXT_TO_VIDEO)
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    most = w.engine.max_frames("video")
    assert 17 < most < 257
    w.generation.frames.setValue(257)
    assert w.generation.frames.value() == most == w.generation.frames.maximum()
    w.engine.check_frames("video", most, Task.TEXT_TO_VIDEO)  # the box's longest is one the model makes


def test_exporting_a_version_shorter_than_its_clip_says_how_long_each_is(qtbot, tmp_path, studio):
    """A clip made again from words (or any generated version) can be shorter than the clip: the viewer and
    the track hold its last frame for the rest, Export clip writes the version as long as it is, and says so."""
    from app.media import project_file as pf
    from app.media.probe import probe_video

    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, np.zeros((9, 48, 48, 3), np.uint8),
                                    fps=12, request={"task": "text_to_video", "instruction": "a red circle moves up"}))
    w.timeline.view.select([clip_id])
    out = tmp_path / "remade.mp4"
    with qtbot.waitSignal(w.export_done, timeout=WAIT):
        w.exports.export_clip(str(out))
    assert probe_video(out).frames == 9
    said = w.messages.history[-1].text
    assert "0.75 s" in said and "2.00 s on the timeline" in said and "last frame is held" in said
    track = tmp_path / "track.mp4"
    with qtbot.waitSignal(w.export_done, timeout=WAIT):
        w.exports.export_track(str(track))
    assert probe_video(track).frames == round(2.0 * w.document.project.settings.fps)  # the clip's length, held


def test_an_export_over_the_projects_own_footage_is_refused_and_the_footage_kept(qtbot, tmp_path, studio):
    """The media folder holds the clips' footage (imports are copied there): Export clip onto one of its files
    would replace a version the project plays, beyond undo. It is refused, said, and the file is untouched."""
    from app.media import project_file as pf
    from app.ui.messages import ERROR

    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    w.timeline.view.select([clip_id])
    clip = w.document.project.clip(clip_id)
    own = pf.media_path(w.work_path(), w.document.project.media_item(clip.active.media_id))
    before = own.read_bytes()
    w.exports.export_clip(str(own))
    assert not w.exports.exporting and own.read_bytes() == before
    assert "project's media folder" in w.messages.history[-1].text and w.messages.history[-1].level == ERROR


def test_an_edit_of_a_partial_edit_shows_each_version_where_it_plays(qtbot, tmp_path, studio):
    """An edit of the clip's first frames, then an edit of that edit's first frames: the strip shows the
    newest edit, then the first edit where it still plays, then the footage, each part where it plays."""
    from app.media import project_file as pf

    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    original = w.document.project.clip(clip_id).versions[0]
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, np.zeros((12, 48, 48, 3), np.uint8),
                                    fps=12, request={"task": "video_edit", pf.EDITED_VERSION: original.id}))
    first_edit = w.document.project.clip(clip_id).active
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, np.zeros((6, 48, 48, 3), np.uint8),
                                    fps=12, request={"task": "video_edit", pf.EDITED_VERSION: first_edit.id}))
    view_clip = w.timeline.view.clip(clip_id)
    assert view_clip.thumb_share == pytest.approx(6 / 24)
    assert [(t.media_id, round(t.start, 3), round(t.end, 3)) for t in view_clip.tails] == [
        (first_edit.media_id, 0.25, 0.5), (w.document.project.clip(clip_id).media_id, 0.5, 1.0)]


def test_an_edit_the_model_did_not_make_is_said_in_the_studio(qtbot, tmp_path, studio, monkeypatch):
    """An edit given back as its clip again, pixel for pixel, is not stored as a version (a copy of the clip is
    clutter in its versions): the studio says the edit was not made and offers the next seed."""
    from app.core.keep_source import source_as_made
    from app.core.pipeline import MetaCanvasPipeline

    monkeypatch.setattr(MetaCanvasPipeline, "keep_source", lambda self, source, frames, allowed=None: source_as_made(source, frames))
    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=17, fps=12))
    w.timeline.view.select([clip_id])
    _type(qtbot, w, "remove the star")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    media = len(w.document.project.media)
    w.generate()  # queued now, or as soon as the clip's frames are read ("the job starts as soon as it is in")
    qtbot.waitUntil(lambda: any("no new version. The model changed nothing" in m.text for m in w.messages.history),
                    timeout=WAIT)
    qtbot.wait(200)
    assert len(w.document.project.clip(clip_id).versions) == 1 and len(w.document.project.media) == media
    qtbot.waitUntil(lambda: w.banner.action_button.isVisible(), timeout=WAIT)
    assert w.banner.action_button.text().startswith("Try seed ")


def _edit_a_shapes_clip_with_the_committed_model(qtbot, tmp_path, instruction: str, stored: bool = True,
                                                 size: int = 48):
    """A studio on the committed video model, a clip of its world imported, selected and edited by
    `instruction`: (the window, the clip's id) once the edit is generated (`stored`), else once it is queued.
    Past 48 px the clip is the world's clip scaled up with a fine grid drawn over it (detail a rescale blurs)."""
    from tests.video_files import shapes_clip

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL),
                    video_model="models/metacanvas-shapes-video")
    clip = shapes_clip(tmp_path / "shapes.mp4")
    if size != 48:
        from app.media.export import export_video

        big = np.repeat(np.repeat(clip, size // 48, axis=1), size // 48, axis=2)
        big[:, ::16] = big[:, ::16] * 7 // 10  # one-pixel lines every 16 px, both ways: seen at 48 px as a
        big[:, :, ::16] = big[:, :, ::16] * 7 // 10  # few grey levels, so the model keeps what it does not edit
        (tmp_path / "shapes.mp4").unlink()
        export_video(list(big), tmp_path / "shapes.mp4", fps=8, crf=8)
    clip_id = import_and_wait(qtbot, w, tmp_path / "shapes.mp4")
    w.timeline.view.select([clip_id])
    _type(qtbot, w, instruction)
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    if stored:
        assert _generate(qtbot, w) == clip_id
    else:
        assert w.generate() is not None
    return w, clip_id


def test_an_edit_of_a_clip_larger_than_the_decoded_inputs_is_stored_at_its_own_size_and_keeps_its_detail(
        qtbot, tmp_path):
    """The studio reads a clip for the model at most 512 px a side; the edit must still come back at the clip's own
    size with its own pixels (an HD clip's edit stored at 512 px came back soft, and jumped sharp again past the
    edited frames), as the CLI writes it."""
    from app.media.probe import read_video_frames

    w, clip_id = _edit_a_shapes_clip_with_the_committed_model(qtbot, tmp_path, "remove the star", size=768)
    clip = w.document.project.clip(clip_id)
    edited = w.document.project.media_item(clip.active.media_id)
    assert (edited.width, edited.height) == (768, 768)
    source = read_video_frames(w.media_file(clip.media_id), 0, 17).astype(int)
    made = read_video_frames(w.media_file(clip.active.media_id)).astype(int)
    kept = (np.abs(made - source).max(-1) <= 16).mean()
    assert kept > 0.9, kept  # all but the removed star and its surroundings; a 512 px round trip keeps ~0.5
    said = " ".join(m.text for m in w.messages.history)
    assert "The edit is stored at the clip's own size (up to 1920 pixels a side)" in said
    w.shutdown()


def test_an_edit_whose_clip_falls_short_of_its_plan_is_said_in_the_studio(qtbot, tmp_path, monkeypatch):
    """With the committed video model, an edit whose clip holds other objects than its plan (the model's result
    swapped for another scene's clip) is stored as a new version and comes with a warning of what it lacks."""
    from app.core.pipeline import MetaCanvasPipeline
    from app.shapes.motion import random_motion_scene, render_clip
    from app.ui.messages import WARNING

    other = render_clip(random_motion_scene(np.random.default_rng(99)), 17, 48)
    monkeypatch.setattr(MetaCanvasPipeline, "keep_source", lambda self, source, frames, allowed=None: other)
    w, clip_id = _edit_a_shapes_clip_with_the_committed_model(qtbot, tmp_path, "remove the star")
    qtbot.waitUntil(lambda: len(w.document.project.clip(clip_id).versions) == 2, timeout=WAIT)
    said = [m for m in w.messages.history if "was not made as planned" in m.text]
    assert said and said[0].level == WARNING and ("does not show a" in said[0].text or "off the path" in said[0].text)

    # One click tries the next seed: the same edit of the same version, a third version of the clip.
    clip = w.document.project.clip(clip_id)
    first = clip.versions[1].request
    qtbot.waitUntil(lambda: w.banner.action_button.isVisible(), timeout=WAIT)
    assert w.banner.action_button.text() == f"Try seed {first['seed'] + 1}"
    with qtbot.waitSignal(w.result_stored, timeout=WAIT) as stored:
        w.banner.action_button.click()
    assert stored.args[0] == clip_id
    again = w.document.project.clip(clip_id).versions[2].request
    assert again["seed"] == first["seed"] + 1 and again["instruction"] == "remove the star"
    assert again["edited_version"] == first["edited_version"] == clip.versions[0].id


def test_a_motion_edit_whose_plan_went_another_way_is_said_with_another_seed_offered(qtbot, tmp_path, monkeypatch):
    import app.core.pipeline as pipeline

    monkeypatch.setattr(pipeline, "plan_off_words", lambda words, rows: "the star staying put")
    w, _ = _edit_a_shapes_clip_with_the_committed_model(qtbot, tmp_path, "the star moves up instead")
    said = [m for m in w.messages.history if "Its plan did not follow the words" in m.text]
    assert said and "it has the star staying put" in said[0].text and said[0].level == "warning"
    qtbot.waitUntil(lambda: w.banner.action_button.isVisible(), timeout=WAIT)
    assert w.banner.action_button.text().startswith("Try seed ")

    # The settings name another video model before the offer is taken: the edit is not run on a model that did
    # not make it (it is said), and nothing is queued.
    import shutil

    from app.engine.engine import VIDEO_SLOT

    other = tmp_path / "another-video-model"
    shutil.copytree("models/metacanvas-shapes-video", other)
    w.studio.load_model(str(other), VIDEO_SLOT)
    qtbot.waitUntil(lambda: w.model_ready and w.studio.slots[VIDEO_SLOT].folder == str(other), timeout=WAIT)
    jobs = dict(w.jobs)
    w.banner.action_button.click()
    said = [m for m in w.messages.history if "not run again on a model that did not make it" in m.text]
    assert said and str(other) in said[0].text and w.jobs == jobs


def test_an_edit_drawn_only_where_its_plan_leaves_the_clip_alone_is_said_in_the_studio(qtbot, tmp_path, monkeypatch):
    """With the committed video model, an edit whose changes all fall outside its draft's places (here the places
    moved off the clip) comes back as its clip again, and the studio says why: not 'try again' alone."""
    from app.core.pipeline import MetaCanvasPipeline
    from app.ui.messages import WARNING

    monkeypatch.setattr(MetaCanvasPipeline, "drafted_edit_region", lambda self, clip, draft, shape, rows=None: np.zeros(shape, bool))
    w, clip_id = _edit_a_shapes_clip_with_the_committed_model(qtbot, tmp_path, "remove the star", stored=False)
    qtbot.waitUntil(lambda: any("The model changed nothing its plan asked for" in m.text for m in w.messages.history),
                    timeout=WAIT)
    said = [m for m in w.messages.history if "The model changed nothing its plan asked for" in m.text]
    assert said and said[0].level == WARNING and "went back to the source" in said[0].text
    assert "no new version" in said[0].text and len(w.document.project.clip(clip_id).versions) == 1


def test_an_edit_naming_an_object_the_clip_lacks_says_so_in_the_studio(qtbot, tmp_path, monkeypatch):
    """'remove the circle' on a clip of a star and two triangles is not made: no other object is removed in its
    place, no copy of the clip is stored as a version, and the studio says the model finds no circle in it."""
    w, clip_id = _edit_a_shapes_clip_with_the_committed_model(qtbot, tmp_path, "remove the circle", stored=False)
    qtbot.waitUntil(lambda: any("no new version" in m.text for m in w.messages.history), timeout=WAIT)
    said = [m.text for m in w.messages.history if "no new version" in m.text]
    assert "it finds no circle in the clip" in said[0] and "It reads the clip at" not in said[0]  # at its size
    assert len(w.document.project.clip(clip_id).versions) == 1 and not w.jobs
    # The same world at 96 px is read shrunk to the model's 48: said, since small objects can be lost there.
    from tests.video_files import shapes_clip

    shapes_clip(tmp_path / "big.mp4", size=96)
    big = import_and_wait(qtbot, w, tmp_path / "big.mp4")
    w.timeline.view.select([big])
    w.instruction.set_text("remove the circle")
    w.generate()  # runs once the clip is read
    qtbot.waitUntil(lambda: len([m for m in w.messages.history if "no new version" in m.text]) == 2, timeout=WAIT)
    said = [m.text for m in w.messages.history if "no new version" in m.text]
    assert "It reads the clip at 48×48 px, the clip's 96×96 shrunk to that" in said[1]
    # Two changes joined by "and": refused before anything is queued (the model was taught one an edit).
    w.instruction.set_text("make the star blue and the triangle red")
    assert w.generate() is None
    assert "this model makes one change an edit" in w.messages.history[-1].text and not w.jobs


def test_a_reopened_clip_is_edited_further_if_its_shown_version_was_an_edit(qtbot, tmp_path):
    """The task a clip's Generate runs follows its shown version: made from words, it is made again; edited,
    it is edited further, also after the project is saved and opened again (it became 'Remake from words',
    and the edit's words made a new clip)."""
    from app.media import project_file as pf

    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    clip = np.zeros((9, 48, 48, 3), np.uint8)
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, clip, fps=12,
                                    request={"task": "text_to_video", "instruction": "a red circle moves up"}))
    w.timeline.view.select([clip_id])
    assert w.studio.task is Task.TEXT_TO_VIDEO
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, clip, fps=12,
                                    request={"task": "video_edit", "instruction": "make the circle green"}))
    assert w.studio.task is Task.VIDEO_EDIT
    path = tmp_path / "saved" / "p.mcproj"
    assert w.save_as(str(path))
    again = make_window(qtbot, tmp_path / "again")
    assert again.open_project(str(path))
    again.timeline.view.select([clip_id])
    assert again.studio.task is Task.VIDEO_EDIT


def test_words_that_read_as_an_edit_edit_a_clip_made_from_words(qtbot, tmp_path):
    """A clip made from words is made again from new words ("Remake from words"), but words that read as an
    edit of it ("make the circle green", "the circle moves down instead") edit it: the chooser follows as
    they are typed; a task the user picks stays picked whatever the words."""
    from app.media import project_file as pf

    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, np.zeros((9, 48, 48, 3), np.uint8),
                                    fps=12, request={"task": "text_to_video", "instruction": "a red circle moves up"}))
    w.timeline.view.select([clip_id])
    assert w.studio.task is Task.TEXT_TO_VIDEO
    w.instruction.set_text("make the circle green")
    qtbot.waitUntil(lambda: w.studio.task is Task.VIDEO_EDIT, timeout=2000)
    assert w.instruction.task_box.currentText() == "Edit video"
    w.instruction.set_text("a blue star moves left")
    qtbot.waitUntil(lambda: w.studio.task is Task.TEXT_TO_VIDEO, timeout=2000)
    assert w.instruction.task_box.currentText() == "Remake from words"
    w.instruction.set_text("The circle moves down instead.")
    qtbot.waitUntil(lambda: w.studio.task is Task.VIDEO_EDIT, timeout=2000)
    w.instruction.set_text("a green circle moves up")
    qtbot.waitUntil(lambda: w.studio.task is Task.TEXT_TO_VIDEO, timeout=2000)
    w.instruction.set_text("Please now remove the circle")  # a request's opening words before its verb
    qtbot.waitUntil(lambda: w.studio.task is Task.VIDEO_EDIT, timeout=2000)
    w.studio.set_task(Task.TEXT_TO_VIDEO)  # picked by the user: kept
    w.instruction.set_text("make the star red")
    qtbot.wait(100)
    assert w.studio.task is Task.TEXT_TO_VIDEO and w.instruction.task_box.currentText() == "Remake from words"

    # Picked while already shown is picked too: typed edit words do not take it away.
    w.studio.set_task(Task.VIDEO_EDIT)
    w.instruction.set_text("a red circle moves up")
    qtbot.waitUntil(lambda: w.studio.task is Task.VIDEO_EDIT, timeout=2000)
    w.timeline.view.select([])
    w.studio._inputs.clear()  # a fresh selection, as after reopening: nothing picked
    w.timeline.view.select([clip_id])
    assert w.studio.task is Task.TEXT_TO_VIDEO
    w.studio.set_task(Task.TEXT_TO_VIDEO)  # "Remake from words", the task shown
    w.instruction.set_text("make the circle green")
    qtbot.wait(100)
    assert w.studio.task is Task.TEXT_TO_VIDEO


def test_a_clip_made_from_words_that_read_as_an_edit_is_made_again_from_them(qtbot, tmp_path):
    """A still made from "make a red circle on the left" is selected with its own words: it is made again from
    them (a variation), not edited by them; new words of an edit still edit it."""
    from app.media import project_file as pf

    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, np.zeros((48, 48, 3), np.uint8),
                                    request={"task": "text_to_image", "instruction": "make a red circle on the left"}))
    w.document.push(w.document.project.set_clip_instruction_change(clip_id, "make a red circle on the left"))
    w.timeline.view.select([])
    w.studio._inputs.clear()  # as after reopening: its inputs start from the clip's instruction
    w.timeline.view.select([clip_id])
    assert w.studio.task is Task.TEXT_TO_IMAGE
    w.instruction.set_text("make the circle green")
    qtbot.waitUntil(lambda: w.studio.task is Task.IMAGE_EDIT, timeout=2000)


def test_a_clip_of_a_length_the_model_was_not_trained_on_is_said_to_come_out_worse(qtbot, tmp_path):
    """The committed video model was trained on 17-frame clips alone: a 9-frame edit runs and its message says
    that length comes out worse; a 17-frame one says nothing of it."""
    w, clip_id = _edit_a_shapes_clip_with_the_committed_model(qtbot, tmp_path, "remove the star")
    assert not any("trained on 17-frame clips alone" in m.text for m in w.messages.history)
    w.generation.frames.setValue(9)
    w.instruction.set_text("remove the triangle")  # the star is gone: removing it again would make no version
    assert _generate(qtbot, w) == clip_id
    assert any("9 frames: this model was trained on 17-frame clips alone" in m.text for m in w.messages.history)



def test_an_edit_whose_clip_file_became_unreadable_is_kept_at_its_decoded_size(tmp_path):
    """A studio edit reads its clip's file again as it lands (to store the edit at the clip's own size). A file
    damaged since its frames were decoded for the model must not cost the made edit: it is stored at the decoded
    input's size, with the decoded input's own pixels where the model changed nothing."""
    from app.media.probe import read_video_frames
    from app.ui.studio_state import write_edit_result

    source = np.full((17, 40, 60, 3), 200, np.uint8)  # the clip as decoded for the model (60 x 40)
    made = np.full((17, 48, 48, 3), 200, np.uint8)
    made[:, 10:20, 10:20] = (200, 0, 0)  # the model's change
    damaged = tmp_path / "clip.mp4"
    damaged.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    written = write_edit_result(tmp_path / "p.mcproj", made, source, (str(damaged), 0), 48, 8.0, None)
    assert (written["width"], written["height"], written["frames"]) == (60, 40, 17)
    from app.media import project_file as pf

    frames = read_video_frames(pf.media_dir(tmp_path / "p.mcproj") / written["name"])
    assert frames.shape == (17, 40, 60, 3) and abs(int(frames[0, 35, 55, 1]) - 200) <= 3  # the clip's own
    assert frames[0, 12, 15, 1] < 60  # the change, scaled up


def test_the_viewer_names_a_clips_file_as_the_user_imported_it(qtbot, tmp_path, studio):
    """The project keeps its own copy of each import ("camera-5d5ec0d2.mp4"); a message about that file names
    the one the user picked."""
    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=17, fps=12))
    media = w.media_file(w.document.project.clip(clip_id).media_id)
    qtbot.wait(300)
    media.unlink()  # gone since it was imported (a folder cleaned by hand)
    w.pictures.forget_all()
    w.timeline.view.select([])
    w.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: any("'camera.mp4' (the project's copy," in m.text for m in w.messages.history),
                    timeout=WAIT)
    assert not any(f"'{media.name}'" in m.text or f"'{media}'" in m.text for m in w.messages.history)


def test_a_reference_clip_short_of_its_plan_is_said_with_another_seed_offered(qtbot, tmp_path, monkeypatch):
    """With the committed video model, a reference clip that does not show what its words name from the stills
    (the model's frames swapped for a blank clip) lands with a warning of what it lacks and a 'Try seed' button,
    as an edit short of its plan does."""
    from app.core.latents import PixelCodec
    from app.ui.messages import WARNING

    real = PixelCodec.decode
    monkeypatch.setattr(PixelCodec, "decode", lambda self, latents: np.full_like(real(self, latents), 255))
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL),
                    video_model="models/metacanvas-shapes-video")
    samples = MODEL.parent.parent / "resources" / "samples"
    a = import_and_wait(qtbot, w, samples / "red_circle_64.png")
    b = import_and_wait(qtbot, w, samples / "yellow_star_64.png")
    w.timeline.view.select([a, b])
    choose_task(w, Task.REFERENCE_TO_VIDEO)
    _type(qtbot, w, "the circle from the first image moves right and the star from the second image moves left")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    _generate(qtbot, w)
    said = [m for m in w.messages.history if "The clip was not made as planned" in m.text]
    assert said and said[0].level == WARNING and "does not show" in said[0].text
    qtbot.waitUntil(lambda: w.banner.action_button.isVisible(), timeout=WAIT)
    assert w.banner.action_button.text().startswith("Try seed ")
    w.shutdown()


def _clip_to_edit(qtbot, w, tmp_path, frames: int = 24) -> str:
    """A camera clip of `frames` frames at 12 fps imported, selected and given an edit's words, the model ready."""
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=frames, fps=12))
    w.timeline.view.select([clip_id])
    _type(qtbot, w, "make the square blue")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    return clip_id


def _new_clips_plan(qtbot, w, frames: int):
    """Nothing selected, text to video at `frames` frames, words typed: the studio's plan editing (its live plan
    follows)."""
    w.timeline.view.select([])
    choose_task(w, Task.TEXT_TO_VIDEO)
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    w.generation.frames.setValue(frames)
    _type(qtbot, w, "a red circle moves to the right")
    return w.studio.plan_editing


def test_pending_edits_of_a_clips_live_plan_come_back_with_their_length(qtbot, tmp_path, studio):
    """A clip's live plan is named by its task and length too: edits made on the 9-frame plan of new words were
    saved, but reopened (the task back at text to image, the length another) they were hidden, and the next edit
    replaced them. Arriving at the target sets the task and length (as the seed and size) again."""
    from app.core.request import PlanEdit

    w = studio
    editing = _new_clips_plan(qtbot, w, frames=9)
    qtbot.waitUntil(lambda: (editing.base or "").startswith("live:") and "x9:" in editing.base, timeout=WAIT)
    assert editing.add([PlanEdit(kind="scale", box=(0.0, 0.0, 0.5, 0.5), factor=0.0, keyframe=0)],
                       "Erase the canvas")
    assert w.document.project.plan_edits[""]["settings"]["frames"] == 9
    path = tmp_path / "pending.mcproj"
    assert w.save_as(str(path))

    w.generation.frames.setValue(17)
    qtbot.waitUntil(lambda: "x17:" in (editing.base or ""), timeout=WAIT)
    assert editing.edits() == []  # the 17-frame plan is another plan: its edits are not these
    assert w.open_project(str(path))
    qtbot.waitUntil(lambda: "edited (1 change)" in w.viewer.plan_caption.text(), timeout=WAIT)
    assert w.generation.frames.value() == 9 and len(editing.edits()) == 1
    assert w.studio.task is Task.TEXT_TO_VIDEO  # a reopened new generation starts at text to image otherwise
    assert any("text to video, frames 9: set again" in m.text for m in w.messages.history)


@pytest.mark.parametrize("how", ["trim the start", "split"])
def test_a_clip_trimmed_or_split_while_its_edit_runs_gets_the_edit_as_a_clip_of_its_own(qtbot, tmp_path, studio, how):
    """The edit is made from the frames the clip showed when it was queued. Trimmed at its start meanwhile, the edit
    landed as the clip's version over other frames (frames 0-16 where the clip now starts at frame 12, out of step
    with its sound); split, its end was never shown. Said nowhere."""
    w = studio
    clip_id = _clip_to_edit(qtbot, w, tmp_path)
    project = w.document.project

    def meanwhile():  # as the job is queued, before its result can land (results land on this thread)
        w.studio.jobs_changed.disconnect(meanwhile)
        clip = project.clip(clip_id)
        if how == "split":  # what Split leaves the first half: 0.5 s of the 1.4 s edit
            w.document.push(project.trim_clip_change(clip_id, clip.in_point, clip.in_point + 0.5), "Split")
        else:
            w.document.push(project.trim_clip_change(clip_id, 1.0, clip.out_point), "Trim")

    w.studio.jobs_changed.connect(meanwhile)
    landed = _generate(qtbot, w)
    assert landed != clip_id and len(project.clip(clip_id).versions) == 1  # the trimmed clip is as the user left it
    assert project.clip(landed).active.request["task"] == "video_edit"
    assert any("trimmed or split while it ran" in m.text for m in w.messages.history)


def test_plan_edits_of_a_short_clips_edit_keep_its_length_and_go_when_its_start_is_trimmed(qtbot, tmp_path, studio):
    """A 13-frame clip's edit, its plan edited, was sent as 17 frames (the Frames box) and failed after it was
    queued; and the edits stayed on after the clip's start was trimmed, though its plan was now of other frames."""
    from app.core.request import PlanEdit

    w = studio
    clip_id = _clip_to_edit(qtbot, w, tmp_path, frames=13)
    editing = w.studio.plan_editing
    qtbot.waitUntil(lambda: (editing.base or "").startswith("live:"), timeout=WAIT)
    assert w.generation.frames.value() == 17 and w.studio.plan_frames == 13
    assert editing.add([PlanEdit(kind="scale", box=(0.0, 0.0, 1.0, 1 / 6), factor=0.0, keyframe=0)],
                       "Erase the canvas")
    clip = w.document.project.clip(clip_id)
    w.document.push(w.document.project.trim_clip_change(clip_id, 0.25, clip.out_point), "Trim")
    qtbot.waitUntil(lambda: "@3:" in (editing.base or ""), timeout=WAIT)  # 0.25 s in at 12 fps: frame 3
    assert editing.edits() == []  # the trimmed clip's plan is of other frames: the edits are not shown on it
    w.act_undo.trigger()  # the clip's first frames again, decoded already: the live plan follows all the same
    qtbot.waitUntil(lambda: len(editing.edits()) == 1, timeout=WAIT)
    assert _generate(qtbot, w) == clip_id
    request = w.document.project.clip(clip_id).active.request
    assert request["frames"] == 13 and len(request["plan_edits"]) == 1
    assert not w.messages.errors()
    qtbot.waitUntil(lambda: w.viewer.plan_caption.text().startswith("Plan stored with v1"), timeout=WAIT)
    assert not any("waits on the plan" in m.text for m in w.messages.history)  # made with them: nothing left behind


def test_a_clip_trimmed_at_its_start_shows_its_plan_from_its_in_point(qtbot, studio):
    """Trimmed at its start (or a split's second half), a clip made from words shows its frames from its in point;
    its plan over the viewer and along the timeline went on from the plan's first frame, so a stroke at the
    playhead went to another keyframe than the one that shaped the frame shown."""
    w = studio
    clip_id = _new_clip_from_words(qtbot, w)
    qtbot.waitUntil(lambda: w.viewer.plan_caption.text().startswith("Plan stored"), timeout=WAIT)
    project = w.document.project
    clip = project.clip(clip_id)
    w.document.push(project.trim_clip_change(clip_id, 0.5, clip.out_point), "Trim")  # 4 frames in, at 8 fps
    qtbot.waitUntil(lambda: w.viewer.plan_caption.text().startswith("Plan stored"), timeout=WAIT)

    def weights_at(frame_of_clip):
        w.timeline.view.set_playhead(clip.start + (frame_of_clip + 0.5) / 8, emit=True)
        return [(k, wt) for k, wt in w.viewer.keyframe_weights if wt > 0]

    assert weights_at(0) == [(0, 0.5), (1, 0.5)]  # media frame 4: latent frame 1, halfway between keyframes 0 and 1
    assert weights_at(4) == [(1, 1.0)]  # media frame 8: latent frame 2, keyframe 1's own
    view_clip = w.timeline.view.clip(clip_id)
    qtbot.waitUntil(lambda: len(view_clip.plan_keyframes) == 3, timeout=WAIT)
    first, middle, last = w.timeline.view.plan_strip_rects(view_clip)
    box = w.timeline.view.clip_rect(view_clip)
    assert first.isEmpty()  # keyframe 0's moment (media frame 0) was trimmed away
    # Keyframe 1 sits mid-way through the frames its latent frame packs (5-8: 7/8 s into the footage), which the
    # trimmed clip shows 0.5 s sooner.
    assert middle.center().x() == pytest.approx(box.left() + box.width() * (7 / 8 - 0.5) / clip.duration, abs=1)
    assert box.contains(last)


def test_plan_edits_made_while_an_edit_runs_are_said_to_wait_on_their_version_when_it_lands(qtbot, tmp_path, studio):
    """Made on the live plan of the version being edited, they vanished from view as the result became the clip's
    shown version (its own stored plan shown), unsaid."""
    from app.core.request import PlanEdit

    w = studio
    clip_id = _clip_to_edit(qtbot, w, tmp_path)
    editing = w.studio.plan_editing
    qtbot.waitUntil(lambda: (editing.base or "").startswith("live:"), timeout=WAIT)

    def meanwhile():  # as the job is queued, before its result can land
        w.studio.jobs_changed.disconnect(meanwhile)
        assert editing.add([PlanEdit(kind="scale", box=(0.0, 0.0, 1.0, 1 / 6), factor=0.0, keyframe=0)],
                           "Erase the canvas")

    w.studio.jobs_changed.connect(meanwhile)
    assert _generate(qtbot, w) == clip_id
    assert w.document.project.clip(clip_id).active_version == 1
    qtbot.waitUntil(lambda: any("1 plan edit of this clip waits on the plan of the version it was made on (the "
                                "original)" in m.text for m in w.messages.history), timeout=WAIT)


@pytest.mark.parametrize("frames, trim", [(24, 0.0), (24, 0.5), (13, 0.0)])
def test_plan_edits_saved_before_live_plans_named_their_frames_still_show(qtbot, tmp_path, studio, frames, trim):
    """An entry saved before a clip's live plan was named by the first frame it reads and its own length (the Frames
    box's 17 in its name) is of the same plan: read from the in point, at the clip's length, then as now."""
    import re

    from app.core.request import PlanEdit

    w = studio
    clip_id = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=frames, fps=12))
    if trim:
        clip = w.document.project.clip(clip_id)
        w.document.push(w.document.project.trim_clip_change(clip_id, trim, clip.out_point), "Trim")
    w.timeline.view.select([clip_id])
    _type(qtbot, w, "make the square blue")
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    editing = w.studio.plan_editing
    qtbot.waitUntil(lambda: "@" in (editing.base or ""), timeout=WAIT)
    assert editing.add([PlanEdit(kind="scale", box=(0.0, 0.0, 1.0, 1 / 6), factor=0.0, keyframe=0)],
                       "Erase the canvas")
    entry = w.document.project.plan_edits[clip_id]
    # As the studio of the day before wrote it: no "@first frame", the Frames box's length.
    entry["base"] = re.sub(r"x\d+:", "x17:", re.sub(r"@\d+:", ":", entry["base"], count=1), count=1)
    assert "@" not in entry["base"] and len(editing.edits()) == 1



def test_a_new_clips_plan_is_shown_and_edited_at_the_keyframe_picked(qtbot, studio):
    """With nothing selected there is no clip to scrub: the new clip's live plan stayed at keyframe 0, and every
    stroke went there. The bar offers the keyframe instead (a clip on the timeline: the playhead picks it)."""
    from app.ui.plan_edit_tool import TOOL_ERASE

    w = studio
    w.timeline.view.select([])
    choose_task(w, Task.TEXT_TO_VIDEO)
    qtbot.waitUntil(lambda: w.model_ready, timeout=WAIT)
    _type(qtbot, w, "a red circle moves to the right")
    qtbot.waitUntil(lambda: w.viewer.plan is not None and w.viewer.plan_keyframes == 3, timeout=WAIT)
    bar = w.viewer.edit_bar
    assert bar.keyframe_box.isVisibleTo(w) and bar.keyframe_box.maximum() == 3
    bar.keyframe_box.setValue(3)
    assert w.viewer.keyframe == 2 and bar.keyframe_label.text() == "strokes edit keyframe 3 of 3"
    made = []
    w.viewer.edit_tool.edits_made.connect(lambda edits, label: made.append(edits))
    qtbot.mouseClick(bar.tool_buttons[TOOL_ERASE], Qt.MouseButton.LeftButton)
    tool, canvas = w.viewer.edit_tool, w.viewer.canvas
    a, b = tool.point(0.05, 0.05).toPoint(), tool.point(0.4, 0.05).toPoint()
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(canvas, b)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert [e.keyframe for e in made[-1]] == [2]
    clip_id = _generate(qtbot, w)
    w.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: not bar.keyframe_box.isVisibleTo(w), timeout=WAIT)  # the playhead picks it now


def test_frames_changed_after_a_plan_edit_wait_for_the_new_plan(qtbot, studio):
    """A clip's live plan is named by its own length: Frames changed and Generate pressed before the new plan came
    sent the edited 9-frame plan's length, not the 17 the box said."""
    from app.core.request import PlanEdit

    w = studio
    editing = _new_clips_plan(qtbot, w, frames=9)
    qtbot.waitUntil(lambda: "x9:" in (editing.base or ""), timeout=WAIT)
    assert editing.add([PlanEdit(kind="scale", box=(0.0, 0.0, 0.5, 0.5), factor=0.0, keyframe=0)], "Erase the canvas")
    w.generation.frames.setValue(17)
    assert w.generate() is None and not w.studio.jobs
    assert "being made again for the new settings" in w.messages.history[-1].text


def test_an_edit_of_a_generated_version_lands_on_its_clip_whatever_the_clips_in_point(qtbot, tmp_path, studio):
    """An edit of a generated version reads it from its own start, trimmed or not: a start trim while it ran
    changed nothing it read, and the edit is the clip's next version (not a clip of its own)."""
    w = studio
    clip_id = _clip_to_edit(qtbot, w, tmp_path)
    assert _generate(qtbot, w) == clip_id  # v1, an edit: generated frames of its own
    project = w.document.project
    w.instruction.edit.clear()
    _type(qtbot, w, "make the square red")

    def meanwhile():
        w.studio.jobs_changed.disconnect(meanwhile)
        clip = project.clip(clip_id)
        w.document.push(project.trim_clip_change(clip_id, 0.25, clip.out_point), "Trim")

    w.studio.jobs_changed.connect(meanwhile)
    assert _generate(qtbot, w) == clip_id and len(project.clip(clip_id).versions) == 3
