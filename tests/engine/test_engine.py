"""The engine against a small pipeline that really computes.

`ComputingPipeline` follows the pipeline contract (ARCHITECTURE.md) with the real StepInfo,
GenerationResult, GenerationCancelled and Plan classes: it denoises a seeded tensor towards a target
on a straight line, one short sleep per step, so tests can time cancels and check the frames it
returns. It records which thread ran each piece and how many steps it did, the two facts the
engine's promises are about. The real embedded pipeline runs through the engine in
test_engine_real_pipeline.py.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage

from app.core.pipeline import GenerationCancelled, GenerationResult, StepInfo
from app.core.plan import Plan
from app.core.request import GenerationRequest, Task
from app.engine import Engine, is_out_of_memory
from app.engine.engine import NO_MODEL_MESSAGE

WAIT_MS = 30_000  # generous: CI machines are shared; a hang still fails


class ComputingPipeline:
    def __init__(self, step_seconds: float = 0.005, fail_at: int | None = None,
                 error: BaseException | None = None, busy_seconds: float = 0.0):
        self.step_seconds = step_seconds
        self.fail_at = fail_at  # raise `error` during this (1-based) step
        self.error = error
        # Pure-Python work per step: it holds the GIL (as Python-heavy model code does), the worst
        # case for the GUI thread sharing the interpreter.
        self.busy_seconds = busy_seconds
        self.threads: set[int] = set()
        self.steps_done = 0  # all jobs together; read from the test thread
        self.plans: list[str] = []
        self.previews: dict[int, np.ndarray] = {}  # step -> the preview sent at that step (last job)
        # pause_at: before reporting that step, set `paused` and wait for `resume`, so a test can act
        # at a known point of a job instead of racing it.
        self.pause_at: int | None = None
        self.paused, self.resume = threading.Event(), threading.Event()

    @staticmethod
    def target(request: GenerationRequest) -> torch.Tensor:
        g = torch.Generator().manual_seed(request.seed + 1)
        return torch.rand(request.frames, 3, request.height, request.width, generator=g) * 2 - 1

    @staticmethod
    def to_frames(x: torch.Tensor) -> np.ndarray:
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def plan(self, request: GenerationRequest) -> Plan:
        self.threads.add(threading.get_ident())
        self.plans.append(request.instruction)
        words = request.instruction.split()
        n = max(1, len(words))
        return Plan(canvas=torch.randn(1, 1, 4, 4, 8), context=torch.randn(1, n, 8),
                    context_mask=torch.ones(1, n, dtype=torch.bool),
                    words=[[(w, [i]) for i, w in enumerate(words)]])

    def __call__(self, request, plan=None, callback=None, preview=True, on_plan=None) -> GenerationResult:
        self.threads.add(threading.get_ident())
        self.torch_threads = torch.get_num_threads()  # what this job's tensor operations may use
        t0 = time.perf_counter()
        request.validate()
        if plan is None:
            plan = self.plan(request)
        if on_plan is not None:
            on_plan(plan)
        target = self.target(request)
        x = torch.randn(target.shape, generator=torch.Generator().manual_seed(request.seed))
        self.previews = {}
        for i in range(request.steps):
            x = x + (target - x) / (request.steps - i)  # reaches the target exactly at the last step
            end = time.perf_counter() + self.busy_seconds
            while time.perf_counter() < end:
                sum(range(200))
            time.sleep(self.step_seconds)
            if self.fail_at == i + 1:
                raise self.error
            self.steps_done += 1
            if self.pause_at == i + 1:
                self.paused.set()
                assert self.resume.wait(10)
            if callback is not None:
                frames = self.to_frames(x) if preview else None
                self.previews[i + 1] = frames
                if callback(StepInfo(i + 1, request.steps, x, frames)) is False:
                    raise GenerationCancelled(i + 1, request.steps)
        return GenerationResult(frames=self.to_frames(x), plan=plan, request=request,
                                seconds=time.perf_counter() - t0)


class Recorder:
    """Every engine signal, in the order the test thread received them, with the receiving thread."""

    NAMES = ("progress", "preview", "plan_ready", "finished", "failed", "cancelled", "queue_changed",
             "model_loading", "model_ready", "model_failed")

    def __init__(self, engine: Engine):
        self.events: list[tuple] = []
        self.threads: set[int] = set()
        for name in self.NAMES:
            # Plain lambdas on purpose: the UI will connect those too, and they must run on its thread.
            getattr(engine, name).connect(lambda *args, _n=name: self._record(_n, args))

    def _record(self, name, args):
        self.threads.add(threading.get_ident())
        self.events.append((name, *args))

    def of(self, name, job_id=None):
        return [e[1:] for e in self.events if e[0] == name and (job_id is None or e[1] == job_id)]

    def terminal(self, job_id):
        return [e[0] for e in self.events if e[0] in ("finished", "failed", "cancelled", "plan_ready")
                and e[1] == job_id]

    def index(self, name, job_id):
        return next(i for i, e in enumerate(self.events) if e[0] == name and e[1] == job_id)


def request(steps=5, instruction="a red circle", seed=0, **kw) -> GenerationRequest:
    return GenerationRequest(Task.TEXT_TO_IMAGE, instruction, width=16, height=12, steps=steps, seed=seed, **kw)


@pytest.fixture
def make_engine(qtbot):
    engines = []

    def make(pipe, **kw):
        engine = Engine(loader=lambda path, device: pipe, **kw)
        rec = Recorder(engine)
        engines.append(engine)
        with qtbot.waitSignal(engine.model_ready, timeout=WAIT_MS):
            engine.load_model("models/computing", "cpu")
        return engine, rec

    yield make
    for engine in engines:
        engine.shutdown()


def wait_terminal(qtbot, rec, *job_ids):
    qtbot.waitUntil(lambda: all(bool(rec.terminal(j)) for j in job_ids), timeout=WAIT_MS)


def test_submit_reports_every_step_then_finished_with_the_computed_frames(qtbot, make_engine):
    pipe = ComputingPipeline()
    engine, rec = make_engine(pipe)
    req = request(steps=6)
    job = engine.submit(req)
    wait_terminal(qtbot, rec, job)

    assert rec.terminal(job) == ["finished"]
    assert rec.of("progress", job) == [(job, k, 6) for k in range(1, 7)]
    (_, result), = rec.of("finished", job)
    assert result.request is req
    expected = ComputingPipeline.to_frames(ComputingPipeline.target(req))
    assert result.frames.shape == (1, 12, 16, 3) and result.frames.dtype == np.uint8
    np.testing.assert_array_equal(result.frames, expected)
    # The first preview always goes out (nothing was shown yet) and is the step-1 prediction.
    previews = rec.of("preview", job)
    assert previews and isinstance(previews[0][1], QImage)
    first = previews[0][1]
    assert (first.width(), first.height()) == (16, 12)
    assert first.pixelColor(3, 2).getRgb()[:3] == tuple(int(v) for v in pipe.previews[1][0, 2, 3])
    # The queue was announced on submit and when the job left it (the job may already have left
    # by the time the first announcement reads the queue).
    snapshots = [q[0] for q in rec.of("queue_changed")]
    assert len(snapshots) >= 2 and all(q in ([job], []) for q in snapshots) and snapshots[-1] == []


def test_model_code_runs_in_one_engine_thread_and_signals_arrive_on_the_gui_thread(qtbot, make_engine):
    pipe = ComputingPipeline()
    loader_threads = set()

    def loader(path, device):
        loader_threads.add(threading.get_ident())
        return pipe

    engine = Engine(loader=loader)
    try:
        rec = Recorder(engine)
        engine.load_model("models/computing", "cpu")
        jobs = [engine.submit(request(steps=2, seed=s)) for s in range(3)]
        plan_job = engine.request_plan(request(instruction="a blue square"))
        wait_terminal(qtbot, rec, *jobs, plan_job)
    finally:
        engine.shutdown()

    main = threading.get_ident()
    assert len(loader_threads | pipe.threads) == 1  # one long-lived thread for loading, planning, jobs
    assert main not in pipe.threads
    assert rec.threads == {main}  # lambdas connected by the UI run on the UI's thread
    assert [rec.terminal(j) for j in jobs] == [["finished"]] * 3
    assert rec.terminal(plan_job) == ["plan_ready"]


def test_cancelling_a_queued_job_leaves_the_running_one_alone(qtbot, make_engine):
    pipe = ComputingPipeline(step_seconds=0.02)
    engine, rec = make_engine(pipe)
    running = engine.submit(request(steps=15, seed=1))
    queued = engine.submit(request(steps=15, seed=2))
    after = engine.submit(request(steps=3, seed=3))
    qtbot.waitUntil(lambda: bool(rec.of("progress", running)), timeout=WAIT_MS)

    assert engine.cancel(queued) is True
    # A queued job is reported at once, from the caller's thread: nothing had to stop.
    assert rec.terminal(queued) == ["cancelled"]
    assert engine.pending_jobs == [after]
    wait_terminal(qtbot, rec, running, after)

    assert rec.terminal(running) == ["finished"]
    assert [p[1] for p in rec.of("progress", running)] == list(range(1, 16))
    (_, result), = rec.of("finished", running)
    np.testing.assert_array_equal(result.frames, ComputingPipeline.to_frames(
        ComputingPipeline.target(result.request)))
    assert rec.of("progress", queued) == [] and rec.of("preview", queued) == []
    assert rec.terminal(queued) == ["cancelled"]  # exactly one terminal signal, even later
    # Once cancelled, it never reappears in the queue the UI shows (no stale snapshot arrives late).
    later = [e[1] for e in rec.events[rec.index("cancelled", queued):] if e[0] == "queue_changed"]
    assert later and all(queued not in q for q in later) and later[-1] == []
    assert rec.terminal(after) == ["finished"]
    assert pipe.steps_done == 15 + 3


def test_cancelling_the_running_job_stops_it_within_one_step_and_the_next_job_runs(qtbot, make_engine):
    pipe = ComputingPipeline(step_seconds=0.02)
    engine, rec = make_engine(pipe)
    running = engine.submit(request(steps=200, seed=1))
    queued = engine.submit(request(steps=4, seed=2))
    qtbot.waitUntil(lambda: len(rec.of("progress", running)) >= 3, timeout=WAIT_MS)

    steps_at_cancel = pipe.steps_done
    assert engine.running_job == running
    assert engine.cancel(running) is True
    qtbot.waitUntil(lambda: bool(rec.terminal(running)), timeout=WAIT_MS)
    # The step in flight when the flag was set may finish; no step after it starts.
    assert pipe.steps_done - steps_at_cancel <= 1
    assert rec.terminal(running) == ["cancelled"]
    wait_terminal(qtbot, rec, queued)
    assert rec.terminal(queued) == ["finished"]
    assert [p[1] for p in rec.of("progress", queued)] == [1, 2, 3, 4]


def test_cancel_of_unknown_or_finished_ids_does_nothing(qtbot, make_engine):
    engine, rec = make_engine(ComputingPipeline())
    job = engine.submit(request(steps=2))
    wait_terminal(qtbot, rec, job)
    before = list(rec.events)
    assert engine.cancel(job) is False
    assert engine.cancel(987654) is False
    qtbot.wait(50)
    assert rec.events == before


def test_plan_requests_coalesce_and_run_between_the_steps_of_a_generation(qtbot, make_engine):
    pipe = ComputingPipeline(step_seconds=0.01)
    pipe.pause_at = 3
    engine, rec = make_engine(pipe)
    gen = engine.submit(request(steps=40, instruction="two blue squares"))
    assert pipe.paused.wait(10)

    # Typing: three plan requests while the engine is inside a step; only the newest matters.
    p1 = engine.request_plan(request(instruction="a"))
    p2 = engine.request_plan(request(instruction="a red"))
    p3 = engine.request_plan(request(instruction="a red circle"))
    # The superseded ones are reported at once, from the caller's thread.
    assert rec.terminal(p1) == ["cancelled"] and rec.terminal(p2) == ["cancelled"]
    pipe.resume.set()
    wait_terminal(qtbot, rec, p3, gen)

    assert rec.terminal(p1) == ["cancelled"] and rec.terminal(p2) == ["cancelled"]
    assert rec.terminal(p3) == ["plan_ready"]
    (_, plan), = rec.of("plan_ready", p3)
    assert [w for w, _ in plan.words[0]] == ["a", "red", "circle"]
    # The generation planned its own request once; the live plan ran once, for the newest text.
    assert pipe.plans == ["two blue squares", "a red circle"]
    # It did not wait for the 40-step generation: it ran right after step 3, between two steps.
    progress_before = [e for e in rec.events[:rec.index("plan_ready", p3)] if e[0] == "progress"]
    assert progress_before[-1] == ("progress", gen, 3, 40)
    assert rec.terminal(gen) == ["finished"]
    assert [p[1] for p in rec.of("progress", gen)] == list(range(1, 41))


@pytest.mark.parametrize("slot", ["image", "video"])
def test_a_plan_asked_for_behind_a_queued_load_waits_only_for_its_own_models(qtbot, slot):
    """A plan asked for during a generation, with a model load queued behind it. The load of the model that would
    make it (a model switch): the plan waits for the new model (made by the old one, it was stale on arrival, and
    the request used up). The other slot's (a click on a clip queues the video model's): a still's plan is made
    between the generation's steps, as ever (it waited for the whole generation)."""
    old, new = ComputingPipeline(step_seconds=0.01), ComputingPipeline()
    old.pause_at = 3
    engine = Engine(loader=lambda path, device: new if "new" in str(path) else old)
    try:
        rec = Recorder(engine)
        with qtbot.waitSignal(engine.model_ready, timeout=WAIT_MS):
            engine.load_model("models/old", "cpu")
        gen = engine.submit(request(steps=40, instruction="two blue squares"))
        assert old.paused.wait(10)
        engine.load_model("models/new", "cpu", slot=slot)
        plan = engine.request_plan(request(instruction="a red circle"))  # a still's
        old.resume.set()
        wait_terminal(qtbot, rec, gen, plan)
        assert rec.terminal(plan) == ["plan_ready"]
        if slot == "image":
            assert old.plans == ["two blue squares"] and new.plans == ["a red circle"]
        else:
            assert old.plans == ["two blue squares", "a red circle"] and new.plans == []
            progress_before = [e for e in rec.events[:rec.index("plan_ready", plan)] if e[0] == "progress"]
            assert progress_before[-1] == ("progress", gen, 3, 40)  # between two steps
    finally:
        engine.shutdown()


