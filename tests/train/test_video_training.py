"""Training the video model: batches of the four tasks, keyframe labels, and a tiny run with its twin
that resumes and exports loadable model folders."""
import json

import numpy as np
import pytest

from app.core.checkpoints import load_model
from app.train.video import VideoTrainer
from app.train.video_data import VideoRecipe, keyframe_times, make_video_batch


@pytest.mark.parametrize("task", ["text_to_video", "image_to_video", "video_edit", "reference_to_video"])
def test_batches_carry_their_task_conditions_and_keyframe_labels(task):
    recipe = VideoRecipe()
    batch = make_video_batch(np.random.default_rng(0), recipe, task, 3)
    assert batch["clips"].shape == (3, 17, 48, 48, 3)
    assert batch["labels"].shape == (3, 3, 6, 6)
    assert len(batch["texts"]) == 3 and all(batch["texts"])
    if task == "image_to_video":
        assert all(np.array_equal(im[0], clip[0]) for im, clip in zip(batch["images"], batch["clips"]))
    if task == "video_edit":
        assert batch["sources"].shape == batch["clips"].shape
    if task == "reference_to_video":
        assert batch["references"].shape[1] in (1, 2)


def test_keyframes_stand_for_the_clip_start_middle_and_end():
    times = keyframe_times(VideoRecipe())
    assert times[0] == 0.0 and 0.3 < times[1] < 0.5 and times[2] > 0.85


def test_a_tiny_run_with_its_twin_resumes_and_exports(tmp_path):
    recipe = VideoRecipe(dit_layers=1, dit_heads=2, dit_head_dim=16, connector_heads=2, checkpoint_every=2)
    recipe.teach.steps, recipe.teach.batch = 2, 2
    recipe.diffusion.steps, recipe.diffusion.batch = 2, 2
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe.to_dict()))
    run = tmp_path / "run"
    trainer = VideoTrainer(VideoRecipe.load(path), run)
    trainer.teach()
    trainer.train()
    progress = json.loads((run / "progress.json").read_text())
    assert progress["step"] == 2 and progress["teach_done"]
    # going on from the checkpoint (a later session): same planner, more steps
    more = VideoRecipe.load(path)
    more.diffusion.steps = 4
    VideoTrainer(more, run).train()
    assert json.loads((run / "progress.json").read_text())["step"] == 4
    canvas, twin = load_model(run / "model"), load_model(run / "model-text-only")
    assert canvas.adapter.canvas_connector is not None and twin.adapter.canvas_connector is None
    assert json.loads((run / "model" / "training.json").read_text())["steps"] == 4


def test_every_shipped_video_recipe_loads():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "app" / "train" / "recipes" / "video"
    recipes = sorted(folder.glob("*.json"))
    assert recipes
    for path in recipes:
        recipe = VideoRecipe.load(path)
        assert (recipe.frames - 1) % recipe.temporal_factor == 0 and recipe.size % recipe.patch_size == 0


def test_text_to_video_batches_carry_their_clips_true_tracks():
    from app.core.draft import draft_objects
    from app.shapes.palette import label_index
    from app.train.video_data import track_draft_config

    recipe = VideoRecipe(track_drafts={"dim": 32})
    config = track_draft_config(recipe)
    rng = np.random.default_rng(3)
    batch = make_video_batch(rng, recipe, "text_to_video", 4, config)
    assert batch["draft"].shape == (4, config.length, 6)
    # the same draws again, to see the scenes the rows came from
    from app.shapes.motion import random_motion_scene, motion_caption

    rng = np.random.default_rng(3)
    for rows in batch["draft"]:
        scene = random_motion_scene(rng)
        motion_caption(scene, rng)
        objects = draft_objects(rows, config)
        assert [o[0] for o in objects] == [label_index(m.obj.cls, m.obj.color) for m in scene.objects]
        for (label, cx, cy, half, ex, ey), m in zip(objects, scene.objects):
            bin_ = 1 / config.bins
            assert abs(cx - m.obj.cx) <= bin_ and abs(ey - (m.obj.cy + m.dy)) <= bin_ and abs(ex - (m.obj.cx + m.dx)) <= bin_
    assert make_video_batch(np.random.default_rng(0), recipe, "video_edit", 2, config).get("draft") is None


