"""A studio users can trust: it asks before losing work, offers the autosave after a crash, and its
viewer, thumbnails and versions always show the current state. No model needed (see
test_studio_jobs.py for what needs one)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from app.core.request import Task
from app.media import project_file as pf
from app.ui.project_actions import SaveChoice
from tests.ui.helpers import SAMPLE_IMAGE, SAMPLE_VIDEO, choose_task, import_and_wait, make_window


def _saved_project_with_one_clip(qtbot, tmp_path, name="kept.mcproj"):
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    path = tmp_path / "saved" / name
    assert w.save_as(str(path))
    return w, clip, path


# ------------------------------------------------------------------------------------ asking before losing work

def _saved_project_with_an_autosaved_change(qtbot, tmp_path, monkeypatch, words: str):
    """A saved project of one clip, its instruction then changed to `words` and autosaved (a recovery copy written):
    (the window, the clip's id, the project's path)."""
    from app.ui import project_actions

    monkeypatch.setattr(project_actions, "AUTOSAVE_DELAY_S", 0.2)
    w, clip, path = _saved_project_with_one_clip(qtbot, tmp_path)
    w.settings.autosave_minutes = 5
    w.document.push(w.document.project.set_clip_instruction_change(clip, words))
    qtbot.waitUntil(lambda: bool(pf.find_recoveries(tmp_path / "recovery")), timeout=10_000)
    return w, clip, path

def test_new_with_unsaved_changes_asks_and_cancel_keeps_everything(qtbot, tmp_path, save_changes_answers):
    w, clip, _ = _saved_project_with_one_clip(qtbot, tmp_path)
    w.document.push(w.document.project.remove_clip_change(clip))  # the change a user could lose
    save_changes_answers.next = SaveChoice.CANCEL
    assert not w.files.new_project()
    assert save_changes_answers.asked == ["kept.mcproj"]
    assert w.document.dirty and not w.document.project.tracks["image"]  # the unsaved state is still there
    save_changes_answers.next = SaveChoice.DISCARD
    assert w.files.new_project()
    assert not w.document.dirty and not w.document.project.media


def test_quit_with_unsaved_changes_asks_and_save_writes_them(qtbot, tmp_path, save_changes_answers):
    w, clip, path = _saved_project_with_one_clip(qtbot, tmp_path)
    w.document.push(w.document.project.remove_clip_change(clip))
    save_changes_answers.next = SaveChoice.CANCEL
    assert not w.close()  # Cancel: the window stays open with its changes
    assert w.isVisible() and w.document.dirty
    save_changes_answers.next = SaveChoice.SAVE
    assert w.close()
    assert not pf.open_project(path).tracks["image"]  # the deletion was saved, not lost


def test_an_untitled_project_saved_from_the_question_goes_where_the_user_says(qtbot, tmp_path, save_changes_answers):
    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    other, _, other_path = _saved_project_with_one_clip(qtbot, tmp_path, "other.mcproj")
    save_changes_answers.next = SaveChoice.SAVE
    save_changes_answers.save_path = None  # the user closes the Save dialog: nothing is replaced
    assert not w.open_project(str(other_path))
    assert w.document.dirty and w.document.path is None
    save_changes_answers.save_path = str(tmp_path / "named" / "mine.mcproj")
    assert w.open_project(str(other_path))
    assert w.document.path == str(other_path)
    assert len(pf.open_project(tmp_path / "named" / "mine.mcproj").media) == 1


def test_a_project_that_fails_to_open_leaves_the_open_one_untouched(qtbot, tmp_path, save_changes_answers):
    w, clip, path = _saved_project_with_one_clip(qtbot, tmp_path)
    bad = tmp_path / "bad" / "outside.mcproj"
    bad.parent.mkdir()
    doc = json.loads(path.read_text())
    next(iter(doc["project"]["media"].values()))["path"] = "../../etc/passwd"
    bad.write_text(json.dumps(doc))
    w.document.push(w.document.project.remove_clip_change(clip))
    assert not w.open_project(str(bad))
    assert "Could not open the project" in w.messages.errors()[-1] and "media folder" in w.messages.errors()[-1]
    assert save_changes_answers.asked == []  # nothing to decide: the file was refused first
    assert w.document.path == str(path) and w.document.dirty


# ------------------------------------------------------------------------------------ autosave and crash recovery
def test_changes_reach_a_recovery_copy_within_seconds_and_a_crash_offers_it(qtbot, tmp_path, monkeypatch):
    from app.ui import project_actions

    monkeypatch.setattr(project_actions, "AUTOSAVE_DELAY_S", 0.2)
    w = make_window(qtbot, tmp_path)
    w.settings.autosave_minutes = 5
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    w.document.push(w.document.project.set_clip_instruction_change(clip, "make the circle green"))
    qtbot.waitUntil(lambda: bool(pf.find_recoveries(tmp_path / "recovery")), timeout=10_000)
    # A crash: the window never closes cleanly. The next launch offers the copy, and it has the work.
    w2 = make_window(qtbot, tmp_path, offer_recovery=True)
    qtbot.waitUntil(lambda: bool(w2.files.pending_recoveries), timeout=5000)
    assert w2.banner.isVisible() and "did not close cleanly" in w2.banner.label.text()
    assert w2.banner.action_button.text() == "Recover"
    assert w2.files.recover(w2.files.pending_recoveries[0])
    assert w2.document.project.clip(clip).instruction == "make the circle green"
    assert w2.document.dirty  # recovered work is unsaved until the user saves it


def test_a_crashed_projects_changes_survive_opening_it_editing_it_and_quitting(qtbot, tmp_path, monkeypatch):
    """After a crash the user opens the project from File ▸ Open instead of clicking Recover: the offer stays
    (and says the open project lacks the changes), this session's autosaves do not overwrite the crashed copy, a
    clean quit does not delete it, and the next launch still recovers the crashed session's work."""
    w, clip, path = _saved_project_with_an_autosaved_change(qtbot, tmp_path, monkeypatch, "make the circle green")
    # A crash: w never closes. The next launch offers the copy; the user opens the project instead.
    w2 = make_window(qtbot, tmp_path, offer_recovery=True)
    qtbot.waitUntil(lambda: bool(w2.files.pending_recoveries), timeout=5000)
    assert w2.open_project(str(path))
    assert w2.banner.action_button.isVisible() and w2.banner.action_button.text() == "Recover"
    assert "not saved" in w2.banner.label.text()
    w2.settings.autosave_minutes = 5
    w2.document.push(w2.document.project.set_clip_instruction_change(clip, "remove the star"))
    qtbot.waitUntil(lambda: len(pf.find_recoveries(tmp_path / "recovery")) == 2, timeout=10_000)
    assert w2.save_as(str(path))  # this session's work saved: the crashed one's is still not taken
    assert w2.close()
    found = pf.find_recoveries(tmp_path / "recovery")
    assert [pf.load_recovery(r).clip(clip).instruction for r in found] == ["make the circle green"]
    w3 = make_window(qtbot, tmp_path, offer_recovery=True)
    qtbot.waitUntil(lambda: bool(w3.files.pending_recoveries), timeout=5000)
    assert w3.files.recover(w3.files.pending_recoveries[0])
    assert w3.document.project.clip(clip).instruction == "make the circle green"
    # Taken: the set-aside copy is gone, its work in this session's own recovery copy (the document is unsaved).
    again = pf.find_recoveries(tmp_path / "recovery")
    assert [pf.load_recovery(r).clip(clip).instruction for r in again] == ["make the circle green"]
    assert not any(pf.CRASHED in r.path.name for r in again)


