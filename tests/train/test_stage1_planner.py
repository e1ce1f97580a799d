"""Stage 1 (app/train/stage1_planner.py): teaching the planner, its drafts, and its drafters alone."""
import json

import pytest
import torch

from app.train.data import ShapesStream
from app.train.loop import Trainer
from app.train.recipe import Recipe
from app.train.run_start import PlannerStart, RunStart
from tests.train.helpers import TINY, same as _same


@pytest.mark.parametrize("edit_fraction,kind", [(0.0, "t2i"), (1.0, "edit")])
def test_the_recipe_sets_how_much_of_the_teaching_is_edits(tmp_path, edit_fraction, kind):
    """teach_edit_fraction decides the teaching batches: a caption's relations need many text-to-image
    steps, an edit's layout few. The log names each logged batch's kind."""
    recipe = Recipe.load(TINY)
    recipe.teach.steps, recipe.teach.batch = 51, 2
    recipe.teach_edit_fraction = edit_fraction
    trainer = Trainer(recipe, tmp_path / "run", device="cpu", log=lambda *_: None)
    trainer.run(teach_only=True)
    logged = trainer.progress["teach_losses"]
    assert [step for step, _, _ in logged] == [0, 50]
    assert all(f"fg_acc_{kind}" in stats and len([k for k in stats if k.startswith("fg_acc")]) == 1
               for _, _, stats in logged)


def test_layout_drafts_are_taught_alone_and_stage_two_seeds_each_scenes_canvas_with_its_own_draft(tmp_path):
    """teach_drafts_only: on a given planner, stage 1 teaches only the layout drafter and the canvas's
    draft embedding; the MLLM and the plain canvas (all an edit or the text-only baseline plans with)
    stay bit for bit. Stage 2 plans each text-to-image scene with its own draft, edits with none; the
    exported model drafts with the request's seed, and a planner without a drafter is refused."""
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task
    from app.train.planner_folder import DRAFTER

    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    base = Trainer(recipe, tmp_path / "base", device="cpu", log=lambda *_: None)
    base.run(teach_only=True)
    mllm = {k: v.clone() for k, v in base.pipe.planner.model.state_dict().items()}
    plain_tokens = base.pipe.planner.canvas_tokens.tokens.detach().clone()

    drafted = Recipe.load(TINY)
    drafted.eval_every = 0
    drafted.model.canvas_drafts = True
    drafted.teach_drafts_only = True
    drafted.teach_edit_fraction = 0.0
    drafted.teach.steps = 4
    drafted.diffusion.steps = 2
    run = Trainer(drafted, tmp_path / "drafted", start=RunStart.new(PlannerStart.teach_on(tmp_path / "base" / "planner_taught")), device="cpu",
                  log=lambda *_: None)
    drafter_before = {k: v.clone() for k, v in run.pipe.planner.drafter.state_dict().items()}
    run.run(teach_only=True)
    planner = run.pipe.planner
    assert _same(planner.model.state_dict(), mllm)
    assert torch.equal(planner.canvas_tokens.tokens, plain_tokens)
    assert planner.canvas_tokens.draft_embedding.abs().sum() > 0
    assert not _same(planner.drafter.state_dict(), drafter_before)
    assert (tmp_path / "drafted" / "planner_taught" / DRAFTER / "model.safetensors").exists()

    # Stage 2 in a new process: a text-to-image scene's canvas carries its draft, an edit's does not.
    trainer = Trainer(drafted, tmp_path / "drafted", device="cpu", log=lambda *_: None)
    assert _same(trainer.pipe.planner.drafter.state_dict(), planner.drafter.state_dict())
    stream = ShapesStream(drafted, seed=3, batch=4, edit_fraction=0.0, cfg_dropout=0.5)
    t2i = next(iter(stream.loader()))
    assert t2i["draft"].shape == (4, 5, 4)
    blank = [i for i, t in enumerate(t2i["texts"]) if not t]
    assert all((t2i["draft"][i] == -1).all() for i in blank)  # an empty instruction is never drafted
    assert "draft" not in next(iter(ShapesStream(drafted, seed=3, batch=2, edit_fraction=1.0).loader()))
    model = trainer.run()

    pipe = load_model(model, device="cpu", dtype=torch.float32)
    assert pipe.planner.drafts
    request = GenerationRequest(Task.TEXT_TO_IMAGE, "two red circles", width=64, height=64, steps=2, guidance=2.0, seed=5)
    plan = pipe.plan(request, with_unconditional=True)
    assert plan.draft is not None and (plan.draft[0, :, 0] >= 0).any() and (plan.draft[1] == -1).all()
    again = pipe.plan(request, with_unconditional=True)
    assert torch.equal(plan.draft, again.draft) and torch.allclose(plan.canvas, again.canvas)
    result = pipe(request)
    assert result.frames.shape == (1, 64, 64, 3) and result.plan.draft is not None

    # A model folder whose drafter config is damaged is refused by name, not half-loaded.
    import shutil

    from app.core.checkpoints import ModelFolderError

    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "layout_drafter" / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="layout drafter"):
        load_model(broken, device="cpu", dtype=torch.float32)

    # A planner without a drafter cannot be handed to a run that drafts.
    with pytest.raises(ValueError, match="no layout drafter"):
        Trainer(drafted, tmp_path / "bad", start=RunStart.new(PlannerStart.taught(tmp_path / "base" / "planner_taught")), device="cpu",
                log=lambda *_: None)