def test_a_plan_request_when_idle_and_one_without_a_model(qtbot, make_engine):
    engine, rec = make_engine(ComputingPipeline())
    job = engine.request_plan(request(instruction="two green squares"))
    wait_terminal(qtbot, rec, job)
    assert rec.terminal(job) == ["plan_ready"]

    bare = Engine(loader=lambda p, d: None)
    try:
        bare_rec = Recorder(bare)
        plan_job, gen_job = bare.request_plan(request()), bare.submit(request())
        wait_terminal(qtbot, bare_rec, plan_job, gen_job)
        assert bare_rec.of("failed") == [(plan_job, NO_MODEL_MESSAGE), (gen_job, NO_MODEL_MESSAGE)]
    finally:
        bare.shutdown()


def test_a_bad_request_fails_with_its_message_and_the_engine_serves_the_next_job(qtbot, make_engine):
    pipe = ComputingPipeline()
    engine, rec = make_engine(pipe)
    bad = engine.submit(request(instruction="   "))
    also_bad = engine.submit(GenerationRequest(Task.IMAGE_EDIT, "make it red", steps=2))
    good = engine.submit(request(steps=3))
    wait_terminal(qtbot, rec, bad, also_bad, good)

    (_, message), = rec.of("failed", bad)
    assert message == "Type an instruction first: describe the image to make."
    (_, message), = rec.of("failed", also_bad)
    assert message == "image_edit needs an input image: select an image clip first."
    assert rec.of("progress", bad) == []
    assert rec.terminal(good) == ["finished"]


