"""Stage 2 (app/train/stage2_flow_matching.py): flow matching learns, resumes after an interruption, stops
on SIGTERM, ends with a cooldown, trains what the recipe says, and its options (label loss, source residual)."""
import json

import numpy as np
import pytest
import torch

from app.train.data import ShapesStream
from app.train.loop import Trainer
from app.train.recipe import Recipe
from tests.train.helpers import TINY


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
    from app.train.stage2_flow_matching import shifted

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


def test_the_text_path_control_reads_the_same_drafts_as_context_tokens_and_trains_their_encoder(tmp_path):
    """model.draft_context (the supervision-matched control): a text-only model given a MetaCanvas
    model's planner and drafters plans with the drafts as extra context tokens (one per drafted object,
    the rest masked), never on a canvas; stage 2 trains their encoder with the DiT (EMA, checkpoint,
    resume); the exported model loads, drafts with the request's seed and draws. A MetaCanvas run refuses
    the option."""
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task
    from app.train.run_start import PlannerStart, RunStart

    drafted = Recipe.load(TINY)
    drafted.eval_every = 0
    drafted.model.canvas_drafts = drafted.model.edit_drafts = True
    drafted.teach_drafts_only = True
    drafted.teach.steps = 2
    drafted.diffusion.steps = 1
    canvas_model = Trainer(drafted, tmp_path / "canvas", device="cpu", log=lambda *_: None).run()

    control = Recipe.load(TINY)
    control.eval_every = 0
    control.checkpoint_every = 2
    control.model.canvas_drafts = control.model.edit_drafts = control.model.draft_context = True
    control.diffusion.steps = 2
    with pytest.raises(ValueError, match="--no-canvas"):
        Trainer(control, tmp_path / "refused", device="cpu", log=lambda *_: None)
    start = RunStart.new(PlannerStart.taught(canvas_model))
    run = Trainer(control, tmp_path / "control", start=start, use_canvas=False, device="cpu", log=lambda *_: None)
    planner = run.pipe.planner
    assert run.pipe.adapter.canvas_connector is None and planner.drafts and planner.drafts_to_context
    assert planner.canvas_tokens.draft_labels == 0
    given = load_model(canvas_model, device="cpu", dtype=torch.float32).planner
    assert all(torch.equal(v, given.drafter.state_dict()[k]) for k, v in planner.drafter.state_dict().items()
               if not k.startswith("context_encoder."))  # the very drafter: the same drafts
    assert all(torch.equal(v, given.model.state_dict()[k]) for k, v in planner.model.state_dict().items())

    batch = next(iter(ShapesStream(control, seed=3, batch=4, edit_fraction=0.0).loader()))
    spec = run.pipe.canvas_spec_for(64)
    drafts = torch.from_numpy(batch["draft"])
    with torch.no_grad():
        plan = planner(batch["texts"], spec, inputs=batch["planner_inputs"], drafts=drafts)
        plain = planner(batch["texts"], spec, inputs=batch["planner_inputs"], drafts=torch.full_like(drafts, -1))
    length = drafts.shape[1]
    assert plan.draft_cover is None  # nothing drawn onto the canvas
    assert torch.equal(plan.context_mask[:, -length:], drafts[..., 0] > 0)
    assert not plain.context_mask[:, -length:].any()
    assert torch.equal(plan.context[:, :-length], plain.context[:, :-length])  # the prompt's states as they were

    encoder_before = {k: v.clone() for k, v in planner.drafter.context_encoder.state_dict().items()}
    model = run.run()
    assert (tmp_path / "control" / "checkpoint" / "draft_context_ema.safetensors").is_file()
    control.diffusion.steps = 3  # resumed: the encoder comes back from the checkpoint
    resumed = Trainer(control, tmp_path / "control", use_canvas=False, device="cpu", log=lambda *_: None)
    resumed.train_diffusion()
    assert not _same_state(resumed.pipe.planner.drafter.context_encoder.state_dict(), encoder_before)

    pipe = load_model(model, device="cpu", dtype=torch.float32)
    assert pipe.planner.drafts_to_context and pipe.adapter.canvas_connector is None
    assert not _same_state(pipe.planner.drafter.context_encoder.state_dict(), encoder_before)
    request = GenerationRequest(Task.TEXT_TO_IMAGE, "two red circles", width=64, height=64, steps=2, guidance=2.0, seed=5)
    plan = pipe.plan(request, with_unconditional=True)
    assert plan.draft is not None and plan.context_mask[0, -length:].any() and not plan.context_mask[1, -length:].any()
    assert pipe(request).frames.shape == (1, 64, 64, 3)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
