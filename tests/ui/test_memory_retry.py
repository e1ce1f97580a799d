"""Out of memory in the studio with the embedded model: one clear message with a "Retry with model offload" button,
nothing of the project lost, and the retry makes the new version of the same clip with the same request."""
from __future__ import annotations

import pytest
import torch

from app.settings import Settings
from tests.ui.helpers import MODEL, SAMPLE_IMAGE, import_and_wait, make_window

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="the embedded default model is not built"),
]


def _edit_that_runs_out_of_memory(qtbot, tmp_path, monkeypatch):
    """A window whose image edit of the sample runs out of memory at step 2 (once); returns (window, clip, job)."""
    import app.core.memory
    from app.core.backbones.sana import SanaAdapter

    # On a GPU more offload helps; here the model runs on the CPU, where the studio would not offer it.
    monkeypatch.setattr(app.core.memory, "offload_can_help", lambda device: True)
    denoise, calls = SanaAdapter._denoise, []

    def out_of_memory_at_step_2(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return denoise(self, *args, **kwargs)

    monkeypatch.setattr(SanaAdapter, "_denoise", out_of_memory_at_step_2)
    w = make_window(qtbot, tmp_path, start_engine=True, model_path=str(MODEL))
    qtbot.waitUntil(lambda: w.model_ready, timeout=120_000)
    clip_id = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    w.timeline.view.select([clip_id])
    w.instruction.set_text("make the circle green")
    qtbot.waitUntil(lambda: w.current_plan is not None, timeout=30_000)  # the source is read and planned
    w.generation.steps.setValue(4)
    job = w.generate()
    assert job is not None
    return w, clip_id, job


def test_out_of_memory_offers_a_retry_with_offload_that_makes_the_version(qtbot, tmp_path, monkeypatch):
    w, clip_id, job = _edit_that_runs_out_of_memory(qtbot, tmp_path, monkeypatch)
    project = w.document.project.to_dict()

    qtbot.waitUntil(lambda: w.banner.action_button.isVisible(), timeout=60_000)
    assert w.banner.action_button.text() == "Retry with model offload"
    error = w.messages.errors()[-1]
    assert error.startswith(f"Job #{job} failed: Out of memory at step 2 of 4.")
    assert "request and its plan are kept: retry with model offload" in error
    assert w.document.project.to_dict() == project and not w.jobs  # nothing lost, nothing added

    with qtbot.waitSignal(w.result_stored, timeout=60_000) as stored:
        w.banner.action_button.click()
    assert stored.args[0] == clip_id
    clip = w.document.project.clip(clip_id)
    assert len(clip.versions) == 2 and clip.versions[1].request["instruction"] == "make the circle green"
    assert clip.versions[1].plan  # the kept plan, stored with the version
    assert w.settings.offload == "model" and Settings.load().offload == "model"  # the next launch starts there
    assert any(m.text.startswith(f"Retrying job #{job} as #") for m in w.messages.history)
    w.shutdown()


def test_a_retry_offered_for_a_closed_project_goes_with_it(qtbot, tmp_path, monkeypatch, save_changes_answers):
    """New project after an out-of-memory offer: the banner's retry is gone, and the offer's action, if it
    were still run, refuses (its result would land in no project) and changes no setting."""
    from app.ui.project_actions import SaveChoice

    w, _, job = _edit_that_runs_out_of_memory(qtbot, tmp_path, monkeypatch)
    qtbot.waitUntil(lambda: w.banner.action_button.isVisible(), timeout=60_000)
    stale = w.banner._action
    save_changes_answers.next = SaveChoice.DISCARD
    assert w.files.new_project()
    assert not w.banner.isVisible() and not w.banner.action_button.isVisible()
    assert stale() is None
    assert not w.jobs and w.settings.offload != "model"
    assert w.messages.history[-1].text.startswith(f"Job #{job} belonged to a project that is closed")
    w.shutdown()