def test_a_drafted_run_adds_its_track_drafter_after_the_undrafted_steps(tmp_path):
    """The recipe's order: stage-2 steps without drafts, the draft stage (the MLLM frozen: the context
    the twin reads stays exactly what it was), then drafted steps; the exported model drafts clips, its
    twin does not."""
    import torch

    from app.core.canvas import CanvasSpec

    _, run = _drafted_run(tmp_path, diffusion_steps=4, draft_steps=2, drafts_from_step=2)
    progress = json.loads((run / "progress.json").read_text())
    assert progress["step"] == 4 and progress["draft_teach_done"] and progress["drafter_steps"] == 2
    canvas, twin = load_model(run / "model"), load_model(run / "model-text-only")
    assert canvas.planner.drafter is not None and canvas.planner.drafter.config.track
    assert twin.planner.drafter is None
    text = ["a red circle moves to the right"]
    spec = CanvasSpec(3, 6, 6)
    plan = canvas.planner(text, spec, seeds=[1])
    assert plan.has_draft(0) and plan.draft.shape[-1] == 6
    # the twin's context (the prompt's states) is the drafted model's, to the bit
    assert torch.equal(twin.planner(text, spec).context, plan.context)


def test_the_drafter_alone_can_be_taught_further_without_touching_the_dit(tmp_path):
    import torch

    from app.train.video import main

    path, run = _drafted_run(tmp_path, diffusion_steps=2, draft_steps=1, drafts_from_step=0)
    before = load_model(run / "model")
    assert main(["--recipe", str(path), "--out", str(run), "--threads", "1", "--teach-drafter", "2",
                 "--drafter-tasks", "text_to_video,reference_to_video"]) == 0
    after = load_model(run / "model")
    assert json.loads((run / "model" / "training.json").read_text())["drafter_steps"] == 3
    changed = [k for k, v in after.planner.drafter.state_dict().items()
               if not torch.equal(v, before.planner.drafter.state_dict()[k])]
    assert changed
    for name, v in after.adapter.state_dict().items():
        assert torch.equal(v, before.adapter.state_dict()[name])
    assert torch.equal(after.planner.canvas_tokens.draft_embedding, before.planner.canvas_tokens.draft_embedding)
    with pytest.raises(ValueError, match="batches, not video_edit"):
        main(["--recipe", str(path), "--out", str(run), "--threads", "1", "--teach-drafter", "1",
              "--drafter-tasks", "video_edit"])


def test_a_run_starts_where_a_model_folder_left_off(tmp_path):
    """A committed model goes on training on a machine without the run that made it: its weights, planner
    and step count become a new run's, and the run trains on from there; a recipe may add the source
    residual (zero at the start), which the exported model then keeps."""
    import torch

    from app.train.video import main

    path, run = _drafted_run(tmp_path, diffusion_steps=2, draft_steps=1, drafts_from_step=0)
    models = tmp_path / "models"
    models.mkdir()
    for suffix in ("", "-text-only"):
        (run / ("model" + suffix)).rename(models / ("shapes-video" + suffix))
    more = VideoRecipe.load(path)
    more.diffusion.steps = 3
    more.source_residual = True
    path.write_text(json.dumps(more.to_dict()))
    again = tmp_path / "again"
    assert main(["--recipe", str(path), "--out", str(again), "--threads", "1",
                 "--start-from", str(models / "shapes-video")]) == 0
    progress = json.loads((again / "progress.json").read_text())
    assert progress["step"] == 3 and progress["started_from"].endswith("shapes-video")
    assert progress["optimizer_from_step"] == 2  # its moments started fresh there, warmed up again
    before, after = load_model(models / "shapes-video"), load_model(again / "model")
    assert torch.equal(after.planner.drafter.state_dict()["label_head.weight"],
                       before.planner.drafter.state_dict()["label_head.weight"])
    changed = [k for k, v in before.adapter.state_dict().items() if not torch.equal(v, after.adapter.state_dict()[k])]
    assert changed  # one step more, from the model's weights
    assert after.adapter.config["source_residual"] and after.adapter.source_residual is not None
    assert json.loads((again / "model" / "training.json").read_text())["steps"] == 3
    with pytest.raises(ValueError, match="begun run"):
        main(["--recipe", str(path), "--out", str(again), "--threads", "1", "--start-from", str(models / "shapes-video")])


