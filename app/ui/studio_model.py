"""The studio's state, apart from its widgets (krita-ai-diffusion's `Model` is the anchor).

`StudioModel` holds every input that shapes the next job: the selection, each clip's own instruction
and task, the generation settings; the state of the model being loaded; the job queue; the plan on
screen (live, or the one stored with a version). It builds the one `GenerationRequest`, talks to the
engine, and stores results through app.media. Widgets never talk to the engine: they call the
model's methods and redraw when it signals.

Rules it keeps:
* Nothing slow runs on the GUI thread: input frames are decoded in the pool (bounded by
  `INPUT_MAX_SIDE`); a request whose inputs are still decoding waits for them, it never blocks.
* A job never runs with settings the model has not applied: Generate pressed while the model loads
  waits and starts once the model is ready, with its defaults in place.
"""
from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from app.core.request import GenerationRequest, Task
from app.media import project_file as pf
from app.media.errors import MediaError, ProjectError
from app.media.project import Clip
from app.settings import Settings
from app.ui.document import ProjectDocument
from app.ui.messages import ERROR, INFO, WARNING
from app.ui.studio_state import (NEW_TARGET, TASK_NAMES, InputsPending, Job, JobState, ModelState, Params,
                                 TargetInputs, allowed_tasks, decode_input, load_plan)
from app.ui.workers import run_task

log = logging.getLogger(__name__)

PLAN_DEBOUNCE_MS = 40  # the live-plan goal is <= 100 ms from the last keystroke to the heatmap
PLAN_PROBLEM_DELAY_MS = 900  # a plan error is shown only once typing pauses: no flash for half a word


