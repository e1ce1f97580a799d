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
* Two models, as the engine has two slots: the still model ("image", loaded at start) and the clip model
  ("video", `Settings.video_model`, loaded in the background the first time a video task is asked for:
  chosen, typed for, or generated). Each has its own state and settings (`ModelSlot`); what the panel
  shows and a request uses is the slot of the selection's task.

Why one file of about 1,000 lines: every input, the two model states and the job queue change together under
one set of signals; the rules with no Qt in them are already apart (studio_state.py, plan_time.py). The next
split to make is the video-model state (its own small class beside ModelState).
"""
from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QThreadPool, QTimer, Signal

from app.core.request import GenerationRequest, Task, stretch_note
from app.engine.engine import IMAGE_SLOT, VIDEO_SLOT, slot_for_task
from app.media import project_file as pf
from app.media.errors import MediaError, ProjectError
from app.media.project import Clip
from app.plan_edit_text import names_what_the_clip_lacks, shortfall_words, unchanged_words
from app.settings import Settings
from app.ui.document import ProjectDocument
from app.ui.messages import ERROR, INFO, WARNING
from app.ui.plan_time import DEFAULT_FRAME_STEP
from app.ui.studio_state import (MAX_REFERENCES, NEW_TARGET, TASK_NAMES, InputsPending, Job, JobState, ModelSlot,
                                 ModelState, Params, TargetInputs, allowed_tasks, clip_length, decode_input,
                                 load_plan, nearest_clip_length, reads_as_edit, shortened,
                                 write_edit_result)
from app.ui.memory_retry import MemoryRetry
from app.ui.seed_retry import SeedRetry
from app.ui.plan_editing import PlanEditing
from app.ui.workers import run_task

log = logging.getLogger(__name__)

PLAN_DEBOUNCE_MS = 40  # the live-plan goal is <= 100 ms from the last keystroke to the heatmap
# Words typed for a clip become part of the project once typing pauses this long, and at once before any other
# change, an undo, a save, an autosave, a close or another clip. A clip's typing is one undo step until another
# change or a save comes between (merged: app/ui/document.ChangeCommand).
TYPED_STORE_MS = 800
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
    unsaved_result = Signal(str)  # a result could not be written into the project folder: the window offers Save As

    def __init__(self, document: ProjectDocument, settings: Settings, work_path: Any,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.settings = settings
        self.work_path = work_path  # () -> Path of the project's media folder owner (saved or untitled)
        self.pool = QThreadPool.globalInstance()
        self.engine: Any = None
        self.slots = {IMAGE_SLOT: ModelSlot(IMAGE_SLOT, text="Model: starting…"),
                      VIDEO_SLOT: ModelSlot(VIDEO_SLOT, frame_step=DEFAULT_FRAME_STEP, params=Params(frames=17))}
        self._shown_slot = IMAGE_SLOT  # the slot whose settings the panel shows
        self.jobs: dict[int, Job] = {}
        self._storing: dict[int, Job] = {}  # finished jobs whose result is being written, not yet in the project
        self._written: dict[int, tuple[Job, dict]] = {}  # of those, written and waiting for an earlier job's to land
        self._unsaved: dict[int, tuple[Job, tuple]] = {}  # results whose write failed: (job, its write) to try again
        self.memory_retry = MemoryRetry(self)  # a job out of memory is offered again with more offload
        self.seed_retry = SeedRetry(self)  # an edit short of its plan is offered again with the next seed
        self.selection: list[str] = []
        self._inputs: dict[str, TargetInputs] = {}
        self._decoded: dict[tuple, np.ndarray] = {}
        self._decoding: set[tuple] = set()
        self._pending_generate = False
        self._removed_selection: list[str] = []  # the selected clips the last removal took (undo selects them)
        self._result_selected: tuple = ()  # what the studio selected for the last result it stored
        self.current_plan: Any = None
        self.plan_caption = ""
        self.plan_frames = 1  # frames of the clip the plan on screen lays out (1: a still's plan)
        self.latest_plan_job: int | None = None
        self._latest_plan_frames = 1
        self._planned_inputs: list = []  # the input keys (_input_keys) the latest live plan was asked with
        self._problem = ""
        self._shown_version: tuple[str, str] | None = None  # (clip, version) whose plan is on screen
        # The version whose stored plan the user asked to see (clicked): no live plan replaces it until they
        # type or change the task or a setting (a decode finishing restarts the live plan's timer).
        self._keep_stored_plan: tuple[str, str] | None = None
        self.plan_debounce = QTimer(self, singleShot=True, interval=PLAN_DEBOUNCE_MS)
        self.plan_debounce.timeout.connect(self.request_live_plan)
        self.problem_timer = QTimer(self, singleShot=True, interval=PLAN_PROBLEM_DELAY_MS)
        self.problem_timer.timeout.connect(lambda: self.plan_problem.emit(self._problem))
        self.typed_timer = QTimer(self, singleShot=True, interval=TYPED_STORE_MS)
        self.typed_timer.timeout.connect(self.store_typed)
        document.before_change.append(self._store_typed_now)  # words pending go in before any change, undo or redo
        document.changed.connect(self._on_project_changed)
        document.reset.connect(self._on_project_reset)
        self.plan_editing = PlanEditing(self)  # the user's edits of the plan on screen; Generate sends them

    # ---------------------------------------------------------------- the slot of the selection's task
    @property
    def slot(self) -> ModelSlot:
        """The model slot the selection's task runs on."""
        return self.slots[slot_for_task(self.task)]

    @property
    def state(self) -> ModelState:
        return self.slot.state

    @property
    def model_ready(self) -> bool:
        """Whether the model the selection's task needs is loaded."""
        return self.slot.state is ModelState.READY

    @property
    def state_text(self) -> str:
        image, video = self.slots[IMAGE_SLOT], self.slots[VIDEO_SLOT]
        return image.text + (f" · {video.text}" if video.text else "")

    @property
    def params(self) -> Params:
        """The settings of the selection's slot (the panel shows these)."""
        return self.slot.params

    @params.setter
    def params(self, value: Params) -> None:
        self.slot.params = value

    @property
    def frame_step(self) -> int:
        """How the clip model packs frames (clips are 1 + a multiple of it); Wan's 4 until it says."""
        return self.slots[VIDEO_SLOT].frame_step

    @property
    def max_frames(self) -> int:
        """The longest clip the clip model makes from words (0 until it says)."""
        return self.slots[VIDEO_SLOT].max_frames

    def _slot_moved(self) -> None:
        """The selection's task moved to the other model: the panel shows that model's settings."""
        kind = self.slot.kind
        if kind != self._shown_slot:
            self._shown_slot = kind
            self.params_changed.emit()
            self.model_state_changed.emit(self.state)

    def say(self, text: str, level: str = INFO) -> None:
        self.message.emit(text, level)

    # ================================================================ engine and model loading
    def attach_engine(self, engine: Any) -> None:
        self.engine = engine
        engine.slot_loading.connect(self._on_model_loading)
        engine.slot_ready.connect(self._on_model_ready)
        engine.slot_failed.connect(self._on_model_failed)
        engine.plan_ready.connect(self._on_plan_ready)
        engine.progress.connect(self._on_progress)
        engine.preview.connect(lambda job_id, image: self._on_preview(job_id, image))
        engine.finished.connect(self._on_finished)
        engine.out_of_memory.connect(self.memory_retry.remember)
        engine.failed.connect(self._on_failed)
        engine.cancelled.connect(self._on_cancelled)
        engine.queue_changed.connect(self._on_queue_changed)

    def load_model(self, path: str, slot: str = IMAGE_SLOT) -> None:
        if self.engine is None:
            return
        model = self.slots[slot]
        working = model.state is ModelState.READY and model.folder
        self._set_state(slot, ModelState.LOADING, ("Model" if slot == IMAGE_SLOT else "Video model") + ": loading…")
        if os.path.abspath(path) != model.folder:
            model.fallback = model.folder if working else None
        model.folder = os.path.abspath(path)  # one folder named two ways is one model
        self.engine.load_model(path, self.settings.device, slot=slot, memory=self.settings.memory_options())

    def load_video_model(self) -> None:
        """Load the clip model of the settings. A folder that is not there fails at once, with what to do."""
        path = self.settings.video_model
        if not Path(path).is_dir():
            self._on_model_failed(VIDEO_SLOT, f"No video model at {path}: the folder does not exist.")
            return
        self.load_model(path, VIDEO_SLOT)

    def forget_video_model(self) -> None:
        """The video model folder changed in the settings: load the new one now if one was asked for."""
        video = self.slots[VIDEO_SLOT]
        asked = video.state is not ModelState.STARTING
        working = video.folder if video.state is ModelState.READY else None
        video.state, video.text, video.error = ModelState.STARTING, "", ""
        if asked:
            self.load_video_model()
            if working and video.state is ModelState.LOADING and os.path.abspath(self.settings.video_model) != working:
                video.fallback = working  # the new folder failing loads this one again (load_model saw STARTING)
        else:
            self.model_state_changed.emit(self.state)

    def _want_model(self) -> None:
        """A task was asked for: load its model if it is the clip model and no one asked for it before."""
        if self.slot.kind == VIDEO_SLOT and self.slot.state is ModelState.STARTING and self.engine is not None:
            self.load_video_model()

    def _set_state(self, slot: str, state: ModelState, text: str) -> None:
        self.slots[slot].state, self.slots[slot].text = state, text
        self.model_state_changed.emit(self.state)

    def _on_model_loading(self, slot: str, text: str) -> None:
        self._set_state(slot, ModelState.LOADING, text if slot == IMAGE_SLOT else f"Video: {text}")

    def _on_model_ready(self, slot: str, name: str) -> None:
        defaults = self.engine.defaults_for(slot) if self.engine is not None else None
        model = self.slots[slot]
        # A folder of the other kind is refused as one that does not load (the model before it comes back): a model
        # of clips alone set for stills (or the reverse) loaded "ready" and failed every job of its slot.
        known = {x.value for x in Task}
        if defaults is not None and not any(Task(t).makes_video == (slot == VIDEO_SLOT) for t in defaults.tasks
                                            if t in known):
            does = ", ".join(t.replace("_", " ") for t in defaults.tasks)
            which, makes = ("video model", "no clips") if slot == VIDEO_SLOT else ("model", "no pictures")
            self._on_model_failed(slot, f"The {which} folder holds '{name}', which makes {makes} (it does: {does}).")
            return
        if defaults is not None:
            # Start from what the model was trained for; a job waiting for the model runs with these.
            values = dict(width=int(defaults.width), height=int(defaults.height), steps=int(defaults.steps),
                          guidance=float(defaults.guidance))
            if slot == VIDEO_SLOT and int(getattr(defaults, "frames", 1)) > 1:
                values["frames"] = int(defaults.frames)
            values = {k: v for k, v in values.items() if k not in model.kept}
            model.kept = set()
            if slot == VIDEO_SLOT:
                model.fps = float(getattr(defaults, "fps", 0.0) or 0.0)
                model.keep_source = int(getattr(defaults, "keep_source_threshold", 0) or 0)
                model.trained_frames = int(defaults.frames) if getattr(defaults, "own_size_only", False) else 0
            model.params = replace(model.params, **values)
            model.own_size_only = bool(getattr(defaults, "own_size_only", False))
        if slot == VIDEO_SLOT and self.engine is not None:
            model.frame_step = self.engine.frame_step(slot)
            model.max_frames = self.engine.max_frames(slot)
        if slot == self.slot.kind:
            self.params_changed.emit()
        model.error = ""
        model.fallback = None  # it works: a later failure (a retry with offload, a reload) is its own, not a switch
        self._set_state(slot, ModelState.READY, f"Model: {name}" if slot == IMAGE_SLOT else f"Video: {name}")
        self.say(f"Model {name} is ready." if slot == IMAGE_SLOT else f"Video model {name} is ready.")
        if self._pending_generate and self.model_ready:
            self._pending_generate = False
            self.generate()
        self.request_live_plan()

    def _on_model_failed(self, slot: str, message: str) -> None:
        model = self.slots[slot]
        back = model.fallback
        if back and back != model.folder and Path(back).is_dir():
            self._go_back(slot, message, back)
            return
        model.error = message
        self._set_state(slot, ModelState.FAILED,
                        "Model: not loaded" if slot == IMAGE_SLOT else "Video model: not loaded")
        if slot == IMAGE_SLOT:
            hint = "" if "settings" in message.lower() else " Choose another model folder in File ▸ Settings."
        else:
            hint = (" Video tasks (new video, animate image, edit video, video from references) need a video "
                    "model: choose one in File ▸ Settings ▸ Video model folder.")
        if self._pending_generate and slot == self.slot.kind:
            self._pending_generate = False
            message += " The waiting generation was not started."
        self.say(message + hint, ERROR)

    def _go_back(self, slot: str, message: str, back: str) -> None:
        """A model folder the settings named failed to load where another one worked: the slot loads the one that
        worked again, and the saved settings name it, so neither this session nor the next is left without a
        model. The failed folder leaves the settings' list."""
        failed, settings = self.slots[slot].folder, self.settings
        key, listed = ("active_model", "model_folders") if slot == IMAGE_SLOT else ("video_model", "video_model_folders")
        setattr(settings, key, back)
        folders = getattr(settings, listed)
        setattr(settings, listed, [f for f in folders if os.path.abspath(f) != failed] or [back])
        try:
            settings.save()
        except OSError as e:
            message += f" (The settings could not be saved: {e}.)"
        self.slots[slot].fallback = None
        what = "model" if slot == IMAGE_SLOT else "video model"
        if self._pending_generate and slot == self.slot.kind:  # pressed for the new model, not for the old one
            self._pending_generate = False
            message += " The waiting generation was not started."
        self.say(f"{message} The {what} goes back to {Path(back).name} ({back}).", ERROR)
        self.load_model(back, slot)

    # ================================================================ selection and the target's inputs
    def set_selection(self, ids: list[str]) -> None:
        ids = [c for c in ids if self.has_clip(c)]
        if ids == self.selection:
            return
        self.store_typed()  # the words typed for the clip left behind are its own
        self.selection = ids
        self._pending_generate = False  # a press made for another target must not fire for this one
        running = self.running_job()
        if running is not None and not self._watching(running):  # its next preview comes back with the user
            self.preview.emit(None)
        self._slot_moved()
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
        if self.task is Task.REFERENCE_TO_VIDEO:
            return f"{self.clip_name(clips[0])} as reference"
        return self.clip_name(clips[0])

    def clip_name(self, clip: Clip) -> str:
        """A clip keeps the name of what it was made from, whichever version it shows."""
        return self.document.project.media_item(clip.media_id).name

    def _inputs_for_target(self) -> TargetInputs:
        key = self.target_key()
        if key not in self._inputs:
            clip = self.primary_clip()
            self._inputs[key] = TargetInputs(clip.instruction if clip is not None and "+" not in key
                                             else self.document.project.target_words.get(key, ""))
        return self._inputs[key]

    @property
    def instruction(self) -> str:
        return self._inputs_for_target().instruction

    def set_instruction(self, text: str) -> None:
        inputs = self._inputs_for_target()
        if text == inputs.instruction:
            return
        task = self.task
        inputs.instruction = text
        if self.task is not task:  # the words turned an edit into a remake or back (see `task`)
            self._slot_moved()
            self.target_changed.emit()
            self._prefetch_inputs()
        self._keep_stored_plan = None
        self._problem = ""
        self.problem_timer.stop()
        self.plan_problem.emit("")
        self.plan_debounce.start()
        self.typed_timer.start()

    def store_typed(self) -> None:
        """The words typed for each clip, where they differ from the clip's own, into the project: a clip's
        instruction is saved with it, marks the project changed and is in its recovery copy, typed or not.
        Through the document's before-change hooks, whose guard keeps the pushes below from storing them twice."""
        self.document.settle()

    def _store_typed_now(self) -> None:
        if self.document.applying:  # a handler of a change (a selection an undo restores): the words wait
            return
        self.typed_timer.stop()
        project = self.document.project
        for key, inputs in list(self._inputs.items()):
            if key and "+" not in key:
                if not self.has_clip(key) or project.clip(key).instruction == inputs.instruction:
                    continue
                change = project.set_clip_instruction_change(key, inputs.instruction)
            else:  # a new generation's words, or those of stills picked together: the project's own
                if not all(self.has_clip(c) for c in key.split("+") if c) or \
                        project.target_words.get(key, "") == inputs.instruction:
                    continue
                change = project.set_target_words_change(key, inputs.instruction)
            change["typed"] = True  # merged with the next pause's (document.ChangeCommand)
            self.document.push(change)

    def tasks(self) -> list[Task]:
        return allowed_tasks([self.document.clip_kind(c.id) for c in self.selected_clips()])

    @property
    def task(self) -> Task:
        allowed = self.tasks()
        chosen = self._inputs_for_target().task
        if chosen in allowed:
            return chosen
        clip = self.primary_clip()
        request = (clip.active.request or {}) if clip is not None else {}
        made_by = Task(request["task"]) if len(allowed) > 1 and request.get("task") in {t.value for t in Task} \
            else None
        # The shown version's own task comes next: a clip made from words is made again (a variation, new seed),
        # as users expect after text-to-image; an edited one is edited further, as is an imported picture.
        # (The task the user picks is kept per clip for the session; after reopening, this rule gives it.)
        # Words that read as an edit ("make the circle blue") edit even a clip made from words: remade from
        # them, it became a new scene of a blue something (a new user's try).
        # Its own words are not judged so: "make a red circle on the left" made it, and is made again.
        if made_by in (Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO) and self.instruction != request.get("instruction") \
                and reads_as_edit(self.instruction):
            return allowed[0]
        return made_by if made_by in allowed else allowed[0]

    def set_task(self, task: Task) -> None:
        """The user chose `task` for the selection (choosing a video task asks for the video model)."""
        if task is not self.task:
            self._keep_stored_plan = None
            self._inputs_for_target().task = task
            self._slot_moved()
            self._want_model()
            self.target_changed.emit()
            self._prefetch_inputs()
            self.plan_debounce.start()
        else:
            self._inputs_for_target().task = task  # picked, though shown already: kept as words are typed
            self._want_model()

    def set_param(self, name: str, value: Any) -> None:
        if getattr(self.params, name) != value:
            self.params = replace(self.params, **{name: value})
            if name in ("seed", "random_seed"):  # one seed for both models: it names a result, not a model
                for model in self.slots.values():
                    model.params = replace(model.params, **{name: value})
            if name in ("seed", "width", "height", "frames"):
                self._keep_stored_plan = None
                self.plan_debounce.start()  # a drafted model plans one scene per seed and size

    def next_seed(self) -> int:
        if self.params.random_seed:
            seed = random.randrange(0, 2**31 - 1)
            for model in self.slots.values():
                model.params = replace(model.params, seed=seed)
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
        inputs = self._inputs_for_target()
        inputs.instruction = str(request.get("instruction", inputs.instruction))
        if request.get("task") in {t.value for t in Task}:
            inputs.task = Task(request["task"])
        self.params = replace(self.params, random_seed=False, **values)  # the slot of the version's task
        if self.slot.state is not ModelState.READY:  # the model's defaults, when it loads, keep these
            self.slot.kept = set(values) - {"seed"}
        self._shown_slot = self.slot.kind
        self.params_changed.emit()
        self.model_state_changed.emit(self.state)
        self.target_changed.emit()
        self.plan_debounce.start()
        self.typed_timer.start()  # the version's words are the clip's now, as typed ones are

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
                if item.kind != "video":  # a still selected beside the clip is no clip to read (said on Generate)
                    continue
                # The clip from its in point (a generated version from its start), at most the frames asked for.
                first, available = self._clip_frames(clip, item)
                wanted = nearest_clip_length(self.params.frames, self.frame_step)
                keys.append((path, "clip", first, max(1, min(wanted, available))))
                break  # a video edit reads one clip: the first selected
            elif task.needs_image:
                keys.append((path, item.kind, self._frame_at_playhead(clip, item), 1))
        return keys

    playhead: float = 0.0  # the window keeps it current; a video input is the frame under it

    def _clip_frames(self, clip: Clip, item: Any) -> tuple[int, int]:
        """(first frame, frames) of what the clip plays of its active version's media."""
        if clip.active.media_id != clip.media_id:
            return 0, item.frames
        first = int(clip.in_point * item.fps + 1e-6)
        return first, max(1, min(item.frames - first, int(round(clip.duration * item.fps))))

    def _inputs_now(self) -> list:
        """`_input_keys` of the selection's task, or [] where they cannot be named (a media path refused)."""
        try:
            return self._input_keys(self.task)
        except (ProjectError, MediaError, ValueError):
            return []

    def first_frame_read(self, clip: Clip, version: Any = None) -> int:
        """The first frame of `version`'s media (the active one's by default) a video edit of the clip reads: the
        clip's own footage from its in point, a generated version from its own start whatever the in point."""
        version = clip.active if version is None else version
        if version.media_id != clip.media_id:
            return 0
        return int(clip.in_point * self.document.project.media_item(version.media_id).fps + 1e-6)

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
        text = str(error) if isinstance(error, (MediaError, ProjectError)) else f"{type(error).__name__}: {error}"
        self.say(self.as_imported(f"Could not read the input '{Path(key[0]).name}': {text}"), ERROR)

    def as_imported(self, text: str) -> str:
        """`text` with each project media file's name (the project's own copy, "camera-5d5ec0d2.mp4") said as
        the file the user imported ("camera.mp4")."""
        work = self.work_path()
        for item in self.document.project.media.values():
            own = PurePosixPath(item.path).name
            if not item.name or own == item.name:
                continue
            try:  # a message with the copy's whole path (a missing file) keeps the path, for finding it
                full = str(pf.media_path(work, item))
                text = text.replace(f"'{full}'", f"'{item.name}' (the project's copy, {full})")
            except (ProjectError, OSError):
                pass
            text = text.replace(f"'{own}'", f"'{item.name}'")
        return text

    def build_request(self, seed: int | None = None) -> GenerationRequest:
        """The request for the selection's task. Raises InputsPending (decoding started) while an input
        frame is not decoded yet, ValueError/MediaError/ProjectError for a request that cannot be made."""
        task = self.task
        p = self.params
        if task.needs_video and len(self.selected_clips()) > 1:  # not the first of them, silently
            raise ValueError(f"A video edit reads one clip; {len(self.selected_clips())} are selected. Ctrl+click a "
                             f"clip on the timeline to leave it out.")
        keys = self._input_keys(task)
        missing = [k for k in keys if k not in self._decoded]
        for k in missing:
            self._decode(k)
        if missing:
            raise InputsPending()
        images = [self._decoded[k] for k in keys] if task.needs_image else []
        if task is Task.REFERENCE_TO_VIDEO and len(images) > MAX_REFERENCES:
            raise ValueError(f"A video from references takes one or two stills; {len(images)} are selected. "
                             f"Ctrl+click a still on the timeline to leave it out.")
        video = self._decoded[keys[0]] if task.needs_video and keys else None
        frames = nearest_clip_length(p.frames, self.frame_step) if task.makes_video else 1
        if video is not None:
            frames = clip_length(len(video), self.frame_step)
            if frames < 1 + self.frame_step:
                raise ValueError(f"This clip is too short to edit: {len(video)} frame(s); a video edit needs at "
                                 f"least {1 + self.frame_step}.")
            video = video[:frames]
        return GenerationRequest(task=task, instruction=self.instruction, images=images, video=video,
                                 width=p.width, height=p.height, frames=frames, steps=p.steps,
                                 guidance=p.guidance, seed=p.seed if seed is None else seed)

    # ================================================================ plans
    def request_live_plan(self) -> None:
        if self.engine is None or (self._keep_stored_plan is not None and self._keep_stored_plan == self._shown_version):
            return
        if not self.instruction:
            self.latest_plan_job = None
            self._show_plan(None, "")
            return
        self._want_model()  # typing for a video task asks for the clip model
        if not self.model_ready:
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
        self._latest_plan_frames = request.frames
        self._planned_inputs = self._input_keys(request.task)

    def _on_plan_ready(self, job_id: int, plan: Any) -> None:
        if job_id == self.latest_plan_job:  # older keystrokes' plans are dropped
            self._problem = ""
            self.problem_timer.stop()
            self.plan_problem.emit("")
            self._show_plan(plan, "Live plan", self._latest_plan_frames)

    def _plan_failed(self, message: str) -> None:
        self._problem = message
        self.problem_timer.start()

    def _show_plan(self, plan: Any, caption: str, frames: int = 1) -> None:
        self.current_plan, self.plan_caption, self.plan_frames = plan, caption, max(1, int(frames))
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
            self._keep_stored_plan = None
            self.latest_plan_job = None
            self._show_plan(None, "")
            self.plan_debounce.start()

    def show_version_plan(self, index: int) -> None:
        clip = self.primary_clip()
        if clip is None or not 0 <= index < len(clip.versions) or not clip.versions[index].plan:
            return
        self._shown_version = self._keep_stored_plan = (clip.id, clip.versions[index].id)
        path = pf.media_dir(self.work_path()) / clip.versions[index].plan
        label = "Original" if index == 0 else f"v{index}"
        frames = int(clip.versions[index].request.get("frames") or 1)
        self.latest_plan_job = None  # a live plan still on its way must not replace the stored one
        self.plan_debounce.stop()  # nor one about to be asked for: the live plan comes back when the user types
        # Shown from a zero timer, not from the read's signal: a landing version's plan is read while the landing
        # handler still runs, and drawn in the same pass of the event loop it made the GUI's longest stall as an
        # edit lands on a playing clip; from the timer, input and painting come between the two.
        wanted = self._keep_stored_plan
        run_task(self.pool, load_plan, path,
                 on_done=lambda plan, w=wanted: QTimer.singleShot(0, self, lambda: self._on_stored_plan(w, plan, label,
                                                                                                       frames)),
                 on_error=lambda e: self.say(f"The plan stored with {label} could not be read: {e}", WARNING),
                 owner=self)

    def _on_stored_plan(self, wanted: tuple[str, str], plan: Any, label: str, frames: int) -> None:
        """Shown only while that version's stored plan is still the one wanted: words typed, a setting changed,
        another version clicked or an undo since the read began each left another plan to show."""
        clip = self.primary_clip()
        if clip is not None and self._keep_stored_plan == wanted == (clip.id, clip.active.id):
            self._show_plan(plan, f"Plan stored with {label}", frames)

    # ================================================================ jobs
    def _supported_tasks(self) -> list[str] | None:
        defaults = self.engine.defaults_for(self.slot.kind) if self.engine is not None else None
        return list(defaults.tasks) if defaults is not None else None

    def generate(self) -> int | None:
        """Queue a job for the selection. While the model loads or the inputs decode, the press is kept
        and the job starts when they are ready (with the model's settings, not the ones before it)."""
        self._want_model()
        if self.state is ModelState.FAILED or self.engine is None and self.state is not ModelState.STARTING:
            if self.slot.kind == VIDEO_SLOT:
                why = f" ({self.slot.error.rstrip('.')})" if self.slot.error else ""
                self.say(f"No video model is loaded{why}: choose a video model folder in File ▸ Settings.", ERROR)
            else:
                self.say("No model is loaded: choose a model folder in File ▸ Settings.", ERROR)
            return None
        if not self.model_ready:
            self._pending_generate = True
            what = "video model" if self.slot.kind == VIDEO_SLOT else "model"
            self.say(f"The {what} is still loading; the job starts as soon as it is ready.")
            return None
        try:
            request = self.build_request(seed=0)
            request.validate(self._supported_tasks())
            if request.task.makes_video and self.engine is not None:  # refused now, not after queueing
                refs = len(request.images) if request.task is Task.REFERENCE_TO_VIDEO else 0
                self.engine.check_frames(VIDEO_SLOT, request.frames, request.task, refs)
            if self.engine is not None:  # unknown words: refused now, as the problem line under the box says
                self.engine.check_instruction(self.slot.kind, request.instruction, request.task)
            edited = self.plan_editing.apply_to(request)  # the edited plan's own seed and settings
        except InputsPending:
            self._pending_generate = True
            self.say("Reading the input; the job starts as soon as it is in.")
            return None
        except (ValueError, MediaError, ProjectError) as e:
            self.say(str(e), ERROR)
            return None
        if not edited:
            request.seed = self.next_seed()
        clip = self.primary_clip()
        if not edited:
            # A seed no job still queued or running uses for the same words and target (Generate pressed twice
            # must not make the same result twice) and, for a variation of a generated clip, none of its
            # versions used with these words ("Use these settings again" repeats one on purpose).
            free = self.free_seed(clip.id if clip is not None else None, request, request.seed,
                                  versions=not request.task.needs_image and not request.task.needs_video)
            if free != request.seed:
                request.seed = free
                self.params = replace(self.params, seed=request.seed)
                self.params_changed.emit()
        if clip is not None and clip.instruction != request.instruction:
            self.document.push(self.document.project.set_clip_instruction_change(clip.id, request.instruction))
        # A new clip plays at the rate its model made it for (as `main.py video` writes it); 0: the project's.
        fps = self.slots[VIDEO_SLOT].fps if request.task.makes_video else 0.0
        note = ""
        if request.task.makes_video and request.task is not Task.VIDEO_EDIT and \
                (made := nearest_clip_length(self.params.frames, self.frame_step)) != self.params.frames:
            # The CLI refuses such a length; the studio makes the nearest clip (at least 1 + a step: one frame
            # would be a still), and says so. An edit's length is said with the frames it edits.
            note += (f" Frames {self.params.frames} makes {made} frames: clips here are 1 + a multiple of "
                     f"{self.frame_step}, at least {1 + self.frame_step}.")
        if request.task is Task.VIDEO_EDIT and clip is not None:
            # The new version keeps the source's frame rate, so it lasts as long as what it edits (and its
            # sound, taken from the source on export, stays in step).
            item = self.document.project.media_item(clip.active.media_id)
            fps = float(item.fps or 0.0)
            _, available = self._clip_frames(clip, item)  # what the edit can read: the active version's
            # What the clip plays: as long as it is, where its files reach (an edit plays on into what it
            # edited; a version made from words ends at its own end).
            reach = max(length for _, length in pf.chain_spans(self.document.project, clip, clip.active))
            shown = max(available, int(min(clip.duration, reach) * item.fps + 1e-6)) if item.fps > 0 else available
            if shown > request.frames:  # the clip plays on past an edit as it was (an edit of an edit too)
                more = "; raise Frames to edit more" if clip_length(available, self.frame_step) > request.frames else ""
                note = (f" It edits the first {request.frames} of the clip's {shown} frames (the rest plays as it "
                        f"was){more}.")
        # An input of another shape is resized to the result's, not cropped: said, with the input's own size.
        items = [self.document.project.media_item(c.active.media_id) for c in self.selected_clips()]
        named = ([("the clip", items[0])] if request.task.needs_video and items else
                 [("the picture" if len(request.images) == 1 else f"picture {k + 1}", item)
                  for k, item in enumerate(items[:len(request.images or [])])] if request.task.needs_image else [])
        running = self.slots[self.engine.slot_running(request.task)]  # the other slot's model where only it does the task
        for what, item in named:
            known = running.own_size_only if running.state is ModelState.READY else None  # loading: not known
            if stretched := stretch_note(what, (item.width, item.height), request.width, request.height, "a Size",
                                         known):
                note += f" {stretched[2].upper()}{stretched[3:]}."
        if request.task is Task.VIDEO_EDIT and running.keep_source and named \
                and (named[0][1].width, named[0][1].height) != (request.width, request.height):
            from app.core.keep_source import EDIT_MAX_SIDE  # cv2's import: not at the studio's start

            note += (f" The edit is stored at the clip's own size (up to {EDIT_MAX_SIDE} pixels a side): the model's "
                     f"change scaled up, the clip's own pixels wherever it changed nothing.")
        footage = None
        if request.task is Task.VIDEO_EDIT and (keys := self._input_keys(request.task)):
            footage = (keys[0][0], keys[0][2])  # (media path, first frame): read at full size when it lands
        job_id = self.engine.submit(request)
        name = "Remake from words" if clip is not None and request.task in (Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO) \
            and len(self.selected_clips()) == 1 else TASK_NAMES[request.task]
        desc = f"{name}: {shortened(request.instruction)} (seed {request.seed})"
        edited = clip.active.id if request.task is Task.VIDEO_EDIT and clip is not None else ""
        self.jobs[job_id] = Job(job_id, request, clip.id if clip is not None else None, desc, fps=fps,
                                edited_version=edited, selection=tuple(self.selection), project=self.document.project,
                                model=self.running_folder(request.task), footage=footage,
                                span=(self.first_frame_read(clip), clip.duration) if edited else None)
        self.jobs_changed.emit()
        self.say(f"Queued job #{job_id}: {desc}.{note}" if note else f"Queued job #{job_id}: {desc}")
        return job_id

    def running_folder(self, task: Task) -> str:
        """The folder of the model that runs a job of `task` (the other slot's where only it does the task)."""
        return self.slots[self.engine.slot_running(task)].folder

    def may_run_again(self, job: Job) -> bool:
        """Whether `job`, offered again from a message (a retry), still belongs here: the engine is up and its
        project is the open one (said when not: its result would land in no project)."""
        if self.engine is None:
            return False
        if job.project is not None and job.project is not self.document.project:
            self.say(f"Job #{job.id} belonged to a project that is closed; it is not run again in this one.", WARNING)
            return False
        slot = self.slots[self.engine.slot_running(job.request.task)]
        if job.model and slot.folder != job.model:
            what = "video model" if slot.kind == VIDEO_SLOT else "model"
            self.say(f"Job #{job.id} was made by the {what} in {job.model}; the settings have named {slot.folder} "
                     f"since. It is not run again on a model that did not make it: Generate makes a new version with "
                     f"the {what} named now.", WARNING)
            return False
        return True

    def free_seed(self, clip_id: str | None, request: GenerationRequest, seed: int, versions: bool = True) -> int:
        """`seed` or the next one after it that no active job uses for the same words, task and target, nor (with
        `versions`) a version of the clip made with those words and task."""
        used = {j.request.seed for j in self.active_jobs() if j.clip_id == clip_id
                and j.request.instruction == request.instruction and j.request.task is request.task}
        clip = self.document.project.clip(clip_id) if clip_id is not None and self.has_clip(clip_id) else None
        if clip is not None and versions:
            used |= {v.request.get("seed") for v in clip.versions if v.request.get("instruction") ==
                     request.instruction and v.request.get("task") == request.task.value}
        seed %= 2**31 - 1
        while seed in used:
            seed = (seed + 1) % (2**31 - 1)
        return seed

    def running_job(self) -> Job | None:
        return next((j for j in self.jobs.values() if j.state is JobState.RUNNING), None)

    def active_jobs(self) -> list[Job]:
        """Jobs whose result is not in the project yet: queued, running, or finished with the result being written."""
        return [j for j in self.jobs.values() if j.state is not JobState.DONE] + list(self._storing.values())

    def cancel_running(self) -> None:
        job = self.running_job()
        if job is not None and self.engine is not None:
            self.engine.cancel(job.id)
            self.say(f"Cancelling job #{job.id}…")

    def finish_storing(self, seconds: float = 15.0) -> bool:
        """Let results already made and being written land in the project (a second or two) before it is closed:
        asked to stop them, a user would lose work that is done. The GUI's events go on, the user's input waits.
        True when none is left being written."""
        if not self._storing:
            return True
        self.say(f"Saving the result of job #{min(self._storing)} into the project first…")
        end = time.monotonic() + seconds
        while self._storing and time.monotonic() < end:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents, 50)
            time.sleep(0.005)
        return not self._storing

    def drop_jobs(self) -> int:
        """Cancel every queued and running job and forget them, before the project they belong to is closed
        (New, Open, Quit): a result that still arrives is then not put into the next project. The count."""
        dropped = list(self.jobs) + list(self._storing)
        for job_id in list(self.jobs):
            if self.engine is not None:
                self.engine.cancel(job_id)
            self.jobs.pop(job_id, None)
        self._storing.clear()  # a write still going ends in _store_result, which adds nothing to another project
        self._land_written()  # those written and waiting: the same (said, not added)
        if dropped:
            self.preview.emit(None)
            self.jobs_changed.emit()
        return len(dropped)

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
        if job is not None and job.state is JobState.RUNNING and self._watching(job):
            self.preview.emit(image)

    def _watching(self, job: Job) -> bool:
        """Whether the user is where `job` was queued (the same selection, or its clip among the selected):
        the viewer shows its forming preview there only; on another clip it shows that clip."""
        return tuple(self.selection) == job.selection or (job.clip_id is not None and job.clip_id in self.selection)

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
        job = self._end_job(job_id)
        if job is not None and not self.memory_retry.offer(job, message):
            self.say(f"Job #{job_id} failed: {message}", ERROR)

    def _on_cancelled(self, job_id: int) -> None:
        if self._end_job(job_id) is not None:
            self.say(f"Job #{job_id} was cancelled; the project is unchanged.", WARNING)

    def _on_finished(self, job_id: int, result: Any) -> None:
        job = self._end_job(job_id)
        if job is None:
            return
        plan = getattr(result, "plan", None)
        task = job.request.task
        undrafted = task in (Task.IMAGE_TO_VIDEO, Task.REFERENCE_TO_VIDEO) and plan is not None and \
            getattr(plan.draft_config, "track", False) and not plan.has_draft(0)
        where = "the image" if task is Task.IMAGE_TO_VIDEO else "the picture" if task is Task.IMAGE_EDIT else \
            "the reference stills"
        unchanged = bool(getattr(result, "unchanged", False))
        if names_what_the_clip_lacks(result):
            # Not attempted (the words name what the clip lacks): a copy of the clip as a version is clutter.
            self.say(f"Job #{job_id}: no new version. The edit was not made" + unchanged_words(result, "seed") + "."
                     + self._read_size_note(job), WARNING)
            return
        if unchanged and task is Task.VIDEO_EDIT:
            # Made and given back as its clip again: a version identical to the one it edits is clutter too. The
            # next seed is offered instead (the same edit of the same version).
            said = (f"Job #{job_id}: no new version. The model changed nothing" + (unchanged_words(result, "seed") or
                    ": what it drew was the clip again (another seed or wording may make the edit)") + ".")
            self.say(said, WARNING)
            self.seed_retry.offer(job, said)
            return
        shortfall = shortfall_words(result)
        missing = tuple(getattr(result, "missing", ()) or ())
        off = str(getattr(result, "plan_off", "") or "")
        said = (f"Job #{job_id} done in {getattr(result, 'seconds', 0):.1f} s; saving the result…" +
                 (f" It was planned without a drafted track: the model's detector found no object of its world in "
                  f"{where} (it misses objects much smaller or larger than its world's, or drawn otherwise)."
                  if undrafted else "") +
                 (f" {where[0].upper()}{where[1:]} {'show' if task is Task.REFERENCE_TO_VIDEO else 'shows'} no "
                  f"{' and no '.join(missing)} as the model's detector sees it" +
                  (" (it knows the flat shapes of its own world): the edit was planned from what it reads there."
                   if task is Task.IMAGE_EDIT else f": drawn where the draft put it, not taken from {where}.")
                  if missing else "") +
                 (" The model changed nothing" + (unchanged_words(result, "seed") or ": the new version is the clip "
                  "again (the edit was not made; another seed or wording may make it)") + "." if unchanged else "") +
                 (f" The {'edit' if task in (Task.VIDEO_EDIT, Task.IMAGE_EDIT) else 'clip'} was not made as planned: {shortfall} "
                  f"(another seed or wording may make it)." if shortfall else "") +
                 (f" Its plan did not follow the words: it has {off} (another seed drafts it again)." if off else "")
                 + self._length_note(job))
        self.say(said, WARNING if shortfall or unchanged or missing or off else INFO)
        if shortfall or unchanged or off:
            self.seed_retry.offer(job, said)
        frames, fps = np.asarray(result.frames), job.fps or self.document.project.settings.fps
        ran_on = [slot for slot in self.slots.values() if slot.folder == job.model]  # one model may do images and clips
        threshold = (ran_on[0] if ran_on else self.slots[VIDEO_SLOT]).keep_source
        if task is Task.VIDEO_EDIT and job.request.keep_source and threshold:  # at the clip's own size
            self._write_result(job, (write_edit_result, frames, job.request.video, job.footage, threshold, fps,
                                     result.plan))
        else:
            self._write_result(job, (pf.write_result, frames, fps, result.plan, None, getattr(result, "recipe", None)))

    def _write_result(self, job: Job, work: tuple) -> None:
        """Write a finished job's result into the project's media folder off the GUI thread (`work`: the writer and
        its arguments after the folder), then store it. A result whose write fails is kept here, not thrown away."""
        writer, *args = work
        self._storing[job.id] = job
        job.written_to = str(self.work_path())

        def failed(e: BaseException, j: Job = job) -> None:
            self._storing.pop(j.id, None)
            self._land_written()  # a later job's result waited for this one
            if j.project is not None and j.project is not self.document.project:
                return  # its project was closed meanwhile (and asked about): nothing to keep it for
            self._unsaved[j.id] = (j, work)
            text = (f"Job #{j.id} finished but its result could not be saved in the project folder: {e} It is kept "
                    f"while the studio runs: save the project to a folder you can write to and it is added there.")
            self.say(text, ERROR)
            self.unsaved_result.emit(text)

        run_task(self.pool, writer, self.work_path(), *args,
                 on_done=lambda written, j=job: self._result_written(j, written), on_error=failed, owner=self)

    def _result_written(self, job: Job, written: dict) -> None:
        self._written[job.id] = (job, written)
        self._land_written()

    def _land_written(self) -> None:
        """Written results land in the order their jobs were made: writes run side by side (a long clip's edit
        written at its own size takes seconds, a still milliseconds; kept results are written again together after
        a Save As), and the versions of a clip would otherwise be numbered in the order the writes ended."""
        while self._written:
            first = min(self._written)
            if any(j < first for j in self._storing if j not in self._written):
                return  # an earlier job's result is still being written
            self._store_result(*self._written.pop(first))

    def writing_results(self) -> bool:
        """A finished job's result is being written into the project folder."""
        return bool(self._storing)

    def unsaved_results(self) -> int:
        """Finished results kept in memory because their write failed (a read-only or full project folder)."""
        return len(self._unsaved)

    def forget_unsaved(self) -> None:
        self._unsaved.clear()

    def retry_unsaved(self) -> None:
        """The project was saved (Save As to another folder, or its folder can be written again): results whose
        write failed are written into its folder now."""
        for job_id, (job, work) in list(self._unsaved.items()):
            del self._unsaved[job_id]
            self._write_result(job, work)

    def _read_size_note(self, job: Job) -> str:
        """An edit's clip larger than the model's size is read shrunk to it, where a small object can be lost:
        said with "it finds no star in the clip"."""
        try:
            clip = self.document.project.clip(job.clip_id)
            version = next(v for v in clip.versions if v.id == job.edited_version)
            item = self.document.project.media_item(version.media_id)
        except (ProjectError, StopIteration, TypeError):
            return ""
        w, h = job.request.width, job.request.height
        if (item.width, item.height) == (w, h):
            return ""
        if item.width <= w and item.height <= h:
            return ""  # read at its own size or larger: nothing of it is lost in reading
        return (f" It reads the clip at {w}×{h} px, the clip's {item.width}×{item.height} shrunk to that: an object "
                f"much smaller than the frame can be lost.")

    def _length_note(self, job: Job) -> str:
        """A clip of a length its model was not trained on comes out worse (the embedded video model: 17
        frames alone; asked for 33 it drew blank frames), which is said with the result."""
        trained, frames = self.slots[VIDEO_SLOT].trained_frames, int(job.request.frames or 1)
        if not job.request.task.makes_video or not trained or frames == trained:
            return ""
        return (f" {frames} frame{'s' if frames != 1 else ''}: this model was trained on {trained}-frame clips alone, "
                f"other lengths come out worse.")

    def _store_result(self, job: Job, written: dict) -> None:
        # Closed while its file was written (dropped by New/Open/Quit, or queued in another project).
        if job.id not in self._storing or job.project is not None and job.project is not self.document.project:
            self._storing.pop(job.id, None)
            self.say(f"Job #{job.id} finished after its project was closed; its result is not added to this one.",
                     WARNING)
            return
        here = str(self.work_path())
        if job.written_to and pf.media_dir(job.written_to) != pf.media_dir(here):
            # Saved under a new name while the file was written: the new folder did not get it (Save As copies
            # the media the project holds). Copied there first, off the GUI thread, then stored.
            def failed(e: BaseException, j: int = job.id) -> None:
                self._storing.pop(j, None)
                self._land_written()
                self.say(f"Job #{j} finished but its result could not be saved: {e}", ERROR)

            run_task(self.pool, pf.copy_result, job.written_to, here, written,
                     on_done=lambda moved, j=job: self._result_written(j, moved), on_error=failed, owner=self)
            job.written_to = here
            return
        self._storing.pop(job.id, None)
        request = job.request.to_dict()
        if job.edited_version:  # what the clip goes on with past the edit's end (project_file.version_frame)
            request[pf.EDITED_VERSION] = job.edited_version
        gone = job.clip_id is not None and not self.has_clip(job.clip_id)
        # A video edit is made from the frames its clip showed when it was queued: trimmed at its start or cut
        # shorter than the edit (a split) meanwhile, the clip plays other frames there, and as its version the
        # edit would show the wrong ones (out of step with the clip's sound) or be cut off unseen.
        moved = not gone and job.span is not None and self._edit_span_changed(job, written)
        # The result is shown where the user still is; one who has moved on to other clips is not pulled back
        # (a selection the studio made for an earlier result is not the user moving on).
        now = tuple(self.selection)
        moved_on = bool(now) and now != job.selection and now != self._result_selected
        change, clip_id = pf.result_change(self.document.project, written, None if moved else job.clip_id, request,
                                           job.request.instruction)
        stack = self.document.undo_stack
        undone = stack.count() - stack.index()  # a new step ends them, as any edit after an undo does: said
        self.document.push(change, f"Generate: {job.request.instruction[:30]}")
        if not moved_on:
            self._result_selected = (clip_id,)
            self.select_requested.emit([clip_id])
            # A new selection, or the project change of a selected clip's new version, has shown its plan
            # already; reading and drawing it twice was a fifth of the GUI's longest stall as a result lands.
            if self._shown_version != (clip_id, self.document.project.clip(clip_id).active.id):
                self.show_stored_or_live_plan()
        where = "new version of the clip ready" if job.clip_id is not None and clip_id == job.clip_id else \
            "new clip ready (the clip it was made from was removed, so it is a clip of its own)" if gone else \
            ("new clip ready: the clip it edits was trimmed or split while it ran, so the edit, made from the "
             "clip's frames as they were, is a clip of its own") if moved else "new clip ready"
        self.say(f"Job #{job.id}: {where}" + (" (not selected: you are on another clip)." if moved_on else ".") +
                 (f" The {undone} step{'s' if undone != 1 else ''} undone before it can no longer be redone (the "
                  f"result is a step of its own)." if undone else ""), WARNING if undone else INFO)
        self.result_stored.emit(clip_id)

    def _edit_span_changed(self, job: Job, written: dict) -> bool:
        """Whether the clip a video edit was queued for now starts at another frame of what the edit read (its
        footage trimmed at the start; an edit of a generated version reads it from its own start, trimmed or
        not), or ends before the edit does."""
        clip = self.document.project.clip(job.clip_id)
        first, duration = job.span
        version = next((v for v in clip.versions if v.id == job.edited_version), None)
        fps = float(written.get("fps") or 0.0)
        length = int(written.get("frames") or 0) / fps if fps > 0 else 0.0
        moved = version is not None and self.first_frame_read(clip, version) != first
        return moved or clip.duration + 1e-6 < min(length, duration)

    # ================================================================ project changes
    def _on_project_changed(self, change: dict) -> None:
        for clip_id in _instructions_set(change):  # an undone or redone instruction is what the box shows
            if clip_id in self._inputs and self.has_clip(clip_id):
                self._inputs[clip_id].instruction = self.document.project.clip(clip_id).instruction
        for target in _target_words_set(change):
            if target in self._inputs:
                self._inputs[target].instruction = self.document.project.target_words.get(target, "")
        for key in [k for k in self._inputs if k and "+" not in k and not self.has_clip(k)]:
            del self._inputs[key]  # a removed clip's inputs: an undone removal brings the clip's own words back
        kept = [c for c in self.selection if self.has_clip(c)]
        if kept != self.selection:
            # Remembered so that undoing the removal selects them again (and nothing else added does).
            self._removed_selection = [c for c in self.selection if c not in kept]
            if self._pending_generate:  # a press for a clip now removed must not fire for what is left selected
                self._pending_generate = False
                self.say("The waiting Generate was dropped: a selected clip was removed.", WARNING)
        self.selection = kept
        self._slot_moved()
        self.target_changed.emit()
        self._prefetch_inputs()
        clip = self.primary_clip()
        shown = (clip.id, clip.active.id) if clip is not None else None
        if shown != self._shown_version:  # undo/redo, a deleted clip, another version: its plan follows
            self.show_stored_or_live_plan()
        elif self.latest_plan_job is not None and self._planned_inputs != self._inputs_now():
            # Other frames of the clip than the live plan read (a trim, or its undo, whose frames are decoded
            # already, so no decode ends to ask again): the live plan is made again, not left stale.
            self.plan_debounce.start()
        back = self._removed_selection
        if back and not kept and set(back) <= set(_clips_added(change)):  # a removal undone: selected again
            self._removed_selection = []
            self.select_requested.emit(back)

    def _on_project_reset(self) -> None:
        self._unsaved.clear()  # results of the project closed (its close asked about them)
        self.selection = []
        self._inputs.clear()
        self._decoded.clear()
        self._pending_generate = False
        self._removed_selection = []
        self.latest_plan_job = None
        self._show_plan(None, "")
        self._slot_moved()
        self.target_changed.emit()


def _instructions_set(change: dict) -> list[str]:
    """Ids of the clips whose instruction `change` sets (alone or in a batch)."""
    if change.get("kind") == "batch":
        return [c for part in change.get("changes", []) for c in _instructions_set(part)]
    return [change["clip_id"]] if change.get("kind") == "set_clip_instruction" else []


def _target_words_set(change: dict) -> list[str]:
    """Targets (Project.target_words) whose words `change` sets (alone or in a batch)."""
    if change.get("kind") == "batch":
        return [t for part in change.get("changes", []) for t in _target_words_set(part)]
    return [change["target"]] if change.get("kind") == "set_target_words" else []


def _clips_added(change: dict) -> list[str]:
    """Ids of the clips `change` puts on the timeline (an undone removal, a batch of them)."""
    if change.get("kind") == "batch":
        return [c for sub in change.get("changes", []) for c in _clips_added(sub)]
    return [change["clip"]["id"]] if change.get("kind") == "add_clip" else []
