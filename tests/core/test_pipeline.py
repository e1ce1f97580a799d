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
    from app.core.pipeline import UnknownWordsError

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


def test_the_conditioning_probe_swaps_the_canvas_it_is_asked_to(tiny_pipe):
    """bench/probe_conditioning.py's canvas columns (mirrored, another example's, off) really change
    what the DiT is given: each gives another loss than the plan as it is."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from probe_conditioning import conditioning_losses

    losses = conditioning_losses(tiny_pipe, n=4, t_values=(0.9,))
    for kind in ("t2i", "edit"):
        right = losses[f"{kind} t=0.9 right"]
        assert np.isfinite(right)
        for mode in ("mirrored", "shuffled", "off"):
            assert losses[f"{kind} t=0.9 canvas {mode}"] != right, (kind, mode)


def test_the_conditioning_probe_swaps_side_words_in_the_path_it_is_asked_to(tiny_pipe):
    """bench/probe_conditioning.py's relation rows: only captions that name a side are used, their side
    words are swapped both ways, and swapping them in the whole plan, the context only or the canvas
    only each gives the DiT something else than the caption as it is."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from probe_conditioning import relation_word_losses, swap_side_words

    assert swap_side_words("a photo of a red circle left of a star") == "a photo of a red circle right of a star"
    assert swap_side_words("a blue star above a square on the right") == "a blue star below a square on the left"
    assert swap_side_words("a photo of three stars") == "a photo of three stars"
    losses = relation_word_losses(tiny_pipe, n=4, t_values=(0.9,))
    right = losses["t=0.9 right"]
    assert np.isfinite(right)
    for key in ("t=0.9 swapped", "t=0.9 swapped in context", "t=0.9 swapped in canvas"):
        assert losses[key] != right, key


def test_the_relation_probe_tells_a_layout_from_a_relation_word_that_moves_every_cell_alike():
    """bench/probe_relations.py's mirror correlation: +1 for a canvas that puts A on the side the
    relation names, -1 for one where the relation word shifts all cells alike (not a layout)."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from probe_relations import relation_layout

    from app.core.canvas import CanvasSpec

    torch.manual_seed(0)
    a_here, b_here, shift = torch.randn(3, 16)

    def layout_planner(texts, spec):
        canvases = []
        for text in texts:
            canvas = torch.zeros(spec.rows, spec.cols, 16)
            first, second = (slice(0, 4), slice(4, 8))
            if "right of" in text or "below" in text:
                first, second = second, first
            axis_cols = "left" in text or "right" in text
            if axis_cols:
                canvas[:, first], canvas[:, second] = a_here, b_here
            else:
                canvas[first, :], canvas[second, :] = a_here, b_here
            canvases.append(canvas)
        return SimpleNamespace(canvas=torch.stack(canvases)[:, None])

    def word_shift_planner(texts, spec):
        base = torch.randn(spec.rows, spec.cols, 16, generator=torch.Generator().manual_seed(1))
        canvases = [base + (shift if ("right of" in t or "below" in t) else 0) for t in texts]
        return SimpleNamespace(canvas=torch.stack(canvases)[:, None])

    spec = CanvasSpec(1, 8, 8)
    for word, (corr, size) in relation_layout(layout_planner, spec).items():
        assert corr == pytest.approx(1.0, abs=1e-5), word
        assert size > 0.5
    for word, (corr, _) in relation_layout(word_shift_planner, spec).items():
        assert corr == pytest.approx(-1.0, abs=1e-5), word


def test_the_canvas_head_probe_reads_a_scene_off_states_that_hold_it_and_not_off_noise():
    """bench/probe_canvas_head.py: a linear head fitted on canvas states that carry each cell's label
    (plus noise) reads the held-out scenes right; on states that carry nothing it finds no objects
    it can name."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from probe_canvas_head import canvas_head_scores

    g = torch.Generator().manual_seed(0)
    labels, d = 9, 32
    codes = torch.randn(labels, d, generator=g) * 2

    def cells(n):
        y = torch.where(torch.rand(n, generator=g) < 0.85, 0, torch.randint(1, labels, (n,), generator=g))
        return y, torch.randn(n, d, generator=g)

    train_y, train_noise = cells(4000)
    test_y, test_noise = cells(1000)
    holding = canvas_head_scores(codes[train_y] + train_noise, train_y, codes[test_y] + test_noise, test_y, labels)
    assert holding["fg_accuracy"] > 0.95 and holding["recall"] > 0.95 and holding["precision"] > 0.9
    blank = canvas_head_scores(train_noise, train_y, test_noise, test_y, labels)
    assert blank["fg_accuracy"] < 0.3


def _with_layout_codes(pipe, n: int):
    """The same tiny model, its canvas given `n` layout codes of a clearly visible size."""
    import copy

    from app.core.canvas import CanvasTokens

    pipe = copy.deepcopy(pipe)
    old = pipe.planner.canvas_tokens
    tokens = CanvasTokens(old.spec, old.dim, init_std=0.5, layouts=n)
    tokens.tokens.data.copy_(old.tokens.data)
    pipe.planner.canvas_tokens = tokens
    return pipe.eval()


