"""Training: the loop learns, resumes after interruption, and both stages use the same planner inputs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.train.build import build_model
from app.train.data import ShapesStream
from app.train.loop import Trainer
from app.train.planner_teaching import PlannerTeacher
from app.train.recipe import Recipe

TINY = Path(__file__).resolve().parents[2] / "app" / "train" / "recipes" / "tiny-test.json"


def test_a_few_flow_matching_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    recipe = Recipe.load(TINY)
    trainer = Trainer(recipe, tmp_path / "run", device="cpu")
    adapter = trainer.pipe.adapter.train()
    trainer.pipe.planner.requires_grad_(False)
    batch = next(iter(ShapesStream(recipe, seed=0, batch=8, edit_fraction=0.0).loader()))
    opt = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=3e-3)

    def loss_at(seed):
        return trainer._flow_matching_loss(batch, adapter, torch.Generator().manual_seed(seed))

    with torch.no_grad():
        before = np.mean([loss_at(s).item() for s in range(4)])
    for step in range(25):
        loss = loss_at(step % 4)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = np.mean([loss_at(s).item() for s in range(4)])
    assert after < 0.7 * before


def test_planner_teaching_lowers_its_loss():
    recipe = Recipe.load(TINY)
    torch.manual_seed(0)
    pipe = build_model(recipe)
    teacher = PlannerTeacher(pipe.planner, grid=16)
    batch = next(iter(ShapesStream(recipe, seed=1, batch=8, edit_fraction=0.0).loader()))
    opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=3e-3)
    first = teacher.loss(batch, "cpu")[0].item()
    for _ in range(20):
        loss, _ = teacher.loss(batch, "cpu")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


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


def test_a_recipe_with_a_share_outside_zero_to_one_is_refused_with_its_name(tmp_path):
    data = json.loads(TINY.read_text())
    data["teach_edit_fraction"] = 20  # meant 0.2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="teach_edit_fraction is 20"):
        Recipe.load(bad)


def test_index_tensors_made_in_data_workers_equal_the_models_own():
    recipe = Recipe.load(TINY)
    pipe = build_model(recipe).eval()
    spec = pipe.canvas_spec_for(64)
    stream = iter(ShapesStream(recipe, seed=2, batch=4, edit_fraction=0.5).loader())
    kinds = set()
    for _ in range(4):
        batch = next(stream)
        kinds.add(batch["kind"])
        inputs = batch["planner_inputs"]
        assert inputs.prefix_position_ids is not None
        assert (inputs.image_vision_kwargs is not None) == (batch["kind"] == "edit")
        with torch.no_grad():
            ahead = pipe.planner(batch["texts"], spec, inputs=inputs)
            inputs.prefix_position_ids = inputs.image_vision_kwargs = None
            own = pipe.planner(batch["texts"], spec, inputs=inputs)
        assert torch.equal(ahead.canvas, own.canvas) and torch.equal(ahead.context, own.context)
    assert kinds == {"t2i", "edit"}


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    out = tmp_path / "run"
    Trainer(recipe, out, device="cpu").run()
    progress = json.loads((out / "progress.json").read_text())
    assert progress["step"] == 2 and progress["teach_done"]
    saved = (out / "checkpoint" / "adapter.safetensors").read_bytes()

    recipe.diffusion.steps = 4  # the same command again, with a longer schedule: it goes on from step 2
    logs = []
    Trainer(recipe, out, device="cpu", log=logs.append).run()
    assert any("resumed at step 2" in line for line in logs)
    assert json.loads((out / "progress.json").read_text())["step"] == 4
    assert (out / "checkpoint" / "adapter.safetensors").read_bytes() != saved
    assert (out / "model" / "model_index.json").is_file() and (out / "curves.png").is_file()


def test_sigterm_stops_after_the_current_step_with_a_checkpoint_and_an_exported_model(tmp_path, monkeypatch):
    import os
    import signal

    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.checkpoint_every = 100
    recipe.diffusion.steps = 50
    out = tmp_path / "run"
    trainer = Trainer(recipe, out, device="cpu", log=lambda *_: None)
    trainer.teach_planner()
    real_loss, calls = trainer._flow_matching_loss, []

    def loss_then_terminate(*args):
        calls.append(1)
        if len(calls) == 3:  # as `kill PID` would, in the middle of step 3
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(*args)

    monkeypatch.setattr(trainer, "_flow_matching_loss", loss_then_terminate)
    before = signal.getsignal(signal.SIGTERM)
    trainer.train_diffusion()
    assert len(calls) == 3  # step 3 finished, nothing after it ran
    assert json.loads((out / "progress.json").read_text())["step"] == 3
    assert (out / "checkpoint" / "optimizer.safetensors").is_file()
    assert (out / "model" / "model_index.json").is_file()
    assert signal.getsignal(signal.SIGTERM) == before  # the process's own handler is back


def _record_learning_rates(monkeypatch) -> list[float]:
    rates, real_step = [], torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return rates


def test_a_cooldown_ends_a_run_with_the_lr_falling_to_zero_and_survives_an_interruption(tmp_path, monkeypatch):
    """`--cooldown-steps 4` after 2 steps: steps 2-5 at 4/4, 3/4, 2/4, 1/4 of the LR, then the run ends
    and exports. Cut short after its first step, the same run resumed without the flag goes on with the
    cooldown's own LRs instead of jumping back to the full LR."""
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    out = tmp_path / "run"
    Trainer(recipe, out, device="cpu", log=lambda *_: None).run()
    rates = _record_learning_rates(monkeypatch)
    Trainer(recipe, out, device="cpu", log=lambda *_: None).run(cooldown_steps=4, max_minutes=0)
    assert json.loads((out / "progress.json").read_text())["step"] == 3  # out of time after one step
    Trainer(recipe, out, device="cpu", log=lambda *_: None).run()
    assert rates == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert json.loads((out / "progress.json").read_text())["step"] == 6
    record = json.loads((out / "model" / "training.json").read_text())
    assert record["cooldown"] == [2, 6] and record["steps"] == 6

    rates.clear()  # after the cooldown, the same command without the flag trains on at the full LR
    recipe.diffusion.steps = 7
    Trainer(recipe, out, device="cpu", log=lambda *_: None).run()
    assert rates == pytest.approx([1e-3])
    before = json.loads((out / "progress.json").read_text())["step"]
    with pytest.raises(ValueError, match="cooldown-steps"):
        Trainer(recipe, out, device="cpu", log=lambda *_: None).run(cooldown_steps=0)
    assert json.loads((out / "progress.json").read_text())["step"] == before  # refused before training


