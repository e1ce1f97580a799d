"""The background engine: one long-lived thread owns the model and runs every job on it.

Threading design
----------------
* `Engine` is the object the UI holds. It lives in the thread that created it (the GUI thread) and
  owns a `QThread` plus a `_Worker` moved into that thread with `moveToThread`. All model code (loading,
  planning, denoising, decoding) runs in that one thread, for the whole life of the engine: CUDA
  contexts, caches and the pipeline's forward hooks are never touched by two threads.
* The worker does not use the Qt event loop: it blocks on a `threading.Condition` over a small shared
  state (a FIFO of jobs, the one pending plan request, the running job). A running job keeps the
  thread busy for seconds, so a cancel sent as a queued Qt slot would arrive only after the job it
  was meant to stop. The public methods therefore take the lock, change the state and return at once;
  they are safe to call from any thread and never wait for model code.
* Signals are declared on `Engine` and emitted by the worker. Because `Engine` lives in the GUI
  thread, Qt delivers them there as queued calls, also to plain Python callables (lambdas), whose
  hidden receiver takes the sender's thread. Had `Engine` itself been moved into the worker thread,
  a `lambda` connected by the UI would run in the worker thread and touch widgets from there.
* Every job id ends with exactly one of `finished`/`plan_ready`, `failed` or `cancelled`, so the UI
  can keep a simple per-job state machine.

Scheduling
----------
* Generation jobs and model loads share one FIFO: a job submitted before `load_model` runs on the old
  model, one submitted after runs on the new one, and a job submitted while the model is still loading
  waits for it instead of failing with "no model". So do memory re-placements (`set_memory_options`).
* A generation that runs out of memory reports `out_of_memory` (its request and plan, kept, and the memory
  options to retry with) just before its `failed`, after the device's cache is emptied.
* Two model slots, "image" and "video" (`load_model(..., slot=...)`): the studio keeps a still model
  and a clip model loaded side by side, both in this one thread. A job runs on the slot of its task's
  kind when that slot's model does the task, else on the other slot's model when that one does (one
  model may do both), else on its kind's slot (whose check then says what it does instead).
* Plan requests (the live plan while the user types) are cheap (milliseconds on the embedded model)
  and only the newest one matters. There is at most one pending: a newer request supersedes it (the
  older id is reported `cancelled`). A pending plan runs ahead of queued generation jobs, and while a
  generation is running it runs *between two denoising steps*, from the step callback, on the same
  thread and model. A long generation therefore never leaves the plan view stale, and no second thread
  ever touches the model. The price is that one denoising step is delayed by one planner call.
  Plans do not jump ahead of a queued model load: a plan for a model that is about to be replaced
  would be stale, and without any model it could only fail.

Why one file of about 750 lines: the worker's state machine (jobs, the pending plan, cancel, the two
model slots) is one lock's worth of logic; split, its invariants would span files. Loading lives apart
(app/engine/loading.py), and so does what is kept of a run out of memory (app/engine/out_of_memory.py).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QAbstractEventDispatcher, QCoreApplication, QObject, QThread, Signal, Slot
from PySide6.QtGui import QImage

log = logging.getLogger(__name__)

Loader = Callable[..., Any]  # loader(path, device[, dtype=...]) -> MetaCanvasPipeline

# At most this long, a model load waits for the GUI thread to be idle once before its imports start.
GUI_IDLE_WAIT_S = 0.5

from app.engine.loading import (default_loader, imports_without_gc_pauses, is_out_of_memory,  # noqa: E402
                                 load_placed, release_memory)
from app.engine.out_of_memory import out_of_memory_failure  # noqa: E402
from app.settings import MAX_CPU_THREADS  # noqa: E402

NO_MODEL_MESSAGE = "No model is loaded: choose a model folder (Settings) and wait for it to load."
NO_VIDEO_MODEL_MESSAGE = ("No video model is loaded: choose a video model folder (Settings) and wait for it to "
                          "load.")

IMAGE_SLOT, VIDEO_SLOT = "image", "video"
SLOTS = (IMAGE_SLOT, VIDEO_SLOT)


def slot_for_task(task: Any) -> str:
    """The slot whose model a task's kind belongs to: clips to "video", stills to "image"."""
    return VIDEO_SLOT if getattr(task, "makes_video", False) else IMAGE_SLOT