def test_the_drafter_can_be_taught_alone_and_its_steps_are_recorded_apart(tmp_path):
    """teach_drafter_only changes the drafter and nothing else of the planner; its steps are kept
    apart from the planner's teaching steps, and the prompt states it learns from are the plan's context."""
    drafted = Recipe.load(TINY)
    drafted.eval_every = 0
    drafted.model.canvas_drafts = True
    drafted.teach_drafts_only = True
    drafted.teach.steps = 2
    first = Trainer(drafted, tmp_path / "first", device="cpu", log=lambda *_: None)
    first.run(teach_only=True)

    alone = Recipe.load(TINY)
    alone.model.canvas_drafts = True
    alone.teach_drafter_only = True
    alone.teach.steps = 5
    run = Trainer(alone, tmp_path / "alone", start=RunStart.new(PlannerStart.teach_on(tmp_path / "first" / "planner_taught")), device="cpu",
                  log=lambda *_: None)
    planner = run.pipe.planner
    rest = {k: v.clone() for k, v in planner.state_dict().items() if not k.startswith("drafter.")}
    drafter = {k: v.clone() for k, v in planner.drafter.state_dict().items()}
    run.run(teach_only=True)
    assert _same({k: v for k, v in planner.state_dict().items() if not k.startswith("drafter.")}, rest)
    assert not _same(planner.drafter.state_dict(), drafter)
    record = json.loads((tmp_path / "alone" / "planner_taught" / "teaching.json").read_text())
    assert record["drafter_steps"] == 5 and record["steps"] == json.loads(
        (tmp_path / "first" / "planner_taught" / "teaching.json").read_text())["steps"]

    texts = ["two red circles", "a star left of a square"]
    states, mask = planner.context_states(texts)
    plan = planner(texts, planner.canvas_tokens.spec, seeds=[0, 0])
    assert torch.allclose(states * mask[..., None], plan.context, atol=1e-5)