def _planner_state(trainer):
    return {k: v.clone() for k, v in trainer.pipe.planner.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_later_process_on_a_run_plans_with_its_taught_planner(tmp_path):
    """--teach-only, then training in a new process, then a resume: all three plan with the same taught
    planner, never a fresh random one."""
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    out = tmp_path / "run"
    teacher = Trainer(recipe, out, device="cpu", log=lambda *_: None)
    fresh = _planner_state(teacher)
    teacher.run(teach_only=True)
    taught = _planner_state(teacher)
    assert not _same(fresh, taught)

    trainer = Trainer(recipe, out, device="cpu", log=lambda *_: None)  # a new process on the same folder
    assert _same(_planner_state(trainer), taught)
    trainer.run()
    recipe.diffusion.steps = 3
    resumed = Trainer(recipe, out, device="cpu", log=lambda *_: None)
    assert _same(_planner_state(resumed), taught)

    baseline = Trainer(recipe, tmp_path / "text", use_canvas=False, planner_from=out / "planner_taught",
                       device="cpu", log=lambda *_: None)
    baseline.run()
    again = Trainer(recipe, tmp_path / "text", use_canvas=False, device="cpu", log=lambda *_: None)
    assert _same(_planner_state(again), taught)  # the baseline's resume keeps the shared planner too


def test_a_run_continued_from_a_model_keeps_that_models_planner_when_resumed(tmp_path, monkeypatch):
    """...and draws scenes past those the model's own run drew (its stream keyed by the steps behind it)."""
    import app.train.loop as loop_module

    seeds = []

    class RecordingStream(ShapesStream):
        def __init__(self, recipe, seed, **kwargs):
            seeds.append(seed)
            super().__init__(recipe, seed=seed, **kwargs)

    monkeypatch.setattr(loop_module, "ShapesStream", RecordingStream)
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    first = Trainer(recipe, tmp_path / "a", device="cpu", log=lambda *_: None)
    model = first.run()
    from app.core.checkpoints import load_model

    planner = {k: v.clone() for k, v in load_model(model, device="cpu", dtype=torch.float32).planner.state_dict().items()}
    recipe.diffusion.steps = 2
    cont = Trainer(recipe, tmp_path / "b", init_from=model, device="cpu", log=lambda *_: None)
    assert _same(_planner_state(cont), planner)
    cont.run()
    flow = [seed for seed in seeds if seed >= recipe.seed + 1000]  # stage 2's streams (teaching's is seed + 1)
    assert len(flow) == 2 and flow[1] == flow[0] + 2  # not the first run's scenes again
    recipe.diffusion.steps = 3
    resumed = Trainer(recipe, tmp_path / "b", init_from=model, device="cpu", log=lambda *_: None)
    assert _same(_planner_state(resumed), planner)


def test_a_run_can_go_on_from_a_model_with_another_planner(tmp_path):
    """--init-from with --planner-from: the DiT and connectors go on from the model, the planner is the
    given one (a re-taught planner handed to a trained backbone), and a resumed process keeps both."""
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 1
    model = Trainer(recipe, tmp_path / "a", device="cpu", log=lambda *_: None).run()
    other = Trainer(Recipe.load(TINY), tmp_path / "other", device="cpu", log=lambda *_: None)
    other.recipe.seed = 5
    torch.manual_seed(5)
    for p in other.pipe.planner.parameters():  # a planner unlike the model's
        p.data.normal_(0, 0.02)
    other._save_planner(tmp_path / "other" / "planner_taught")
    wanted = _planner_state(other)

    from app.core.checkpoints import load_model

    adapter = {k: v.clone() for k, v in load_model(model, device="cpu", dtype=torch.float32).adapter.state_dict().items()}
    both = Trainer(recipe, tmp_path / "b", init_from=model, planner_from=tmp_path / "other" / "planner_taught",
                   device="cpu", log=lambda *_: None)
    assert _same(_planner_state(both), wanted)
    assert _same(both.pipe.adapter.state_dict(), adapter)
    assert both.progress["prior_steps"] == 1  # the steps the backbone already had are counted on
    both.run()
    recipe.diffusion.steps = 2
    resumed = Trainer(recipe, tmp_path / "b", device="cpu", log=lambda *_: None)
    assert _same(_planner_state(resumed), wanted)


def test_teaching_can_start_from_a_taught_planner_of_another_canvas_grid(tmp_path):
    """--planner-init: a run with a coarser DiT patch (a smaller canvas grid) starts teaching from an
    existing planner: its language weights as they were, its canvas tokens averaged 2 x 2; then it
    teaches, and a later process on the run plans with the result."""
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 1
    source = Trainer(recipe, tmp_path / "fine", device="cpu", log=lambda *_: None)
    source.run(teach_only=True)
    fine = source.pipe.planner.canvas_tokens.tokens.detach().clone()  # [1, 16, 16, d]

    coarse_recipe = Recipe.load(TINY)
    coarse_recipe.model.patch_size = 8  # 64 px / 8 = an 8 x 8 grid
    coarse = Trainer(coarse_recipe, tmp_path / "coarse", planner_init=tmp_path / "fine" / "planner_taught",
                     device="cpu", log=lambda *_: None)
    tokens = coarse.pipe.planner.canvas_tokens.tokens
    assert tokens.shape == (1, 8, 8, fine.shape[-1])
    assert torch.allclose(tokens[0, 2, 3], fine[0, 4:6, 6:8].mean(dim=(0, 1)), atol=1e-6)
    language = {k: v for k, v in _planner_state(coarse).items() if "canvas" not in k}
    assert _same(language, {k: v for k, v in _planner_state(source).items() if "canvas" not in k})
    assert not coarse.progress["teach_done"]  # it still teaches, from there

    coarse.run(teach_only=True)
    taught = _planner_state(coarse)
    # The record counts the planner's teaching in all: the source's steps, then this run's.
    record = json.loads((tmp_path / "coarse" / "planner_taught" / "teaching.json").read_text())
    assert record["steps"] == 2 * recipe.teach.steps
    assert not _same(language, {k: v for k, v in taught.items() if "canvas" not in k})
    later = Trainer(coarse_recipe, tmp_path / "coarse", planner_init=tmp_path / "fine" / "planner_taught",
                    device="cpu", log=lambda *_: None)
    assert _same(_planner_state(later), taught)

    with pytest.raises(ValueError, match="no planner in"):
        Trainer(coarse_recipe, tmp_path / "typo", planner_init=tmp_path / "no-such-folder", device="cpu",
                log=lambda *_: None)
    with pytest.raises(ValueError, match="give one of them"):
        Trainer(coarse_recipe, tmp_path / "both", planner_init=tmp_path / "fine" / "planner_taught",
                planner_from=tmp_path / "fine" / "planner_taught", device="cpu", log=lambda *_: None)

    wrong = Recipe.load(TINY)
    wrong.model.planner_hidden = 48
    with pytest.raises(ValueError, match="do not fit"):
        Trainer(wrong, tmp_path / "wrong", planner_init=tmp_path / "fine" / "planner_taught", device="cpu",
                log=lambda *_: None)


@pytest.mark.parametrize("train_tokens", [False, True], ids=["frozen", "trained"])
def test_stage_two_trains_the_canvas_tokens_only_when_the_recipe_says_so(tmp_path, train_tokens):
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.checkpoint_every = 2
    recipe.ema_decay = 0.0  # the exported weights are the trained ones
    recipe.diffusion.steps = 4
    recipe.train_canvas_tokens = train_tokens
    trainer = Trainer(recipe, tmp_path / "run", device="cpu", log=lambda *_: None)
    trainer.teach_planner()
    taught = trainer.pipe.planner.canvas_tokens.tokens.detach().clone()
    trainer.train_diffusion()
    after = trainer.pipe.planner.canvas_tokens.tokens.detach()
    assert torch.equal(after, taught) != train_tokens
    others = {k: v for k, v in trainer.pipe.planner.state_dict().items() if "canvas_tokens" not in k}
    fresh = Trainer(recipe, tmp_path / "again", device="cpu", log=lambda *_: None)
    fresh.teach_planner()
    assert all(torch.equal(v, fresh.pipe.planner.state_dict()[k]) for k, v in others.items())  # the MLLM stays frozen
    if train_tokens:  # a resumed run picks the trained tokens up from its checkpoint
        recipe.diffusion.steps = 5
        resumed = Trainer(recipe, tmp_path / "run", device="cpu", log=lambda *_: None)
        resumed.train_diffusion()
        assert not torch.equal(resumed.pipe.planner.canvas_tokens.tokens.detach(), taught)


def test_timestep_shift_matches_the_schedulers_and_the_model_samples_with_its_recipes_shift(tmp_path):
    """Training times are shifted with the very map the sampler applies to its sigmas, and the exported
    model's sampling default is the recipe's sample_shift (a model trained for high noise is sampled so)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from app.core.checkpoints import load_model
    from app.train.loop import shifted

    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    plain = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    # Before set_timesteps, a scheduler holds its 1000 training sigmas, shifted by its own map.
    assert torch.allclose(shifted(plain.sigmas, 3.0), sched.sigmas, atol=1e-6)
    t = torch.linspace(0.05, 0.95, 19)
    assert torch.equal(shifted(t, 1.0), t)
    assert (shifted(t, 3.0) > t).all()  # more training at high noise

    recipe = Recipe.load(TINY)
    recipe.timestep_shift, recipe.sample_shift = 3.0, 2.5
    trainer = Trainer(recipe, tmp_path / "run", device="cpu", log=lambda *_: None)
    trainer.run()
    pipe = load_model(tmp_path / "run" / "model")
    assert pipe.defaults.shift == 2.5
    pipe.scheduler.set_timesteps(4)
    assert pipe.scheduler.sigmas[1] > 0.75 + 1e-3  # shifted, not the plain 0.75


def test_a_canvas_run_can_start_from_a_trained_text_only_model_and_starts_out_equal_to_it(tmp_path):
    """The paper adds MetaCanvas to a pretrained backbone: a canvas run --init-from a text-only model
    takes its planner and backbone, and its fresh zero-initialised canvas connector leaves the
    velocity unchanged until training moves it. The reverse (text-only from a canvas model) is refused."""
    from app.core.checkpoints import load_model

    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    text_model = Trainer(recipe, tmp_path / "text", use_canvas=False, device="cpu", log=lambda *_: None).run()
    text = load_model(text_model, device="cpu", dtype=torch.float32).eval()

    canvas = Trainer(recipe, tmp_path / "canvas", init_from=text_model, device="cpu", log=lambda *_: None)
    assert canvas.pipe.adapter.canvas_connector is not None
    pipe = canvas.pipe.eval()
    spec = pipe.canvas_spec_for(recipe.model.image_size)
    texts = ["a photo of a red circle", "two blue squares"]
    x = torch.randn(2, 3, recipe.model.image_size, recipe.model.image_size)
    t = torch.tensor([0.9, 0.5])
    with torch.no_grad():
        plan = pipe.planner(texts, spec)
        ours = pipe.adapter(x, t, plan.context, plan.context_mask, plan_tokens=pipe.adapter.prepare_plan(plan.canvas))
        base_plan = text.planner(texts, spec)
        theirs = text.adapter(x, t, base_plan.context, base_plan.context_mask, plan_tokens=None)
    assert torch.allclose(ours, theirs, atol=1e-5)

    recipe.diffusion.steps = 3
    model = canvas.run()
    trained = load_model(model, device="cpu", dtype=torch.float32)
    assert trained.adapter.canvas_connector.step_out.weight.abs().sum() > 0  # the plan now reaches the DiT
    record = json.loads((model / "training.json").read_text())
    assert (record["steps"], record["canvas_steps"]) == (5, 3)  # 2 text-only steps, then 3 with the canvas
    assert [leg["use_canvas"] for leg in record["history"]] == [False, True]
    with pytest.raises(ValueError, match="text-only run cannot start"):
        Trainer(recipe, tmp_path / "back", use_canvas=False, init_from=model, device="cpu", log=lambda *_: None)


def test_the_label_loss_teaches_the_dits_tokens_the_scene_and_leaves_no_trace_in_the_model(tmp_path):
    """label_loss_weight: a head on a DiT block's target tokens learns each token's label; the run
    resumes with that head; the exported model is an ordinary one (the head is training-only)."""
    from safetensors import safe_open

    from app.train.label_alignment import LabelAlignment

    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    recipe.label_loss_weight = 0.5
    recipe.label_loss_layer = 0

    # On a fixed edit batch (target rows first, the reference's after), tokens and head learn the labels.
    trainer = Trainer(recipe, tmp_path / "fixed", device="cpu")
    adapter = trainer.pipe.adapter.train()
    trainer.pipe.planner.requires_grad_(False)
    batch = next(iter(ShapesStream(recipe, seed=0, batch=8, edit_fraction=1.0).loader()))
    labels = torch.from_numpy(batch["labels"])
    assert batch["kind"] == "edit" and labels.shape[1:] == (16, 16)
    opt = torch.optim.AdamW(list(adapter.parameters()) + list(trainer.label_alignment.parameters()), lr=3e-3)

    def label_loss(seed):
        trainer._flow_matching_loss(batch, adapter, torch.Generator().manual_seed(seed))
        return trainer.label_alignment.loss(labels)

    with torch.no_grad():
        before = np.mean([label_loss(s).item() for s in range(3)])
    for step in range(30):
        loss = label_loss(step % 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = np.mean([label_loss(s).item() for s in range(3)])
    assert after < 0.5 * before

    # A run keeps the head in its checkpoint and picks it up again when resumed: one more step moves
    # each weight by about the learning rate, while a fresh head would be a new random draw.
    out = tmp_path / "run"
    Trainer(recipe, out, device="cpu").run()
    with safe_open(str(out / "checkpoint" / "label_head.safetensors"), "pt") as f:
        saved = f.get_tensor("head.weight")
    recipe.diffusion.steps = 3
    resumed = Trainer(recipe, out, device="cpu")
    resumed.train_diffusion()
    moved = (resumed.label_alignment.head.weight.detach() - saved).abs().max().item()
    assert 0 < moved <= 5 * recipe.diffusion.lr  # a fresh head differs by about 0.1
    progress = json.loads((out / "progress.json").read_text())
    assert progress["step"] == 3
    # The exported model loads (strictly) as an ordinary model and draws.
    from app.core.checkpoints import load_model

    exported = load_model(out / "model")
    assert exported.sample(["a red circle"], [0], steps=2).shape == (1, 64, 64, 3)

    # The same run folder, resumed with a recipe without the label loss's head in its checkpoint
    # (another recipe), says so instead of failing on a missing file.
    plain = Recipe.load(TINY)
    plain.eval_every = 0
    plain.diffusion.steps = 2
    Trainer(plain, tmp_path / "plain", device="cpu").run()
    recipe.diffusion.steps = 4
    with pytest.raises(ValueError, match="without the label loss"):
        Trainer(recipe, tmp_path / "plain", device="cpu").train_diffusion()

    with pytest.raises(ValueError, match="outside the DiT"):
        LabelAlignment(trainer.pipe.adapter, 99)


@pytest.mark.parametrize("path", sorted(TINY.parent.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads_and_names_a_trainable_model(path):
    """A misspelt key in a recipe would otherwise surface only on a GPU machine, minutes into a session."""
    recipe = Recipe.load(path)
    m = recipe.model
    assert m.image_size % m.patch_size == 0
    assert m.prediction in ("velocity", "sample")
    if recipe.label_loss_weight > 0:
        assert -m.dit_layers <= recipe.label_loss_layer < m.dit_layers


def test_the_source_residual_starts_as_a_no_op_and_lets_a_model_learn_to_copy_its_source(tmp_path):
    """model.source_residual: an edit's source patch also enters the target token of the same cell. A
    fresh one changes nothing (a trained model can gain it and start out as it was) and leaves
    text-to-image alone. Trained on a fixed batch of edits, the model with it uses its source (the loss
    with the right source is clearly below the loss with another example's source) and fits the edits
    better than the same training without it (which left the source unused: under 0.01 % when measured)."""
    def trained_on_edits(flag: bool):
        recipe = Recipe.load(TINY)
        recipe.model.source_residual = flag
        recipe.model.prediction = "sample"
        torch.manual_seed(0)
        trainer = Trainer(recipe, tmp_path / f"residual-{flag}", device="cpu", log=lambda *_: None)
        adapter = trainer.pipe.adapter
        if flag:  # the fresh residual is an exact no-op, on edits and on text-to-image
            size = recipe.model.image_size
            z, ref = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)
            t, ctx = torch.tensor([0.9, 0.4]), torch.randn(2, 4, recipe.model.planner_hidden)
            with torch.no_grad():
                kept, adapter.source_residual = adapter.source_residual, None
                before_edit, before_t2i = adapter(z, t, ctx, reference=ref), adapter(z, t, ctx)
                adapter.source_residual = kept
                assert torch.equal(adapter(z, t, ctx, reference=ref), before_edit)
                assert torch.equal(adapter(z, t, ctx), before_t2i)
        adapter.train()
        trainer.pipe.planner.requires_grad_(False)
        batch = next(iter(ShapesStream(recipe, seed=0, batch=8, edit_fraction=1.0).loader()))
        shuffled = dict(batch, sources=np.roll(batch["sources"], 1, axis=0))
        opt = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=3e-3)

        def loss(b, seed):
            return trainer._flow_matching_loss(b, adapter, torch.Generator().manual_seed(seed))

        for step in range(60):
            value = loss(batch, step % 4)
            opt.zero_grad()
            value.backward()
            opt.step()
        with torch.no_grad():
            return np.mean([loss(batch, s).item() for s in range(4)]), np.mean([loss(shuffled, s).item() for s in range(4)])

    right, other = trained_on_edits(True)
    assert right < 0.85 * other
    plain_right, _ = trained_on_edits(False)
    assert right < plain_right


def test_layout_drafts_are_taught_alone_and_stage_two_seeds_each_scenes_canvas_with_its_own_draft(tmp_path):
    """teach_drafts_only: on a given planner, stage 1 teaches only the layout drafter and the canvas's
    draft embedding; the MLLM and the plain canvas (all an edit or the text-only baseline plans with)
    stay bit for bit. Stage 2 plans each text-to-image scene with its own draft, edits with none; the
    exported model drafts with the request's seed, and a planner without a drafter is refused."""
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task
    from app.train.loop import DRAFTER

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
    run = Trainer(drafted, tmp_path / "drafted", planner_init=tmp_path / "base" / "planner_taught", device="cpu",
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
        Trainer(drafted, tmp_path / "bad", planner_from=tmp_path / "base" / "planner_taught", device="cpu",
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
    run = Trainer(alone, tmp_path / "alone", planner_init=tmp_path / "first" / "planner_taught", device="cpu",
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
    from app.train.loop import EDIT_DRAFTER

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
    run = Trainer(edits, tmp_path / "edits", planner_init=tmp_path / "first" / "planner_taught", device="cpu",
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
    import app.train.loop as loop_module

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
    second = Trainer(recipe, tmp_path / "second", planner_init=tmp_path / "first" / "planner_taught", device="cpu",
                     log=lambda *_: None)
    second.run(teach_only=True)
    assert drawn != first_drawn  # the same seed, yet the stream goes on where the first sitting's left off
    record = json.loads((tmp_path / "second" / "planner_taught" / "teaching.json").read_text())
    assert record["edit_drafter_steps"] == 4

    # The LR through a one-minute sitting on a clock that moves 6 s a step: constant, then falling
    # with the time left over the last 30 % (18 s), to zero at the end.
    clock = {"now": 0.0}
    monkeypatch.setattr(loop_module.time, "time", lambda: clock["now"])
    lrs = []
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, loop_module._lr_lambda(1))

    def next_loss():
        lrs.append(opt.param_groups[0]["lr"])
        clock["now"] += 6.0
        return (param ** 2).sum(), {}

    done, _ = first._teaching_loop("teach", opt, sched, [param], 100, next_loss, max_minutes=1.0)
    assert done == 11  # stops once past the minute
    assert lrs[:8] == pytest.approx([1e-3] * 8)
    assert lrs[8] == pytest.approx(1e-3 * 2 / 3) and lrs[9] == pytest.approx(1e-3 / 3) and lrs[10] == pytest.approx(0.0, abs=1e-12)
