"""Jobs in the studio with the real embedded model: Generate pressed while the model loads waits for it
and runs with its settings; the progress bar tells what a job is doing; a version's stored plan comes
back when the version is shown."""
from __future__ import annotations

import pytest

from app.ui.studio_state import JobState
from tests.ui.helpers import MODEL, SAMPLE_IMAGE, import_and_wait, make_window

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="the embedded default model is not built"),
]


def test_generate_pressed_while_the_model_loads_runs_once_it_is_ready_with_its_settings(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    assert not w.model_ready
    w.instruction.set_text("a red circle")
    assert w.generate() is None  # not refused and not run with the settings from before the load
    assert "starts as soon as it is ready" in w.messages.history[-1].text
    with qtbot.waitSignal(w.result_stored, timeout=120_000) as stored:
        pass
    clip = w.document.project.clip(stored.args[0])
    request = clip.versions[0].request
    defaults = w.engine.model_defaults
    assert (request["width"], request["height"], request["steps"]) == (defaults.width, defaults.height, defaults.steps)
    item = w.document.project.media_item(clip.media_id)
    assert (item.width, item.height) == (defaults.width, defaults.height)  # not the 32x32 of before the load
    w.shutdown()


def test_progress_says_what_the_job_does_and_stored_plans_come_back(qtbot, tmp_path, monkeypatch):
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.instruction.set_text("a blue square on the left")
    w.generation.steps.setValue(200)
    first = w.generate()
    qtbot.waitUntil(lambda: first in w.jobs and w.jobs[first].state is JobState.RUNNING, timeout=30_000)
    assert w.generation.progress.format() != "idle" and f"#{first}" in w.generation.progress.format()
    w.studio.cancel_running()
    qtbot.waitUntil(lambda: not w.jobs, timeout=30_000)
    assert w.generation.progress.format() == "idle"
    # Two versions, each with its plan; showing v1 shows the plan stored with it.
    w.generation.steps.setValue(2)
    with qtbot.waitSignal(w.result_stored, timeout=60_000) as made:
        w.generate()
    clip_id = made.args[0]
    w.instruction.set_text("a green triangle on the right")
    import app.ui.studio_model as studio_model
    reads: list = []
    monkeypatch.setattr(studio_model, "load_plan", lambda path, read=studio_model.load_plan: reads.append(path)
                        or read(path))
    shown: list = []
    monkeypatch.setattr(w.versions, "set_versions", lambda *a, show=w.versions.set_versions, **k: shown.append(a)
                        or show(*a, **k))
    with qtbot.waitSignal(w.result_stored, timeout=60_000):
        w.generate()
        shown.clear()  # the press's own change (the clip keeps the words it was made from) is not the landing
    clip = w.document.project.clip(clip_id)
    assert len(clip.versions) == 2 and all(v.plan for v in clip.versions)
    # The landing redraws the panels that show the selection once (each time is GUI time as the result lands),
    # and what they show is the new version.
    assert len(shown) == 1 and [v.id for v in shown[0][0]] == [v.id for v in clip.versions] and shown[0][1] == 1
    qtbot.waitUntil(lambda: w.studio.plan_caption == "Plan stored with v1", timeout=10_000)
    qtbot.wait(300)
    assert len(reads) == 1  # the new version's plan is read (and drawn) once as it lands, not once per signal
    w.versions.activate.emit(0)
    qtbot.waitUntil(lambda: w.studio.plan_caption == "Plan stored with Original", timeout=10_000)
    qtbot.wait(1000)  # the version clicked keeps its own plan: no live plan of the typed words replaces it
    assert w.studio.plan_caption == "Plan stored with Original" and w.current_plan is not None
    # A stored plan whose read ends after the user typed new words is not shown over their live plan.
    import threading

    go_on, read = threading.Event(), studio_model.load_plan
    monkeypatch.setattr(studio_model, "load_plan", lambda path: go_on.wait(30) and read(path))
    w.versions.activate.emit(1)
    w.instruction.set_text("a red circle at the top")
    qtbot.waitUntil(lambda: w.studio.plan_caption == "Live plan", timeout=30_000)
    live = w.studio.plan_caption
    go_on.set()
    qtbot.wait(500)
    assert w.studio.plan_caption == live
    w.shutdown()


def test_generate_pressed_twice_makes_two_different_results(qtbot, tmp_path):
    """Two presses before the first result lands (nothing selected, the seed fixed) queue two jobs with
    different seeds, so the two new clips are not the same picture; the seed box shows the one used last."""
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.timeline.view.select([])
    w.instruction.set_text("a red circle")
    w.generation.steps.setValue(200)  # the first is still running when the second is pressed
    first, second = w.generate(), w.generate()
    assert first is not None and second is not None
    seeds = [w.jobs[j].request.seed for j in (first, second)]
    assert seeds[0] != seeds[1] and w.studio.params.seed == seeds[1]
    w.studio.cancel_running()
    w.shutdown()


def test_a_job_running_as_its_project_closes_is_asked_about_and_never_lands_in_the_next(qtbot, tmp_path,
                                                                                          save_changes_answers):
    """New, Open or Quit while a job runs: the user is asked; 'Keep working' keeps the project and the job,
    'Stop them' stops it, and its result is not put into the project opened next (it was, silently)."""
    from app.ui.project_actions import SaveChoice
    from tests.ui.helpers import SAMPLE_IMAGE, import_and_wait

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    import_and_wait(qtbot, w, SAMPLE_IMAGE)  # unsaved work: the save question comes after the jobs'
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.timeline.view.select([])
    w.instruction.set_text("a blue square on the left")
    w.generation.steps.setValue(400)
    first = w.generate()
    qtbot.waitUntil(lambda: first in w.jobs and w.jobs[first].state is JobState.RUNNING, timeout=30_000)
    save_changes_answers.drop_jobs = False
    assert not w.files.new_project()
    assert save_changes_answers.jobs_asked == [1] and first in w.jobs and not save_changes_answers.asked
    save_changes_answers.drop_jobs = True
    save_changes_answers.next = SaveChoice.CANCEL  # "Stop them", then Cancel the save question: nothing goes
    assert not w.files.new_project()
    assert first in w.jobs and w.jobs[first].state is JobState.RUNNING
    save_changes_answers.next = SaveChoice.DISCARD
    stored = []
    w.result_stored.connect(stored.append)
    assert w.files.new_project()
    assert not w.jobs and w.generation.progress.format() == "idle"
    qtbot.waitUntil(lambda: w.engine.running_job is None, timeout=30_000)
    qtbot.wait(300)
    assert not stored and not any(w.document.project.tracks.values()) and not w.document.dirty
    w.instruction.set_text("a red circle on the right")
    second = w.generate()  # quitting asks too
    qtbot.waitUntil(lambda: second in w.jobs and w.jobs[second].state is JobState.RUNNING, timeout=30_000)
    save_changes_answers.drop_jobs = False
    assert not w.close() and second in w.jobs
    save_changes_answers.drop_jobs = True
    assert w.close()


def test_a_jobs_forming_preview_is_shown_only_where_it_was_asked_for(qtbot, tmp_path):
    """A new picture forming while the user looks at another clip: the viewer shows that clip, not the
    preview; back where the job was asked for (nothing selected), the preview shows again."""
    from tests.ui.helpers import SAMPLE_IMAGE, import_and_wait

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    other = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.timeline.view.select([])
    w.instruction.set_text("a blue square on the left")
    w.generation.steps.setValue(400)
    job = w.generate()
    qtbot.waitUntil(lambda: w.viewer.canvas.preview is not None, timeout=30_000)
    w.timeline.view.select([other])
    assert w.viewer.canvas.preview is None
    qtbot.wait(500)  # previews go on arriving (15 a second)
    assert w.viewer.canvas.preview is None and job in w.jobs
    w.timeline.view.select([])
    qtbot.waitUntil(lambda: w.viewer.canvas.preview is not None, timeout=30_000)
    w.studio.cancel_running()
    qtbot.waitUntil(lambda: not w.jobs, timeout=30_000)
    w.shutdown()


def test_unknown_words_are_refused_before_a_job_is_queued(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.instruction.set_text("a purple hexagon on the left")
    assert w.generate() is None and not w.jobs
    assert "'hexagon'" in w.messages.errors()[-1] and "It knows:" in w.messages.errors()[-1]
    w.shutdown()


def test_a_clicked_edit_versions_plan_stays_while_its_input_is_read_again(qtbot, tmp_path):
    """An edited picture's versions: clicking one shows the plan stored with it, and it stays although the
    clip's input is decoded again (a cold cache, as after reopening) and that restarts the live plan's timer;
    typing brings the live plan back."""
    from tests.ui.helpers import SAMPLE_IMAGE, import_and_wait

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.timeline.view.select([clip_id])
    w.generation.steps.setValue(2)
    for text in ("make the circle green", "make the circle blue"):
        w.instruction.set_text(text)
        with qtbot.waitSignal(w.result_stored, timeout=120_000):
            w.generate()
    assert len(w.document.project.clip(clip_id).versions) == 3
    w.studio._decoded.clear()  # the inputs not decoded yet
    w.versions.activate.emit(1)
    qtbot.waitUntil(lambda: w.studio.plan_caption == "Plan stored with v1", timeout=10_000)
    qtbot.wait(2000)
    assert w.studio.plan_caption == "Plan stored with v1"
    w.instruction.set_text("make the circle red")
    qtbot.waitUntil(lambda: w.studio.plan_caption == "Live plan", timeout=30_000)
    w.shutdown()


def test_a_result_still_being_written_counts_as_a_running_job_when_the_project_closes(qtbot, tmp_path, monkeypatch,
                                                                                      save_changes_answers):
    import time

    from app.media import project_file as pf

    real = pf.write_result

    def slow_write(*a, **k):  # a long clip written at its source's size takes seconds
        time.sleep(1.5)
        return real(*a, **k)

    monkeypatch.setattr(pf, "write_result", slow_write)
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.instruction.set_text("a blue square on the left")
    w.generation.steps.setValue(2)
    w.generate()
    qtbot.waitUntil(lambda: not w.jobs, timeout=60_000)  # done; its result is being written
    wait = w.studio.finish_storing
    monkeypatch.setattr(w.studio, "finish_storing", lambda seconds=0.0: wait(0.2))  # a write longer than the wait
    save_changes_answers.drop_jobs = False
    assert not w.files.new_project() and save_changes_answers.jobs_asked == [1]
    with qtbot.waitSignal(w.result_stored, timeout=30_000):  # kept working: the result lands in its project
        pass
    assert any(w.document.project.tracks.values())
    w.shutdown()


def _a_result_being_written(qtbot, tmp_path, monkeypatch):
    """A window whose first job (a 2-step still) has finished and whose result's file is being written until the
    returned event is set: (window, event)."""
    import threading

    from app.media import project_file as pf

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    go_on, real_write = threading.Event(), pf.write_result

    def slow_write(*args):
        go_on.wait(30)
        return real_write(*args)

    monkeypatch.setattr(pf, "write_result", slow_write)
    w.generation.steps.setValue(2)
    w.instruction.set_text("a red circle")
    w.generate()
    qtbot.waitUntil(lambda: bool(w.studio._storing), timeout=60_000)  # done, its file being written
    return w, go_on


def test_results_land_in_the_order_their_jobs_were_made(qtbot, tmp_path, monkeypatch):
    """Writes run side by side: a result whose write ended first landed first, so the versions of a clip were
    numbered in the order the writes ended (a long clip edit written at its own size against a still, kept results
    written again after a Save As). They land in the order their jobs were made."""
    import threading

    from app.media import project_file as pf

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    first_may_end, real_write = threading.Event(), pf.write_result
    second_written = threading.Event()

    def write(folder, frames, *args, **kw):
        if not first_may_end.is_set() and not write.started:
            write.started = True
            first_may_end.wait(30)  # the first job's write ends after the second's
            return real_write(folder, frames, *args, **kw)
        out = real_write(folder, frames, *args, **kw)
        second_written.set()
        return out

    write.started = False
    monkeypatch.setattr(pf, "write_result", write)
    w.timeline.view.select([clip])
    w.generation.steps.setValue(2)
    for words in ("make the circle green", "make the circle blue"):
        w.instruction.set_text(words)
        w.generate()
    qtbot.waitUntil(second_written.is_set, timeout=60_000)
    qtbot.wait(300)  # the second's landing, had it not waited
    first_may_end.set()
    qtbot.waitUntil(lambda: len(w.document.project.clip(clip).versions) == 3, timeout=60_000)
    made = [v.request.get("instruction") for v in w.document.project.clip(clip).versions[1:]]
    assert made == ["make the circle green", "make the circle blue"]
    w.shutdown()


def test_a_result_written_while_the_project_is_saved_under_a_new_name_lands_in_the_new_folder(
        qtbot, tmp_path, monkeypatch):
    """Save As (here the first save of an untitled project) between a job's end and its result landing: the
    result's file was being written into the old media folder, which the save did not copy; it is copied
    into the new one before it is stored, so the saved project opens with the new clip's picture and plan."""
    from app.media import project_file as pf

    w, go_on = _a_result_being_written(qtbot, tmp_path, monkeypatch)
    path = tmp_path / "saved" / "mine.mcproj"
    assert w.save_as(str(path))
    with qtbot.waitSignal(w.result_stored, timeout=30_000) as stored:
        go_on.set()
    version = w.document.project.clip(stored.args[0]).active
    item = w.document.project.media_item(version.media_id)
    assert pf.media_path(path, item).is_file() and version.plan
    assert (pf.media_dir(path) / version.plan).is_file()
    assert w.files.save()
    reopened = pf.open_project(path)
    assert not pf.missing_media(reopened, path) and pf.media_path(path, reopened.media_item(item.id)).is_file()
    w.shutdown()


def test_new_project_lets_a_result_being_written_land_first(qtbot, tmp_path, monkeypatch, save_changes_answers):
    """New while a finished job's file is still being written: not "stop the jobs?" (the result is made; stopping
    would throw it away) but the result lands, and the save question then covers it (Cancel keeps it)."""
    import threading

    from app.ui.project_actions import SaveChoice

    w, go_on = _a_result_being_written(qtbot, tmp_path, monkeypatch)
    threading.Timer(0.5, go_on.set).start()
    save_changes_answers.next = SaveChoice.CANCEL
    assert not w.files.new_project()
    assert save_changes_answers.jobs_asked == [] and len(save_changes_answers.asked) == 1
    assert len(w.document.project.tracks["image"]) == 1 and not w.studio.active_jobs()
    w.shutdown()


def test_a_result_dropped_with_its_project_never_lands_in_the_next(qtbot, tmp_path, monkeypatch, save_changes_answers):
    """New while a result is written past the wait, the user stopping it: when the write ends, nothing lands in
    the new project, even for a job that recorded no project (As planned's did not)."""
    w, go_on = _a_result_being_written(qtbot, tmp_path, monkeypatch)
    next(iter(w.studio._storing.values())).project = None
    monkeypatch.setattr(w.studio, "finish_storing", lambda seconds=0.0: False)  # a write longer than the wait
    assert w.files.new_project() and save_changes_answers.jobs_asked == [1]
    go_on.set()
    qtbot.waitUntil(lambda: "is not added" in w.messages.history[-1].text, timeout=30_000)
    assert not any(w.document.project.tracks.values())
    w.shutdown()


def test_a_result_the_project_folder_cannot_take_is_kept_and_lands_once_the_project_is_saved_elsewhere(
        qtbot, tmp_path, monkeypatch, save_changes_answers):
    """A finished image whose write failed (a read-only or full project folder) was thrown away with an error: made
    again or lost. It is kept while the studio runs, Save As is offered, and saving elsewhere puts it in the project;
    a close before that asks about it."""
    from app.media import project_file as pf
    from app.media.errors import ProjectError
    from app.ui.project_actions import SaveChoice

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    first = tmp_path / "first" / "p.mcproj"
    first.parent.mkdir()
    assert w.files.save_as(str(first))
    real = pf.write_result

    def read_only(folder, *a, **k):
        if str(folder).startswith(str(first.parent)):
            raise ProjectError(f"Could not write 'result.png' in {folder}: [Errno 30] Read-only file system.")
        return real(folder, *a, **k)

    monkeypatch.setattr(pf, "write_result", read_only)
    w.timeline.view.select([])
    w.instruction.set_text("a red circle")
    w.generation.steps.setValue(2)
    w.generate()
    qtbot.waitUntil(lambda: w.studio.unsaved_results() == 1, timeout=60_000)
    said = w.messages.errors()[-1]
    assert "could not be saved in the project folder" in said and "It is kept" in said
    assert w.banner.isVisible() and w.banner.action_button.text() == "Save As…"
    assert not w.document.project.tracks["image"]
    # A close now asks about it (the project itself has no unsaved change); Cancel keeps working.
    save_changes_answers.next = SaveChoice.CANCEL
    assert not w.close() and save_changes_answers.asked == ["p.mcproj"]
    # Save chosen, the project file written, but the result still cannot be: the window stays, the result kept.
    save_changes_answers.next = SaveChoice.SAVE
    assert not w.close()
    qtbot.waitUntil(lambda: w.studio.unsaved_results() == 1, timeout=30_000)
    assert w.isVisible() and "could not be saved in the project folder" in w.messages.errors()[-1]
    # Saved elsewhere: the kept result is written there and becomes a clip.
    second = tmp_path / "second" / "p.mcproj"
    second.parent.mkdir()
    with qtbot.waitSignal(w.result_stored, timeout=30_000):
        assert w.files.save_as(str(second))
    assert w.studio.unsaved_results() == 0 and len(w.document.project.tracks["image"]) == 1
    clip = w.document.project.tracks["image"][0]
    assert w.media_file(clip.media_id).is_file() and str(w.media_file(clip.media_id)).startswith(str(second.parent))
    # The file just saved holds it: saved again once it landed (it was left marked changed, the save lacking it).
    assert not w.document.dirty and len(pf.open_project(str(second)).tracks["image"]) == 1
    w.shutdown()


def test_a_studio_still_carries_its_recipe_into_its_file_and_its_export(qtbot, tmp_path):
    """The CLI's PNGs carry what made them (the request, the model, the sampler); the studio's stored results and
    exported stills did not, so an exported picture re-imported could not be made again. Now both carry it. A result
    landing after an undo ends the redo as any step does, and says so (it was silent)."""
    from app.media.generation_info import read_generation_info

    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.timeline.view.select([])
    w.instruction.set_text("a blue square on the left")
    w.generation.steps.setValue(3)
    w.document.push(w.document.project.rename_change("renamed"))
    w.document.undo_stack.undo()  # a step the user could redo, until the result lands as a step of its own
    with qtbot.waitSignal(w.result_stored, timeout=60_000) as made:
        w.generate()
    said = w.messages.history[-1]
    assert said.level == "warning" and "The 1 step undone before it can no longer be redone" in said.text
    clip = w.document.project.clip(made.args[0])
    stored = read_generation_info(w.media_file(clip.active.media_id))
    assert stored is not None and stored["model"] == "metacanvas-shapes" and stored["sampler"]
    assert stored["request"]["instruction"] == "a blue square on the left" and stored["request"]["steps"] == 3
    assert stored["request"]["seed"] == clip.active.request["seed"]
    out = tmp_path / "exported.png"
    w.exports.export_still(str(out))
    qtbot.waitUntil(lambda: not w.exports.exporting, timeout=30_000)
    assert read_generation_info(out) == stored
    # Imported again, the picture brings its words and settings with it.
    before = {c.id for c in w.document.project.tracks["image"]}
    w.import_files([str(out)])
    qtbot.waitUntil(lambda: bool({c.id for c in w.document.project.tracks["image"]} - before), timeout=10_000)
    (again,) = {c.id for c in w.document.project.tracks["image"]} - before
    assert w.document.project.clip(again).instruction == "a blue square on the left"
    w.shutdown()


def test_an_image_edit_that_falls_short_of_its_plan_is_said_and_another_seed_offered(qtbot, tmp_path, monkeypatch):
    """A failed image edit landed as "new version of the clip ready" with no word (a new user's red circle stayed
    red under "make the circle green"); as for clip edits, what fell short is said and the next seed offered."""
    import app.core.pipeline as pipeline
    from app.shapes.palette import label_index

    monkeypatch.setattr(pipeline, "still_edit_shortfall",
                        lambda planner, drafts, image, source=None, instruction=None:
                        ([[label_index("circle", "green"), 3, 8, 1]], []))
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    clip = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    w.timeline.view.select([clip])
    w.generation.steps.setValue(2)
    w.instruction.set_text("make the circle green")
    w.generate()
    qtbot.waitUntil(lambda: w.banner.action_button.isVisible(), timeout=60_000)
    said = next(m.text for m in w.messages.history if "was not made as planned" in m.text)
    assert "The edit was not made as planned: the picture does not show a green circle on the left" in said
    assert w.banner.action_button.text().startswith("Try seed ")
    versions = len(w.document.project.clip(clip).versions)
    w.banner.action_button.click()
    qtbot.waitUntil(lambda: len(w.document.project.clip(clip).versions) == versions + 1, timeout=60_000)
    w.shutdown()