def test_an_unexpected_error_fails_that_job_only(qtbot, make_engine):
    pipe = ComputingPipeline(fail_at=2, error=KeyError("latents"))
    engine, rec = make_engine(pipe)
    broken = engine.submit(request(steps=5))
    qtbot.waitUntil(lambda: bool(rec.terminal(broken)), timeout=WAIT_MS)
    (_, message), = rec.of("failed", broken)
    assert message == "KeyError (at step 2 of 5): 'latents'"

    pipe.fail_at = None
    good = engine.submit(request(steps=2))
    wait_terminal(qtbot, rec, good)
    assert rec.terminal(good) == ["finished"]


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError("MPS backend out of memory (MPS allocated: 9.00 GB)"),
    MemoryError(),
], ids=["torch-oom", "runtime-oom", "memoryerror"])
def test_out_of_memory_mid_denoise_gives_a_clear_message_and_keeps_the_last_preview(qtbot, make_engine, error):
    assert is_out_of_memory(error)
    pipe = ComputingPipeline(fail_at=4, error=error)
    # A slow preview rate: only step 1's preview passes the throttle; steps 2-3 are held back.
    engine, rec = make_engine(pipe, preview_fps=0.5)
    job = engine.submit(request(steps=6))
    qtbot.waitUntil(lambda: bool(rec.terminal(job)), timeout=WAIT_MS)

    assert rec.of("failed", job) == [
        (job, "Out of memory at step 4 of 6: try a smaller size, fewer frames, or the CPU.")]
    assert [p[1] for p in rec.of("progress", job)] == [1, 2, 3]
    # What the user last saw survives: the newest good preview (step 3) is sent before the failure.
    previews = [p[1] for p in rec.of("preview", job)]
    assert len(previews) == 2
    step3 = pipe.previews[3][0]
    last = previews[-1]
    for x, y in [(0, 0), (7, 5), (15, 11)]:
        assert last.pixelColor(x, y).getRgb()[:3] == tuple(int(v) for v in step3[y, x])
    assert rec.index("preview", job) < rec.index("failed", job)

    pipe.fail_at = None
    good = engine.submit(request(steps=2))
    wait_terminal(qtbot, rec, good)
    assert rec.terminal(good) == ["finished"]


