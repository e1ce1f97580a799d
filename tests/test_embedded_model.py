"""The committed embedded default, loaded from models/ as a user gets it.

What is asserted is what the committed checkpoint reliably does today (GenEval-style overall 0.96,
see models/metacanvas-shapes/README.md). Measured on this project's CPU (2026-11-27) with the
model's own sampling defaults (DPM-Solver++, guidance 2 below sigma 0.8) at 20 steps: 46 of the 48
seeded prompts below fully right (the checkpoints before: 46, 42, 42, 41, 39, 37, 35, 34, 25, 16); 23 of
the 24 seeded position prompts ("a photo of a A left of a B"; the text-only baseline trained with as
many steps, at 22,714: 5; the checkpoint before, which planned without a layout draft: 14); its edits keep 38.6 dB
PSNR outside the edited objects on the 30 edits below (the checkpoints before: 37.7, 37.4, 37.2, 36.9, 35.4,
35.0, 33.8, 29.8, 30.3 and 26.4 dB; an earlier one, which ignored its source, about 15 dB). Its layout drafts
of the 24 seeded counting prompts hold the asked number of the asked class in all 24. Its edit drafter
drafts 38 of the 40 seeded edits' targets right (0.945 on the benchmark's 200; the drafter before: 32).
The bars (40 prompts, 19 positions, 31 dB, 22 drafted counts, 34 drafted edits) leave room for other CPUs' rounding and
fail for a model that stopped following prompts, stopped laying out relations, stopped copying its
source, stopped drafting the asked count, or stopped reading an edit's source. Raise them when a better model is committed.
"""
from pathlib import Path

import numpy as np
import pytest

from app.core.checkpoints import load_model, validate_model_folder
from app.shapes.detect import detect
from app.shapes.palette import BACKGROUND

MODEL = Path(__file__).resolve().parents[1] / "models" / "metacanvas-shapes"
SEEDED_PROMPTS_BAR = 40  # of 48
SEEDED_POSITIONS_BAR = 19  # of 24
DRAFTED_COUNTS_BAR = 22  # of 24
PSNR_OUTSIDE_BAR = 31.0  # dB
DRAFTED_EDITS_BAR = 34  # of 40


@pytest.fixture(scope="module")
def pipe():
    return load_model(MODEL)