def test_the_recover_offer_on_open_outlasts_a_missing_media_warning(qtbot, tmp_path, monkeypatch):
    w, clip, path = _saved_project_with_an_autosaved_change(qtbot, tmp_path, monkeypatch, "make the circle green")
    for media in pf.media_dir(path).iterdir():  # the project's media gone as well
        media.unlink()
    w2 = make_window(qtbot, tmp_path, offer_recovery=True)
    qtbot.waitUntil(lambda: bool(w2.files.pending_recoveries), timeout=5000)
    assert w2.open_project(str(path))
    assert any("missing" in m.text for m in w2.messages.history)
    assert w2.banner.action_button.isVisible() and w2.banner.action_button.text() == "Recover"


def test_opening_the_open_project_after_saving_it_in_the_question_shows_what_was_saved(
        qtbot, tmp_path, save_changes_answers):
    """Open of the project already open, with unsaved changes, answered "Save": the project opened is the one
    just saved, not the file as it was before (whose next save would have undone the work)."""
    w, clip, path = _saved_project_with_one_clip(qtbot, tmp_path)
    w.document.push(w.document.project.set_clip_instruction_change(clip, "make the circle green"))
    save_changes_answers.next = SaveChoice.SAVE
    assert w.open_project(str(path))
    assert w.document.project.clip(clip).instruction == "make the circle green" and not w.document.dirty