def test_previews_are_throttled_but_progress_is_not(qtbot, make_engine):
    engine, rec = make_engine(ComputingPipeline(step_seconds=0.002), preview_fps=15)
    t0 = time.monotonic()
    job = engine.submit(request(steps=60))
    wait_terminal(qtbot, rec, job)
    elapsed = time.monotonic() - t0
    assert len(rec.of("progress", job)) == 60
    assert 1 <= len(rec.of("preview", job)) <= elapsed * 15 + 1

    engine.set_previews(False)
    quiet = engine.submit(request(steps=5))
    wait_terminal(qtbot, rec, quiet)
    assert rec.of("preview", quiet) == [] and len(rec.of("progress", quiet)) == 5


def test_the_gui_thread_keeps_running_while_the_engine_loads_and_generates(qtbot):
    pipe = ComputingPipeline(step_seconds=0.002, busy_seconds=0.01)

    def slow_loader(path, device):
        time.sleep(0.4)  # stands in for reading weights
        return pipe

    engine = Engine(loader=slow_loader)
    rec = Recorder(engine)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    try:
        timer.start()
        t0 = time.monotonic()
        engine.load_model("models/computing", "cpu")
        jobs = [engine.submit(request(steps=25, seed=s)) for s in range(3)]
        load_returned = time.monotonic() - t0
        wait_terminal(qtbot, rec, *jobs)
        timer.stop()
    finally:
        engine.shutdown()

    assert load_returned < 0.1  # load_model and submit only queue work
    assert [rec.terminal(j) for j in jobs] == [["finished"]] * 3
    gaps = np.diff(ticks)
    assert len(ticks) > 20
    assert gaps.max() < 0.5, f"the GUI thread stalled for {gaps.max():.3f} s"