def test_an_edit_drafter_is_taught_alone_trains_stage_two_with_edit_targets_and_drafts_each_edit(tmp_path):
    """teach_drafter_tasks ["image_edit"]: only the edit drafter changes, its steps recorded apart;
    stage 2 seeds each edit's canvas with its target's draft (an empty instruction's with none); the
    exported model drafts an edit from its instruction and source with the request's seed, and a
    damaged edit drafter is refused by name."""
    import shutil

    from app.core.checkpoints import ModelFolderError, load_model
    from app.core.request import GenerationRequest, Task
    from app.shapes.render import render
    from app.shapes.scene import Scene, ShapeObject
    from app.train.planner_folder import EDIT_DRAFTER

    drafted = Recipe.load(TINY)
    drafted.eval_every = 0
    drafted.model.canvas_drafts = True
    drafted.teach_drafts_only = True
    drafted.teach.steps = 2
    Trainer(drafted, tmp_path / "first", device="cpu", log=lambda *_: None).run(teach_only=True)

    edits = Recipe.load(TINY)
    edits.eval_every = 0
    edits.model.canvas_drafts = edits.model.edit_drafts = True
    edits.model.edit_drafter_pixels = 8  # the edit drafter looks at the source's pixels too
    edits.teach_drafter_only = True
    edits.teach_drafter_tasks = ("image_edit",)
    edits.teach.steps = 3
    edits.diffusion.steps = 2
    run = Trainer(edits, tmp_path / "edits", start=RunStart.new(PlannerStart.teach_on(tmp_path / "first" / "planner_taught")), device="cpu",
                  log=lambda *_: None)
    planner = run.pipe.planner
    rest = {k: v.clone() for k, v in planner.state_dict().items() if not k.startswith("edit_drafter.")}
    before = {k: v.clone() for k, v in planner.edit_drafter.state_dict().items()}
    run.run(teach_only=True)
    assert _same({k: v for k, v in planner.state_dict().items() if not k.startswith("edit_drafter.")}, rest)
    assert not _same(planner.edit_drafter.state_dict(), before)
    record = json.loads((tmp_path / "edits" / "planner_taught" / "teaching.json").read_text())
    assert record["edit_drafter_steps"] == 3 and "drafter_steps" not in record
    assert (tmp_path / "edits" / "planner_taught" / EDIT_DRAFTER / "model.safetensors").exists()
    # A taught drafter's folder is a model folder's drafter as it is (the same config).
    saved = json.loads((tmp_path / "edits" / "planner_taught" / EDIT_DRAFTER / "config.json").read_text())
    assert saved["context_dim"] == planner.hidden_size

    stream = ShapesStream(edits, seed=3, batch=6, edit_fraction=1.0, cfg_dropout=0.5)
    batch = next(iter(stream.loader()))
    assert batch["draft"].shape == (6, 5, 4) and batch["source_draft"].shape == (6, 5, 4)
    assert batch["source_named"].shape == (6,)
    for text, rows in zip(batch["texts"], batch["draft"]):
        assert (rows == -1).all() if not text else rows[0, 0] > 0  # worded edits carry their target's draft
    # In stage-1 teaching an edit's target draft teaches the edit drafter, never the caption's drafter.
    from app.train.planner_teaching import PlannerTeacher

    teacher = PlannerTeacher(planner, grid=edits.model.image_size // edits.model.patch_size)
    loss, stats = teacher.loss(batch, "cpu")
    loss.backward()
    assert "edit_draft_label" in stats and "edit_draft_centre" in stats and "edit_draft_refer_acc" in stats
    assert "draft_label" not in stats
    assert all(p.grad is None for p in planner.drafter.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in planner.edit_drafter.parameters())
    planner.zero_grad(set_to_none=True)
    model = Trainer(edits, tmp_path / "edits", device="cpu", log=lambda *_: None).run()

    pipe = load_model(model, device="cpu", dtype=torch.float32)
    assert pipe.planner.edit_drafter is not None and pipe.planner.edit_drafter.config.pixel_width == 8
    source = render(Scene((ShapeObject("circle", "red", 0.3, 0.5, 0.12), ShapeObject("square", "blue", 0.7, 0.5, 0.12))), 64)
    request = GenerationRequest(Task.IMAGE_EDIT, "make the circle green", images=[source], width=64, height=64,
                                steps=2, guidance=2.0, seed=4)
    plan = pipe.plan(request, with_unconditional=True)
    assert plan.draft[0, 0, 0] > 0 and (plan.draft[1] == -1).all()
    assert torch.equal(plan.draft, pipe.plan(request, with_unconditional=True).draft)
    assert pipe(request).frames.shape == (1, 64, 64, 3)

    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "edit_drafter" / "config.json").write_text('{"draft": {"labels": "many"}}')
    with pytest.raises(ModelFolderError, match="edit drafter"):
        load_model(broken, device="cpu", dtype=torch.float32)

    # The text-only twin trains with the very same recipe: it has no canvas to draft for.
    text = Trainer(edits, tmp_path / "text", use_canvas=False, device="cpu", log=lambda *_: None)
    assert text.pipe.planner.drafter is None and text.pipe.planner.edit_drafter is None


