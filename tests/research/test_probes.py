"""The research probes (research/) measure what they say, on tiny models and made-up states."""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "research"))


@pytest.fixture(scope="module")
def pipe():
    """The embedded default, as the trajectory probe was made for."""
    import torch

    from app.core.checkpoints import load_model

    return load_model(ROOT / "models" / "metacanvas-shapes", dtype=torch.float32)


def test_the_conditioning_probe_swaps_the_canvas_it_is_asked_to(tiny_pipe):
    """research/probe_conditioning.py's canvas columns (mirrored, another example's, off) really change
    what the DiT is given: each gives another loss than the plan as it is."""
    from probe_conditioning import conditioning_losses

    losses = conditioning_losses(tiny_pipe, n=4, t_values=(0.9,))
    for kind in ("t2i", "edit"):
        right = losses[f"{kind} t=0.9 right"]
        assert np.isfinite(right)
        for mode in ("mirrored", "shuffled", "off"):
            assert losses[f"{kind} t=0.9 canvas {mode}"] != right, (kind, mode)


def test_the_conditioning_probe_swaps_side_words_in_the_path_it_is_asked_to(tiny_pipe):
    """research/probe_conditioning.py's relation rows: only captions that name a side are used, their side
    words are swapped both ways, and swapping them in the whole plan, the context only or the canvas
    only each gives the DiT something else than the caption as it is."""
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
    """research/probe_relations.py's mirror correlation: +1 for a canvas that puts A on the side the
    relation names, -1 for one where the relation word shifts all cells alike (not a layout)."""
    from types import SimpleNamespace

    import torch

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
    """research/probe_canvas_head.py: a linear head fitted on canvas states that carry each cell's label
    (plus noise) reads the held-out scenes right; on states that carry nothing it finds no objects
    it can name."""
    import torch

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


def test_the_referring_probe_picks_edits_by_whether_the_class_alone_names_the_object():
    """research/probe_canvas_head.py --referring: ambiguous edits have a same-class distractor (so the
    instruction gives the colour), the others do not; a plan that is the target's own label map scores
    every named cell right and keeps every other object, the source's map gets no named cell right."""
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
    """research/probe_canvas_head.py --adds: the target's own label map plans every new cell on the named
    side, the map mirrored through the reference object plans it on the other side, and the source's
    map does not plan it at all."""
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


def test_the_trajectory_probe_follows_the_real_sampler(pipe):
    """research/probe_trajectory.py draws the x0 estimates the diagnosis in research/LOG.md rests on:
    its last frame must be exactly the image the pipeline's Euler sampler makes (same seeds, steps,
    shift, guidance), and an unknown word gets the pipeline's vocabulary message."""
    from dataclasses import replace

    from app.core.pipeline import make_scheduler
    from app.core.words import UnknownWordsError

    from probe_trajectory import trajectory

    prompts, seeds = ["a photo of a red circle", "a photo of two stars"], [1, 2]
    times, frames = trajectory(pipe, prompts, seeds, steps=6, every=2, guidance=3.0, shift=2.0)
    assert times[0] == 1.0 and times[-1] == 0.0 and len(frames) == len(times) == 4
    original = pipe.defaults, pipe.scheduler
    try:
        pipe.defaults = replace(pipe.defaults, solver="euler", shift=2.0)
        pipe.scheduler = make_scheduler(pipe.defaults)
        sampled = pipe.sample(prompts, seeds, steps=6, guidance=3.0)
    finally:
        pipe.defaults, pipe.scheduler = original
    assert np.array_equal(frames[-1], sampled)
    with pytest.raises(UnknownWordsError):
        trajectory(pipe, ["a photo of a dragon"], [0], steps=2)


def test_the_keyframe_studys_arms_keep_the_taught_draft_embedding_and_resize_the_plan():
    """An arm's canvas of K keyframes is the taught 3-keyframe canvas resized, with the embedding its drafts are
    drawn with carried over: without it a drafted study's canvases silently ignored every draft."""
    from types import SimpleNamespace

    import torch

    from app.core.canvas import CanvasSpec, CanvasTokens
    from keyframe_study import planner_with_keyframes

    torch.manual_seed(0)
    taught = CanvasTokens(CanvasSpec(3, 4, 4), 8, draft_labels=5)
    with torch.no_grad():
        taught.draft_embedding.normal_()
    for k in (1, 3, 5):
        arm = planner_with_keyframes(SimpleNamespace(canvas_tokens=taught), k).canvas_tokens
        assert arm.spec.keyframes == k and arm.draft_labels == 5
        assert torch.equal(arm.draft_embedding, taught.draft_embedding)
        draft = torch.zeros(1, CanvasSpec(k, 4, 4).num_tokens, 5)
        draft[0, 0, 2] = 1.0  # one cell covered by label 2: the arm's plan there moves by that label's embedding
        moved = arm(arm.spec, draft)[0] - arm(arm.spec)
        assert torch.allclose(moved[0], taught.draft_embedding[2]) and moved[1:].abs().max() == 0
    assert torch.allclose(planner_with_keyframes(SimpleNamespace(canvas_tokens=taught), 3).canvas_tokens.tokens,
                          taught.tokens)
