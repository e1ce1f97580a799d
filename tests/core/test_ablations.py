"""The method's ablation switches (app/core/ablations.py) as recipe fields, each at the tiny test config:
it builds, a fresh connector still changes nothing, a trained one changes the image, gradients reach
what trains, and a saved model loads with its switch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.ablations import ABLATIONS, check_ablations
from app.core.canvas import CanvasSpec, canvas_position_ids
from app.core.checkpoints import load_model, save_model
from app.core.request import GenerationRequest, Task
from app.train.build import build_model
from app.train.recipe import Recipe

RECIPE = Path(__file__).resolve().parents[2] / "app" / "train" / "recipes" / "tiny-test.json"


def _model(*ablations):
    recipe = Recipe.load(RECIPE)
    recipe.model.ablations = list(ablations)
    torch.manual_seed(0)
    return build_model(recipe).eval()


def _nudge(pipe) -> None:
    """What training does: every zero-initialised canvas part becomes non-zero."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in pipe.adapter.named_parameters():
            if "canvas_connector" in name and p.abs().sum() == 0:
                p.normal_(0, 0.05)


def _image(pipe, text="a red circle", use_canvas=True):
    return pipe(GenerationRequest(Task.TEXT_TO_IMAGE, text, width=64, height=64, steps=2, seed=3, guidance=1.0,
                                  use_canvas=use_canvas)).frames


def _loss(pipe):
    plan = pipe.planner(["a red circle"], pipe.canvas_spec_for(64))
    latents = torch.randn(1, 3, 64, 64)
    v = pipe.adapter(latents, torch.tensor([0.5]), plan.context, plan.context_mask,
                     plan_tokens=pipe.adapter.prepare_plan(plan.canvas))
    return (v ** 2).mean()


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_ablation_builds_trains_changes_the_image_and_round_trips(name, tmp_path):
    pipe = _model(name)
    adapter = pipe.adapter
    assert name in adapter.config["ablations"]
    connector = adapter.canvas_connector
    if name == "queries_1d":
        assert connector is None and adapter.takes_plan
    elif name == "canvas_without_text":
        _nudge(pipe)  # with the canvas off this model is refused (the next test)
    else:
        # A fresh connector's outputs start at zero: the image is the text-only one.
        assert np.array_equal(_image(pipe), _image(pipe, use_canvas=False))
        _nudge(pipe)
    if name != "canvas_without_text":
        assert not np.array_equal(_image(pipe), _image(pipe, use_canvas=False))

    _loss(pipe).backward()
    if connector is not None:  # the connector's output layers learn from the first step
        last = connector.step_out if connector.dit_block else connector.plan_out
        assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0
    else:  # the queries reach the loss through the context connector
        assert pipe.planner.canvas_tokens.tokens.grad.abs().sum() > 0

    save_model(pipe, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.adapter.config["ablations"] == [name]
    assert np.array_equal(_image(loaded), _image(pipe))


def test_connector_ablations_take_out_what_they_name():
    assert _model("no_vanilla_block").adapter.canvas_connector.plan_block is None
    assert _model("no_dit_block").adapter.canvas_connector.step_block is None
    assert _model("no_timestep_adaln").adapter.canvas_connector.time_embed is None
    full = _model().adapter.canvas_connector
    assert full.plan_block is not None and full.step_block is not None and full.time_embed is not None


def test_without_multimodal_rope_the_canvas_sits_as_text_and_plans_differently():
    prefix = torch.arange(5).expand(3, 1, 5)
    ids = canvas_position_ids(prefix, None, CanvasSpec(1, 2, 3), layout="sequence")
    assert ids[:, 0, 5:].tolist() == [[5, 6, 7, 8, 9, 10]] * 3
    grid = canvas_position_ids(prefix, None, CanvasSpec(1, 2, 3))
    assert grid[1, 0, 5:].tolist() == [5, 5, 5, 6, 6, 6] and grid[2, 0, 5:].tolist() == [5, 6, 7, 5, 6, 7]
    plain, ablated = _model(), _model("no_multimodal_rope")
    assert ablated.planner.canvas_tokens.positions == "sequence"
    spec = plain.canvas_spec_for(64)
    a = plain.planner(["a red circle"], spec).canvas
    b = ablated.planner(["a red circle"], spec).canvas
    assert not torch.allclose(a, b)


def test_canvas_without_text_the_dit_sees_no_text_and_the_plan_alone_tells_prompts_apart():
    pipe = _model("canvas_without_text")
    _nudge(pipe)
    # The DiT is given nothing of the prompt but the plan: with a fresh (zero) canvas two prompts draw the same
    # image, and a trained canvas tells them apart. With the canvas off it would draw from nothing: refused.
    fresh = _model("canvas_without_text")
    assert np.array_equal(_image(fresh, "a red circle"), _image(fresh, "a blue star"))
    assert not np.array_equal(_image(pipe, "a red circle"), _image(pipe, "a blue star"))
    with pytest.raises(ValueError, match="canvas and no text.*turn the canvas on"):
        _image(pipe, use_canvas=False)


def test_unknown_or_impossible_ablations_are_refused():
    with pytest.raises(ValueError, match="unknown ablation 'no_canvas'.*known: no_timestep_adaln"):
        check_ablations(["no_canvas"])
    with pytest.raises(ValueError, match="queries_1d has no canvas connector"):
        check_ablations(["queries_1d", "no_dit_block"])
    from app.core.backbones.flux import tiny_flux_adapter
    from app.core.backbones.wan import tiny_wan_adapter

    for make in (tiny_flux_adapter, tiny_wan_adapter):
        with pytest.raises(ValueError, match="SANA study: sana only"):
            make(ablations=["canvas_before_patchify"])
    recipe = Recipe.load(RECIPE).to_dict()
    recipe["model"]["ablations"] = ["no_dit_blok"]
    with pytest.raises(ValueError, match="unknown ablation 'no_dit_blok'"):
        Recipe.from_dict(recipe)