def test_model_loading_reports_and_jobs_wait_for_the_model(qtbot):
    pipe = ComputingPipeline()

    def loader(path, device, dtype=None):
        time.sleep(0.1)
        if "missing" in str(path):
            raise FileNotFoundError(f"{path} has no model_index.json")
        return pipe

    engine = Engine(loader=loader, model_path="models/metacanvas-shapes", device="cpu")
    try:
        rec = Recorder(engine)
        # Submitted while the model is still loading: it waits for it instead of failing.
        early = engine.submit(request(steps=2))
        wait_terminal(qtbot, rec, early)
        assert rec.terminal(early) == ["finished"]
        assert rec.of("model_ready") == [("metacanvas-shapes",)]
        assert engine.model_name == "metacanvas-shapes" and engine.has_model

        engine.load_model("models/missing", "cpu")
        late = engine.submit(request(steps=2))
        wait_terminal(qtbot, rec, late)
        assert rec.of("model_loading")[-1] == ("Loading missing on cpu…",)
        assert rec.of("model_failed") == [("Could not load missing: models/missing has no model_index.json",)]
        assert rec.of("failed", late) == [(late, NO_MODEL_MESSAGE)]
        assert not engine.has_model
    finally:
        engine.shutdown()


def test_shutdown_stops_the_running_job_cancels_the_queue_and_joins_the_thread(qtbot, make_engine):
    pipe = ComputingPipeline(step_seconds=0.02)
    engine, rec = make_engine(pipe)
    running = engine.submit(request(steps=500))
    queued = engine.submit(request(steps=5))
    plan = engine.request_plan(request())  # may already have run between steps; else it is dropped
    qtbot.waitUntil(lambda: bool(rec.of("progress", running)), timeout=WAIT_MS)

    t0 = time.monotonic()
    engine.shutdown()
    assert time.monotonic() - t0 < 2.0  # one step, not the remaining 490
    assert not engine.is_running
    assert pipe.steps_done < 100
    qtbot.waitUntil(lambda: bool(rec.terminal(running)), timeout=WAIT_MS)  # queued signals, now delivered
    assert rec.terminal(running) == ["cancelled"] and rec.terminal(queued) == ["cancelled"]
    assert len(rec.terminal(plan)) == 1

    engine.shutdown()  # twice is harmless
    after = engine.submit(request())
    assert rec.terminal(after) == ["cancelled"]