def test_drafter_teaching_sittings_end_annealed_draw_the_recipes_edit_kinds_and_go_on_with_fresh_examples(
        tmp_path, monkeypatch):
    """Under --teach-minutes the LR falls to zero over the budget's last share (teach_time_cooldown);
    teach_edit_kind_weights sets which edits teach the edit drafter; a sitting that goes on from a taught
    drafter counts on from its steps and draws examples the first did not."""
    import app.shapes.edits as edits_module
    import app.train.stage1_planner as stage1
    from app.train.schedule import lr_lambda

    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.model.canvas_drafts = recipe.model.edit_drafts = True
    recipe.teach_drafter_only = True
    recipe.teach_drafter_tasks = ("image_edit",)
    recipe.teach.steps, recipe.teach.batch, recipe.teach.warmup = 2, 8, 1
    recipe.teach_time_cooldown = 0.3
    recipe.teach_edit_kind_weights = {"recolour": 0.0, "move": 0.0, "remove": 0.0, "replace": 0.0}  # adds only
    drawn = []
    real_sample_edit = edits_module.sample_edit

    def recording_sample_edit(rng, kind=None, ambiguous=False):
        triple = real_sample_edit(rng, kind, ambiguous)
        drawn.append(triple.instruction)
        return triple

    monkeypatch.setattr(edits_module, "sample_edit", recording_sample_edit)
    first = Trainer(recipe, tmp_path / "first", device="cpu", log=lambda *_: None)
    first.run(teach_only=True)
    assert len(drawn) == 16 and all(text.startswith("add ") for text in drawn)
    first_drawn, drawn[:] = list(drawn), []
    second = Trainer(recipe, tmp_path / "second", start=RunStart.new(PlannerStart.teach_on(tmp_path / "first" / "planner_taught")), device="cpu",
                     log=lambda *_: None)
    second.run(teach_only=True)
    assert drawn != first_drawn  # the same seed, yet the stream goes on where the first sitting's left off
    record = json.loads((tmp_path / "second" / "planner_taught" / "teaching.json").read_text())
    assert record["edit_drafter_steps"] == 4

    # The LR through a one-minute sitting on a clock that moves 6 s a step: constant, then falling
    # with the time left over the last 30 % (18 s), to zero at the end.
    clock = {"now": 0.0}
    monkeypatch.setattr(stage1.time, "time", lambda: clock["now"])
    lrs = []
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(1))

    def next_loss():
        lrs.append(opt.param_groups[0]["lr"])
        clock["now"] += 6.0
        return (param ** 2).sum(), {}

    done, _ = first._teaching_loop("teach", opt, sched, [param], 100, next_loss, max_minutes=1.0)
    assert done == 11  # stops once past the minute
    assert lrs[:8] == pytest.approx([1e-3] * 8)
    assert lrs[8] == pytest.approx(1e-3 * 2 / 3) and lrs[9] == pytest.approx(1e-3 / 3) and lrs[10] == pytest.approx(0.0, abs=1e-12)
