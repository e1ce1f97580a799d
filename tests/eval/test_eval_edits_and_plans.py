import math
from collections import Counter

import numpy as np

from app.eval.edits import added_object_side, edit_failure_cause, edit_success, edited_mask, make_edit_benchmark, psnr_outside
from app.eval.plan_fidelity import plan_iou
from app.shapes import EDIT_KINDS, edit_kind, render
from app.shapes.scene import Scene, ShapeObject


def test_benchmark_covers_kinds_evenly_and_is_reproducible():
    bench = make_edit_benchmark(25, seed=0)
    assert Counter(edit_kind(t.instruction) for t in bench) == {k: 5 for k in EDIT_KINDS}
    assert make_edit_benchmark(25, seed=0) == bench


def test_ground_truth_targets_succeed_and_unedited_sources_fail():
    bench = make_edit_benchmark(50, seed=1)
    for source, instruction, target in bench:
        result = render(target)
        assert edit_success(result, target), instruction
        mask = edited_mask(source, target)
        assert psnr_outside(result, render(source), mask) == math.inf
        assert not edit_success(render(source), target), instruction


def test_a_failed_edit_is_told_apart_by_what_went_wrong():
    source = Scene((ShapeObject("star", "orange", 0.25, 0.3, 0.1), ShapeObject("star", "blue", 0.7, 0.7, 0.1)))
    target = Scene((source.objects[0], ShapeObject("star", "purple", 0.7, 0.7, 0.1)))  # "make the blue star purple"
    assert edit_failure_cause(render(target), source, target) == "done"
    assert edit_failure_cause(render(source), source, target) == "unchanged"
    other = Scene((ShapeObject("star", "purple", 0.25, 0.3, 0.1), source.objects[1]))  # the orange one recoloured
    assert edit_failure_cause(render(other), source, target) == "wrong object"
    moved = Scene((source.objects[0], ShapeObject("star", "purple", 0.7, 0.3, 0.1)))
    assert edit_failure_cause(render(moved), source, target) == "misplaced"
    assert edit_failure_cause(render(Scene(source.objects[:1])), source, target) == "missing"
    extra = Scene(target.objects + (ShapeObject("circle", "red", 0.25, 0.75, 0.1),))
    assert edit_failure_cause(render(extra), source, target) == "extra"


def test_a_failed_add_is_told_apart_by_the_side_the_new_object_went():
    """The new object drawn where asked, mirrored through its reference ("to the left of" drawn to
    the right), or not at all; a same-class-and-colour object already in the source is not taken for it."""
    from app.shapes.edits import EditTriple, add_anchor, sample_edit
    from app.shapes.scene import fits_with

    rng = np.random.default_rng(3)
    adds = [sample_edit(rng, "add") for _ in range(40)]
    mirrored_somewhere = 0
    for edit in adds:
        ref, (ux, uy) = add_anchor(edit)
        new = edit.target.objects[-1]
        assert edit.instruction.endswith(f"the {ref.cls}") or edit.instruction.endswith(f"the {ref.color} {ref.cls}")
        assert (new.cx - ref.cx) * ux + (new.cy - ref.cy) * uy > 0
        assert added_object_side(render(edit.target), edit) == "instructed side"
        assert added_object_side(render(edit.source), edit) == "not drawn"
        mirror = new.moved(2 * ref.cx - new.cx, 2 * ref.cy - new.cy)
        if fits_with(mirror, edit.source.objects):
            assert added_object_side(render(Scene(edit.source.objects + (mirror,))), edit) == "opposite side", edit.instruction
            mirrored_somewhere += 1
    assert mirrored_somewhere >= 10
    # A red star is already there: the one drawn beside the reference is the new one.
    source = Scene((ShapeObject("circle", "blue", 0.5, 0.5, 0.1), ShapeObject("star", "red", 0.2, 0.2, 0.1)))
    edit = EditTriple(source, "add a red star to the right of the circle",
                      Scene(source.objects + (ShapeObject("star", "red", 0.74, 0.5, 0.1),)))
    assert added_object_side(render(edit.target), edit) == "instructed side"
    assert added_object_side(render(edit.source), edit) == "not drawn"


def test_damage_outside_the_edit_lowers_psnr():
    source, instruction, target = make_edit_benchmark(1, seed=2)[0]
    mask = edited_mask(source, target)
    assert mask.any() and not mask.all()
    noisy = np.clip(render(target) + np.random.default_rng(0).normal(0, 8, (64, 64, 3)), 0, 255).astype(np.uint8)
    value = psnr_outside(noisy, render(source), mask)
    assert 25 < value < 35


def test_edited_mask_covers_both_places_of_a_moved_object():
    star = ShapeObject("star", "red", 0.25, 0.5, 0.1)
    moved = star.moved(0.75, 0.5)
    mask = edited_mask(Scene((star,)), Scene((moved,)))
    assert mask[32, 16] and mask[32, 48] and not mask[32, 32]


def test_plan_iou_rewards_heatmaps_over_the_objects():
    scene = Scene((ShapeObject("square", "blue", 0.3, 0.3, 0.12), ShapeObject("circle", "red", 0.7, 0.7, 0.12)))
    image = render(scene)
    good = np.zeros((16, 16), np.float32)
    good[3:7, 3:7] = 1.0
    good[9:13, 9:13] = 1.0
    wrong = np.zeros((16, 16), np.float32)
    wrong[9:13, 3:7] = 1.0
    good_iou, wrong_iou = plan_iou(good, image), plan_iou(wrong, image)
    assert good_iou > 0.6 and wrong_iou < 0.05
    assert plan_iou(np.full((16, 16), 0.5, np.float32), image) == 0.0