def test_a_task_only_the_other_slots_model_does_runs_there_and_the_engine_says_which(qtbot):
    """One model doing images and clips in the image slot, a video slot model without text-to-video: a clip from
    words runs on the image slot's model, and `slot_running` says so (the studio holds a retry to that model's
    folder by it)."""
    from types import SimpleNamespace

    both, partial = ComputingPipeline(), ComputingPipeline()
    both.defaults = SimpleNamespace(tasks=("text_to_image", "text_to_video"))
    partial.defaults = SimpleNamespace(tasks=("image_to_video",))
    both.codec = partial.codec = SimpleNamespace(temporal_factor=4)
    engine = Engine(loader=lambda path, device: partial if "video" in str(path) else both)
    try:
        rec = Recorder(engine)
        slots = []
        engine.slot_ready.connect(lambda slot, name: slots.append(slot))
        engine.load_model("models/both", "cpu")
        engine.load_model("models/some-video", "cpu", slot="video")
        qtbot.waitUntil(lambda: "video" in slots and "image" in slots, timeout=WAIT_MS)
        assert engine.slot_running(Task.TEXT_TO_VIDEO) == "image"
        assert engine.slot_running(Task.IMAGE_TO_VIDEO) == "video"
        assert engine.slot_running(Task.TEXT_TO_IMAGE) == "image"
        assert engine.slot_running(Task.VIDEO_EDIT) == "video"  # done by neither: its own slot says so
        job = engine.submit(GenerationRequest(Task.TEXT_TO_VIDEO, "a red circle moves right", width=16, height=12,
                                              frames=5, steps=3))
        wait_terminal(qtbot, rec, job)
        assert rec.terminal(job) == ["finished"] and both.steps_done == 3 and partial.steps_done == 0
    finally:
        engine.shutdown()