def test_a_clean_quit_leaves_no_recovery_to_offer(qtbot, tmp_path, monkeypatch):
    w, clip, path = _saved_project_with_an_autosaved_change(qtbot, tmp_path, monkeypatch, "x")
    assert w.save_as(str(path))
    assert w.close()
    assert not pf.find_recoveries(tmp_path / "recovery")


# ------------------------------------------------------------------------------------ the viewer shows the current state
def _shown(w):
    return w.last_frame


def test_viewer_follows_undo_deselect_delete_and_open(qtbot, tmp_path):
    from app.media.probe import load_image

    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    original = load_image(SAMPLE_IMAGE)
    qtbot.waitUntil(lambda: _shown(w) is not None and np.array_equal(_shown(w), original))
    # A result lands as v1 (written through the media layer, as a finished job's is).
    v1 = np.zeros_like(original)
    v1[..., 1] = 200
    change = pf.store_result(w.document.project, w.work_path(), clip_id, v1, request={"task": "image_edit",
                             "instruction": "make it green", "seed": 7, "steps": 4})
    w.document.push(change)
    qtbot.waitUntil(lambda: np.array_equal(_shown(w), v1), timeout=5000)
    assert w.versions.count() == 2
    qtbot.waitUntil(lambda: bool(w.timeline.view.clip(clip_id).thumbnails) and
                    w.timeline.view.clip(clip_id).media_id == w.document.project.clip(clip_id).active.media_id)
    # Undo: the version is gone from the panel AND from the viewer and the timeline strip.
    w.act_undo.trigger()
    assert w.versions.count() == 1
    qtbot.waitUntil(lambda: np.array_equal(_shown(w), original), timeout=5000)
    assert w.timeline.view.clip(clip_id).media_id == w.document.project.clip(clip_id).media_id
    # Redo: the result's media-bin icon comes back at once, not blank.
    w.act_redo.trigger()
    result_media = w.document.project.clip(clip_id).active.media_id
    qtbot.waitUntil(lambda: w.media_bin.has_icon(result_media), timeout=5000)
    # Deselect: no clip, no frame.
    w.timeline.view.select([])
    qtbot.waitUntil(lambda: _shown(w) is None and w.viewer.canvas.frame is None, timeout=5000)
    # Delete the clip while it is shown: the frame goes with it.
    w.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: _shown(w) is not None)
    w.timeline.view.setFocus()
    w.remove_selected_clip()
    qtbot.waitUntil(lambda: _shown(w) is None and w.viewer.canvas.frame is None, timeout=5000)
    # Open another project: nothing of this one stays on screen.
    w.act_undo.trigger()
    w.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: _shown(w) is not None)
    other = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, other, SAMPLE_VIDEO)
    path = tmp_path / "o" / "o.mcproj"
    assert other.save_as(str(path))
    assert w.open_project(str(path))
    qtbot.waitUntil(lambda: _shown(w) is None and w.viewer.canvas.frame is None, timeout=5000)
    assert w.versions.count() == 0


def test_a_missing_media_file_shows_nothing_and_says_so(qtbot, tmp_path):
    w, clip, path = _saved_project_with_one_clip(qtbot, tmp_path)
    w.timeline.view.select([])
    media = w.media_file(w.document.project.clip(clip).media_id)
    os.remove(media)
    w.timeline.view.select([clip])
    qtbot.waitUntil(lambda: any(media.name in m or "not found" in m.lower() or "missing" in m.lower()
                                for m in [x.text for x in w.messages.history]), timeout=5000)
    assert _shown(w) is None and w.viewer.canvas.frame is None