class StudioModel(QObject):
    model_state_changed = Signal(object)  # ModelState
    params_changed = Signal()  # seed/steps/... set from outside the panel (model defaults, "use again")
    target_changed = Signal()  # selection, or the target's instruction/task, changed
    jobs_changed = Signal()
    preview = Signal(object)  # QImage of the running job, or None
    plan_changed = Signal(object, str)  # plan or None, caption ("Live plan", "Plan stored with v2")
    plan_problem = Signal(str)  # why there is no live plan ('' clears it); shown once typing pauses
    result_stored = Signal(str)  # the clip that got the result
    select_requested = Signal(list)  # clip ids the model wants selected (a new result)
    message = Signal(str, str)  # text, level

    def __init__(self, document: ProjectDocument, settings: Settings, work_path: Any,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.settings = settings
        self.work_path = work_path  # () -> Path of the project's media folder owner (saved or untitled)
        self.pool = QThreadPool.globalInstance()
        self.engine: Any = None
        self.state = ModelState.STARTING
        self.state_text = "Model: starting…"
        self.params = Params()
        self.jobs: dict[int, Job] = {}
        self.selection: list[str] = []
        self._inputs: dict[str, TargetInputs] = {}
        self._decoded: dict[tuple, np.ndarray] = {}
        self._decoding: set[tuple] = set()
        self._pending_generate = False
        self.current_plan: Any = None
        self.plan_caption = ""
        self.latest_plan_job: int | None = None
        self._problem = ""
        self._shown_version: tuple[str, str] | None = None  # (clip, version) whose plan is on screen
        self.plan_debounce = QTimer(self, singleShot=True, interval=PLAN_DEBOUNCE_MS)
        self.plan_debounce.timeout.connect(self.request_live_plan)
        self.problem_timer = QTimer(self, singleShot=True, interval=PLAN_PROBLEM_DELAY_MS)
        self.problem_timer.timeout.connect(lambda: self.plan_problem.emit(self._problem))
        document.changed.connect(self._on_project_changed)
        document.reset.connect(self._on_project_reset)

    @property
    def model_ready(self) -> bool:
        return self.state is ModelState.READY

    def say(self, text: str, level: str = INFO) -> None:
        self.message.emit(text, level)

    # ================================================================ engine and model loading
    def attach_engine(self, engine: Any) -> None:
        self.engine = engine
        engine.model_loading.connect(self._on_model_loading)
        engine.model_ready.connect(self._on_model_ready)
        engine.model_failed.connect(self._on_model_failed)
        engine.plan_ready.connect(self._on_plan_ready)
        engine.progress.connect(self._on_progress)
        engine.preview.connect(lambda job_id, image: self._on_preview(job_id, image))
        engine.finished.connect(self._on_finished)
        engine.failed.connect(self._on_failed)
        engine.cancelled.connect(self._on_cancelled)
        engine.queue_changed.connect(self._on_queue_changed)

    def load_model(self, path: str) -> None:
        if self.engine is None:
            return
        self._set_state(ModelState.LOADING, "Model: loading…")
        self.engine.load_model(path, self.settings.device, self.settings.precision)

    def _set_state(self, state: ModelState, text: str) -> None:
        self.state, self.state_text = state, text
        self.model_state_changed.emit(state)

    def _on_model_loading(self, text: str) -> None:
        self._set_state(ModelState.LOADING, text)

    def _on_model_ready(self, name: str) -> None:
        defaults = self.engine.model_defaults if self.engine is not None else None
        if defaults is not None:
            # Start from what the model was trained for; a job waiting for the model runs with these.
            self.params = replace(self.params, width=int(defaults.width), height=int(defaults.height),
                                  steps=int(defaults.steps), guidance=float(defaults.guidance))
            self.params_changed.emit()
        self._set_state(ModelState.READY, f"Model: {name}")
        self.say(f"Model {name} is ready.")
        if self._pending_generate:
            self._pending_generate = False
            self.generate()
        self.request_live_plan()

    def _on_model_failed(self, message: str) -> None:
        self._set_state(ModelState.FAILED, "Model: not loaded")
        hint = "" if "settings" in message.lower() else " Choose another model folder in File ▸ Settings."
        if self._pending_generate:
            self._pending_generate = False
            message += " The waiting generation was not started."
        self.say(message + hint, ERROR)

    # ================================================================ selection and the target's inputs
    def set_selection(self, ids: list[str]) -> None:
        ids = [c for c in ids if self.has_clip(c)]
        if ids == self.selection:
            return
        self.selection = ids
        self._pending_generate = False  # a press made for another target must not fire for this one
        self.target_changed.emit()
        self._prefetch_inputs()
        self.show_stored_or_live_plan()

    def selected_clips(self) -> list[Clip]:
        return [self.document.project.clip(c) for c in self.selection if self.has_clip(c)]

    def primary_clip(self) -> Clip | None:
        clips = self.selected_clips()
        return clips[0] if clips else None

    def has_clip(self, clip_id: str) -> bool:
        try:
            self.document.project.clip(clip_id)
            return True
        except ProjectError:
            return False

    def target_key(self) -> str:
        return "+".join(c.id for c in self.selected_clips()) or NEW_TARGET

    def target_name(self) -> str:
        clips = self.selected_clips()
        if not clips:
            return "new generation"
        if len(clips) > 1:
            return f"{len(clips)} reference images"
        return self.clip_name(clips[0])

    def clip_name(self, clip: Clip) -> str:
        """A clip keeps the name of what it was made from, whichever version it shows."""
        return self.document.project.media_item(clip.media_id).name

    def _inputs_for_target(self) -> TargetInputs:
        key = self.target_key()
        if key not in self._inputs:
            clip = self.primary_clip()
            self._inputs[key] = TargetInputs(clip.instruction if clip is not None and "+" not in key else "")
        return self._inputs[key]

    @property
    def instruction(self) -> str:
        return self._inputs_for_target().instruction

    def set_instruction(self, text: str) -> None:
        inputs = self._inputs_for_target()
        if text == inputs.instruction:
            return
        inputs.instruction = text
        self._problem = ""
        self.problem_timer.stop()
        self.plan_problem.emit("")
        self.plan_debounce.start()

    def tasks(self) -> list[Task]:
        return allowed_tasks([self.document.clip_kind(c.id) for c in self.selected_clips()])

    @property
    def task(self) -> Task:
        allowed = self.tasks()
        chosen = self._inputs_for_target().task
        if chosen in allowed:
            return chosen
        clip = self.primary_clip()
        made_by = Task(clip.versions[0].request["task"]) if clip is not None and len(allowed) > 1 \
            and clip.versions[0].request.get("task") in {t.value for t in Task} else None
        # A generated clip's next Generate makes a variation of it (same task, new seed), as users expect
        # after text-to-image; an imported picture is edited.
        return made_by if made_by in allowed else allowed[0]

    def set_task(self, task: Task) -> None:
        if task is not self.task:
            self._inputs_for_target().task = task
            self.target_changed.emit()
            self._prefetch_inputs()
            self.plan_debounce.start()

    def set_param(self, name: str, value: Any) -> None:
        if getattr(self.params, name) != value:
            self.params = replace(self.params, **{name: value})
            if name in ("seed", "width", "height", "frames"):
                self.plan_debounce.start()  # a drafted model plans one scene per seed and size

    def next_seed(self) -> int:
        if self.params.random_seed:
            self.params = replace(self.params, seed=random.randrange(0, 2**31 - 1))
            self.params_changed.emit()
        return self.params.seed

    def reuse_version(self, index: int) -> None:
        """"Use these settings again": the version's instruction, task and settings become the inputs."""
        clip = self.primary_clip()
        if clip is None or not 0 <= index < len(clip.versions):
            return
        request = clip.versions[index].request or {}
        values = {}
        for key, kind in (("seed", int), ("steps", int), ("guidance", float), ("width", int), ("height", int),
                          ("frames", int)):
            v = request.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 or (key == "seed" and v == 0):
                values[key] = kind(v)
        self.params = replace(self.params, random_seed=False, **values)
        self.params_changed.emit()
        inputs = self._inputs_for_target()
        inputs.instruction = str(request.get("instruction", inputs.instruction))
        if request.get("task") in {t.value for t in Task}:
            inputs.task = Task(request["task"])
        self.target_changed.emit()
        self.plan_debounce.start()

    # ================================================================ inputs (decoded off the GUI thread)
    def _input_keys(self, task: Task) -> list[tuple]:
        """(path, kind, index or start, frames) of each input the task reads from the selection."""
        keys = []
        project = self.document.project
        for clip in self.selected_clips():
            version = clip.active
            item = project.media_item(version.media_id)
            path = str(pf.media_path(self.work_path(), item))
            if task.needs_video:
                offset = clip.in_point if version.media_id == clip.media_id else 0.0
                keys.append((path, "clip", int(offset * item.fps), min(self.params.frames, item.frames)))
            elif task.needs_image:
                keys.append((path, item.kind, self._frame_at_playhead(clip, item), 1))
        return keys

    playhead: float = 0.0  # the window keeps it current; a video input is the frame under it

    def _frame_at_playhead(self, clip: Clip, item: Any) -> int:
        if item.kind == "image":
            return 0
        offset = clip.in_point if clip.active.media_id == clip.media_id else 0.0
        t = max(0.0, offset + min(max(self.playhead, clip.start), clip.end - 1e-6) - clip.start)
        return int(min(item.frames - 1, t * item.fps + 1e-6))

    def _prefetch_inputs(self) -> None:
        try:
            keys = self._input_keys(self.task)
        except (ProjectError, MediaError):
            return
        for key in keys:
            self._decode(key)

    def _decode(self, key: tuple) -> None:
        if key in self._decoded or key in self._decoding:
            return
        self._decoding.add(key)
        run_task(self.pool, decode_input, key, on_done=lambda arr, k=key: self._on_decoded(k, arr),
                 on_error=lambda e, k=key: self._on_decode_failed(k, e), owner=self)

    def _on_decoded(self, key: tuple, array: np.ndarray) -> None:
        self._decoding.discard(key)
        if len(self._decoded) >= 16:
            self._decoded.pop(next(iter(self._decoded)))
        self._decoded[key] = array
        if self._decoding:
            return
        if self._pending_generate:
            self._pending_generate = False
            self.generate()
        self.plan_debounce.start()

    def _on_decode_failed(self, key: tuple, error: BaseException) -> None:
        self._decoding.discard(key)
        self._pending_generate = False
        name = Path(key[0]).name
        text = str(error) if isinstance(error, (MediaError, ProjectError)) else f"{type(error).__name__}: {error}"
        self.say(f"Could not read the input '{name}': {text}", ERROR)

    def build_request(self, seed: int | None = None) -> GenerationRequest:
        """The request for the selection's task. Raises InputsPending (decoding started) while an input
        frame is not decoded yet, ValueError/MediaError/ProjectError for a request that cannot be made."""
        task = self.task
        p = self.params
        keys = self._input_keys(task)
        missing = [k for k in keys if k not in self._decoded]
        for k in missing:
            self._decode(k)
        if missing:
            raise InputsPending()
        images = [self._decoded[k] for k in keys] if task.needs_image else []
        video = self._decoded[keys[0]] if task.needs_video and keys else None
        frames = p.frames if task.makes_video else 1
        if video is not None:
            frames = min(frames, len(video))
        return GenerationRequest(task=task, instruction=self.instruction, images=images, video=video,
                                 width=p.width, height=p.height, frames=frames, steps=p.steps,
                                 guidance=p.guidance, seed=p.seed if seed is None else seed)

    # ================================================================ plans
    def request_live_plan(self) -> None:
        if self.engine is None or not self.model_ready:
            return
        if not self.instruction:
            self.latest_plan_job = None
            self._show_plan(None, "")
            return
        try:
            request = self.build_request()
            request.validate(self._supported_tasks())
        except InputsPending:
            return  # asked again when the inputs are in
        except (ValueError, MediaError, ProjectError) as e:
            self._plan_failed(str(e))
            return
        self.latest_plan_job = self.engine.request_plan(request)

    def _on_plan_ready(self, job_id: int, plan: Any) -> None:
        if job_id == self.latest_plan_job:  # older keystrokes' plans are dropped
            self._problem = ""
            self.problem_timer.stop()
            self.plan_problem.emit("")
            self._show_plan(plan, "Live plan")

    def _plan_failed(self, message: str) -> None:
        self._problem = message
        self.problem_timer.start()

    def _show_plan(self, plan: Any, caption: str) -> None:
        self.current_plan, self.plan_caption = plan, caption
        self.plan_changed.emit(plan, caption)

    def show_stored_or_live_plan(self) -> None:
        """The active version's stored plan when it has one and the instruction is the one it was made
        with; otherwise the live plan of what is typed."""
        clip = self.primary_clip()
        version = clip.active if clip is not None else None
        self._shown_version = (clip.id, version.id) if clip is not None else None
        if version is not None and version.plan and version.request.get("instruction") == self.instruction:
            self.show_version_plan(clip.active_version)
        else:
            self.latest_plan_job = None
            self._show_plan(None, "")
            self.plan_debounce.start()

    def show_version_plan(self, index: int) -> None:
        clip = self.primary_clip()
        if clip is None or not 0 <= index < len(clip.versions) or not clip.versions[index].plan:
            return
        self._shown_version = (clip.id, clip.versions[index].id)
        path = pf.media_dir(self.work_path()) / clip.versions[index].plan
        label = "Original" if index == 0 else f"v{index}"
        self.latest_plan_job = None  # a live plan still on its way must not replace the stored one
        run_task(self.pool, load_plan, path,
                 on_done=lambda plan, c=clip.id, i=index: self._on_stored_plan(c, i, plan, label),
                 on_error=lambda e: self.say(f"The plan stored with {label} could not be read: {e}", WARNING),
                 owner=self)

    def _on_stored_plan(self, clip_id: str, index: int, plan: Any, label: str) -> None:
        clip = self.primary_clip()
        if clip is not None and clip.id == clip_id and clip.active_version == index:
            self._show_plan(plan, f"Plan stored with {label}")

    # ================================================================ jobs
    def _supported_tasks(self) -> list[str] | None:
        defaults = self.engine.model_defaults if self.engine is not None else None
        return list(defaults.tasks) if defaults is not None else None

    def generate(self) -> int | None:
        """Queue a job for the selection. While the model loads or the inputs decode, the press is kept
        and the job starts when they are ready (with the model's settings, not the ones before it)."""
        if self.state is ModelState.FAILED or self.engine is None and self.state is not ModelState.STARTING:
            self.say("No model is loaded: choose a model folder in File ▸ Settings.", ERROR)
            return None
        if not self.model_ready:
            self._pending_generate = True
            self.say("The model is still loading; the job starts as soon as it is ready.")
            return None
        try:
            request = self.build_request(seed=0)
            request.validate(self._supported_tasks())
        except InputsPending:
            self._pending_generate = True
            self.say("Reading the input; the job starts as soon as it is in.")
            return None
        except (ValueError, MediaError, ProjectError) as e:
            self.say(str(e), ERROR)
            return None
        request.seed = self.next_seed()
        clip = self.primary_clip()
        if clip is not None and not request.task.needs_image and not request.task.needs_video:
            # A variation of a generated clip: a seed none of its versions used with these words, so
            # Generate never silently makes the same picture again ("Use these settings again" does).
            used = {v.request.get("seed") for v in clip.versions
                    if v.request.get("instruction") == request.instruction and v.request.get("task") == request.task.value}
            if request.seed in used:
                while request.seed in used:
                    request.seed = (request.seed + 1) % (2**31 - 1)
                self.params = replace(self.params, seed=request.seed)
                self.params_changed.emit()
        if clip is not None and clip.instruction != request.instruction:
            self.document.push(self.document.project.set_clip_instruction_change(clip.id, request.instruction))
        job_id = self.engine.submit(request)
        desc = f"{TASK_NAMES[request.task]}: {request.instruction[:40]} (seed {request.seed})"
        self.jobs[job_id] = Job(job_id, request, clip.id if clip is not None else None, desc)
        self.jobs_changed.emit()
        self.say(f"Queued job #{job_id}: {desc}")
        return job_id

    def running_job(self) -> Job | None:
        return next((j for j in self.jobs.values() if j.state is JobState.RUNNING), None)

    def active_jobs(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.state is not JobState.DONE]

    def cancel_running(self) -> None:
        job = self.running_job()
        if job is not None and self.engine is not None:
            self.engine.cancel(job.id)
            self.say(f"Cancelling job #{job.id}…")

    def cancel_job(self, job_id: int) -> None:
        if self.engine is not None and job_id in self.jobs:
            self.engine.cancel(job_id)

    def _mark_running(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state is JobState.QUEUED:
            job.state = JobState.RUNNING
            self.jobs_changed.emit()

    def _on_queue_changed(self, _pending: list) -> None:
        running = self.engine.running_job if self.engine is not None else None
        if running in self.jobs:
            self._mark_running(running)

    def _on_progress(self, job_id: int, step: int, total: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            self._mark_running(job_id)
            job.step, job.total = step, total
            self.jobs_changed.emit()

    def _on_preview(self, job_id: int, image: Any) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state is JobState.RUNNING:
            self.preview.emit(image)

    def _end_job(self, job_id: int) -> Job | None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return None
        job.state = JobState.DONE
        if self.running_job() is None:
            self.preview.emit(None)
        self.jobs_changed.emit()
        return job

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id == self.latest_plan_job:
            self._plan_failed(message)  # typing is not an error worth a banner
            return
        if self._end_job(job_id) is not None:
            self.say(f"Job #{job_id} failed: {message}", ERROR)

    def _on_cancelled(self, job_id: int) -> None:
        if self._end_job(job_id) is not None:
            self.say(f"Job #{job_id} was cancelled; the project is unchanged.", WARNING)

    def _on_finished(self, job_id: int, result: Any) -> None:
        job = self._end_job(job_id)
        if job is None:
            return
        self.say(f"Job #{job_id} done in {getattr(result, 'seconds', 0):.1f} s; saving the result…")
        run_task(self.pool, pf.write_result, self.work_path(), np.asarray(result.frames),
                 self.document.project.settings.fps, result.plan,
                 on_done=lambda written, j=job: self._store_result(j, written),
                 on_error=lambda e, j=job_id: self.say(f"Job #{j} finished but its result could not be saved: {e}",
                                                       ERROR),
                 owner=self)

    def _store_result(self, job: Job, written: dict) -> None:
        change, clip_id = pf.result_change(self.document.project, written, job.clip_id, job.request.to_dict(),
                                           job.request.instruction)
        self.document.push(change, f"Generate: {job.request.instruction[:30]}")
        self.select_requested.emit([clip_id])
        self.show_stored_or_live_plan()
        self.say(f"Job #{job.id}: new version of the clip ready.")
        self.result_stored.emit(clip_id)

    # ================================================================ project changes
    def _on_project_changed(self, _change: dict) -> None:
        self.selection = [c for c in self.selection if self.has_clip(c)]
        self.target_changed.emit()
        self._prefetch_inputs()
        clip = self.primary_clip()
        shown = (clip.id, clip.active.id) if clip is not None else None
        if shown != self._shown_version:  # undo/redo, a deleted clip, another version: its plan follows
            self.show_stored_or_live_plan()

    def _on_project_reset(self) -> None:
        self.selection = []
        self._inputs.clear()
        self._decoded.clear()
        self._pending_generate = False
        self.latest_plan_job = None
        self._show_plan(None, "")
        self.target_changed.emit()