def test_two_model_slots_each_job_runs_on_the_model_of_its_kind(qtbot):
    from types import SimpleNamespace

    still, clip = ComputingPipeline(), ComputingPipeline()
    still.defaults = SimpleNamespace(tasks=("text_to_image", "image_edit"))
    clip.defaults = SimpleNamespace(tasks=("text_to_video", "image_to_video", "video_edit", "reference_to_video"))
    clip.codec = SimpleNamespace(temporal_factor=4)
    engine = Engine(loader=lambda path, device: clip if "video" in str(path) else still)
    try:
        rec = Recorder(engine)
        slots = []
        engine.slot_ready.connect(lambda slot, name: slots.append((slot, name)))
        engine.load_model("models/shapes", "cpu")
        engine.load_model("models/shapes-video", "cpu", slot="video")
        qtbot.waitUntil(lambda: ("video", "shapes-video") in slots, timeout=WAIT_MS)
        assert slots == [("image", "shapes"), ("video", "shapes-video")]
        assert rec.of("model_ready") == [("shapes",)]  # the image slot's own signal is the image slot's only
        assert engine.has_model and engine.has_slot("video") and engine.name_for("video") == "shapes-video"
        assert engine.frame_step("video") == 4 and engine.frame_step("image") == 1
        assert engine.defaults_for("video") is clip.defaults and engine.model_defaults is still.defaults

        def clip_request(steps=3, instruction="a red circle moves right"):
            return GenerationRequest(Task.TEXT_TO_VIDEO, instruction, width=16, height=12, frames=5, steps=steps)

        before = still.steps_done
        video = engine.submit(clip_request())
        image = engine.submit(request(steps=2))
        plan = engine.request_plan(clip_request(instruction="a clip plan"))
        wait_terminal(qtbot, rec, video, image, plan)
        assert rec.terminal(video) == rec.terminal(image) == ["finished"] and rec.terminal(plan) == ["plan_ready"]
        assert rec.of("finished", video)[0][1].frames.shape[0] == 5
        assert clip.steps_done == 3 and still.steps_done - before == 2 and "a clip plan" in clip.plans

        # Replacing the video model leaves the still model loaded.
        engine.load_model("models/gone-video", "cpu", slot="video")
        engine.load_model("models/shapes-video", "cpu", slot="video")
        qtbot.waitUntil(lambda: slots.count(("video", "shapes-video")) == 2, timeout=WAIT_MS)
        assert engine.has_model and engine.name_for("image") == "shapes"
    finally:
        engine.shutdown()


def test_a_video_model_that_fails_to_load_says_so_on_its_slot_only(qtbot):
    def loader(path, device):
        if "video" in str(path):
            raise FileNotFoundError(f"{path} has no model_index.json")
        return ComputingPipeline()

    engine = Engine(loader=loader, model_path="models/shapes")
    try:
        rec = Recorder(engine)
        failed = []
        engine.slot_failed.connect(lambda slot, message: failed.append((slot, message)))
        engine.load_model("models/missing-video", "cpu", slot="video")
        qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
        assert failed == [("video", "Could not load missing-video: models/missing-video has no model_index.json")]
        assert rec.of("model_failed") == [] and engine.has_model and not engine.has_slot("video")
        with pytest.raises(ValueError, match="unknown model slot"):
            engine.load_model("x", slot="audio")
    finally:
        engine.shutdown()


def test_a_device_probe_that_fails_fails_the_load_on_its_slot_not_silently(qtbot, monkeypatch):
    """With the device "auto" (the default), torch failing to import a CUDA library raised before the load's own
    handler: only a bare `failed` was sent, and the studio showed "loading..." for ever."""
    import app.settings

    def probe(setting, warn=True):
        raise ImportError("libcudnn.so.9: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(app.settings, "resolve_device", probe)
    engine = Engine(loader=lambda path, device: ComputingPipeline(), device="auto", previews=False)
    try:
        failed = []
        engine.slot_failed.connect(lambda slot, message: failed.append((slot, message)))
        engine.load_model("models/shapes", "auto")
        qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
        assert failed == [("image", "Could not load shapes: libcudnn.so.9: cannot open shared object file: No such "
                                    "file or directory")]
        assert not engine.has_model
    finally:
        engine.shutdown()


def test_jobs_compute_with_the_cpu_threads_asked_for(qtbot, make_engine):
    """The studio leaves a core to the window: the engine's jobs use the threads it was given, and a
    changed setting applies from the next job on."""
    before = torch.get_num_threads()
    pipe = ComputingPipeline()
    engine, rec = make_engine(pipe, cpu_threads=1)
    job = engine.submit(request(steps=2))
    wait_terminal(qtbot, rec, job)
    assert pipe.torch_threads == 1
    engine.set_cpu_threads(2)
    job = engine.submit(request(steps=2))
    wait_terminal(qtbot, rec, job)
    assert pipe.torch_threads == 2 and engine.cpu_threads() == 2
    torch.set_num_threads(before)  # the setting is the process's: leave it as the other tests found it


def test_a_clips_preview_shows_its_middle_frame_not_the_given_first_one():
    """In image-to-video the first frame is the user's picture from the first step: the preview of a clip
    shows its middle frame, where the clip forms."""
    from app.engine import array_to_qimage

    clip = np.zeros((17, 4, 6, 3), np.uint8)
    clip[8] = 200
    image = array_to_qimage(clip)
    assert (image.width(), image.height()) == (6, 4) and image.pixelColor(2, 2).red() == 200
