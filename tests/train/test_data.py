"""The training data stream (app/train/data.py)."""
import torch

from app.train.build import build_model
from app.train.data import ShapesStream
from app.train.recipe import Recipe
from tests.train.helpers import TINY


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