def test_layout_codes_give_each_seed_one_of_the_models_plans_and_leave_the_context_alone(tiny_pipe):
    import torch

    pipe = _with_layout_codes(tiny_pipe, 3)
    plans = {seed: pipe.plan(_req(seed=seed)) for seed in range(6)}
    assert torch.equal(pipe.plan(_req(seed=4)).canvas, plans[4].canvas)  # the same seed, the same plan
    distinct = {tuple(p.canvas[0].flatten()[:8].tolist()) for p in plans.values()}
    assert len(distinct) > 1  # other seeds, other layouts (a zero prior draws the codes uniformly)
    # The canvas comes after the instruction in the planner's causal sequence: its context is untouched.
    assert all(torch.equal(plans[0].context, p.context) for p in plans.values())
    # A model without codes plans the same for every seed.
    assert torch.equal(tiny_pipe.plan(_req(seed=0)).canvas, tiny_pipe.plan(_req(seed=1)).canvas)

    # The prior decides which codes an instruction may draw: all its mass on code 2, every seed plans code 2.
    with torch.no_grad():
        pipe.planner.canvas_tokens.layout_prior.bias.copy_(torch.tensor([-30.0, -30.0, 30.0]))
    coded = pipe.planner(["a red circle left of a blue star"], pipe.canvas_spec(_req()), layouts=[2]).canvas
    for seed in range(4):
        assert torch.allclose(pipe.plan(_req(seed=seed)).canvas[:1], coded, atol=1e-5)

    # Batched sampling plans each item with its own seed, as single calls do.
    with torch.no_grad():
        pipe.planner.canvas_tokens.layout_prior.bias.zero_()
    batch = pipe.sample(["two blue stars"] * 3, [4, 5, 6], steps=3, guidance=3.0)
    for k, seed in enumerate((4, 5, 6)):
        single = pipe(_req(instruction="two blue stars", seed=seed, steps=3, guidance=3.0)).frames[0]
        assert np.abs(batch[k].astype(int) - single.astype(int)).max() <= 2


def test_a_model_with_layout_codes_saves_and_loads_them(tiny_pipe, tmp_path):
    import torch

    from app.core.checkpoints import load_model, save_model

    pipe = _with_layout_codes(tiny_pipe, 2)
    save_model(pipe, tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu", dtype=torch.float32)
    assert loaded.planner.canvas_tokens.layouts == 2
    assert torch.equal(loaded.planner.canvas_tokens.layout_codes, pipe.planner.canvas_tokens.layout_codes)
    assert torch.allclose(loaded.plan(_req(seed=1)).canvas, pipe.plan(_req(seed=1)).canvas, atol=1e-5)


def test_the_referring_probe_picks_edits_by_whether_the_class_alone_names_the_object():
    """bench/probe_canvas_head.py --referring: ambiguous edits have a same-class distractor (so the
    instruction gives the colour), the others do not; a plan that is the target's own label map scores
    every named cell right and keeps every other object, the source's map gets no named cell right."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from probe_canvas_head import REFERRING_KINDS, referring_cells, referring_edits

    from app.shapes.dataset import label_map
    from app.shapes.edits import edit_kind

    rng = np.random.default_rng(0)
    for ambiguous in (False, True):
        edits = referring_edits(rng, 12, ambiguous)
        assert len(edits) == 12 and {edit_kind(e.instruction) for e, _, _ in edits} == set(REFERRING_KINDS)
        named_cells = 0
        for edit, named, others in edits:
            same_class = [o for o in edit.source.objects if o is not named and o.cls == named.cls]
            assert bool(same_class) == ambiguous
            assert (named.color in edit.instruction.split()) or not ambiguous
            right, cells, kept, other = referring_cells(label_map(edit.target, 8), edit, others, 8)
            assert right == cells and kept == other  # (a small object may win no cell of the 8 x 8 map)
            named_cells += cells
            wrong, _, _, _ = referring_cells(label_map(edit.source, 8), edit, others, 8)
            assert wrong == 0
        assert named_cells > 12


def test_the_add_probe_reads_which_side_the_plan_puts_the_new_object():
    """bench/probe_canvas_head.py --adds: the target's own label map plans every new cell on the named
    side, the map mirrored through the reference object plans it on the other side, and the source's
    map does not plan it at all."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from probe_canvas_head import added_cells_side

    from app.shapes.dataset import label_map
    from app.shapes.edits import add_anchor, sample_edit
    from app.shapes.scene import Scene, fits_with

    rng = np.random.default_rng(1)
    mirrored = 0
    for _ in range(30):
        edit = sample_edit(rng, "add")
        right, cells, side = added_cells_side(label_map(edit.target, 16), edit, 16)
        assert (right, side) == (cells, "instructed side") and cells > 0
        assert added_cells_side(label_map(edit.source, 16), edit, 16)[::2] == (0, "not planned")
        ref, _ = add_anchor(edit)
        new = edit.target.objects[-1]
        mirror = new.moved(2 * ref.cx - new.cx, 2 * ref.cy - new.cy)
        if fits_with(mirror, edit.source.objects):
            assert added_cells_side(label_map(Scene(edit.source.objects + (mirror,)), 16), edit, 16)[2] == "opposite side"
            mirrored += 1
    assert mirrored >= 5
