"""The engine with the real thing: a tiny random MetaCanvas model (real Qwen2.5-VL planner, real SANA
transformer, real connectors) saved as a model folder and loaded by app.core.checkpoints.load_model,
the engine's default loader, in the engine thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtGui import QImage

from app.core.plan import Plan
from app.core.request import GenerationRequest, Task

from test_engine import WAIT_MS, Recorder, wait_terminal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory):
    from app.core.checkpoints import save_model
    from app.train.build import build_model
    from app.train.recipe import ModelRecipe, Recipe

    recipe = Recipe(name="tiny-engine-test", sample_steps=4, model=ModelRecipe(
        image_size=32, planner_hidden=32, planner_layers=1, planner_heads=2, planner_intermediate=64,
        vision_hidden=32, vision_depth=1, dit_layers=1, dit_heads=2, dit_head_dim=16, connector_heads=2))
    folder = tmp_path_factory.mktemp("models") / "tiny-engine-test"
    save_model(build_model(recipe), folder)
    return folder


@pytest.fixture
def engine(qtbot, tiny_model_folder):
    from app.engine import Engine

    engine = Engine()  # the default loader: app.core.checkpoints.load_model
    rec = Recorder(engine)
    with qtbot.waitSignal(engine.model_ready, timeout=WAIT_MS):
        engine.load_model(tiny_model_folder, "cpu")
    yield engine, rec
    engine.shutdown()


def req(steps=4, **kw) -> GenerationRequest:
    kw.setdefault("instruction", "a red circle left of a blue square")
    return GenerationRequest(kw.pop("task", Task.TEXT_TO_IMAGE), width=32, height=32, steps=steps, seed=3, **kw)


def test_the_real_model_generates_through_the_engine_as_it_does_directly(qtbot, engine, tiny_model_folder):
    engine, rec = engine
    assert rec.of("model_ready") == [("tiny-engine-test",)]
    job = engine.submit(req())
    wait_terminal(qtbot, rec, job)

    assert rec.terminal(job) == ["finished"], rec.of("failed")
    assert rec.of("progress", job) == [(job, k, 4) for k in range(1, 5)]
    image = rec.of("preview", job)[0][1]
    assert isinstance(image, QImage) and (image.width(), image.height()) == (32, 32)
    (_, result), = rec.of("finished", job)
    assert result.frames.shape == (1, 32, 32, 3) and result.frames.dtype == np.uint8

    # The engine adds nothing to the result: the same folder and request, run directly, agree.
    from app.core.checkpoints import load_model

    direct = load_model(tiny_model_folder, device="cpu")(req())
    np.testing.assert_array_equal(result.frames, direct.frames)


def test_the_live_plan_of_the_real_planner_can_be_drawn_on_the_gui_thread(qtbot, engine):
    engine, rec = engine
    job = engine.request_plan(req(instruction="two green squares"))
    wait_terminal(qtbot, rec, job)
    assert rec.terminal(job) == ["plan_ready"], rec.of("failed")
    (_, plan), = rec.of("plan_ready", job)
    assert isinstance(plan, Plan) and plan.canvas.device.type == "cpu"
    heat = plan.heatmap()  # what the plan overlay does, here on the GUI thread
    assert heat.shape == plan.grid and 0.0 <= heat.min() <= heat.max() <= 1.0


def test_cancel_stops_the_real_pipeline_and_an_unsupported_task_fails_cleanly(qtbot, engine):
    engine, rec = engine
    long_job = engine.submit(req(steps=400))
    video = engine.submit(req(task=Task.TEXT_TO_VIDEO, frames=4))
    good = engine.submit(req(steps=2))
    qtbot.waitUntil(lambda: len(rec.of("progress", long_job)) >= 2, timeout=WAIT_MS)
    engine.cancel(long_job)
    wait_terminal(qtbot, rec, long_job, video, good)

    assert rec.terminal(long_job) == ["cancelled"]
    assert len(rec.of("progress", long_job)) < 400
    (_, message), = rec.of("failed", video)
    assert message.startswith("The loaded model 'tiny-engine-test' does not do text to video")
    assert rec.terminal(good) == ["finished"]


def test_a_broken_model_folder_reports_model_failed(qtbot, tmp_path):
    from app.engine import Engine

    (tmp_path / "not-a-model").mkdir()
    engine = Engine()
    try:
        rec = Recorder(engine)
        with qtbot.waitSignal(engine.model_failed, timeout=WAIT_MS) as blocker:
            engine.load_model(tmp_path / "not-a-model", "cpu")
        message = blocker.args[0]
        assert message.startswith("Could not load not-a-model: ") and "model_index.json" in message
        assert not engine.has_model and rec.of("model_ready") == []
        assert threading.get_ident() in rec.threads
    finally:
        engine.shutdown()
