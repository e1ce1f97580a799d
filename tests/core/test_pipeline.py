"""The pipeline end to end at a tiny config: steps, callback, cancel, guidance, plan, reproducibility."""
import numpy as np
import pytest

from app.core.pipeline import GenerationCancelled, UnsupportedTaskError
from app.core.request import GenerationRequest, PlanEdit, Task


def _req(**kw):
    base = dict(task=Task.TEXT_TO_IMAGE, instruction="a red circle left of a blue star", steps=4, seed=3)
    base.update(kw)
    return GenerationRequest(**base)


def test_text_to_image_runs_and_the_callback_sees_every_step(tiny_pipe):
    seen = []
    result = tiny_pipe(_req(), callback=lambda info: seen.append((info.step, info.total, info.preview.shape)))
    assert result.frames.shape == (1, 64, 64, 3) and result.frames.dtype == np.uint8
    assert [s for s, _, _ in seen] == [1, 2, 3, 4]
    assert all(total == 4 and shape == (1, 64, 64, 3) for _, total, shape in seen)
    # The plan comes back with the result, strength per canvas cell filled in for the heatmap.
    heat = result.plan.heatmap()
    assert heat.shape == (16, 16) and 0.0 <= heat.min() and heat.max() <= 1.0
    assert result.plan.strength is not None


def test_cancel_stops_before_the_next_step_and_says_so(tiny_pipe):
    steps = []

    def stop_after_two(info):
        steps.append(info.step)
        return info.step < 2

    with pytest.raises(GenerationCancelled) as err:
        tiny_pipe(_req(steps=10), callback=stop_after_two)
    assert steps == [1, 2]
    assert err.value.step == 2 and "step 2 of 10" in str(err.value)


def test_same_seed_same_image_other_seed_other_image(tiny_pipe):
    a = tiny_pipe(_req(seed=5)).frames
    b = tiny_pipe(_req(seed=5)).frames
    c = tiny_pipe(_req(seed=6)).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_the_canvas_changes_the_result_and_can_be_switched_off(tiny_pipe):
    with_canvas = tiny_pipe(_req()).frames
    text_only = tiny_pipe(_req(use_canvas=False)).frames
    assert not np.array_equal(with_canvas, text_only)


def test_plan_edits_reach_the_result(tiny_pipe):
    plain = tiny_pipe(_req())
    erased = tiny_pipe(_req(plan_edits=[PlanEdit("scale", box=(0, 0, 1, 1), factor=0.0)]))
    assert not np.array_equal(plain.frames, erased.frames)
    assert erased.plan.heatmap().max() < plain.plan.heatmap().max() + 1e-6 or erased.plan.strength is not None


def test_image_edit_takes_the_source(tiny_pipe):
    rng = np.random.default_rng(0)
    src_a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    src_b = 255 - src_a
    a = tiny_pipe(_req(task=Task.IMAGE_EDIT, instruction="make the circle blue", images=[src_a])).frames
    b = tiny_pipe(_req(task=Task.IMAGE_EDIT, instruction="make the circle blue", images=[src_b])).frames
    assert a.shape == (1, 64, 64, 3)
    assert not np.array_equal(a, b)


def test_a_task_the_model_cannot_do_is_refused_with_a_message(tiny_pipe):
    with pytest.raises(UnsupportedTaskError, match="does not do text to video"):
        tiny_pipe(_req(task=Task.TEXT_TO_VIDEO, frames=5))
    with pytest.raises(ValueError, match="needs an input image"):
        tiny_pipe(_req(task=Task.IMAGE_EDIT))


def test_batched_sampling_matches_single_calls(tiny_pipe):
    prompts = ["a red circle", "two blue stars"]
    batch = tiny_pipe.sample(prompts, [11, 12], steps=3, guidance=3.0)
    single = tiny_pipe(_req(instruction=prompts[1], seed=12, steps=3, guidance=3.0)).frames[0]
    assert batch.shape == (2, 64, 64, 3)
    # Same noise, same plan, same steps: equal up to float reordering in a bigger batch.
    assert np.abs(batch[1].astype(int) - single.astype(int)).max() <= 2


def test_a_word_outside_the_vocabulary_is_named_with_the_words_the_model_knows(tiny_pipe):
    from app.core.words import UnknownWordsError

    with pytest.raises(UnknownWordsError) as err:
        tiny_pipe(_req(instruction="a red dragon left of a blue castle"))
    message = str(err.value)
    assert "'dragon'" in message and "'castle'" in message
    assert "circle" in message and "purple" in message  # the words it does know
    with pytest.raises(UnknownWordsError):
        tiny_pipe.plan(_req(instruction="a photo of a unicorn"))
    tiny_pipe.check_instruction("A Red circle, left of a BLUE star.")  # case and punctuation are fine


