"""Memory options through the engine with a real tiny model folder: a load placed with offload, and a generation
that runs out of memory mid-denoise reported as one clear failure that keeps the request and the plan, then run
again with more offload, reusing that plan, to the image it would have made."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from app.core.memory import MemoryOptions
from app.core.plan import Plan
from app.core.request import GenerationRequest, Task

from test_engine import WAIT_MS, Recorder, wait_terminal
from test_engine_real_pipeline import tiny_model_folder  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def engine(qtbot, tiny_model_folder):  # noqa: F811
    from app.core.checkpoints import load_model
    from app.engine import Engine

    loaded = []

    def loader(path, device, dtype=None):  # the default loader, keeping what it made for the test to look at
        loaded.append(load_model(path, device=device, dtype=dtype))
        return loaded[-1]

    engine = Engine(loader=loader)
    rec = Recorder(engine)
    failures = []
    engine.out_of_memory.connect(lambda job_id, failure: failures.append((job_id, failure)))
    with qtbot.waitSignal(engine.model_ready, timeout=WAIT_MS):
        engine.load_model(tiny_model_folder, "cpu", memory=MemoryOptions(offload="none"))
    yield engine, rec, loaded[0], failures
    engine.shutdown()


def request() -> GenerationRequest:
    return GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle left of a blue square", width=32, height=32, steps=4,
                             seed=3)


def test_a_load_with_memory_options_places_the_model(engine):
    engine, rec, pipe, _ = engine
    assert pipe.memory is not None and pipe.memory.options == MemoryOptions("fp32", "none", False, False, False)


def test_out_of_memory_mid_denoise_keeps_the_request_and_plan_and_a_retry_with_offload_reuses_the_plan(
        qtbot, engine, tiny_model_folder, monkeypatch):  # noqa: F811
    engine, rec, pipe, failures = engine
    import app.core.memory

    # On a GPU more offload helps; here the execution device is the CPU, where the engine would not offer it.
    monkeypatch.setattr(app.core.memory, "offload_can_help", lambda device: True)
    adapter_class = type(pipe.adapter)
    denoise, calls = adapter_class._denoise, []

    def out_of_memory_at_step_2(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return denoise(self, *args, **kwargs)

    monkeypatch.setattr(adapter_class, "_denoise", out_of_memory_at_step_2)
    asked = request()
    job = engine.submit(asked)
    wait_terminal(qtbot, rec, job)

    assert rec.of("failed", job) == [(job, "Out of memory at step 2 of 4. The request and its plan are kept: retry "
                                           "with model offload, or try a smaller size or fewer frames.")]
    (failed_id, failure), = failures
    assert failed_id == job and failure.request is asked and failure.slot == "image"
    assert isinstance(failure.plan, Plan) and failure.plan.canvas.device.type == "cpu"
    assert failure.retry_options.offload == "model" and failure.retry_words == "model offload"

    plannings = []
    hook = pipe.planner.canvas_tokens.register_forward_hook(lambda *_: plannings.append(1))
    engine.set_memory_options(failure.retry_options, failure.slot)
    retry = engine.submit(failure.request, plan=failure.plan)
    wait_terminal(qtbot, rec, retry)
    hook.remove()
    assert rec.terminal(retry) == ["finished"], rec.of("failed")
    assert plannings == [] and pipe.memory.options.offload == "model"
    (_, result), = rec.of("finished", retry)
    from app.core.checkpoints import load_model

    monkeypatch.setattr(adapter_class, "_denoise", denoise)
    np.testing.assert_array_equal(result.frames, load_model(tiny_model_folder, device="cpu")(request()).frames)