# ------------------------------------------------------------------------------------ each clip its own instruction and task
def test_each_clip_keeps_its_own_instruction_and_task(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    a = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    w.instruction.set_text("make the circle green")
    choose_task(w, Task.IMAGE_TO_VIDEO)
    b = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    assert w.instruction.text() == ""  # the text did not carry over to the next clip
    assert w.instruction.chosen_task() is Task.IMAGE_EDIT
    w.instruction.set_text("make the circle blue")
    w.timeline.view.select([a])
    assert w.instruction.text() == "make the circle green"
    assert w.instruction.chosen_task() is Task.IMAGE_TO_VIDEO
    w.timeline.view.select([b])
    assert w.instruction.text() == "make the circle blue"
    w.timeline.view.select([])
    assert w.instruction.text() == "" and w.instruction.chosen_task() is Task.TEXT_TO_IMAGE


def test_a_text_to_image_clip_is_varied_not_edited_by_the_next_generate(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    made = np.full((32, 32, 3), 90, np.uint8)
    change = pf.store_result(w.document.project, w.work_path(), None, made,
                             request={"task": "text_to_image", "instruction": "a red circle", "seed": 3, "steps": 12})
    w.document.push(change)
    clip = w.document.project.tracks["image"][0]
    w.timeline.view.select([clip.id])
    assert w.studio.task is Task.TEXT_TO_IMAGE and w.instruction.text() == "a red circle"
    assert w.timeline.view.clip(clip.id).name.startswith("a red circle")  # named by what made it
    # The request a Generate makes now is a variation: no input image, the same words.
    request = w.studio.build_request()
    assert request.task is Task.TEXT_TO_IMAGE and not request.images and request.instruction == "a red circle"


def test_an_empty_instruction_is_refused_for_every_task():
    from app.core.request import GenerationRequest

    image = np.zeros((8, 8, 3), np.uint8)
    for task in Task:
        r = GenerationRequest(task=task, instruction="   ", images=[image, image], video=np.zeros((2, 8, 8, 3), np.uint8),
                              frames=2 if task.makes_video else 1)
        with pytest.raises(ValueError, match="Type an instruction"):
            r.validate()


# ------------------------------------------------------------------------------------ versions
def test_versions_show_seed_picture_and_use_these_settings_again(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    result = np.zeros((64, 64, 3), np.uint8)
    w.document.push(pf.store_result(w.document.project, w.work_path(), clip_id, result,
                                    request={"task": "image_to_video", "instruction": "make it green", "seed": 1234,
                                             "steps": 6, "guidance": 2.5, "width": 64, "height": 48, "frames": 1}))
    text = w.versions.list.item(1).text()
    name = w.document.project.media_item(w.document.project.clip(clip_id).media_id).name
    assert "seed 1234" in text and "make it green" in text and name in text  # the clip keeps its own name
    qtbot.waitUntil(lambda: not w.versions.list.item(1).icon().isNull(), timeout=5000)
    w.versions.list.setCurrentRow(1)
    w.versions.reuse_button.click()
    g = w.generation
    assert (g.seed.value(), g.steps.value(), g.guidance.value(), g.width_box.value(), g.height_box.value()) == \
        (1234, 6, 2.5, 64, 48)
    assert w.instruction.text() == "make it green" and w.instruction.chosen_task() is Task.IMAGE_TO_VIDEO


def test_the_track_export_says_which_image_clips_it_leaves_out(qtbot, tmp_path):
    from app.media.probe import probe_video

    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_VIDEO)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    out = tmp_path / "track.mp4"
    with qtbot.waitSignal(w.export_done, timeout=60_000):
        w.exports.export_track(str(out))
    assert probe_video(out).frames > 0
    assert "1 clip(s) on the image track are not in it" in w.messages.history[-1].text


def test_main_py_with_a_project_path_opens_it(tmp_path, monkeypatch):
    from app import cli
    from app.ui import studio

    seen = {}
    monkeypatch.setattr(studio, "run_studio", lambda argv, model_path=None: seen.setdefault("argv", argv) and 0)
    cli.main([str(tmp_path / "p.mcproj")])
    assert seen["argv"][1:] == [str(tmp_path / "p.mcproj")]


def test_no_picture_is_decoded_on_the_gui_thread(qtbot, tmp_path, monkeypatch):
    """A 56 MP photo froze the GUI for 3.3 s when the live plan decoded it there: every decode of a
    frame, an input or a thumbnail happens in a worker thread, at a bounded size."""
    import threading

    from app.media import probe

    calls = []
    for name in ("load_image", "load_preview", "read_frame", "read_video_frames", "thumbnail", "iter_video_frames"):
        real = getattr(probe, name)

        def spy(*a, _real=real, _name=name, **kw):
            calls.append((_name, threading.current_thread() is threading.main_thread(), kw.get("max_side")))
            return _real(*a, **kw)
        monkeypatch.setattr(probe, name, spy)
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    w.instruction.set_text("make the circle green")
    qtbot.waitUntil(lambda: w.last_frame is not None)
    qtbot.waitUntil(lambda: any(name == "load_preview" and side == 512 for name, _, side in calls), timeout=5000)
    video = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    w.timeline.view.select([video])
    qtbot.waitUntil(lambda: bool(w.timeline.view.clip(video).thumbnails), timeout=10_000)
    w.timeline.view.select([clip])
    qtbot.wait(200)
    assert calls and not [c for c in calls if c[1]], calls


def test_quitting_while_an_export_runs_asks_first_and_keep_working_lets_it_finish(qtbot, tmp_path, monkeypatch,
                                                                                  save_changes_answers):
    """Quit stopped a running export without a word (a ten-minute clip's export lost at 90 %). It now asks, as for
    running jobs: Keep working leaves the studio open and the export running; Stop it quits and writes nothing."""
    import threading

    import app.media.export as export
    from app.media.errors import ExportCancelled

    started, release = threading.Event(), threading.Event()
    real = export.export_video

    def slow_export(frames, path, *a, cancel=None, **k):  # a long export: runs until released or cancelled
        started.set()
        while not release.is_set():
            if cancel is not None and cancel.is_set():
                raise ExportCancelled("Export cancelled.")
            release.wait(0.01)
        return real(frames, path, *a, cancel=cancel, **k)

    monkeypatch.setattr(export, "export_video", slow_export)
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    out = tmp_path / "long.mp4"
    w.exports.export_clip(str(out), clip)
    qtbot.waitUntil(started.is_set, timeout=10_000)
    save_changes_answers.stop_export = False
    assert not w.close()  # Keep working
    assert save_changes_answers.export_asked == 1 and w.isVisible() and w.exports.exporting
    release.set()
    qtbot.waitUntil(lambda: not w.exports.exporting, timeout=30_000)
    assert out.exists()  # it finished

    started.clear(), release.clear()
    w.exports.export_clip(str(tmp_path / "second.mp4"), clip)
    qtbot.waitUntil(started.is_set, timeout=10_000)
    save_changes_answers.stop_export = True
    assert w.close()  # Stop it
    qtbot.waitUntil(lambda: not w.exports.exporting, timeout=30_000)
    assert save_changes_answers.export_asked == 2 and not (tmp_path / "second.mp4").exists()


def test_words_typed_for_a_clip_are_saved_with_it_undoable_and_asked_about_on_close(qtbot, tmp_path,
                                                                                    save_changes_answers):
    """Words typed for a clip but not yet generated were the studio's alone: the project was not marked changed,
    Save wrote the old words, a close did not ask and a crash's recovery copy lacked them. They are the clip's
    once typing pauses (one undo step a burst), and at once before a save or a close."""
    from app.ui import studio_model

    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    path = tmp_path / "typed.mcproj"
    assert w.files.save_as(str(path)) and not w.document.dirty
    w.timeline.view.select([clip])
    w.instruction.edit.setFocus()
    qtbot.keyClicks(w.instruction.edit, "make the circle green")
    qtbot.waitUntil(lambda: w.document.dirty, timeout=studio_model.TYPED_STORE_MS + 2000)  # the pause stored them
    assert "*" in w.windowTitle()
    qtbot.keyClicks(w.instruction.edit, " and move it left")  # typed again before a save: stored by the save
    assert w.files.save_as(str(path))
    both = "make the circle green and move it left"
    assert pf.open_project(str(path)).clip(clip).instruction == both
    qtbot.keyClicks(w.instruction.edit, " and make it big")
    qtbot.waitUntil(lambda: w.document.dirty, timeout=studio_model.TYPED_STORE_MS + 2000)
    # The bursts before the save are one undo step (merged), the one after it another; the box follows.
    w.document.undo_stack.undo()
    assert w.document.project.clip(clip).instruction == both
    assert w.instruction.edit.toPlainText() == both and w.studio.instruction == both
    w.document.undo_stack.undo()
    assert w.document.project.clip(clip).instruction == "" and w.instruction.edit.toPlainText() == ""
    w.document.undo_stack.redo()
    w.document.undo_stack.redo()
    assert w.instruction.edit.toPlainText() == both + " and make it big"
    # Unsaved words: closing asks, and saving there keeps them.
    save_changes_answers.next = SaveChoice.SAVE
    assert w.close()
    assert save_changes_answers.asked == ["typed.mcproj"]
    assert pf.open_project(str(path)).clip(clip).instruction == both + " and make it big"


def test_words_still_pending_go_in_before_an_undo_or_a_removal(qtbot, tmp_path):
    """Words typed less than a pause ago were not yet a step: Undo took back the step before them and the words, stored
    at the pause, then ended the redo; a clip removed before the pause and brought back by Undo pushed its words from
    inside the undo, leaving the stack's index wrong (the next redos removed the clip twice and failed). Pending words
    now go in first: Undo takes back the typing, and a removal comes after the words it removes."""
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    w.document.push(w.document.project.rename_change("renamed"))
    w.timeline.view.select([clip])
    w.instruction.edit.setFocus()
    qtbot.keyClicks(w.instruction.edit, "make the circle green")
    w.act_undo.trigger()  # before the pause
    assert w.document.project.clip(clip).instruction == "" and w.instruction.edit.toPlainText() == ""
    assert w.document.project.name == "renamed"  # the step before the typing stays
    w.act_redo.trigger()
    assert w.document.project.clip(clip).instruction == "make the circle green"
    # Words typed, the clip removed before the pause, the removal undone and redone.
    qtbot.keyClicks(w.instruction.edit, " and big")
    w.timeline.view.setFocus()
    w.remove_selected_clip()
    assert not w.studio.has_clip(clip)
    w.act_undo.trigger()
    assert w.studio.has_clip(clip) and w.document.project.clip(clip).instruction == "make the circle green and big"
    stack = w.document.undo_stack
    assert stack.index() == stack.count() - 1 and stack.canRedo()  # the removal, ready to redo: nothing pushed inside
    w.act_redo.trigger()
    assert not w.studio.has_clip(clip)
    w.act_undo.trigger()
    w.act_undo.trigger()  # the words typed since the last save, in one step (merged)
    assert w.document.project.clip(clip).instruction == "" and w.instruction.edit.toPlainText() == ""
    qtbot.wait(studio_model_typed_ms() + 300)  # no pause stores anything behind the user's back
    assert stack.canRedo() and w.document.project.clip(clip).instruction == ""


def studio_model_typed_ms() -> int:
    from app.ui.studio_model import TYPED_STORE_MS

    return TYPED_STORE_MS


def test_typed_then_deleted_words_leave_no_step(qtbot, tmp_path):
    """Words typed, stored at a pause, then deleted again left an empty undo step and a project marked changed."""
    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    assert w.files.save_as(str(tmp_path / "p.mcproj"))
    w.timeline.view.select([clip])
    w.instruction.edit.setFocus()
    qtbot.keyClicks(w.instruction.edit, "blue")
    w.studio.store_typed()
    assert w.document.dirty
    w.instruction.edit.clear()
    w.studio.store_typed()
    assert not w.document.dirty and w.document.project.clip(clip).instruction == ""


def test_words_typed_for_a_new_generation_or_for_stills_picked_together_are_saved(qtbot, tmp_path):
    """Words typed with nothing selected (a new generation) or with two stills selected (a reference video's) were
    no clip's, so no save, autosave or close kept them: a long prompt was lost at the next launch. They are the
    project's, one undoable step a burst as a clip's words are, and come back with it."""
    w = make_window(qtbot, tmp_path)
    a = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    b = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    path = tmp_path / "words.mcproj"
    assert w.files.save_as(str(path))
    w.timeline.view.select([])
    w.instruction.edit.setFocus()
    qtbot.keyClicks(w.instruction.edit, "a red circle on the left")
    w.timeline.view.select([a, b])
    qtbot.keyClicks(w.instruction.edit, "the circle moves right")
    assert w.files.save_as(str(path))  # a save stores what is typed, pause or not
    saved = pf.open_project(str(path))
    assert saved.target_words == {"": "a red circle on the left", f"{a}+{b}": "the circle moves right"}
    # Undo takes the words back, and the box shows it.
    w.act_undo.trigger()
    assert w.instruction.edit.toPlainText() == ""
    w.act_redo.trigger()
    assert w.instruction.edit.toPlainText() == "the circle moves right"
    # Reopened, each target's words are in the box again.
    assert w.open_project(str(path))
    w.timeline.view.select([])
    assert w.instruction.edit.toPlainText() == "a red circle on the left"
    w.timeline.view.select([a, b])
    assert w.instruction.edit.toPlainText() == "the circle moves right"
    # Words of a pick whose clip is gone are not saved (no clip can be picked so again).
    w.timeline.view.select([b])
    w.timeline.view.setFocus()
    w.remove_selected_clip()
    assert not w.studio.has_clip(b)
    assert w.files.save_as(str(path))
    assert pf.open_project(str(path)).target_words == {"": "a red circle on the left"}


def test_closing_with_save_when_the_projects_own_file_cannot_be_written_asks_where_else(qtbot, tmp_path,
                                                                                      save_changes_answers,
                                                                                      monkeypatch):
    """Close ▸ Save wrote to the project's own file again in a folder that had turned read-only, failed, and
    cancelled the close: the user had to find Save As. It asks where else to save, once."""
    from app.media.errors import ProjectError

    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    stuck = tmp_path / "stuck" / "p.mcproj"
    stuck.parent.mkdir()
    assert w.files.save_as(str(stuck))
    real = pf.save_project

    def read_only(project, path, *a, **k):
        if str(path).startswith(str(stuck.parent)):
            raise ProjectError(f"Could not save '{path}': [Errno 30] Read-only file system. The previous save is "
                               f"unchanged.")
        return real(project, path, *a, **k)

    monkeypatch.setattr(pf, "save_project", read_only)
    w.document.push(w.document.project.rename_change("renamed"))
    elsewhere = tmp_path / "elsewhere" / "p.mcproj"
    elsewhere.parent.mkdir()
    save_changes_answers.next, save_changes_answers.save_path = SaveChoice.SAVE, str(elsewhere)
    assert w.close()
    assert pf.open_project(str(elsewhere)).name == "renamed"


def test_a_name_given_without_the_project_ending_never_replaces_an_existing_project(qtbot, tmp_path):
    """The ending was added after the save dialog closed, so its "Replace?" question saw "MyProj" and the save then
    replaced MyProj.mcproj unasked (a name such as "plan.v2", which Qt's default ending leaves alone, too). Such a
    name is saved only where nothing is; an existing project is kept and the user told."""
    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    for typed in ("MyProj", "plan.v2"):
        theirs = tmp_path / f"{typed}.mcproj"
        theirs.write_text("their project")
        assert not w.files.save_as(str(tmp_path / typed))
        assert theirs.read_text() == "their project"
        assert "already exists" in w.messages.errors()[-1]
    assert w.files.save_as(str(tmp_path / "fresh"))  # nothing there: saved under the ending
    assert (tmp_path / "fresh.mcproj").is_file()
    assert w.files.save_as(str(tmp_path / "MyProj.mcproj"))  # a name the dialog confirmed is replaced
    assert len(pf.open_project(str(tmp_path / "MyProj.mcproj")).tracks["image"]) == 1


def _import_held(qtbot, w, monkeypatch):
    """Start importing SAMPLE_IMAGE with its copy held until the returned event is set."""
    import threading

    go_on, real = threading.Event(), pf.import_media

    def held(*a, **k):
        go_on.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(pf, "import_media", held)
    w.import_files([str(SAMPLE_IMAGE)])
    return go_on


def test_an_import_running_through_a_save_as_lands_with_its_file_in_the_new_folder(qtbot, tmp_path, monkeypatch):
    """Save As while an import copied its file into the untitled folder: the item landed in the saved project and
    its file was only in the old folder (the reopened project missed it). The file is copied over first."""
    w = make_window(qtbot, tmp_path)
    go_on = _import_held(qtbot, w, monkeypatch)
    path = tmp_path / "saved" / "My Proj.mcproj"
    assert w.files.save_as(str(path))
    go_on.set()
    qtbot.waitUntil(lambda: bool(w.document.project.tracks["image"]), timeout=10_000)
    assert w.files.save_as(str(path))
    reopened = pf.open_project(str(path))
    assert len(reopened.media) == 1 and not pf.missing_media(reopened, path)


def test_an_import_running_through_open_or_new_does_not_land_in_the_next_project(qtbot, tmp_path, monkeypatch,
                                                                                   save_changes_answers):
    """New (or Open) while an import ran: the item was added to the next project, its file in the old folder."""
    w = make_window(qtbot, tmp_path)
    go_on = _import_held(qtbot, w, monkeypatch)
    assert w.files.new_project()
    go_on.set()
    qtbot.waitUntil(lambda: "finished after its project was closed" in (w.messages.history[-1].text
                                                                          if w.messages.history else ""),
                    timeout=10_000)
    assert not w.document.project.media and not any(w.document.project.tracks.values())


def test_an_import_undone_before_a_save_as_and_redone_after_it_keeps_its_file(qtbot, tmp_path):
    """Save As copies the media the project holds; an import undone before it was not held, so its Redo brought
    back an item whose file was never copied (the reopened project missed it)."""
    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    w.act_undo.trigger()
    assert not w.document.project.media
    path = tmp_path / "saved" / "p.mcproj"
    assert w.files.save_as(str(path))
    w.act_redo.trigger()
    assert len(w.document.project.media) == 1
    assert w.files.save_as(str(path))
    reopened = pf.open_project(str(path))
    assert len(reopened.media) == 1 and not pf.missing_media(reopened, path)


def test_saving_over_a_project_file_another_window_saved_asks_first(qtbot, tmp_path, save_changes_answers):
    """Two windows on one project: each Save replaced the file, so the last save silently threw away the other's.
    A save over a file changed on disk since this window opened or saved it asks; Cancel keeps the other's."""
    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    path = tmp_path / "shared.mcproj"
    assert w.files.save_as(str(path))
    other = make_window(qtbot, tmp_path)
    assert other.open_project(str(path))
    other.document.push(other.document.project.rename_change("saved by the other window"))
    assert other.files.save()  # unchanged on disk since it opened it: no question
    assert save_changes_answers.changed_asked == []
    w.document.push(w.document.project.rename_change("this window's"))
    assert not w.files.save()  # Cancel
    assert save_changes_answers.changed_asked == ["shared.mcproj"]
    assert pf.open_project(str(path)).name == "saved by the other window" and w.document.dirty
    assert "Save As" in w.messages.history[-1].text
    save_changes_answers.replace_changed = True
    assert w.files.save() and pf.open_project(str(path)).name == "this window's"
    w.document.push(w.document.project.rename_change("again"))
    assert w.files.save() and len(save_changes_answers.changed_asked) == 2  # its own save changed nothing to ask


def test_a_changed_project_file_of_the_same_size_and_time_still_asks(qtbot, tmp_path, save_changes_answers):
    """The changed-on-disk check read modification time and size: another save of the same length within the
    file system's time resolution (here: a sync tool putting the old time back) passed unasked and was lost."""
    w = make_window(qtbot, tmp_path)
    path = tmp_path / "shared.mcproj"
    w.document.push(w.document.project.rename_change("name A"))
    assert w.files.save_as(str(path))
    before = os.stat(path)
    text = path.read_text(encoding="utf-8")
    assert '"name A"' in text
    path.write_text(text.replace('"name A"', '"name B"'), encoding="utf-8")  # the other's save, same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    w.document.push(w.document.project.rename_change("this window's"))
    assert not w.files.save()  # Cancel
    assert save_changes_answers.changed_asked == ["shared.mcproj"]
    assert pf.open_project(str(path)).name == "name B"


def test_a_project_opened_through_a_link_is_the_real_file(qtbot, tmp_path):
    """Opened through a link elsewhere (a desktop shortcut), the project's media were looked for beside the link
    (all missing), and a save replaced the link with a copy, the real file left as it was."""
    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    real = tmp_path / "projects" / "real.mcproj"
    assert w.files.save_as(str(real))
    desktop = tmp_path / "desktop"
    desktop.mkdir()
    link = desktop / "shortcut.mcproj"
    link.symlink_to(real)
    other = make_window(qtbot, tmp_path)
    assert other.open_project(str(link))
    assert not other.messages.errors() and not any("missing" in m.text for m in other.messages.history)
    other.document.push(other.document.project.rename_change("saved through the link"))
    assert other.files.save()
    assert link.is_symlink() and pf.open_project(str(real)).name == "saved through the link"


def test_a_project_opened_by_its_folder_is_the_file_inside(qtbot, tmp_path):
    """Opened by its folder (a drop, a path typed), the project's media were looked for beside the folder (every
    clip offline) and a save wrote a second project there, the real one left as it was."""
    w = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, w, SAMPLE_IMAGE)
    real = tmp_path / "Holiday" / "Holiday.mcproj"
    assert w.files.save_as(str(real))
    other = make_window(qtbot, tmp_path)
    assert other.open_project(str(real.parent))
    assert other.document.path == str(real)
    assert not other.messages.errors() and not any("missing" in m.text for m in other.messages.history)
    other.document.push(other.document.project.rename_change("saved from the folder"))
    assert other.files.save()
    assert pf.open_project(str(real)).name == "saved from the folder"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mcproj") == []


def test_a_crashed_studios_copy_once_recovered_and_saved_is_not_offered_again(qtbot, tmp_path):
    """Each studio writes its own recovery copy (tagged with its process): the copy of a studio that crashed was not
    this session's to clear, so once recovered and saved it was offered again at every launch, older than the save."""
    import subprocess
    import sys

    w = make_window(qtbot, tmp_path)
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    path = tmp_path / "p.mcproj"
    assert w.files.save_as(str(path))
    w.document.project.set_clip_instruction(clip, "make the circle green")
    ended = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                               text=True).stdout)
    mine = pf.write_recovery(w.document.project, path, root=tmp_path / "recovery")
    crashed = pf.autosave_path(path, root=tmp_path / "recovery", writer=ended)
    mine.rename(crashed)  # as the crashed studio left it
    w2 = make_window(qtbot, tmp_path, offer_recovery=True)
    qtbot.waitUntil(lambda: bool(w2.files.pending_recoveries), timeout=5000)
    assert w2.files.recover(w2.files.pending_recoveries[0])
    assert w2.document.project.clip(clip).instruction == "make the circle green"
    assert w2.files.save_as(str(path))
    assert pf.find_recoveries(tmp_path / "recovery") == []