def test_a_model_folder_chooses_its_sampler_and_an_unknown_one_is_refused_by_name(tiny_pipe, tmp_path):
    from dataclasses import replace

    from diffusers import DPMSolverMultistepScheduler

    from app.core.checkpoints import load_model, save_model
    from app.core.pipeline import make_scheduler

    original = tiny_pipe.defaults
    try:
        tiny_pipe.defaults = replace(original, solver="dpm++2m", steps=4)
        folder = save_model(tiny_pipe, tmp_path / "model")
    finally:
        tiny_pipe.defaults = original
    pipe = load_model(folder)
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler) and pipe.defaults.solver == "dpm++2m"
    result = pipe(GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle", seed=1, steps=4))
    again = pipe(GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle", seed=1, steps=4))
    assert np.array_equal(result.frames, again.frames)  # the multistep state starts over per request
    with pytest.raises(ValueError, match="known: euler, dpm"):
        make_scheduler(replace(original, solver="heun"))
    import json

    from app.core.checkpoints import ModelFolderError

    index = json.loads((folder / "model_index.json").read_text())
    index["defaults"]["solver"] = "heun"  # a hand-edited folder
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match="model_index.json are not valid: unknown solver 'heun'"):
        load_model(folder)


def test_guidance_outside_its_interval_is_skipped_and_costs_no_unconditional_pass(tiny_pipe):
    """Guidance applies only at the noise levels of the model's `guidance_interval`; elsewhere only
    the conditional branch runs (one forward of batch 1 instead of 2), in both sampling paths."""
    from dataclasses import replace

    calls = []
    forward = tiny_pipe.adapter.forward

    def counting(latents, *args, **kwargs):
        calls.append(latents.shape[0])
        return forward(latents, *args, **kwargs)

    original = tiny_pipe.defaults
    tiny_pipe.adapter.forward = counting
    try:
        plain = tiny_pipe(_req(guidance=1.0)).frames
        everywhere = tiny_pipe(_req(guidance=4.0)).frames
        assert calls == [1] * 4 + [2] * 4
        calls.clear()
        tiny_pipe.defaults = replace(original, guidance_interval=(0.0, 0.0))  # no step has sigma 0
        nowhere = tiny_pipe(_req(guidance=4.0)).frames
        assert calls == [1] * 4
        assert np.array_equal(nowhere, plain)
        calls.clear()
        tiny_pipe.defaults = replace(original, guidance_interval=(0.0, 0.6))  # the low-noise steps only
        partly = tiny_pipe(_req(guidance=4.0)).frames
        assert calls[0] == 1 and calls[-1] == 2 and 1 <= calls.count(2) < 4
        assert not np.array_equal(partly, everywhere) and not np.array_equal(partly, plain)
        calls.clear()
        batch = tiny_pipe.sample(["a red circle", "two blue stars"], [11, 12], steps=4, guidance=4.0)
        assert calls[0] == 2 and calls[-1] == 4  # two prompts: unguided at first, then with their unconditional pair
        single = tiny_pipe(_req(instruction="two blue stars", seed=12, guidance=4.0)).frames[0]
        assert np.abs(batch[1].astype(int) - single.astype(int)).max() <= 2
    finally:
        tiny_pipe.adapter.forward = forward
        tiny_pipe.defaults = original
    for bad in [(0.8, 0.2), (0.5,), "low"]:  # reversed, one number, not numbers
        with pytest.raises(ValueError, match="guidance_interval"):
            replace(original, guidance_interval=bad)


def test_a_model_folder_keeps_its_guidance_interval_and_a_bad_one_is_refused(tiny_pipe, tmp_path):
    import json
    from dataclasses import replace

    from app.core.checkpoints import ModelFolderError, load_model, save_model

    original = tiny_pipe.defaults
    try:
        tiny_pipe.defaults = replace(original, guidance_interval=(0.0, 0.8))
        folder = save_model(tiny_pipe, tmp_path / "model")
    finally:
        tiny_pipe.defaults = original
    assert load_model(folder).defaults.guidance_interval == (0.0, 0.8)
    index = json.loads((folder / "model_index.json").read_text())
    index["defaults"]["guidance_interval"] = [0.9, 0.1]  # a hand-edited folder
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match="guidance_interval"):
        load_model(folder)


@pytest.mark.parametrize("solver", ["euler", "dpm++2m"])
def test_every_step_count_the_cli_allows_runs_to_its_end(solver):
    """Past about 500 steps rounded timesteps repeat, the first one too: the DPM solver looked its first step up,
    started one place late and ran off its sigmas at the very last step (a traceback after the whole run)."""
    import torch

    from app.core.pipeline import PipelineDefaults, make_scheduler, set_timesteps

    scheduler = make_scheduler(PipelineDefaults(solver=solver, shift=3.0))  # the embedded models'
    for steps in (500, 501, 1000):
        set_timesteps(scheduler, steps, 64, "cpu")
        latents = torch.zeros(1, 4)
        for t in scheduler.timesteps:
            latents = scheduler.step(torch.ones(1, 4), t, latents, return_dict=False)[0]
        assert torch.isfinite(latents).all() and len(scheduler.timesteps) == steps