def test_the_clip_edit_drafter_is_taught_and_drafts_a_video_edit_from_its_source(tmp_path):
    """--teach-edit-drafter teaches the clip edit drafter alone and puts it into the model, which then drafts
    a video edit from the source clip's tracks; the DiT and the track drafter stay as they were."""
    import torch

    from app.core.request import GenerationRequest, Task
    from app.shapes.motion import render_clip
    from app.shapes.video_edits import sample_video_edit
    from app.train.video import main

    path, run = _drafted_run(tmp_path, diffusion_steps=1, draft_steps=1, drafts_from_step=0,
                             frame_detector_from="models/metacanvas-shapes")
    before = load_model(run / "model")
    assert before.planner.edit_drafter is None
    with pytest.raises(ValueError, match="no taught clip edit drafter"):  # nothing untaught goes into a model
        main(["--recipe", str(path), "--out", str(run), "--threads", "1", "--teach-edit-drafter", "0"])
    assert main(["--recipe", str(path), "--out", str(run), "--threads", "1", "--teach-edit-drafter", "2"]) == 0
    after = load_model(run / "model")
    editor = after.planner.edit_drafter
    assert editor is not None and editor.config.reads_sources and editor.config.track
    assert json.loads((run / "model" / "training.json").read_text())["edit_drafter_steps"] == 2
    for name, v in after.adapter.state_dict().items():
        assert torch.equal(v, before.adapter.state_dict()[name])
    assert torch.equal(after.planner.drafter.state_dict()["label_head.weight"],
                       before.planner.drafter.state_dict()["label_head.weight"])
    triple = sample_video_edit(np.random.default_rng(2))
    request = GenerationRequest(task=Task.VIDEO_EDIT, instruction=triple.instruction, width=48, height=48, frames=17,
                                video=render_clip(triple.source, 17, 48), seed=3, steps=1)
    plan = after.plan(request)
    assert plan.has_draft(0) and plan.draft.shape[-1] == 6
    # the run goes on training: it plans with the taught edit drafter and exports it as it was taught
    more = VideoRecipe.load(path)
    more.diffusion.steps = 2
    path.write_text(json.dumps(more.to_dict()))
    assert main(["--recipe", str(path), "--out", str(run), "--threads", "1"]) == 0
    exported = load_model(run / "model")
    assert json.loads((run / "model" / "training.json").read_text())["edit_drafter_steps"] == 2
    for name, v in exported.planner.edit_drafter.state_dict().items():
        assert torch.equal(v, editor.state_dict()[name])


def _drafted_run(tmp_path, diffusion_steps: int, draft_steps: int, drafts_from_step: int, **recipe_fields):
    """A tiny video run with a track drafter, trained to the end by the module's own command line;
    returns its recipe file and run folder."""
    from app.train.video import main

    recipe = VideoRecipe(dit_layers=1, dit_heads=2, dit_head_dim=16, connector_heads=2, checkpoint_every=2,
                         track_drafts={"dim": 32}, drafts_from_step=drafts_from_step, sample_steps=2, **recipe_fields)
    recipe.teach.steps, recipe.teach.batch = 1, 2
    recipe.diffusion.steps, recipe.diffusion.batch = diffusion_steps, 2
    recipe.draft_teach.steps, recipe.draft_teach.batch = draft_steps, 2
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe.to_dict()))
    run = tmp_path / "run"
    assert main(["--recipe", str(path), "--out", str(run), "--threads", "1"]) == 0
    return path, run


