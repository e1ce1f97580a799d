"""Training the video model: batches of the four tasks, keyframe labels, and a tiny run with its twin
that resumes and exports loadable model folders."""
import json

import numpy as np
import pytest

from app.core.checkpoints import load_model
from app.train.video import VideoRecipe, VideoTrainer, keyframe_times, make_video_batch


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