def array_to_qimage(array: np.ndarray) -> QImage:
    """uint8 [H, W, 3|4] -> a QImage that owns its pixels. A video preview [F, H, W, 3] shows its middle frame:
    the first is the given picture in image-to-video (nothing forms there) and, in any clip, where motion has
    not begun."""
    a = np.asarray(array)
    if a.ndim == 4:
        a = a[len(a) // 2]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8:
        # Float previews in 0..1 are the only other kind a pipeline plausibly sends.
        a = (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    a = np.ascontiguousarray(a)
    h, w, c = a.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    # QImage would only borrow the numpy buffer; copy() gives it its own before the array goes away.
    return QImage(a.data, w, h, c * w, fmt).copy()


@dataclass
class _Job:
    id: int
    kind: str  # "generate" | "plan" | "load"
    request: Any = None
    plan: Any = None  # a plan to reuse instead of planning again (generate)
    path: Any = None  # load
    slot: str = IMAGE_SLOT  # load: which model slot it fills
    device: str = "cpu"  # load
    dtype: Any = None  # load
    memory: Any = None  # load, memory: app.core.memory.MemoryOptions
    cancel: threading.Event = field(default_factory=threading.Event)


class _Worker(QObject):
    """Runs in the engine thread; `run` is entered once, when the thread starts, and loops until shutdown."""

    def __init__(self, engine: "Engine") -> None:
        super().__init__()
        # A weak reference: with a strong one, Engine and worker form a cycle that only the cyclic
        # garbage collector frees, and it runs in whatever thread happens to allocate, possibly
        # another engine's thread, destroying Qt objects away from the GUI thread.
        self._engine = weakref.ref(engine)

    @Slot()
    def run(self) -> None:
        engine = self._engine()
        if engine is not None:
            engine._serve()


class Engine(QObject):
    """Owns the model and a job queue in one background thread. See the module docstring."""

    # job_id, step (1-based count of finished steps), total steps
    progress = Signal(int, int, int)
    # job_id, the latest denoising preview (throttled to `preview_fps`)
    preview = Signal(int, QImage)
    # job_id, Plan (moved to the CPU, safe to draw from the GUI thread)
    plan_ready = Signal(int, object)
    # job_id, GenerationResult
    finished = Signal(int, object)
    # job_id, a message a user can act on
    failed = Signal(int, str)
    # job_id, OutOfMemory (app/engine/out_of_memory.py: the request, its plan, the options to retry with); sent
    # just before that job's `failed`
    out_of_memory = Signal(int, object)
    # job_id: removed from the queue, stopped between two steps, or a plan request superseded
    cancelled = Signal(int)
    # ids of the generation jobs waiting to run, in the order they will run
    queue_changed = Signal(list)
    # The image slot's load (the model the studio starts with): text / name / message.
    model_loading = Signal(str)
    model_ready = Signal(str)
    model_failed = Signal(str)
    # Every slot's load: slot ("image" | "video"), then text / name / message as above.
    slot_loading = Signal(str, str)
    slot_ready = Signal(str, str)
    slot_failed = Signal(str, str)
    # Internal: "the queue changed, tell the UI". The list itself is read when this is delivered
    # on the GUI thread, not when it is emitted: a snapshot taken in the engine thread could
    # arrive after a newer one sent directly by cancel() and put a cancelled job back on screen.
    _queue_touched = Signal()

    def __init__(self, loader: Loader | None = None, model_path: str | Path | None = None,
                 device: str = "cpu", dtype: Any = None, *, preview_fps: float = 15.0,
                 previews: bool = True, cpu_threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The CPU threads the model's operations may use (None: torch's default, every core). The studio
        # passes all cores but one (app/settings.py studio_cpu_threads): the GUI thread, playback and the
        # decoders keep a core while a job runs.
        self._cpu_threads = min(int(cpu_threads), MAX_CPU_THREADS) if cpu_threads else None
        self._loader: Loader = loader or default_loader
        self._min_preview_interval = 1.0 / preview_fps if preview_fps > 0 else 0.0
        self._previews = previews

        self._cond = threading.Condition(threading.RLock())
        self._ids = itertools.count(1)
        self._queue: deque[_Job] = deque()  # generation jobs and model loads, FIFO
        self._pending_plan: _Job | None = None
        self._running: _Job | None = None
        self._running_plan: _Job | None = None  # a plan run between two steps of `_running`
        self._stopping = False
        self._pipes: dict[str, Any] = {}  # slot -> loaded pipeline
        self._loaded_once = False  # a load has started in this engine (the first one freezes its imports)
        self._model_names: dict[str, str] = {}

        self._queue_touched.connect(self._announce_queue)

        self._thread = QThread()
        self._thread.setObjectName("MetaCanvasEngine")
        self._worker = _Worker(self)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._thread.start()

        app = QCoreApplication.instance()
        if app is not None:
            # A QThread destroyed while running aborts the process; make sure quitting stops it first.
            app.aboutToQuit.connect(self.shutdown)
        # Set the first time the GUI thread's event loop has nothing left to do (see _run_load).
        self._gui_idle = threading.Event()
        dispatcher = QAbstractEventDispatcher.instance(QThread.currentThread())
        if app is not None and dispatcher is not None and QThread.currentThread() is app.thread():
            self._idle_dispatcher = dispatcher
            dispatcher.aboutToBlock.connect(self._on_gui_idle)
        else:
            self._idle_dispatcher = None
            self._gui_idle.set()
        if model_path is not None:
            self.load_model(model_path, device, dtype)

    # ---------------------------------------------------------------- public API (any thread)

    def load_model(self, path: str | Path, device: str = "cpu", dtype: Any = None, slot: str = IMAGE_SLOT,
                   memory: Any = None) -> None:
        """Queue a model load into `slot` (replacing that slot's model only); `slot_loading`, then
        `slot_ready` or `slot_failed` report it (and, for the image slot, `model_loading`/`model_ready`/
        `model_failed`).

        `device` may be "auto" (resolved by app.settings.resolve_device); `dtype` is passed to the
        loader as `dtype=` only when given (a torch.dtype or "float32"/"bfloat16"/"float16"). `memory`
        (app.core.memory.MemoryOptions) places the model's parts, and its precision replaces `dtype`.
        """
        if slot not in SLOTS:
            raise ValueError(f"unknown model slot {slot!r}; expected one of {', '.join(SLOTS)}")
        with self._cond:
            if self._stopping:
                return
            self._queue.append(_Job(next(self._ids), "load", path=path, device=device, dtype=dtype, slot=slot,
                                    memory=memory))
            self._cond.notify_all()

    def set_memory_options(self, options: Any, slot: str = IMAGE_SLOT) -> None:
        """Queue placing a slot's model under other memory options (app.core.memory.MemoryOptions): jobs submitted
        after this run with them (the retry with more offload after running out of memory)."""
        with self._cond:
            if not self._stopping:
                self._queue.append(_Job(next(self._ids), "memory", memory=options, slot=slot))
                self._cond.notify_all()

    def submit(self, request: Any, plan: Any = None) -> int:
        """Queue a generation; returns its job id. `plan` reuses a plan (e.g. the edited live plan)."""
        with self._cond:
            job = _Job(next(self._ids), "generate", request=request, plan=plan)
            cancelled_now = self._stopping
            if not cancelled_now:
                self._queue.append(job)
                self._cond.notify_all()
        if cancelled_now:
            self.cancelled.emit(job.id)
        else:
            self._queue_touched.emit()
        return job.id

    def request_plan(self, request: Any) -> int:
        """Ask for the plan of `request` (the live plan); supersedes a plan request still pending."""
        with self._cond:
            job = _Job(next(self._ids), "plan", request=request)
            superseded, self._pending_plan = self._pending_plan, job
            if self._stopping:
                self._pending_plan = None
                superseded = job
            self._cond.notify_all()
        if superseded is not None:
            self.cancelled.emit(superseded.id)
        return job.id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued, pending or running job. Returns False (and does nothing) for other ids.

        A queued job is removed at once and reported here; the running job gets its flag set and
        is reported by the engine thread once the pipeline has stopped (before its next step).
        """
        with self._cond:
            for running in (self._running, self._running_plan):
                if running is not None and running.id == job_id and running.kind != "load":
                    running.cancel.set()
                    return True
            if self._pending_plan is not None and self._pending_plan.id == job_id:
                self._pending_plan = None
                removed = True
            else:
                job = next((j for j in self._queue if j.id == job_id and j.kind == "generate"), None)
                removed = job is not None
                if job is not None:
                    self._queue.remove(job)
        if removed:
            self.cancelled.emit(job_id)
            self._queue_touched.emit()
        return removed

    def cancel_all(self) -> None:
        """Drop every queued job and the pending plan, and stop the running job."""
        with self._cond:
            dropped = [j.id for j in self._queue if j.kind == "generate"]
            self._queue = deque(j for j in self._queue if j.kind != "generate")
            if self._pending_plan is not None:
                dropped.append(self._pending_plan.id)
                self._pending_plan = None
            if self._running is not None:
                self._running.cancel.set()
        for job_id in dropped:
            self.cancelled.emit(job_id)
        if dropped:
            self._queue_touched.emit()

    def shutdown(self) -> None:
        """Cancel everything, let the running step end, stop the thread and wait for it. Idempotent.

        This waits for at most one denoising step (or a model load in progress, which cannot be
        interrupted): never longer than the thread needs to reach a safe point.
        """
        with self._cond:
            if self._stopping and not self._thread.isRunning():
                return
        self.cancel_all()
        with self._cond:
            self._stopping = True
            self._queue.clear()  # loads that never started
            self._cond.notify_all()
        self._thread.quit()
        self._thread.wait()
        self._pipes.clear()

    def set_previews(self, enabled: bool) -> None:
        """Previews off saves converting a frame to a QImage at every step (Settings: preview)."""
        self._previews = bool(enabled)

    def set_cpu_threads(self, threads: int | None) -> None:
        """The CPU threads the next jobs compute with (None: leave torch's as they are; at most MAX_CPU_THREADS)."""
        self._cpu_threads = min(int(threads), MAX_CPU_THREADS) if threads else None

    def cpu_threads(self) -> int | None:
        return self._cpu_threads

    @property
    def pending_jobs(self) -> list[int]:
        with self._cond:
            return self._pending_ids_locked()

    @property
    def running_job(self) -> int | None:
        with self._cond:
            return self._running.id if self._running is not None else None

    @property
    def model_name(self) -> str | None:
        """The image slot's model name (see name_for)."""
        return self._model_names.get(IMAGE_SLOT)

    @property
    def has_model(self) -> bool:
        """Whether the image slot holds a model (see has_slot)."""
        return IMAGE_SLOT in self._pipes

    @property
    def model_defaults(self):
        """The image slot's PipelineDefaults (see defaults_for)."""
        return self.defaults_for(IMAGE_SLOT)

    def name_for(self, slot: str) -> str | None:
        return self._model_names.get(slot)

    def has_slot(self, slot: str) -> bool:
        return slot in self._pipes

    def defaults_for(self, slot: str):
        """A slot's PipelineDefaults (size, steps, guidance, frames, the tasks it does), or None.
        Read-only after loading, so the GUI thread may read it."""
        pipe = self._pipes.get(slot)
        return getattr(pipe, "defaults", None) if pipe is not None else None

    def frame_step(self, slot: str = VIDEO_SLOT) -> int:
        """How a slot's model packs frames: a clip it makes has 1 + a multiple of this many frames (Wan's
        and the embedded video model's codec: 4). 1 for a still model, or with no model."""
        pipe = self._pipes.get(slot)
        codec = getattr(pipe, "codec", None) if pipe is not None else None
        try:
            return max(1, int(getattr(codec, "temporal_factor", 1)))
        except (TypeError, ValueError):
            return 1

    def max_frames(self, slot: str = VIDEO_SLOT) -> int:
        """The longest clip the slot's model makes from words (MetaCanvasPipeline.max_frames; the positions its
        backbone reaches); the Frames box stops there. 0 when no model is loaded or it does not say."""
        pipe = self._pipes.get(slot)
        try:
            return max(1, int(pipe.max_frames())) if pipe is not None and hasattr(pipe, "max_frames") else 0
        except (TypeError, ValueError):
            return 0

    def check_frames(self, slot: str, frames: int, task: Any, references: int = 0) -> None:
        """Raise ValueError (one line) unless the slot's model makes a clip of `frames` frames for `task`
        (MetaCanvasPipeline.check_frames: its packing and the positions its backbone reaches). Reads only
        the loaded model's configuration, so the GUI thread may call it before queueing a job."""
        pipe = self._pipes.get(slot)
        if pipe is not None and hasattr(pipe, "check_frames"):
            pipe.check_frames(frames, task, references)

    def check_instruction(self, slot: str, text: str, task: Any = None) -> None:
        """Raise ValueError (UnknownWordsError) when the slot's model does not know a word of `text`: said before
        a job is queued, not as a failed job. Reads the tokenizer's vocabulary only; a tokenizer the worker
        holds just then ("Already borrowed") is let be: the job checks again."""
        pipe = self._pipes.get(slot)
        if pipe is not None and hasattr(pipe, "check_instruction"):
            try:
                pipe.check_instruction(text, task)
            except RuntimeError:
                pass

    def slot_running(self, task: Any) -> str:
        """The slot whose model runs a request of `task` (see the module docstring: two model slots): the task's own
        slot, else the other where only its model does the task (one model doing images and clips), else the
        task's slot when it holds a model at all, else the other."""
        kind = slot_for_task(task)
        other = IMAGE_SLOT if kind == VIDEO_SLOT else VIDEO_SLOT
        name = getattr(task, "value", None)
        for slot in (kind, other):
            pipe = self._pipes.get(slot)
            tasks = getattr(getattr(pipe, "defaults", None), "tasks", None)
            if pipe is not None and tasks is not None and name in tasks:
                return slot
        return kind if self._pipes.get(kind) is not None or self._pipes.get(other) is None else other

    def _pipe_for(self, request: Any) -> Any:
        """The model a request runs on (`slot_running`)."""
        task = getattr(request, "task", None)
        pipe = self._pipes.get(self.slot_running(task))
        if pipe is None:
            raise _UserError(NO_VIDEO_MODEL_MESSAGE if slot_for_task(task) == VIDEO_SLOT else NO_MODEL_MESSAGE)
        return pipe

    @property
    def is_running(self) -> bool:
        return self._thread.isRunning()

    @Slot()
    def _on_gui_idle(self) -> None:
        self._gui_idle.set()
        if self._idle_dispatcher is not None:
            self._idle_dispatcher.aboutToBlock.disconnect(self._on_gui_idle)
            self._idle_dispatcher = None

    @Slot()
    def _announce_queue(self) -> None:
        self.queue_changed.emit(self.pending_jobs)

    # ---------------------------------------------------------------- engine thread

    def _pending_ids_locked(self) -> list[int]:
        return [j.id for j in self._queue if j.kind == "generate"]

    def _load_ahead_of(self, plan: _Job) -> bool:
        """Whether the next queued job loads the model that would make `plan`: the plan waits for it (made by the
        model it replaces, it would be stale on arrival). A load for the other slot (a click on a clip queues the
        video model's) holds no still's plan back."""
        head = self._queue[0] if self._queue else None
        return head is not None and head.kind == "load" and \
            head.slot == self.slot_running(getattr(plan.request, "task", None))

    def _next_job_locked(self) -> _Job | None:
        if self._pending_plan is not None and not self._load_ahead_of(self._pending_plan):
            job, self._pending_plan = self._pending_plan, None
            return job
        if self._queue:
            return self._queue.popleft()
        return None

    def _serve(self) -> None:
        threads_set = None
        while True:
            with self._cond:
                job = None
                while not self._stopping and job is None:
                    job = self._next_job_locked()
                    if job is None:
                        self._cond.wait()
                if self._stopping and job is None:
                    break
                self._running = job
            if job.kind == "generate":
                self._queue_touched.emit()
            try:
                threads = self._cpu_threads  # read once: the GUI thread may change it meanwhile
                if threads and threads != threads_set:  # the model's work runs in this thread
                    import torch

                    torch.set_num_threads(threads)
                    threads_set = threads
                if job.kind == "load":
                    self._run_load(job)
                elif job.kind == "plan":
                    self._run_plan(job)
                elif job.kind == "memory":
                    self._run_memory(job)
                else:
                    self._run_generate(job)
            except BaseException as exc:  # the engine thread must survive anything a job does
                log.exception("engine job %s crashed outside its handler", job.id)
                self.failed.emit(job.id, str(exc) or type(exc).__name__)
                if job.kind == "load":  # a slot left "loading" would hold every Generate back, unsaid
                    self._slot_failed(job.slot, f"Could not load {Path(str(job.path)).name}: "
                                                f"{str(exc) or type(exc).__name__}")
            finally:
                with self._cond:
                    self._running = None
        with self._cond:
            # Dropped in the thread that used it; no gc.collect() here, which would stall the GUI
            # thread's exit for nothing: the process is ending or the engine is being discarded.
            self._pipes.clear()

    def _run_load(self, job: _Job) -> None:
        path, slot = job.path, job.slot
        name = Path(str(path)).name or str(path)

        def loading(text: str) -> None:
            self.slot_loading.emit(slot, text)
            if slot == IMAGE_SLOT:
                self.model_loading.emit(text)

        # Release the slot's old model first: a swap then needs the memory of one model, not two. A failed
        # load therefore leaves the slot empty, and the failure says so. It goes before the imports below,
        # whose end freezes what is alive (imports_without_gc_pauses): the old model must be gone by then.
        if slot in self._pipes:
            with self._cond:
                self._pipes.pop(slot, None)
                self._model_names.pop(slot, None)
            release_memory()
        # Only the engine's first load freezes what its imports leave (the studio's startup). Later the user's
        # work is alive (an open project's decoded frames in a reference cycle), and so may be the other slot's
        # model (forward hooks make it a cycle): frozen, neither could ever be collected once dropped.
        freeze, self._loaded_once = not self._loaded_once, True
        device = job.device
        try:  # the device's probe too: torch failing to import (a broken CUDA library) is this load's failure
            if device == "auto":
                from app.settings import resolve_device

                with imports_without_gc_pauses(freeze):  # torch, when nothing imported it yet
                    device = resolve_device("auto")
            loading(f"Loading {name} on {device}…")
            prepare = getattr(self._loader, "prepare", None)
            if prepare is not None:
                # The studio starts the engine one event-loop turn after its window shows, before the
                # window's first paint. That paint calls into Python for each widget, and each call
                # waits for the interpreter lock while this thread imports: the first frame took
                # 50-100 ms instead of ~10. Importing after the GUI's first idle moment costs nothing.
                self._gui_idle.wait(GUI_IDLE_WAIT_S)
                with imports_without_gc_pauses(freeze):
                    prepare(path)
            pipe = load_placed(self._loader, path, device, job.dtype, job.memory)
        except BaseException as exc:
            log.exception("loading %s failed", path)
            out_of_memory = is_out_of_memory(exc)
            if out_of_memory:
                message = (f"Out of memory while loading {name} on {device}: try model or sequential offload "
                           f"(Settings ▸ Memory), a lower precision (bfloat16/float16), the CPU, or a smaller model.")
            else:
                message = f"Could not load {name}: {str(exc) or type(exc).__name__}"
        else:
            with self._cond:
                self._pipes[slot], self._model_names[slot] = pipe, name
            self.slot_ready.emit(slot, name)
            if slot == IMAGE_SLOT:
                self.model_ready.emit(name)
            return
        if out_of_memory:  # outside the except block, whose traceback holds the half-loaded weights
            release_memory()
        self._slot_failed(slot, message)

    def _slot_failed(self, slot: str, message: str) -> None:
        self.slot_failed.emit(slot, message)
        if slot == IMAGE_SLOT:
            self.model_failed.emit(message)

    def _plan(self, job: _Job) -> None:
        """Run one plan request and report it; shared by idle planning and planning between steps."""
        try:
            pipe = self._pipe_for(job.request)
            job.request.validate()
            plan = pipe.plan(job.request)
            # The GUI thread draws heatmaps from the plan: give it CPU tensors, so it never
            # touches the device the engine is computing on.
            if hasattr(plan, "to"):
                plan = plan.to("cpu")
        except BaseException as exc:
            if job.cancel.is_set():
                self.cancelled.emit(job.id)
            else:
                self.failed.emit(job.id, self._message(exc, None, None, planning=True))
            return
        if job.cancel.is_set():
            self.cancelled.emit(job.id)
        else:
            self.plan_ready.emit(job.id, plan)

    def _run_plan(self, job: _Job) -> None:
        self._plan(job)

    def _run_memory(self, job: _Job) -> None:
        pipe = self._pipes.get(job.slot)
        if pipe is None:
            return
        try:
            from app.core.memory import apply_memory_options

            apply_memory_options(pipe, job.memory)
        except Exception as exc:  # half placed: the model cannot be trusted, so the slot is emptied
            log.exception("placing the %s model under %s failed", job.slot, job.memory)
            with self._cond:
                self._pipes.pop(job.slot, None)
            release_memory()
            self._slot_failed(job.slot, f"Could not apply the memory options ({job.memory.describe()}): {exc}. "
                                        f"Load the model again.")

    def _plan_between_steps(self) -> None:
        with self._cond:
            if self._pending_plan is not None and self._load_ahead_of(self._pending_plan):
                return  # as _next_job_locked: a plan waits for a queued load, not made by the model it replaces
            job, self._pending_plan = self._pending_plan, None
            if job is None:
                return
            # Kept apart from `_running`, so cancel() still finds the generation that is paused.
            self._running_plan = job
        try:
            self._plan(job)
        finally:
            with self._cond:
                self._running_plan = None

    def _run_generate(self, job: _Job) -> None:
        state = _StepState()

        def on_step(info: Any) -> bool:
            if job.cancel.is_set():
                return False
            step, total = int(info.step), int(info.total)
            state.step, state.total = step, total
            self.progress.emit(job.id, step, total)
            preview = getattr(info, "preview", None)
            if self._previews and preview is not None:
                state.pending_preview = preview
                now = time.monotonic()
                if now - state.last_preview_time >= self._min_preview_interval:
                    self._emit_preview(job.id, state)
                    state.last_preview_time = now
            if self._pending_plan is not None:
                self._plan_between_steps()
            return not job.cancel.is_set()

        out_of_memory, message, pipe = False, "", None
        try:
            if job.cancel.is_set():  # cancelled between leaving the queue and starting
                raise _Cancelled
            pipe = self._pipe_for(job.request)
            job.request.validate()
            # With previews off, ask the pipeline not to decode one per step (it costs a VAE decode); under offload
            # that decode would also move the VAE and the transformer in and out at every step (app/core/memory.py).
            previews = self._previews and getattr(getattr(pipe, "memory", None), "step_previews", True)
            extra = {} if previews else {"preview": False}
            result = pipe(job.request, plan=job.plan, callback=on_step,
                          on_plan=lambda plan: setattr(state, "plan", plan), **extra)
        except BaseException as exc:
            if job.cancel.is_set():
                # Whatever the pipeline raised after we asked it to stop (GenerationCancelled, or
                # anything it hit on the way out) is the cancel the user asked for.
                self.cancelled.emit(job.id)
                return
            out_of_memory = is_out_of_memory(exc)
            message = "out of memory" if out_of_memory else self._message(exc, state.step, state.total)
            log.info("job %s failed: %s", job.id, message,
                     exc_info=not isinstance(exc, (ValueError, _UserError)) and not out_of_memory)
        else:
            if job.cancel.is_set():
                # Cancelled after the last step (while decoding): the user said drop it, so it is dropped.
                self.cancelled.emit(job.id)
            else:
                _attach_recipe(pipe, result)
                self.finished.emit(job.id, result)
            return
        # Handled here, outside the except block: until it ends, the traceback keeps the failed
        # frames (and their tensors) alive, and release_memory() could free nothing.
        if out_of_memory:
            # Keep what the user saw: the last good preview goes out even if the throttle held it.
            if state.pending_preview is not None and self._previews:
                self._emit_preview(job.id, state)
            state.pending_preview = None
            plan, state.plan = (state.plan.to("cpu") if state.plan is not None else None), None
            release_memory()
            slot = next((s for s, p in self._pipes.items() if p is pipe), IMAGE_SLOT)
            failure = out_of_memory_failure(job.request, plan, pipe, slot, state.step, state.total)
            message = failure.message
            self.out_of_memory.emit(job.id, failure)
        self.failed.emit(job.id, message)

    def _emit_preview(self, job_id: int, state: "_StepState") -> None:
        try:
            image = array_to_qimage(state.pending_preview)
        except Exception:  # a malformed preview must not fail the generation
            log.exception("could not convert a preview")
            image = None
        state.pending_preview = None
        if image is not None:
            self.preview.emit(job_id, image)

    @staticmethod
    def _message(exc: BaseException, step: int | None, total: int | None, planning: bool = False) -> str:
        if is_out_of_memory(exc):
            what = "while planning" if planning else "before denoising started"
            return f"Out of memory {what}: try a smaller size, fewer frames, or the CPU."
        if isinstance(exc, (ValueError, _UserError)):
            return str(exc)  # written for the user (request.validate, checkpoints)
        text = str(exc) or type(exc).__name__
        where = f" (at step {step + 1} of {total})" if step is not None and total and step < total else ""
        return f"{type(exc).__name__}{where}: {text}"


def _attach_recipe(pipe: Any, result: Any) -> None:
    """The recipe the result's PNG will carry (GenerationResult.recipe); a result without one is stored as before."""
    try:
        from app.media.generation_info import pipeline_info

        result.recipe = pipeline_info(pipe, result.request)
    except Exception:  # noqa: BLE001 - a recipe is a courtesy: it never fails the job that made the result
        log.debug("no recipe for the result", exc_info=True)


class _UserError(Exception):
    """A failure whose message is already written for the user."""


class _Cancelled(Exception):
    pass


@dataclass
class _StepState:
    step: int | None = None  # the last step reported by the pipeline (1-based: steps done)
    total: int | None = None
    pending_preview: Any = None
    last_preview_time: float = float("-inf")
    plan: Any = None  # the plan the pipeline made or was given: kept for a retry after running out of memory