def test_the_folder_is_safetensors_only_and_small():
    index = validate_model_folder(MODEL)
    assert set(index["defaults"]["tasks"]) == {"text_to_image", "image_edit"}
    files = [p for p in MODEL.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert sum(p.stat().st_size for p in files) < 30 * 2 ** 20


def test_it_draws_shapes_on_the_shapes_world_background(pipe):
    prompts = ["a photo of a red circle", "a photo of two blue squares", "a photo of a green star",
               "a photo of a yellow triangle", "a photo of an orange circle", "a photo of a purple square"]
    images = pipe.sample(prompts, list(range(len(prompts))), steps=20)
    assert images.shape == (6, 64, 64, 3)
    corners = np.concatenate([images[:, :6, :6].reshape(-1, 3), images[:, -6:, -6:].reshape(-1, 3)])
    assert np.abs(np.median(corners, axis=0) - np.array(BACKGROUND)).max() <= 12
    with_shapes = sum(bool(detect(im)) for im in images)
    assert with_shapes >= 4, f"shapes found in only {with_shapes} of 6 images"


def test_it_gets_a_fixed_set_of_seeded_prompts_right(pipe):
    from app.eval.geneval import make_geneval_metadata, score_image

    easy_tags = ("single_object", "colors", "two_object", "counting")
    meta = [m for m in make_geneval_metadata(408, seed=43) if m["tag"] in easy_tags][:48]
    images = pipe.sample([m["prompt"] for m in meta], list(range(len(meta))), steps=20)
    right = [m["prompt"] for image, m in zip(images, meta) if score_image(image, m)[0]]
    assert len(right) >= SEEDED_PROMPTS_BAR, f"only {len(right)} of 48 seeded prompts right: {right}"



def test_it_puts_objects_where_a_seeded_relation_says(pipe):
    """"a photo of a A left of a B" (left of, right of, above, below): the layout the canvas plans.
    The text-only baseline, same planner and as many steps, gets 5 of these 24 right; a random placement
    of two correct objects would be right about a quarter of the time."""
    from app.eval.geneval import make_geneval_metadata, score_image

    meta = [m for m in make_geneval_metadata(408, seed=43) if m["tag"] == "position"][:24]
    images = pipe.sample([m["prompt"] for m in meta], list(range(len(meta))), steps=20)
    right = [m["prompt"] for image, m in zip(images, meta) if score_image(image, m)[0]]
    assert len(right) >= SEEDED_POSITIONS_BAR, f"only {len(right)} of 24 seeded position prompts right: {right}"


def test_its_layout_drafts_hold_the_asked_count_and_follow_the_seed(pipe):
    """The planner drafts each text-to-image scene object by object (app/core/draft.py): "three stars"
    is drafted as three stars, and another seed draws another scene."""
    import torch

    from app.eval.drafts import draft_scene
    from app.eval.geneval import make_geneval_metadata

    meta = [m for m in make_geneval_metadata(408, seed=43) if m["tag"] == "counting"][:24]
    with torch.no_grad():
        plan = pipe.planner([m["prompt"] for m in meta], pipe.canvas_spec_for(pipe.defaults.width), seeds=list(range(24)))
        other = pipe.planner([m["prompt"] for m in meta], pipe.canvas_spec_for(pipe.defaults.width), seeds=list(range(100, 124)))
    config = pipe.planner.drafter.config
    right = [m["prompt"] for d, m in zip(plan.draft, meta)
             if draft_scene(d, config).count(m["include"][0]["class"]) == m["include"][0]["count"]]
    assert len(right) >= DRAFTED_COUNTS_BAR, f"only {len(right)} of 24 counting prompts drafted with their count: {right}"
    assert sum(not torch.equal(a, b) for a, b in zip(plan.draft, other.draft)) >= 20


def test_the_plan_depends_on_the_instruction(pipe):
    from app.core.request import GenerationRequest, Task

    a = pipe.plan(GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle on the left"))
    b = pipe.plan(GenerationRequest(Task.TEXT_TO_IMAGE, "a blue star on the right"))
    grid = pipe.canvas_spec_for(pipe.defaults.width)  # the DiT's token grid
    assert a.canvas.shape == (1, 1, grid.rows, grid.cols, 128)
    assert not np.allclose(a.canvas.numpy(), b.canvas.numpy())
    assert a.heatmap().shape == (grid.rows, grid.cols) and a.pca_rgb().shape == (grid.rows, grid.cols, 3)


def test_the_default_sampler_at_its_default_steps_lands_near_the_exact_sample(pipe):
    """The model's own sampler (DPM-Solver++(2M), 12 steps) against a 64-step Euler solution of the
    same ODE (same seeds): a broken solver, sigma schedule or step count lands far off. Measured
    (2026-11-27, 12 images): 1.43 grey levels on average (Euler at 12 steps: 0.94). For the checkpoints
    before this one DPM++ at 8 steps was the closer of the two (2.03 against Euler's 2.41 grey levels);
    for this one, whose canvas carries a drafted scene, it is not (1.61 against 1.21, with or without
    guidance), yet both score alike (GenEval-style 0.961 DPM++, 0.963 Euler, 12 steps) and DPM++ keeps
    an edit's source better (31.9 against 31.2 dB), so it stays the default (research/LOG.md, "Layout drafts")."""
    prompts = ["a photo of a red circle left of a blue square", "a photo of three green stars", "a photo of a yellow triangle",
               "a photo of a purple square above an orange circle", "a photo of two blue triangles",
               "a photo of a green star and a red square"]
    seeds = [3, 4, 5, 6, 7, 8]
    original = pipe.scheduler
    assert pipe.defaults.solver == "dpm++2m" and pipe.defaults.steps == 12
    try:
        from dataclasses import replace

        from app.core.pipeline import make_scheduler

        pipe.scheduler = make_scheduler(replace(pipe.defaults, solver="euler"))
        exact = pipe.sample(prompts, seeds, steps=64).astype(np.float32)
    finally:
        pipe.scheduler = original
    default = pipe.sample(prompts, seeds).astype(np.float32)
    err = np.abs(default - exact).mean()
    assert err < 2.5, f"the default sampler lands {err:.2f} grey levels from the exact sample"


def test_an_edit_keeps_its_source_outside_the_edited_objects(pipe):
    """Editing keeps what the instruction does not name: the committed model's results, away from the
    edited objects, are much nearer the source scene than an unrelated picture of the shapes world is
    (the checkpoint before, which ignored its source, scored 14.8 dB here on 200 edits)."""
    from app.eval.model_eval import evaluate_edits

    scores = evaluate_edits(pipe, 30, seed=11)
    assert scores["edit_psnr_outside"] >= PSNR_OUTSIDE_BAR, scores


def test_its_edit_drafter_drafts_each_edits_target_from_the_source(pipe):
    """The edit drafter reads the source's objects off its pixels and drafts the target the
    instruction asks for: the draft, drawn, is the true target scene for most seeded edits."""
    import torch

    from app.eval.drafts import draft_scene
    from app.eval.edits import edit_success, make_edit_benchmark
    from app.shapes.render import render

    edits = make_edit_benchmark(40, seed=11)
    with torch.no_grad():
        plan = pipe.planner([t.instruction for t in edits], pipe.canvas_spec_for(64),
                            images=[[render(t.source)] for t in edits], seeds=list(range(40)))
    config = pipe.planner.edit_drafter.config
    right = [i for i, (t, rows) in enumerate(zip(edits, plan.draft))
             if edit_success(render(draft_scene(rows, config)), t.target)]
    assert len(right) >= DRAFTED_EDITS_BAR, f"only {len(right)} of 40 edits drafted right: {right}"


def test_each_bundled_samples_suggested_first_edits_come_out_right(pipe):
    """The first edits a newcomer tries on File > Import sample (app/shapes/samples.FIRST_EDITS), on the
    64 px PNGs as shipped, at the model's default steps: the detector finds the target scene (every
    object of the right class and colour where the edit rules put it, nothing else), each object drawn
    at its size. Measured on this project's CPU with the committed checkpoint: each of these edits right
    for all of seeds 0-19, at 12 steps and at 4, with the edited objects' areas 0.85-1.34 of the target's
    (the samples before, objects twice the world's size: "make the circle blue" right for 1 seed of 10,
    "move the square to the right" shrank the square to 10-20 px of 24 for all 10)."""
    from app.core.request import GenerationRequest, Task
    from app.eval.edits import edit_failure_cause
    from app.media.probe import load_image
    from app.shapes.render import render
    from app.shapes.samples import FIRST_EDITS, first_edits

    samples = MODEL.parents[1] / "resources" / "samples"
    wrong = []
    for name in FIRST_EDITS:
        source = load_image(samples / f"{name}_64.png")
        for edit in first_edits(name):
            result = pipe(GenerationRequest(Task.IMAGE_EDIT, edit.instruction, images=[source], width=64, height=64,
                                            steps=pipe.defaults.steps, guidance=pipe.defaults.guidance, seed=0))
            image = result.frames[0]
            cause = edit_failure_cause(image, edit.source, edit.target)
            if cause != "done":
                wrong.append(f"{name}: {edit.instruction!r} ({cause})")
                continue
            # Drawn at the size the edit keeps (a move or recolour does not shrink the object).
            found, want = detect(image), detect(render(edit.target, 64))
            for w in want:
                d = min((d for d in found if (d.cls, d.color) == (w.cls, w.color)),
                        key=lambda d: np.hypot(d.center[0] - w.center[0], d.center[1] - w.center[1]))
                if not 0.7 <= d.area / w.area <= 1.5:
                    wrong.append(f"{name}: {edit.instruction!r} drew the {w.color} {w.cls} at {d.area / w.area:.2f}x its area")
    assert not wrong, wrong