@pytest.mark.parametrize("kind", ["recolour", "remove", "add", "replace", "motion"])
def test_an_edits_target_tracks_are_listed_in_its_sources_order_with_the_change_in_place(kind):
    """What the clip edit drafter learns to write: row i of the target is row i of the source (left to right by
    where each starts), changed where the edit changes it; a removed object leaves its row out, an added one
    comes last."""
    from app.core.draft import DraftConfig
    from app.shapes.palette import label_index
    from app.shapes.video_edits import sample_video_edit
    from app.train.clip_edit_drafter import target_rows
    from app.train.video_data import track_rows

    config = DraftConfig(labels=25, max_objects=3, track=True)
    rng = np.random.default_rng(4)
    for _ in range(10):
        triple = sample_video_edit(rng, kind)
        source = sorted((r for r in track_rows(triple.source, config).tolist() if r[0] > 0), key=lambda r: (r[1], r[2]))
        target = [r for r in target_rows(triple.source, triple.target, config).tolist() if r[0] > 0]
        if kind == "remove":
            assert len(target) == len(source) - 1 and all(r in source for r in target)
            assert [source.index(r) for r in target] == sorted(source.index(r) for r in target)
        elif kind == "add":
            added = [m for m in triple.target.objects if m not in triple.source.objects][0]
            assert target[:-1] == source and target[-1][0] == label_index(added.obj.cls, added.obj.color)
        else:
            assert len(target) == len(source)
            assert sum(a != b for a, b in zip(target, source)) == 1
            assert all(a[1:3] == b[1:3] for a, b in zip(target, source))  # each starts where its source object does


def test_a_cooldown_ends_a_video_run_past_the_recipes_steps_and_survives_an_interruption(tmp_path, monkeypatch):
    """`--cooldown-steps 4` after 2 steps: steps 2-5 at 4/4, 3/4, 2/4, 1/4 of the LR for the model and its
    twin alike, past the recipe's 2 steps. Cut short after its first step, the run resumed without the
    flag goes on with the cooldown's own LRs; the exported model records the cooldown."""
    import torch

    from app.train.video import main

    recipe = VideoRecipe(dit_layers=1, dit_heads=2, dit_head_dim=16, connector_heads=2, checkpoint_every=2)
    recipe.teach.steps, recipe.teach.batch = 1, 2
    recipe.diffusion.steps, recipe.diffusion.batch, recipe.diffusion.warmup = 2, 2, 1
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe.to_dict()))
    run = tmp_path / "run"
    args = ["--recipe", str(path), "--out", str(run), "--threads", "1"]
    assert main(args) == 0
    rates = []
    real_step = torch.optim.AdamW.step

    def step(self, *a, **k):
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    assert main(args + ["--cooldown-steps", "4", "--max-minutes", "0"]) == 0
    assert json.loads((run / "progress.json").read_text())["step"] == 3  # out of time after one step
    cut_short = json.loads((run / "model" / "training.json").read_text())
    assert cut_short["cooldown"] == [2, 6] and not cut_short["cooldown_finished"]
    assert main(args) == 0
    lr = recipe.diffusion.lr
    assert rates == pytest.approx([lr, lr, 0.75 * lr, 0.75 * lr, 0.5 * lr, 0.5 * lr, 0.25 * lr, 0.25 * lr])
    record = json.loads((run / "model" / "training.json").read_text())
    assert record["steps"] == 6 and record["cooldown"] == [2, 6] and record["cooldown_finished"]
    rates.clear()  # the same cooling command again: no second cooldown from the full LR
    assert main(args + ["--cooldown-steps", "4"]) == 0
    assert rates == [] and json.loads((run / "progress.json").read_text())["step"] == 6
    with pytest.raises(SystemExit):
        main(args + ["--cooldown-steps", "0"])
