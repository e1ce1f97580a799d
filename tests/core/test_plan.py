from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from app.core.plan import Plan
from app.core.request import PlanEdit


def make_plan(b=2, k=2, h=4, w=4, d=8, l=5, strength=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Plan(
        canvas=torch.randn(b, k, h, w, d, generator=g),
        context=torch.randn(b, l, d, generator=g),
        context_mask=torch.tensor([[True] * l, [False] * 2 + [True] * (l - 2)])[:b],
        words=[[("red", [1]), ("circle", [2, 3])], [("blue", [4])]][:b],
        strength=torch.rand(b, k, h, w, generator=g) if strength else None,
    )


def test_heatmap_peaks_where_the_canvas_deviates():
    plan = make_plan(b=1, k=1)
    plan.canvas.zero_()
    plan.canvas[0, 0, 2, 1] = 5.0
    heat = plan.heatmap(0, 0)
    assert heat.shape == (4, 4) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert np.unravel_index(heat.argmax(), heat.shape) == (2, 1)


def test_heatmap_uses_strength_when_present():
    plan = make_plan(strength=True)
    plan.strength.zero_()
    plan.strength[1, 1, 3, 0] = 2.0
    plan.strength[1, 0, 0, 0] = 1.0
    assert plan.heatmap(1, 1)[3, 0] == 1.0
    # Normalised over the item's keyframes, so keyframes stay comparable.
    assert plan.heatmap(1, 0)[0, 0] == pytest.approx(0.5)
    assert plan.heatmap(0, 0).max() == 0.0


def test_pca_rgb_is_stable_and_separates_distinct_states():
    plan = make_plan(b=1, k=1, d=8)
    plan.canvas.zero_()
    plan.canvas[0, 0, :, :2, 0] = 1.0  # left half one state, right half another
    plan.canvas += 0.01 * torch.randn_like(plan.canvas)
    rgb = plan.pca_rgb(0, 0)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    left, right = rgb[:, :2].reshape(-1, 3).astype(int), rgb[:, 2:].reshape(-1, 3).astype(int)
    assert np.abs(left.mean(0) - right.mean(0)).max() > 150
    assert np.array_equal(rgb, plan.pca_rgb(0, 0))
    # SVD signs are arbitrary; the convention must give the same picture for the mirrored states.
    mirrored = Plan(canvas=-plan.canvas, context=plan.context, context_mask=plan.context_mask, words=plan.words)
    assert np.array_equal(rgb, mirrored.pca_rgb(0, 0))


def test_word_map_points_at_cells_like_the_word():
    plan = make_plan(b=1, k=2)
    plan.context[0, 2] = plan.canvas[0, 1, 3, 2]
    plan.context[0, 3] = plan.canvas[0, 1, 3, 2] * 2.0
    m = plan.word_map(1, item=0, keyframe=1)
    assert m.shape == (4, 4) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() == pytest.approx(1.0)
    assert np.unravel_index(m.argmax(), m.shape) == (3, 2)


def test_scale_edit_erases_and_amplifies_inside_the_box_only():
    plan = make_plan()
    mean = plan.canvas.reshape(2, -1, 8).mean(1)
    erased = plan.edited([PlanEdit("scale", box=(0.0, 0.0, 0.5, 0.5), factor=0.0)])
    assert torch.allclose(erased.canvas[:, :, :2, :2], mean[:, None, None, None, :].expand(-1, 2, 2, 2, -1))
    assert torch.equal(erased.canvas[:, :, 2:], plan.canvas[:, :, 2:])
    assert erased.heatmap(0, 0)[:2, :2].max() < 0.05
    doubled = plan.edited([PlanEdit("scale", box=(0.5, 0.5, 1.0, 1.0), factor=2.0, keyframe=1)])
    dev = plan.canvas[:, 1, 2:, 2:] - mean[:, None, None]
    assert torch.allclose(doubled.canvas[:, 1, 2:, 2:] - mean[:, None, None], 2 * dev, atol=1e-5)
    assert torch.equal(doubled.canvas[:, 0], plan.canvas[:, 0])
    assert not torch.equal(plan.canvas, erased.canvas)  # the original plan is untouched


def test_move_edit_shifts_content_and_fills_with_mean():
    plan = make_plan(b=1, k=1, strength=True)
    before = plan.canvas.clone()
    mean = plan.canvas.reshape(1, -1, 8).mean(1)[0]
    moved = plan.edited([PlanEdit("move", box=(0.0, 0.25, 0.25, 0.5), dx=0.5, dy=0.25)])
    # Cell (row 1, col 0) goes 2 columns right and 1 row down.
    assert torch.equal(moved.canvas[0, 0, 2, 2], before[0, 0, 1, 0])
    assert torch.equal(moved.strength[0, 0, 2, 2], plan.strength[0, 0, 1, 0])
    assert torch.allclose(moved.canvas[0, 0, 1, 0], mean)
    assert moved.strength[0, 0, 1, 0] == 0
    untouched = torch.ones(4, 4, dtype=torch.bool)
    untouched[1, 0] = untouched[2, 2] = False
    assert torch.equal(moved.canvas[0, 0][untouched], before[0, 0][untouched])
    assert torch.equal(plan.canvas, before)


def test_move_out_of_frame_drops_content():
    plan = make_plan(b=1, k=1)
    moved = plan.edited([PlanEdit("move", box=(0.75, 0.0, 1.0, 1.0), dx=0.5)])
    mean = plan.canvas.reshape(1, -1, 8).mean(1)[0]
    assert torch.allclose(moved.canvas[0, 0, :, 3], mean.expand(4, -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_save_load_round_trip_is_bit_identical(tmp_path, dtype):
    plan = make_plan(strength=True).to(dtype=dtype)
    path = tmp_path / "plan.safetensors"
    plan.save(path)
    back = Plan.load(path)
    for name in ("canvas", "context", "context_mask", "strength"):
        a, b = getattr(plan, name), getattr(back, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert back.words == plan.words
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle


def test_load_rejects_foreign_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"canvas": torch.zeros(1)}, str(path))
    with pytest.raises(ValueError, match="not a MetaCanvas plan"):
        Plan.load(path)


def test_select_and_to():
    plan = make_plan(strength=True)
    one = plan.select(1)
    assert one.canvas.shape == (1, 2, 4, 4, 8) and one.words == [plan.words[1]]
    assert torch.equal(one.canvas[0], plan.canvas[1]) and torch.equal(one.context_mask[0], plan.context_mask[1])
    assert plan.to("cpu").canvas.device.type == "cpu"


def make_drafted_plan(seed=0):
    """Item 0 drafted with one object top-left (cover from the real draft_coverage), item 1 undrafted;
    the connector's strength is loudest on the background, as it is on the shapes model."""
    from app.core.canvas import CanvasSpec
    from app.core.draft import DraftConfig, draft_coverage, no_drafts, quantize_objects

    config = DraftConfig(labels=5, bins=16, sizes=4, max_objects=3, dim=32, layers=1, heads=2)
    drafts = torch.stack([torch.from_numpy(quantize_objects([(3, 0.15, 0.15, 0.12)], config)),
                          no_drafts(1, config)[0]])
    cover = draft_coverage(drafts, CanvasSpec(2, 8, 8), config)[..., 1:].sum(-1).reshape(2, 2, 8, 8)
    g = torch.Generator().manual_seed(seed)
    strength = torch.rand(2, 2, 8, 8, generator=g) + 1.0
    strength[:, :, :3, :3] = 0.5  # quieter where the object is drafted
    return Plan(canvas=torch.randn(2, 2, 8, 8, 16, generator=g), context=torch.zeros(2, 3, 16),
                context_mask=torch.ones(2, 3), words=[[], []], strength=strength, draft=drafts, draft_cover=cover)


def test_draft_map_and_canvas_effect_are_two_named_views_of_a_drafted_plan():
    plan = make_drafted_plan()
    drafted = plan.draft_map(0, 0)
    effect = plan.canvas_effect(0, 0)
    assert drafted.shape == effect.shape == (8, 8) and drafted.dtype == effect.dtype == np.float32
    # The draft marks its object top left and nothing bottom right; the connector is loudest elsewhere.
    assert drafted[1, 1] > 0.5 and drafted[6, 6] == 0.0
    assert effect[1, 1] < effect[6, 6]
    np.testing.assert_allclose(effect, (plan.strength[0, 0] / plan.strength[0].max()).numpy(), rtol=1e-6)
    np.testing.assert_allclose(drafted, plan.draft_cover[0, 0].clamp(0, 1).numpy())
    # heatmap() keeps its meaning for the CLI and the eval: the draft where there is one.
    np.testing.assert_allclose(plan.heatmap(0, 0), (plan.draft_cover[0, 0] / plan.draft_cover[0].max()).numpy())
    assert plan.has_draft(0) and not plan.has_draft(1)


def test_an_undrafted_plan_has_no_draft_map_but_its_canvas_effect():
    plan = make_drafted_plan()
    assert plan.draft_map(1, 0) is None  # drafted batch, this item not drafted
    np.testing.assert_allclose(plan.heatmap(1, 1), plan.canvas_effect(1, 1))
    plain = make_plan(strength=True)  # a model without a drafter
    assert not plain.has_draft(0) and plain.draft_map(0, 0) is None
    np.testing.assert_allclose(plain.canvas_effect(1, 0), plain.heatmap(1, 0))
    # One item of a drafted batch, and an edited or reloaded plan, keep the draft.
    assert plan.select(0).draft_map(0, 1) is not None and plan.select(1).draft_map(0, 0) is None
    moved = plan.edited([PlanEdit("move", box=(0.0, 0.0, 0.5, 0.5), dx=0.5, dy=0.5)])
    assert moved.draft_map(0, 0)[5, 5] > 0.5 and moved.draft_map(0, 0)[1, 1] == 0.0


def test_canvas_effect_without_strength_falls_back_to_the_states():
    plan = make_plan(b=1, k=2)
    plan.canvas.zero_()
    plan.canvas[0, 1, 2, 3] = 4.0
    plan.canvas[0, 0, 0, 0] = 2.0
    effect = plan.canvas_effect(0, 1)
    assert np.unravel_index(effect.argmax(), effect.shape) == (2, 3) and effect.max() == pytest.approx(1.0)
    assert 0.3 < plan.canvas_effect(0, 0)[0, 0] < 0.7  # normalised over the item's keyframes
    # Strength recorded for the conditional row only (the pipeline's guided run) still serves item 0.
    plan2 = make_plan(b=2, k=2)
    plan2.strength = torch.rand(1, 2, 4, 4)
    np.testing.assert_allclose(plan2.canvas_effect(0, 0), (plan2.strength[0, 0] / plan2.strength[0].max()).numpy())
    assert plan2.canvas_effect(1, 0).shape == (4, 4)


def _with_config(plan):
    from app.core.draft import DraftConfig

    plan.draft_config = DraftConfig(labels=5, bins=16, sizes=4, max_objects=3, dim=32, layers=1, heads=2)
    return plan


def test_object_edits_without_a_planner_move_the_objects_cells_and_its_draft():
    plan = _with_config(make_drafted_plan())
    ((label, cx, cy, half),) = plan.objects(0)
    assert label == 3 and plan.objects(1) == []
    moved = plan.edited([PlanEdit("move_object", number=1, dx=0.5, dy=0.5)])
    ((_, mx, my, mh),) = moved.objects(0)
    assert (mx, my, mh) == pytest.approx((cx + 0.5, cy + 0.5, half), abs=1 / 32)
    assert moved.draft_map(0, 0)[5, 5] > 0.5 and moved.draft_map(0, 0)[1, 1] == 0.0
    # The object's states went with it; the undrafted item and far cells are untouched.
    assert torch.allclose(moved.canvas[0, 0, 5, 5], plan.canvas[0, 0, 1, 1], atol=0.3 * plan.canvas.abs().max())
    assert torch.equal(moved.canvas[1], plan.canvas[1]) and torch.equal(moved.canvas[0, :, 7, 0], plan.canvas[0, :, 7, 0])
    gone = plan.edited([PlanEdit("delete_object", number=1)])
    assert gone.objects(0) == [] and gone.has_draft(0) and gone.draft_map(0, 0).max() == 0  # drafted: empty
    background = plan.canvas[0, 0][plan.draft_cover[0, 0] < 0.05].mean(0)
    assert torch.allclose(gone.canvas[0, 0, 1, 1], background, atol=1e-5)
    bigger = plan.edited([PlanEdit("resize_object", number=1, size=0.28)])
    assert bigger.objects(0)[0][3] > half and bigger.draft_cover[0, 0].sum() > plan.draft_cover[0, 0].sum()


def test_object_edits_are_numbered_as_the_draft_stands_and_checked():
    plan = _with_config(make_drafted_plan())
    added = [PlanEdit("add_object", label=2, box=(0.6, 0.6, 0.84, 0.84))]
    with pytest.raises(ValueError, match="needs the model"):
        plan.edited(added)  # no planner behind this plan: nothing can plan the new object's states
    preview = plan.edited(added + [PlanEdit("move_object", number=2, dx=-0.1)], preview=True)
    assert [o[0] for o in preview.objects(0)] == [3, 2] and preview.objects(0)[1][1] == pytest.approx(0.62, abs=1 / 32)
    assert torch.equal(preview.canvas, plan.canvas)  # a preview drafts the added object and leaves the cells
    assert plan.objects_after(added) == preview.objects(0)[:1] + [plan.objects_after(added)[1]]
    with pytest.raises(ValueError, match="the draft has object 1"):
        plan.edited([PlanEdit("delete_object", number=2)])
    with pytest.raises(ValueError, match="outside the model's 1..4"):
        plan.edited([PlanEdit("add_object", label=9, box=(0, 0, 0.2, 0.2))], preview=True)
    with pytest.raises(ValueError, match="holds at most 3 objects"):
        plan.edited(added * 3, preview=True)
    with pytest.raises(ValueError, match="no drafted objects"):
        make_plan().edited([PlanEdit("delete_object", number=1)])
    with pytest.raises(ValueError, match="needs the object's number"):
        PlanEdit("move_object", dx=0.1)


def test_with_a_planner_object_edits_are_planned_afresh_then_cell_edits_follow():
    plan = _with_config(make_drafted_plan())
    asked = []

    def replan(rows):
        asked.append(rows.clone())
        return replace(plan, canvas=torch.zeros_like(plan.canvas), draft=rows, replan=None)

    plan.replan = replan
    out = plan.edited([PlanEdit("scale", box=(0, 0, 0.5, 0.5), factor=2.0),
                       PlanEdit("add_object", label=2, box=(0.6, 0.6, 0.84, 0.84))])
    (rows,) = asked
    assert rows[0, :2, 0].tolist() == [3, 2] and (rows[1] == -1).all()  # the undrafted item stays undrafted
    assert out.replan is replan and out.draft_config == plan.draft_config
    assert torch.equal(out.canvas, torch.zeros_like(plan.canvas))  # the cell edit came after, on the new plan
    assert plan.to("cpu").replan is None and plan.select(0).replan is None  # data only, off the planner


def test_a_saved_plan_keeps_its_draft_config_and_requests_keep_edits_as_json(tmp_path):
    from app.core.request import GenerationRequest, Task

    plan = _with_config(make_drafted_plan())
    plan.save(tmp_path / "p.safetensors")
    back = Plan.load(tmp_path / "p.safetensors")
    assert back.draft_config == plan.draft_config and back.objects(0) == plan.objects(0)
    request = GenerationRequest(Task.TEXT_TO_IMAGE, "x", plan_edits=[PlanEdit("move_object", number=1, dx=0.1)])
    d = request.to_dict()
    assert d["plan_edits"][0]["box"] == [0.0, 0.0, 1.0, 1.0]
    assert GenerationRequest.from_dict(d).plan_edits == request.plan_edits


def test_canvas_edits_applied_one_gesture_at_a_time_equal_all_at_once():
    """The studio applies each new brush stroke to the last preview (app/ui/plan_editing.py): the same plan."""
    plan = make_plan(strength=True)
    strokes = [PlanEdit("scale", box=(0.0, 0.0, 0.5, 0.5), factor=0.0),
               PlanEdit("scale", box=(0.25, 0.25, 0.75, 0.75), factor=2.0, keyframe=1),
               PlanEdit("move", box=(0.5, 0.5, 1.0, 1.0), dx=-0.25, dy=0.0)]
    stepwise = plan
    for stroke in strokes:
        stepwise = stepwise.edited([stroke], preview=True)
    at_once = plan.edited(strokes, preview=True)
    assert torch.equal(stepwise.canvas, at_once.canvas)
