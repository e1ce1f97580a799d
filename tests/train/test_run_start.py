"""Where a run starts (app/train/run_start.py, app/train/planner_folder.py, Trainer's start): new, from a
model, resumed, with the planner chosen explicitly; a begun run keeps its planner in every later process."""
import json

import pytest
import torch

from app.train.data import ShapesStream
from app.train.loop import Trainer
from app.train.recipe import Recipe
from app.train.run_start import PlannerStart, RunStart
from tests.train.helpers import TINY, planner_state as _planner_state, same as _same


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

    baseline = Trainer(recipe, tmp_path / "text", use_canvas=False, start=RunStart.new(PlannerStart.taught(out / "planner_taught")),
                       device="cpu", log=lambda *_: None)
    baseline.run()
    again = Trainer(recipe, tmp_path / "text", use_canvas=False, device="cpu", log=lambda *_: None)
    assert _same(_planner_state(again), taught)  # the baseline's resume keeps the shared planner too


def test_a_run_continued_from_a_model_keeps_that_models_planner_when_resumed(tmp_path, monkeypatch):
    """...and draws scenes past those the model's own run drew (its stream keyed by the steps behind it)."""
    import app.train.stage2_flow_matching as stage2

    seeds = []

    class RecordingStream(ShapesStream):
        def __init__(self, recipe, seed, **kwargs):
            seeds.append(seed)
            super().__init__(recipe, seed=seed, **kwargs)

    monkeypatch.setattr(stage2, "ShapesStream", RecordingStream)
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    first = Trainer(recipe, tmp_path / "a", device="cpu", log=lambda *_: None)
    model = first.run()
    from app.core.checkpoints import load_model

    planner = {k: v.clone() for k, v in load_model(model, device="cpu", dtype=torch.float32).planner.state_dict().items()}
    recipe.diffusion.steps = 2
    cont = Trainer(recipe, tmp_path / "b", start=RunStart.from_model(model), device="cpu", log=lambda *_: None)
    assert _same(_planner_state(cont), planner)
    cont.run()
    flow = [seed for seed in seeds if seed >= recipe.seed + 1000]  # stage 2's streams (teaching's is seed + 1)
    assert len(flow) == 2 and flow[1] == flow[0] + 2  # not the first run's scenes again
    recipe.diffusion.steps = 3
    resumed = Trainer(recipe, tmp_path / "b", start=RunStart.from_model(model), device="cpu", log=lambda *_: None)
    assert _same(_planner_state(resumed), planner)


