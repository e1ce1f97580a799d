"""The studio's widgets and window without a model: import, errors, undo/redo, save/open,
export, recovery. The viewer and its plan overlay are tested in test_viewer.py."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app.core.request import Task
from app.media import project_file as pf
from app.ui.studio_state import allowed_tasks
from tests.ui.helpers import SAMPLE_IMAGE, SAMPLE_VIDEO, choose_task, import_and_wait, make_window


def test_task_rules():
    """What each selection can do; the first is what an imported clip defaults to."""
    assert allowed_tasks([]) == [Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO]
    assert allowed_tasks(["image"]) == [Task.IMAGE_EDIT, Task.TEXT_TO_IMAGE, Task.IMAGE_TO_VIDEO,
                                        Task.REFERENCE_TO_VIDEO]  # one still can be the one reference
    assert allowed_tasks(["video"])[0] is Task.VIDEO_EDIT
    assert allowed_tasks(["image", "image"]) == [Task.REFERENCE_TO_VIDEO]


def test_import_shows_clip_task_and_undo_redo(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    assert w.instruction.chosen_task() is Task.TEXT_TO_IMAGE
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    assert w.timeline.view.selected == [clip_id]
    assert w.instruction.chosen_task() is Task.IMAGE_EDIT  # the task is shown, chosen from the selection
    qtbot.waitUntil(lambda: w.viewer.canvas.frame is not None)
    assert w.viewer.canvas.frame.width() == 64
    qtbot.waitUntil(lambda: w.media_bin.has_icon(w.document.project.clip(clip_id).media_id))
    # Undo removes the import (media + clip: one step); redo brings it back.
    w.act_undo.trigger()
    assert not w.document.project.tracks["image"] and not w.document.project.media
    w.act_redo.trigger()
    assert w.document.project.clip(clip_id)
    # The task chooser offers animating the image instead of editing it.
    w.timeline.view.select([clip_id])
    choose_task(w, Task.IMAGE_TO_VIDEO)
    assert w.studio.task is Task.IMAGE_TO_VIDEO


def test_video_import_thumbnails_scrub_and_play(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    assert w.instruction.chosen_task() is Task.VIDEO_EDIT
    qtbot.waitUntil(lambda: bool(w.timeline.view.clip(clip_id).thumbnails), timeout=10000)
    assert len(w.timeline.view.clip(clip_id).thumbnails) > 1
    clip = w.document.project.clip(clip_id)
    item = w.document.project.media_item(clip.media_id)
    # Frame-accurate scrubbing: the frame shown equals read_frame at that index.
    from app.media.probe import read_frame
    target = 5
    w.timeline.view.set_playhead(clip.start + (target + 0.5) / item.fps, emit=True)
    want = read_frame(w.media_file(item.id), target)
    qtbot.waitUntil(lambda: w.viewer.canvas.frame is not None and np.array_equal(w.last_frame, want), timeout=10000)
    # Play advances the playhead; pause stops it.
    w.timeline.view.set_playhead(clip.start, emit=True)
    w.toggle_play()
    qtbot.waitUntil(lambda: w.timeline.view.playhead > clip.start + 0.1, timeout=5000)
    w.toggle_play()
    assert not w.play_timer.isActive()


@pytest.mark.parametrize("name,content,expect", [
    ("empty.png", b"", "empty"),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20, "damaged"),
    ("notes.mp4", b"just some text, not a video\n" * 10, "not an image or a video"),
])
def test_bad_files_give_a_message_not_a_crash(qtbot, tmp_path, name, content, expect):
    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    bad = tmp_path / name
    bad.write_bytes(content)
    w.import_files([str(bad)])
    qtbot.waitUntil(lambda: bool(w.messages.errors()), timeout=10000)
    msg = w.messages.errors()[-1]
    assert name in msg and expect.split()[0] in msg.lower(), msg
    assert w.banner.isVisible() and name in w.banner.label.text()
    # The project and its media are intact.
    assert len(w.document.project.media) == 1 and w.document.project.clip(clip_id)


def test_wrong_extension_png_named_mp4_is_read_as_what_it_is(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    renamed = tmp_path / "photo.mp4"
    renamed.write_bytes(SAMPLE_IMAGE.read_bytes())
    w.import_files([str(renamed)])
    qtbot.waitUntil(lambda: bool(w.messages.history), timeout=10000)
    # Either accepted as the image it is, or refused with a message: never a crash.
    assert w.document.project.media or w.messages.errors()


def test_missing_file_message(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.import_files([str(tmp_path / "nope.png")])
    qtbot.waitUntil(lambda: bool(w.messages.errors()), timeout=5000)
    assert "nope.png" in w.messages.errors()[-1]


def test_save_open_roundtrip_and_export(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    img_clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    vid_clip = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    path = tmp_path / "proj" / "mine.mcproj"
    assert w.save_as(str(path))
    assert not w.document.dirty and path.is_file()
    # Export a still and the video clip; the MP4 decodes back to the right frame count and size.
    w.timeline.view.select([img_clip])
    qtbot.waitUntil(lambda: getattr(w, "last_frame", None) is not None and w.last_frame.shape[0] == 64)
    png = tmp_path / "out" / "still.png"
    png.parent.mkdir()
    with qtbot.waitSignal(w.export_done, timeout=10000):
        w.exports.export_still(str(png))
    from app.media.probe import load_image, probe_video
    assert load_image(png).shape == (64, 64, 3)
    mp4 = tmp_path / "out" / "clip.mp4"
    with qtbot.waitSignal(w.export_done, timeout=30000):
        w.exports.export_clip(str(mp4), vid_clip)
    src = w.document.project.media_item(w.document.project.clip(vid_clip).media_id)
    info = probe_video(mp4)
    assert (info.frames, info.width, info.height) == (src.frames, src.width + src.width % 2, src.height + src.height % 2)
    # A clip named for another format is refused with a message, nothing written (an MP4 called .gif lies).
    for wrong in ("clip.gif", "clip"):
        w.exports.export_clip(str(tmp_path / "out" / wrong), vid_clip)
        assert "exported as H.264 MP4" in w.messages.history[-1].text and not (tmp_path / "out" / wrong).exists()
    track = tmp_path / "out" / "track.mp4"
    with qtbot.waitSignal(w.export_done, timeout=30000):
        w.exports.export_track(str(track))
    # The track renders at the project's frame rate for the clip's duration.
    assert probe_video(track).frames == round(src.frames / src.fps * w.document.project.settings.fps)
    # Reopen in a fresh window: everything is there.
    w2 = make_window(qtbot, tmp_path)
    assert w2.open_project(str(path))
    p = w2.document.project
    assert {c.id for c in p.tracks["image"]} == {img_clip} and {c.id for c in p.tracks["video"]} == {vid_clip}
    assert not pf.missing_media(p, path)
    w2.timeline.view.select([vid_clip])
    qtbot.waitUntil(lambda: w2.viewer.canvas.frame is not None)


def test_export_cancel_leaves_nothing(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    vid = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    out = tmp_path / "cancelled.mp4"
    w.exports.export_clip(str(out), vid)
    w.exports.cancel()
    qtbot.waitUntil(lambda: not w.exports.exporting, timeout=20000)
    # Cancelled before the end leaves nothing; if the tiny clip finished first, it is complete.
    assert not out.exists() or "Exported" in w.messages.history[-1].text


def test_autosave_and_recovery_offer(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    assert w.document.dirty
    w.files.autosave()
    qtbot.waitUntil(lambda: not w.files._saving_autosave, timeout=5000)
    assert list((tmp_path / "recovery").glob("*.autosave.json"))
    # A new session finds the recovery copy and offers it without a modal dialog.
    w2 = make_window(qtbot, tmp_path, offer_recovery=True)
    qtbot.waitUntil(lambda: bool(w2.files.pending_recoveries), timeout=3000)
    assert w2.banner.isVisible() and w2.banner.action_button.text() == "Recover"
    qtbot.mouseClick(w2.banner.action_button, Qt.MouseButton.LeftButton)
    assert len(w2.document.project.media) == 1 and w2.document.dirty
    clip = w2.document.project.tracks["image"][0]
    assert w2.media_file(clip.media_id).is_file()


def test_generate_before_the_model_is_there_waits_and_says_so(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.instruction.set_text("a red circle")
    assert w.generate() is None
    assert "model is still loading" in w.messages.history[-1].text.lower()


def test_settings_dialog_round_trip(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    dlg = w.settings_dialog()
    dlg.precision.setCurrentText("bfloat16")
    dlg.preview.setChecked(False)
    dlg.autosave.setValue(3)
    threads = min(2, os.cpu_count() or 1)
    dlg.cpu_threads.setValue(threads)
    dlg.accept()
    assert w.settings.precision == "bfloat16" and not w.settings.preview and w.settings.autosave_minutes == 3
    assert w.settings.cpu_threads == threads and (w.engine is None or w.engine.cpu_threads() == threads)
    # No more threads than the machine has cores can be chosen (more only wait on each other).
    from app.settings import MAX_CPU_THREADS

    assert w.settings_dialog().cpu_threads.maximum() == min(MAX_CPU_THREADS, os.cpu_count())
    # With autosave on, a change reaches a recovery copy within seconds, not minutes.
    w.document.push(w.document.project.rename_change("renamed"))
    assert w.files.autosave_timer.isActive() and w.files.autosave_timer.interval() <= 10_000


def test_timeline_click_selects_and_zoom(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    cid = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    view = w.timeline.view
    view.select([])
    r = view.clip_rect(view.clip(cid))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(int(r.center().x()), int(r.center().y())))
    assert view.selected == [cid]
    w.timeline.zoom.setValue(200)
    assert view.px_per_second == 200


def test_generation_panel_takes_the_models_sampling_defaults_and_says_where_guidance_applies(qtbot):
    from app.core.pipeline import PipelineDefaults
    from app.ui.generation_panel import GenerationPanel

    panel = GenerationPanel()
    qtbot.addWidget(panel)
    from app.ui.studio_state import Params

    panel.show_params(Params(width=64, height=64, steps=8, guidance=2.0))
    assert (panel.width_box.value(), panel.steps.value(), panel.guidance.value()) == (64, 8, 2.0)
    panel.describe_guidance(PipelineDefaults(guidance_interval=(0.0, 0.8)).guidance_interval)
    assert "0 to 0.8" in panel.guidance.toolTip()
    panel.describe_guidance(PipelineDefaults(guidance=3.0).guidance_interval)
    assert "every step" in panel.guidance.toolTip()
    # Until a model has loaded, its settings show no number (a placeholder is no model's own), and the
    # numbers they hold come back when it has.
    panel.set_model_loaded(False, makes_video=True)
    boxes = (panel.steps, panel.guidance, panel.width_box, panel.height_box, panel.frames)
    assert [b.text() for b in boxes] == ["…"] * 5 and not any(b.isEnabled() for b in boxes)
    panel.show_params(Params(width=48, height=48, steps=12, guidance=2.0, frames=17))
    assert panel.steps.text() == "…"
    panel.set_model_loaded(True, makes_video=True)
    assert [b.text() for b in boxes] == ["12", "2.00", "48", "48", "17"] and all(b.isEnabled() for b in boxes)


def test_a_long_instruction_is_cut_at_a_word_in_the_jobs_name():
    from app.ui.studio_state import shortened

    long = "the circle from the first image moves right and the star from the second image moves left"
    assert shortened(long) == "the circle from the first image moves…"
    assert shortened("a red circle  moves up") == "a red circle moves up"  # short: whole, spaces tidied
    assert shortened("x" * 60).endswith("…") and len(shortened("x" * 60)) == 41


def test_a_clip_whose_sound_cannot_be_decoded_is_exported_without_it_and_says_so(qtbot, tmp_path, monkeypatch):
    """A clip's export carries its source's sound. A sound that cannot be decoded (its decoder made to fail part way,
    as a damaged audio stream does) failed the whole export; the clip is exported without it, and the message says so."""
    import av

    import app.media.export as export
    from tests.media.media_helpers import write_clip_with_audio

    def damaged_sound(*a, **k):
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, write_clip_with_audio(tmp_path / "camera.mp4", frames=24, fps=12))
    sound = export._write_audio
    monkeypatch.setattr(export, "_write_audio", damaged_sound)
    out = tmp_path / "out.mp4"
    w.exports.export_clip(str(out), clip)
    qtbot.waitUntil(lambda: not w.exports.exporting, timeout=30_000)
    said = w.messages.history[-1]
    assert said.text.startswith("Exported out.mp4.") and "It has no sound: the sound of 'camera.mp4'" in said.text
    assert said.level == "warning"
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video"] and container.streams.video[0].frames == 24
    # The sound read well: kept.
    monkeypatch.setattr(export, "_write_audio", sound)
    kept = tmp_path / "kept.mp4"
    w.exports.export_clip(str(kept), clip)
    qtbot.waitUntil(lambda: not w.exports.exporting, timeout=30_000)
    with av.open(str(kept)) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "video"]


def test_an_animated_gif_is_imported_as_a_still_and_the_message_says_so(qtbot, tmp_path):
    """An animated GIF came in as a still of its first frame with only "Imported anim.gif.": the user was not told
    the rest of the animation is not there."""
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, gif)
    assert w.document.clip_kind(clip) == "image"
    said = w.messages.history[-1]
    assert said.level == "warning" and "an animation of 3 frames, imported as a still of its first frame" in said.text
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    assert w.messages.history[-1].text == f"Imported {SAMPLE_IMAGE.name}."


def test_a_still_named_without_an_ending_gets_the_chosen_formats(qtbot, tmp_path):
    """Export still with the JPEG filter chosen and "photo" typed wrote photo.png: the dialog's default ending
    follows the filter chosen."""
    w = make_window(qtbot, tmp_path)
    dlg = w.exports.export_still_dialog()
    assert dlg.defaultSuffix() == "png"
    dlg.selectNameFilter("JPEG (*.jpg *.jpeg)")
    dlg.filterSelected.emit("JPEG (*.jpg *.jpeg)")  # what choosing it in the dialog sends
    assert dlg.defaultSuffix() == "jpg"
    dlg.filterSelected.emit("PNG (*.png)")
    assert dlg.defaultSuffix() == "png"
    dlg.reject()


def test_closing_hides_the_window_before_waiting_for_the_engine(qtbot, tmp_path, monkeypatch):
    """A model load cannot be interrupted; the close waited for it with the window up and frozen (10 s for a slow
    load, minutes for a large real checkpoint). The window is gone before the wait."""
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(tmp_path / "no-model"))
    qtbot.waitUntil(lambda: w.engine is not None, timeout=10_000)
    shown_while_waiting = []
    real = w.engine.shutdown
    monkeypatch.setattr(w.engine, "shutdown", lambda: (shown_while_waiting.append(w.isVisible()), real())[1])
    assert w.close()
    assert shown_while_waiting == [False]


def test_a_pasted_page_of_words_neither_widens_the_window_nor_draws_a_button_per_word(qtbot, tmp_path):
    """The plan's word buttons sat in the panel's layout: a pasted 10,000-character instruction made 2,000 buttons,
    widened the window past the screen and froze it for 2.2 s. They scroll in a row of their own, the first
    MAX_WORD_BUTTONS of them, the rest counted."""
    from app.ui.instruction import MAX_WORD_BUTTONS

    w = make_window(qtbot, tmp_path)
    qtbot.wait(50)
    width, height, least = w.width(), w.height(), w.minimumSizeHint().width()
    words = ("a red circle left of a blue star " * 300).split()
    w.instruction.set_words(words)
    qtbot.wait(50)
    assert (w.width(), w.height(), w.minimumSizeHint().width()) == (width, height, least)
    assert len(w.instruction.word_buttons) == MAX_WORD_BUTTONS
    assert w.instruction.more_words.isVisibleTo(w) and \
        w.instruction.more_words.text() == f"+{len(words) - MAX_WORD_BUTTONS} more words"
    received = []
    w.instruction.word_clicked.connect(received.append)
    w.instruction.word_buttons[-1].click()
    assert received == [MAX_WORD_BUTTONS - 1]
    w.instruction.set_words(words[:MAX_WORD_BUTTONS + 35])  # the same buttons, another count
    assert w.instruction.more_words.text() == "+35 more words"
    w.instruction.set_words(["a", "red", "circle"])
    assert [b.text() for b in w.instruction.word_buttons] == ["a", "red", "circle"]
    assert not w.instruction.more_words.isVisibleTo(w)


def test_an_offer_waiting_in_the_banner_comes_back_after_a_later_message(qtbot, monkeypatch):
    """A result the project folder could not take offered Save As in the banner; the next warning (an import's, a
    model's) replaced it for good, and the user had no way left to keep the result but a close. Offers now wait
    under later messages: a message shows for its while, then the offer is back until answered or dismissed."""
    from app.ui.messages import MessageBanner

    monkeypatch.setattr(MessageBanner, "TIMEOUT_MS", 50)
    banner = MessageBanner()
    qtbot.addWidget(banner)
    saved, recovered = [], []
    banner.show_action("Recovered work from a crash.", "Recover", lambda: recovered.append(1))
    banner.show_action("The result could not be written.", "Save As…", lambda: saved.append(1), True)
    banner.show_message("warning", "An import was refused.")
    assert banner.label.text() == "An import was refused." and not banner.action_button.isVisible()
    qtbot.waitUntil(lambda: banner.action_button.isVisible(), timeout=2000)  # the message's while is over
    assert banner.action_button.text() == "Save As…" and banner.label.text() == "The result could not be written."
    qtbot.wait(200)
    assert banner.isVisible()  # an offer does not time out
    # The project closes: its offer goes, the startup one stays.
    banner.drop_project_action()
    assert banner.action_button.text() == "Recover" and banner.isVisible()
    banner.show_message("error", "Something failed.")
    banner.dismiss_button.click()  # the message dismissed: the offer is back
    assert banner.action_button.isVisible() and banner.action_button.text() == "Recover"
    banner.action_button.click()
    assert recovered == [1] and saved == [] and not banner.isVisible()
    # An offer that no longer holds (its results saved since) does not come back from under a later message.
    unsaved = [1]
    banner.show_action("The result could not be written.", "Save As…", lambda: saved.append(1), True,
                       holds=lambda: bool(unsaved))
    unsaved.clear()
    banner.show_message("warning", "Another warning.")
    banner.dismiss_button.click()
    assert not banner.isVisible() and not banner.action_button.isVisible()


def test_a_panorama_gets_a_square_icon_without_painter_warnings(qtbot, tmp_path, qtlog):
    """A 4000 x 30 panorama's 96 x 1 thumbnail, scaled by Qt into the lists' square icon boxes, became a null
    pixmap: QPainter warnings on every repaint of the media bin and the versions list."""
    from PIL import Image

    pano = tmp_path / "panorama.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 4000, 3), dtype=np.uint8)).save(pano)
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, pano)
    media_id = w.document.project.clip(clip).media_id
    qtbot.waitUntil(lambda: media_id in w.pictures.icons, timeout=10_000)
    w.timeline.view.select([clip])
    w.repaint()
    qtbot.wait(200)
    assert not [r.message for r in qtlog.records if "QPainter" in r.message]
    size = w.pictures.icons[media_id].availableSizes()[0]
    assert size.width() == size.height() > 1


def test_the_task_chooser_shows_its_longest_choice_whole(qtbot, tmp_path):
    """Sized to the choices shown first ("New image"), the chooser cut "Remake from words" to "Remake fro"."""
    w = make_window(qtbot, tmp_path)
    qtbot.wait(50)  # shown with "New image"
    # A clip made from words, selected: what the studio shows for it (StudioModel's target -> set_task).
    w.instruction.set_task(Task.TEXT_TO_IMAGE, "circle.png", [Task.TEXT_TO_IMAGE, Task.IMAGE_EDIT], on_clip=True)
    box = w.instruction.task_box
    assert box.currentText() == "Remake from words"
    qtbot.wait(50)
    text = box.fontMetrics().horizontalAdvance("Remake from words")
    assert box.width() >= text + 16, (box.width(), text)


def test_the_media_bin_names_a_generated_version_after_its_clip(qtbot, tmp_path):
    """Each generated version appeared in the media bin as its file in the media folder ("result-f60f18c3.png")."""
    from app.media import project_file as pf

    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    written = pf.write_result(w.work_path(), np.full((1, 64, 64, 3), 90, np.uint8))
    change, _ = pf.result_change(w.document.project, written, clip, {"task": "image_edit"}, "make it grey")
    w.document.push(change)
    names = {w.media_bin.model.item(r).text() for r in range(w.media_bin.model.rowCount())}
    assert names == {SAMPLE_IMAGE.name, f"{SAMPLE_IMAGE.name} — v1"}, names


def test_a_clip_whose_file_was_deleted_is_said_once_when_selected(qtbot, tmp_path):
    """Selecting a clip whose file was deleted from the media folder said the same trouble twice: an error from the
    model's read of the input, then a warning with the same text from the viewer's frame."""
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    path = tmp_path / "p.mcproj"
    assert w.files.save_as(str(path))
    w.timeline.view.select([])
    w.media_file(w.document.project.clip(clip).media_id).unlink()
    before = len(w.messages.history)
    w.timeline.view.select([clip])
    qtbot.waitUntil(lambda: any("not found" in m.text or "was not found" in m.text
                                for m in w.messages.history[before:]), timeout=10_000)
    qtbot.wait(800)
    said = [m.text for m in w.messages.history[before:] if m.level != "info"]
    assert len(said) == 1 and said[0].startswith("Could not read the input 'ball_rolls_right.mp4'"), said
    # Scrubbed over again and again: said once while it stays the same trouble.
    for t in (0.2, 0.4, 0.6):
        w.timeline.view.set_playhead(t, emit=True)
    qtbot.wait(800)
    assert len([m for m in w.messages.history[before:] if m.level != "info"]) == 1
