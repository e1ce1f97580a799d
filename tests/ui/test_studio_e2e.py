"""The studio end to end with the real embedded model (models/metacanvas-shapes): type, see the plan,
generate, see the version, undo/redo, export PNG and MP4, save, reopen, cancel a queued job."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.core.request import Task
from app.ui.studio_state import JobState
from tests.ui.helpers import MODEL, SAMPLE_IMAGE, SAMPLE_VIDEO, choose_task, import_and_wait, make_window
from tests.ui.helpers import model_studio as studio  # noqa: F401 - a fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MODEL / "model_index.json").is_file(),
                       reason="the embedded default model (models/metacanvas-shapes) is not built yet"),
]

EDIT_SEED = 1



def _type(qtbot, w, text):
    w.instruction.edit.setFocus()
    qtbot.keyClicks(w.instruction.edit, text)


def test_plan_generate_version_undo_export_save_reopen(qtbot, tmp_path, studio):
    w = studio
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    assert w.instruction.chosen_task() is Task.IMAGE_EDIT
    with qtbot.waitSignal(w.plan_shown, timeout=20_000):
        _type(qtbot, w, "make the circle green")
    assert w.viewer.overlay_array() is not None and w.current_plan is not None
    assert [b.text() for b in w.instruction.word_buttons]  # the plan's words are clickable
    qtbot.mouseClick(w.instruction.word_buttons[-1], Qt.MouseButton.LeftButton)
    assert w.viewer.word_index == len(w.instruction.word_buttons) - 1
    # A new seed plans again: a model with layout codes commits to another layout per seed.
    first = w.current_plan
    w.generation.seed.setValue(w.generation.seed.value() + 1)
    qtbot.waitUntil(lambda: w.current_plan is not first, timeout=20_000)

    # Measured with the committed model: "make the circle green" on this sample comes out right for
    # each of seeds 0-19 at 4 steps, as at the model's default 12; the test fixes seed 1.
    assert not w.generation.random_seed.isChecked()
    w.generation.seed.setValue(EDIT_SEED)
    w.generation.steps.setValue(4)
    with qtbot.waitSignal(w.result_stored, timeout=120_000):
        job = w.generate()
        assert job is not None
    clip = w.document.project.clip(clip_id)
    assert len(clip.versions) == 2 and clip.active_version == 1
    assert clip.versions[1].request["instruction"] == "make the circle green"
    assert clip.versions[1].request["seed"] == EDIT_SEED
    # The edit is right, as the detector sees the stored result: one green circle where the red one
    # was, and nothing else (no red circle left, nothing added).
    from app.media.probe import load_image
    from app.shapes.detect import detect
    (before,) = detect(load_image(SAMPLE_IMAGE))
    assert (before.cls, before.color) == ("circle", "red")
    result = load_image(w.media_file(clip.versions[1].media_id))
    found = detect(result)
    assert [(d.cls, d.color) for d in found] == [("circle", "green")], found
    assert np.hypot(found[0].center[0] - before.center[0], found[0].center[1] - before.center[1]) <= 0.1 * result.shape[1]
    assert abs(found[0].area - before.area) <= 0.25 * before.area  # the circle kept its size
    assert clip.versions[1].plan and (w.media_file(clip.versions[1].media_id).parent / clip.versions[1].plan).is_file()
    assert w.versions.count() == 2
    source = w.media_file(clip.versions[0].media_id).read_bytes()
    assert source == SAMPLE_IMAGE.read_bytes()  # the source was never overwritten

    w.act_undo.trigger()
    assert len(w.document.project.clip(clip_id).versions) == 1
    w.act_redo.trigger()
    assert len(w.document.project.clip(clip_id).versions) == 2

    # A/B: the previous version is there to compare.
    w.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: w.viewer.canvas.compare is not None, timeout=10_000)

    # PNG of the shown frame.
    qtbot.waitUntil(lambda: getattr(w, "last_frame", None) is not None and w.last_frame.shape[:2] == (64, 64), timeout=10_000)
    png = tmp_path / "still.png"
    with qtbot.waitSignal(w.export_done, timeout=10_000):
        w.exports.export_still(str(png))
    from app.media.probe import load_image, probe_video
    assert load_image(png).shape == (64, 64, 3)

    # The embedded default makes stills; a clip needs the video model (Settings): without one, asking for a
    # video says so at once, and nothing changes (test_studio_video.py has the studio with one).
    w.settings.video_model = str(tmp_path / "no-video-model")
    w.timeline.view.select([])
    choose_task(w, Task.TEXT_TO_VIDEO)
    w.instruction.set_text("a red circle moves to the right")
    clips_before = len(w.document.project.tracks["video"])
    assert w.generate() is None
    assert "No video model is loaded" in w.messages.errors()[-1] and "Settings" in w.messages.errors()[-1]
    assert len(w.document.project.tracks["video"]) == clips_before
    choose_task(w, Task.TEXT_TO_IMAGE)

    # A clip on the video track exported as MP4 decodes back to its frames and size.
    video_clip = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    assert w.document.clip_kind(video_clip) == "video"
    source = probe_video(SAMPLE_VIDEO)
    mp4 = tmp_path / "clip.mp4"
    with qtbot.waitSignal(w.export_done, timeout=60_000):
        w.exports.export_clip(str(mp4), video_clip)
    info = probe_video(mp4)
    assert (info.frames, info.width, info.height) == (source.frames, source.width, source.height)

    # Save, reopen in a new window, find everything.
    path = tmp_path / "saved" / "session.mcproj"
    assert w.save_as(str(path))
    w2 = make_window(qtbot, tmp_path)
    assert w2.open_project(str(path))
    p = w2.document.project
    assert len(p.clip(clip_id).versions) == 2 and p.clip(clip_id).instruction == "make the circle green"
    assert w2.document.clip_kind(video_clip) == "video"
    from app.media import project_file as pf
    assert not pf.missing_media(p, path)
    w2.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: w2.viewer.canvas.frame is not None and w2.viewer.canvas.compare is not None, timeout=10_000)


def test_cancel_queued_job_leaves_running_one(qtbot, studio):
    w = studio
    w.instruction.set_text("a blue square on the left")
    w.generation.steps.setValue(200)  # long enough to still be running when we cancel the queued one
    first = w.generate()
    w.generation.steps.setValue(4)
    second = w.generate()
    qtbot.waitUntil(lambda: w.jobs[first].state is JobState.RUNNING, timeout=30_000)
    assert w.jobs[second].state is JobState.QUEUED
    cancelled = []
    w.engine.cancelled.connect(cancelled.append)
    w.generation.select_job(second)
    qtbot.mouseClick(w.generation.cancel_selected, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: second in cancelled, timeout=5000)
    assert second not in w.jobs and w.jobs[first].state is JobState.RUNNING
    assert second not in w.generation.job_ids() and first in w.generation.job_ids()
    steps_then = w.generation.progress.value()
    qtbot.waitUntil(lambda: w.generation.progress.value() > steps_then, timeout=30_000)  # still making progress
    assert first not in cancelled
    # Esc cancels the running job; the project is untouched and the message says so.
    media_before = dict(w.document.project.media)
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: first in cancelled, timeout=30_000)
    assert w.document.project.media == media_before
    assert "cancelled" in w.messages.history[-1].text


def test_a_rejected_model_folder_is_a_message_and_never_becomes_the_active_model(qtbot, tmp_path, studio):
    from app.settings import Settings

    w = studio
    good = w.settings.active_model
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    s = w.settings.__class__(**{**w.settings.to_dict(), "active_model": str(bad), "autosave_minutes": 0})
    w.apply_settings(s)
    assert any("model" in m.lower() for m in w.messages.errors())
    # Neither this session nor the next launch takes the folder that failed.
    assert w.settings.active_model == good and Settings.load().active_model == good
    assert str(bad) not in Settings.load().model_folders
    assert w.model_ready


def test_a_model_folder_that_fails_to_load_gives_the_working_model_back_now_and_at_the_next_launch(qtbot, tmp_path,
                                                                                                  studio):
    """A folder that passes the folder check but does not load (its transformer's config edited under its weights)
    left the studio with no model and was saved as the active one: the next launch started without a model too.
    The working model is loaded again and stays the saved one. (Weights cut short, as an interrupted copy leaves
    them, are refused by the folder check itself, before anything loads.)"""
    import json
    import os
    import shutil

    from app.settings import Settings
    from app.ui.studio_state import ModelState

    w = studio
    good = w.settings.active_model
    cut = tmp_path / "cut-short"
    shutil.copytree(MODEL, cut, copy_function=os.symlink)  # links: cheap; the files below are real copies
    weights = cut / "transformer" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    weights.write_bytes(data[: len(data) // 2])
    w.apply_settings(w.settings.__class__(**{**w.settings.to_dict(), "active_model": str(cut), "autosave_minutes": 0}))
    assert "is incomplete" in w.messages.errors()[-1] and w.settings.active_model == good and w.model_ready
    weights.unlink()
    weights.write_bytes(data)
    config = cut / "transformer" / "config.json"
    edited = {**json.loads(config.read_text()), "num_layers": 1}
    config.unlink()
    config.write_text(json.dumps(edited))
    new = w.settings.__class__(**{**w.settings.to_dict(), "active_model": str(cut), "autosave_minutes": 0,
                                   "model_folders": [good, str(cut)]})
    w.apply_settings(new)
    qtbot.waitUntil(lambda: any("goes back to" in m for m in w.messages.errors()), timeout=60_000)
    said = w.messages.errors()[-1]
    assert said.startswith("Could not load cut-short") and f"The model goes back to {MODEL.name}" in said
    qtbot.waitUntil(lambda: w.studio.slots["image"].state is ModelState.READY, timeout=60_000)
    assert w.model_ready and w.studio.slots["image"].folder == os.path.abspath(good)
    assert w.settings.active_model == good and Settings.load().active_model == good
    assert str(cut) not in Settings.load().model_folders
    _type(qtbot, w, "a red circle")
    with qtbot.waitSignal(w.result_stored, timeout=60_000):  # it works again
        w.generate()
    # A folder that loads is the one in use from then on: a later failure of it (a retry with offload, a reload)
    # is said as its own, never a switch back to the folder before it.
    other = tmp_path / "other"
    shutil.copytree(MODEL, other, copy_function=os.symlink)
    w.apply_settings(w.settings.__class__(**{**w.settings.to_dict(), "active_model": str(other)}))
    qtbot.waitUntil(lambda: w.studio.slots["image"].folder == os.path.abspath(other) and w.model_ready,
                    timeout=60_000)
    w.studio._on_model_failed("image", "Out of memory while placing other.")
    assert w.settings.active_model == str(other) and Settings.load().active_model == str(other)
    assert "goes back" not in w.messages.errors()[-1]


def test_a_model_of_clips_alone_set_for_stills_is_refused_and_the_model_before_it_comes_back(qtbot, tmp_path, studio):
    """Settings ▸ Model folder took the video model: "ready", saved, and every still job then failed ("does not do
    text to image"). It is refused as the reverse already was, and the stills model before it comes back."""
    import os

    from app.settings import DEFAULT_VIDEO_MODEL, Settings
    from app.ui.studio_state import ModelState

    w = studio
    good = w.settings.active_model
    # Its folder says its tasks: refused before anything loads (the loaded model's tasks are checked again).
    w.apply_settings(w.settings.__class__(**{**w.settings.to_dict(), "active_model": str(DEFAULT_VIDEO_MODEL)}))
    said = w.messages.errors()[-1]
    assert "'metacanvas-shapes-video' makes no pictures (it does: text to video" in said
    assert f"The model in use stays {good}" in said
    qtbot.waitUntil(lambda: w.studio.slots["image"].state is ModelState.READY, timeout=60_000)
    assert w.studio.slots["image"].folder == os.path.abspath(good)
    assert w.settings.active_model == good and Settings.load().active_model == good


def test_an_unknown_word_is_named_once_typing_pauses_and_generate_says_so(qtbot, studio):
    w = studio
    _type(qtbot, w, "a red drag")
    # While the word is being typed nothing flashes: the message waits for a pause.
    qtbot.wait(300)
    assert not w.instruction.problem.isVisible() or "'drag'" not in w.instruction.problem.text()
    _type(qtbot, w, "on")
    qtbot.waitUntil(lambda: "does not know" in w.instruction.problem.text(), timeout=20_000)
    assert "'dragon'" in w.instruction.problem.text() and "'drag'" not in w.instruction.problem.text()
    media_before = dict(w.document.project.media)
    job = w.generate()
    if job is not None:  # refused in the engine: the job fails with the same message
        qtbot.waitUntil(lambda: any("dragon" in m for m in w.messages.errors()), timeout=20_000)
    assert any("'dragon'" in m and "It knows:" in m for m in w.messages.errors() + [w.instruction.problem.text()])
    assert w.document.project.media == media_before
    # A pasted 10,000-character word gives a one-line message, not a wall of text.
    w.instruction.set_text("a " + "x" * 10_000)
    qtbot.waitUntil(lambda: "does not know" in w.instruction.problem.text(), timeout=20_000)
    assert len(w.instruction.problem.text()) < 1000


def test_an_image_edit_naming_what_the_detector_does_not_read_says_so(qtbot, tmp_path, studio):
    """A flat circle larger than the shapes world's, "make the circle green": the studio named only the plan's
    objects it did not draw, as if the picture held them; that the detector reads no circle there is said."""
    from PIL import Image, ImageDraw

    w = studio
    big = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(big).ellipse((17, 17, 47, 47), fill=(200, 30, 30))
    big.save(tmp_path / "big.png")
    import_and_wait(qtbot, w, tmp_path / "big.png")
    w.generation.seed.setValue(1)
    _type(qtbot, w, "make the circle green")
    with qtbot.waitSignal(w.result_stored, timeout=120_000):
        w.generate()
    assert any("The picture shows no circle as the model's detector sees it (it knows the flat shapes of its own "
               "world): the edit was planned from what it reads there." in m.text for m in w.messages.history)