def test_a_run_can_go_on_from_a_model_with_another_planner(tmp_path):
    """--start MODEL_FOLDER with --planner FOLDER: the DiT and connectors go on from the model, the planner is the
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
    both = Trainer(recipe, tmp_path / "b", start=RunStart.from_model(model, PlannerStart.taught(tmp_path / "other" / "planner_taught")),
                   device="cpu", log=lambda *_: None)
    assert _same(_planner_state(both), wanted)
    assert _same(both.pipe.adapter.state_dict(), adapter)
    assert both.progress["prior_steps"] == 1  # the steps the backbone already had are counted on
    both.run()
    recipe.diffusion.steps = 2
    resumed = Trainer(recipe, tmp_path / "b", device="cpu", log=lambda *_: None)
    assert _same(_planner_state(resumed), wanted)


def test_teaching_can_start_from_a_taught_planner_of_another_canvas_grid(tmp_path):
    """--planner teach:FOLDER: a run with a coarser DiT patch (a smaller canvas grid) starts teaching from an
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
    coarse = Trainer(coarse_recipe, tmp_path / "coarse", start=RunStart.new(PlannerStart.teach_on(tmp_path / "fine" / "planner_taught")),
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
    later = Trainer(coarse_recipe, tmp_path / "coarse", start=RunStart.new(PlannerStart.teach_on(tmp_path / "fine" / "planner_taught")),
                    device="cpu", log=lambda *_: None)
    assert _same(_planner_state(later), taught)

    with pytest.raises(ValueError, match="no planner in"):
        Trainer(coarse_recipe, tmp_path / "typo", start=RunStart.new(PlannerStart.teach_on(tmp_path / "no-such-folder")), device="cpu",
                log=lambda *_: None)
    wrong = Recipe.load(TINY)
    wrong.model.planner_hidden = 48
    with pytest.raises(ValueError, match="do not fit"):
        Trainer(wrong, tmp_path / "wrong", start=RunStart.new(PlannerStart.teach_on(tmp_path / "fine" / "planner_taught")), device="cpu",
                log=lambda *_: None)


def test_a_canvas_run_can_start_from_a_trained_text_only_model_and_starts_out_equal_to_it(tmp_path):
    """The paper adds MetaCanvas to a pretrained backbone: a canvas run --start MODEL_FOLDER a text-only model
    takes its planner and backbone, and its fresh zero-initialised canvas connector leaves the
    velocity unchanged until training moves it. The reverse (text-only from a canvas model) is refused."""
    from app.core.checkpoints import load_model

    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 2
    text_model = Trainer(recipe, tmp_path / "text", use_canvas=False, device="cpu", log=lambda *_: None).run()
    text = load_model(text_model, device="cpu", dtype=torch.float32).eval()

    canvas = Trainer(recipe, tmp_path / "canvas", start=RunStart.from_model(text_model), device="cpu", log=lambda *_: None)
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
        Trainer(recipe, tmp_path / "back", use_canvas=False, start=RunStart.from_model(model), device="cpu", log=lambda *_: None)


def test_the_command_lines_start_and_planner_say_each_start_and_a_fresh_planner_must_be_taught():
    assert RunStart.parse(None, None) is None  # resume a begun run, else new
    assert RunStart.parse("new", None) == RunStart.new() and RunStart.new().planner_start == PlannerStart.fresh()
    assert RunStart.parse("resume", None) == RunStart.resume()
    model = RunStart.parse("models/m", None)
    assert model.model.name == "m" and model.planner_start == PlannerStart.taught("models/m")  # the model's own
    assert RunStart.parse("models/m", "runs/t/planner_taught").planner_start == PlannerStart.taught("runs/t/planner_taught")
    assert RunStart.parse(None, "teach:models/m").planner_start == PlannerStart.teach_on("models/m")
    assert RunStart.parse(None, "teach").planner_start == PlannerStart.fresh()
    for start in (RunStart.new(), model, RunStart.new(PlannerStart.teach_on("x")), RunStart.from_model("m", PlannerStart.taught("p"))):
        assert RunStart.from_dict(start.to_dict()).same_as(start)
    with pytest.raises(ValueError, match="give no --planner"):
        RunStart.parse("resume", "teach")
    with pytest.raises(ValueError, match="has to be taught"):
        PlannerStart(None, teach=False)
    with pytest.raises(ValueError, match="needs a folder"):
        PlannerStart.parse("teach:")


def test_a_begun_run_goes_on_with_the_start_it_began_with_and_refuses_another(tmp_path):
    """The same start again (or --start resume, or none) resumes; another start on the same folder is
    refused by name before anything is loaded; --start resume on an empty folder is refused."""
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 1
    model = Trainer(recipe, tmp_path / "a", device="cpu", log=lambda *_: None).run()
    out = tmp_path / "b"
    Trainer(recipe, out, start=RunStart.from_model(model), device="cpu", log=lambda *_: None).run()
    recorded = json.loads((out / "progress.json").read_text())["start"]
    assert recorded == {"start": str(model), "planner": str(model)}
    recipe.diffusion.steps = 2
    for again in (RunStart.from_model(model), RunStart.resume(), None):
        assert Trainer(recipe, out, start=again, device="cpu", log=lambda *_: None).start.same_as(RunStart.from_model(model))
    with pytest.raises(ValueError, match="began with `--start .*, not `--start new"):
        Trainer(recipe, out, start=RunStart.new(), device="cpu", log=lambda *_: None)
    with pytest.raises(ValueError, match="no run to resume"):
        Trainer(recipe, tmp_path / "empty", start=RunStart.resume(), device="cpu", log=lambda *_: None)


def test_the_train_command_takes_start_and_planner_and_refuses_the_old_flags_with_the_new_words(tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "run"
    args = ["train", "--recipe", str(TINY), "--out", str(out), "--device", "cpu", "--teach-only"]
    assert main(args + ["--start", "new", "--planner", "teach"]) == 0
    assert json.loads((out / "progress.json").read_text())["start"] == {"start": "new", "planner": "teach"}
    assert main(["train", "--recipe", str(TINY), "--out", str(tmp_path / "text"), "--device", "cpu", "--teach-only",
                 "--no-canvas", "--planner", str(out / "planner_taught")]) == 0
    capsys.readouterr()
    assert main(args + ["--init-from", "models/m", "--planner-from", "runs/x/planner_taught"]) == 2
    assert "--start models/m --planner runs/x/planner_taught" in capsys.readouterr().err
    assert main(args + ["--planner-init", "models/m"]) == 2
    assert "--start new --planner teach:models/m" in capsys.readouterr().err


def test_a_run_killed_before_its_first_checkpoint_keeps_its_given_planner_and_does_not_teach_it(tmp_path):
    """Given a taught planner, a run that dies before it wrote progress.json has only its planner_taught
    folder: the same command again plans with it and goes straight to stage 2, never teaching it."""
    recipe = Recipe.load(TINY)
    recipe.eval_every = 0
    recipe.diffusion.steps = 1
    teacher = Trainer(recipe, tmp_path / "teach", device="cpu", log=lambda *_: None)
    teacher.run(teach_only=True)
    taught = _planner_state(teacher)
    start = RunStart.new(PlannerStart.taught(tmp_path / "teach" / "planner_taught"))
    Trainer(recipe, tmp_path / "run", start=start, device="cpu", log=lambda *_: None)  # killed before any step
    assert not (tmp_path / "run" / "progress.json").exists() and (tmp_path / "run" / "planner_taught").is_dir()
    again = Trainer(recipe, tmp_path / "run", start=start, device="cpu", log=lambda *_: None)
    assert again.progress["teach_done"]
    again.run()
    assert _same(_planner_state(again), taught)
