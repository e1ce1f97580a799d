"""The viewer as a user meets it: the plan's two layers (drafted layout, canvas effect) drawn from real Plan
objects, the plan on a blank of the request's shape before there is a frame, A/B compare and its labels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from app.core.canvas import CanvasSpec
from app.core.draft import DraftConfig, draft_coverage, no_drafts, quantize_objects
from app.core.plan import Plan
from app.ui.images import DRAFT_COLOUR, draft_scale, qimage_to_rgb
from app.ui.viewer import LAYER_DRAFT, LAYER_EFFECT, Viewer
from tests.ui.helpers import make_window

DRAFTS = DraftConfig(labels=5, bins=16, sizes=4, max_objects=3, dim=32, layers=1, heads=2)
BACKGROUND = np.array([18, 18, 20])


def _fake_plan(k=1, h=4, w=4, d=8, words=("red", "circle")):
    """A plan from a model without a drafter: all the connector's strength in the top-left patch."""
    g = torch.Generator().manual_seed(0)
    canvas = torch.randn(1, k, h, w, d, generator=g)
    strength = torch.zeros(1, k, h, w)
    strength[0, :, 0, 0] = 1.0
    ctx = torch.randn(1, len(words), d, generator=g)
    return Plan(canvas=canvas, context=ctx, context_mask=torch.ones(1, len(words), dtype=torch.bool),
                words=[[(wd, [i]) for i, wd in enumerate(words)]], strength=strength)


def _drafted_plan(drafted=True, k=1, size=8):
    """A drafting model's plan: one object drafted top left (the real draft_coverage), while the
    connector's strength is loudest on the background bottom right, as measured on the shapes model."""
    rows = quantize_objects([(3, 0.2, 0.2, 0.13)], DRAFTS) if drafted else no_drafts(1, DRAFTS)[0].numpy()
    drafts = torch.from_numpy(rows)[None]
    cover = draft_coverage(drafts, CanvasSpec(k, size, size), DRAFTS)[..., 1:].sum(-1).reshape(1, k, size, size)
    g = torch.Generator().manual_seed(1)
    strength = torch.full((1, k, size, size), 0.2)
    strength[:, :, size // 2:, size // 2:] = 1.0
    return Plan(canvas=torch.randn(1, k, size, size, 16, generator=g), context=torch.randn(1, 2, 16, generator=g),
                context_mask=torch.ones(1, 2, dtype=torch.bool), words=[[("red", [0]), ("ball", [1])]],
                strength=strength, draft=drafts, draft_cover=cover)


@pytest.fixture
def viewer(qtbot):
    v = Viewer()
    qtbot.addWidget(v)
    v.resize(900, 640)
    v.show()
    qtbot.waitExposed(v)
    return v


def _screen(v: Viewer) -> np.ndarray:
    return qimage_to_rgb(v.canvas.grab().toImage())


def _drawn_box(v: Viewer) -> tuple[int, int, int, int]:
    """(left, top, width, height) of everything painted that is not the viewer's background."""
    rgb = _screen(v).astype(int)
    ys, xs = np.nonzero(np.abs(rgb - BACKGROUND).max(-1) > 8)
    return xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


# ---- the plan's layers -------------------------------------------------------------------------------
def test_plan_overlay_heatmap_pca_word_and_opacity(qtbot, viewer):
    """The overlay is drawn from a real core Plan (a data type, not a model): heatmap, PCA, word map."""
    plan = _fake_plan()
    with qtbot.waitSignal(viewer.canvas.plan_drawn, timeout=3000):
        viewer.set_plan(plan)
    rgba = viewer.overlay_array()
    assert rgba.shape == (4, 4, 4)
    assert rgba[0, 0, 3] > rgba[3, 3, 3]  # the strong patch is the most opaque
    viewer.opacity.setValue(20)
    assert viewer.overlay_array()[0, 0, 3] < rgba[0, 0, 3]
    viewer.pca_radio.setChecked(True)
    assert viewer.overlay_kind == "pca"
    np.testing.assert_array_equal(viewer.overlay_array()[..., :3], plan.pca_rgb())
    viewer.show_word(1)
    assert viewer.word_index == 1 and "circle" in viewer.word_label.text()
    viewer.show_word(None)
    assert viewer.word_index is None and viewer.word_label.text() == ""


def test_clicking_a_word_in_the_window_shows_where_it_is(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    plan = _fake_plan()
    with qtbot.waitSignal(w.viewer.canvas.plan_drawn, timeout=3000):
        w.viewer.set_plan(plan)
        w.instruction.set_words([wd for wd, _ in plan.words[0]])
    qtbot.mouseClick(w.instruction.word_buttons[1], Qt.MouseButton.LeftButton)
    assert w.viewer.word_index == 1 and "circle" in w.viewer.word_label.text()
    qtbot.mouseClick(w.instruction.word_buttons[1], Qt.MouseButton.LeftButton)
    assert w.viewer.word_index is None


def test_a_drafted_plan_shows_the_drafted_layout_and_the_canvas_effect_and_they_differ(qtbot, viewer):
    plan = _drafted_plan()
    with qtbot.waitSignal(viewer.canvas.plan_drawn, timeout=3000):
        viewer.set_plan(plan)
    assert viewer.draft_check.isEnabled() and viewer.draft_check.isChecked() and viewer.effect_check.isChecked()
    assert viewer.visible_layers() == [LAYER_EFFECT, LAYER_DRAFT]
    draft, effect = viewer.layer_array(LAYER_DRAFT), viewer.layer_array(LAYER_EFFECT)
    s = draft_scale(8, 8)
    assert effect.shape == (8, 8, 4) and draft.shape == (8 * s, 8 * s, 4) and s > 1
    # The draft marks its object top left, where the canvas effect is weakest; bottom right the reverse.
    draft_cells = draft[..., 3].reshape(8, s, 8, s).max(axis=(1, 3))
    assert draft_cells[1, 1] > 0 and draft_cells[6, 6] == 0
    assert effect[6, 6, 3] > effect[1, 1, 3]
    # Drawn distinguishably: the draft in its own colour, the effect on the heatmap's ramp (never cyan).
    assert (draft[draft[..., 3] > 0][:, :3] == DRAFT_COLOUR).all()
    assert effect[6, 6, 0] > effect[6, 6, 2]
    overlay = viewer.overlay_array()
    assert overlay.shape == draft.shape
    edge = np.argwhere(draft[..., 3] == draft[..., 3].max())[0]
    assert overlay[tuple(edge)][2] > overlay[tuple(edge)][0]  # the outline is on top, cyan
    assert not np.array_equal(overlay[-1, -1], draft[-1, -1])  # and the effect shows where nothing is drafted
    for box in (viewer.draft_check, viewer.effect_check):
        assert len(box.toolTip()) > 40


def test_unchecking_a_layer_removes_it_from_the_overlay(qtbot, viewer):
    viewer.set_plan(_drafted_plan())
    both = viewer.overlay_array().copy()
    viewer.draft_check.setChecked(False)
    assert viewer.visible_layers() == [LAYER_EFFECT] and viewer.layer_array(LAYER_DRAFT) is None
    np.testing.assert_array_equal(viewer.overlay_array(), viewer.layer_array(LAYER_EFFECT))
    viewer.draft_check.setChecked(True)
    np.testing.assert_array_equal(viewer.overlay_array(), both)
    viewer.effect_check.setChecked(False)
    assert viewer.visible_layers() == [LAYER_DRAFT] and not viewer.pca_radio.isEnabled()
    np.testing.assert_array_equal(viewer.overlay_array(), viewer.layer_array(LAYER_DRAFT))
    viewer.set_layer_visible(LAYER_DRAFT, False)
    assert viewer.overlay_array() is None and viewer.canvas.overlay_rect() is None
    viewer.set_layer_visible(LAYER_EFFECT, True)
    assert viewer.visible_layers() == [LAYER_EFFECT]


def test_a_plan_without_a_draft_offers_only_the_canvas_layer(qtbot, viewer):
    with qtbot.waitSignal(viewer.canvas.plan_drawn, timeout=3000):
        viewer.set_plan(_drafted_plan(drafted=False))
    assert not viewer.draft_check.isEnabled() and not viewer.draft_check.isChecked()
    assert "no drafted layout" in viewer.draft_check.toolTip().lower()
    assert viewer.visible_layers() == [LAYER_EFFECT]
    np.testing.assert_array_equal(viewer.overlay_array(), viewer.layer_array(LAYER_EFFECT))
    viewer.set_plan(_fake_plan())  # a model without any drafter
    assert not viewer.draft_check.isEnabled() and viewer.visible_layers() == [LAYER_EFFECT]
    # The next drafted plan brings the draft back, unless the user had switched it off.
    viewer.set_plan(_drafted_plan())
    assert viewer.draft_check.isEnabled() and viewer.visible_layers() == [LAYER_EFFECT, LAYER_DRAFT]
    viewer.draft_check.setChecked(False)
    viewer.set_plan(_fake_plan())
    viewer.set_plan(_drafted_plan())
    assert not viewer.draft_check.isChecked() and viewer.visible_layers() == [LAYER_EFFECT]


def test_the_layers_follow_the_keyframe(qtbot, viewer):
    plan = _drafted_plan(k=3)
    plan.strength[0, 2] *= 0.25
    viewer.set_plan(plan)
    first = viewer.layer_array(LAYER_EFFECT).copy()
    viewer.set_time_fraction(1.0)
    assert viewer.keyframe == 2 and viewer.layer_array(LAYER_EFFECT)[7, 7, 3] < first[7, 7, 3]
    assert viewer.layer_array(LAYER_DRAFT) is not None


def test_the_caption_says_which_plan_is_shown(viewer):
    viewer.set_plan(_fake_plan(), "Live plan")
    assert viewer.plan_caption.text() == "Live plan"
    viewer.set_plan(_fake_plan(), caption="Plan stored with v2")
    assert viewer.plan_caption.text() == "Plan stored with v2"
    viewer.set_plan(_fake_plan())
    assert viewer.plan_caption.text() == ""
    viewer.set_plan(None, "Live plan")
    assert viewer.plan_caption.text() == "" and viewer.overlay_array() is None


# ---- where the plan is drawn -------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1280, 720), (720, 1280)])
def test_with_no_frame_the_plan_is_drawn_on_a_blank_of_the_requests_shape(viewer, size):
    viewer.set_target_size(*size)
    viewer.set_plan(_drafted_plan())  # a square canvas grid: it must not decide the shape
    rect = viewer.canvas.overlay_rect()
    assert rect.width() / rect.height() == pytest.approx(size[0] / size[1], rel=0.01)
    assert rect.center().x() == pytest.approx(viewer.canvas.width() / 2, abs=1)
    assert rect.center().y() == pytest.approx(viewer.canvas.height() / 2, abs=1)
    left, top, width, height = _drawn_box(viewer)  # what is on screen, not only the geometry
    assert width / height == pytest.approx(size[0] / size[1], rel=0.02)
    assert abs(left - rect.left()) <= 1 and abs(top - rect.top()) <= 1


def test_with_a_frame_the_plan_fits_the_frames_rectangle(viewer):
    viewer.set_target_size(1280, 720)
    viewer.set_frame(np.full((48, 64, 3), 128, np.uint8))
    viewer.set_plan(_drafted_plan())
    rect = viewer.canvas.overlay_rect()
    assert rect == viewer.canvas.image_rect(viewer.canvas.frame)
    assert rect.width() / rect.height() == pytest.approx(64 / 48, rel=0.01)


def test_set_frame_none_leaves_no_frame_drawn(viewer):
    viewer.set_frame(np.full((48, 64, 3), 255, np.uint8))
    cx, cy = viewer.canvas.width() // 2, viewer.canvas.height() // 2
    assert _screen(viewer)[cy, cx].min() > 240
    viewer.set_frame(None)
    assert viewer.canvas.frame is None
    assert _screen(viewer).max() < 200  # no white left anywhere: the frame is gone, not just covered
    viewer.set_target_size(1280, 720)
    viewer.set_plan(_fake_plan())
    assert _screen(viewer)[cy, cx].max() < 200  # the plan on the blank, not on the old frame


# ---- A/B compare ---------------------------------------------------------------------------------------
def test_ab_compare_split_and_toggle(viewer):
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 255, np.uint8)
    viewer.set_frame(a)
    assert not viewer.compare_split.isEnabled()
    viewer.set_compare(b)
    viewer.compare_split.setChecked(True)
    img = viewer.canvas.grab().toImage()
    r = viewer.canvas.image_rect()
    left = img.pixelColor(int(r.left() + r.width() * 0.25), int(r.center().y()))
    right = img.pixelColor(int(r.left() + r.width() * 0.75), int(r.center().y()))
    assert left.value() < 50 and right.value() > 200
    viewer.compare_toggle.setChecked(True)
    assert not viewer.compare_split.isChecked()
    img = viewer.canvas.grab().toImage()
    assert img.pixelColor(int(r.left() + r.width() * 0.25), int(r.center().y())).value() > 200


def test_ab_labels_are_readable_on_a_white_image(viewer):
    white = np.full((48, 64, 3), 255, np.uint8)
    viewer.set_frame(white)
    viewer.set_compare(white)
    viewer.compare_split.setChecked(True)
    screen = _screen(viewer).astype(int)
    labels = viewer.canvas.label_rects
    assert len(labels) == 2
    for box in labels:
        inner = screen[int(box.top()) + 4:int(box.bottom()) - 4, int(box.left()) + 4:int(box.right()) - 4]
        luma = inner.mean(-1)
        assert np.median(luma) < 90  # a dark backing, though the picture under it is white
        assert luma.max() > 200  # with light text on it
        assert luma.max() - np.median(luma) > 120
    viewer.compare_toggle.setChecked(True)
    _screen(viewer)
    assert len(viewer.canvas.label_rects) == 1  # flipping also says which one is shown


def test_both_layers_reach_the_screen_and_a_revisited_frame_shows_its_own_overlay(qtbot, viewer):
    """The layers are stacked at paint time: the drafted outline (cyan) and the canvas effect (the heatmap's
    warm colours) are both on screen; scrubbing away and back gives the same layers, and an opacity change
    is drawn, not an overlay kept from before it."""
    plan = _drafted_plan(k=3)
    plan.strength[0, 2] *= 0.25
    with qtbot.waitSignal(viewer.canvas.plan_drawn, timeout=3000):
        viewer.set_plan(plan)
    screen = _screen(viewer).astype(int)
    cyan = ((screen[..., 2] > screen[..., 0] + 80) & (screen[..., 1] > screen[..., 0] + 60)).sum()
    warm = ((screen[..., 0] > 120) & (screen[..., 0] > screen[..., 2] + 40)).sum()
    assert cyan > 50 and warm > 500, (cyan, warm)
    first = {layer: viewer.layer_array(layer).copy() for layer in (LAYER_DRAFT, LAYER_EFFECT)}
    viewer.set_time_fraction(1.0)
    assert not np.array_equal(viewer.layer_array(LAYER_EFFECT), first[LAYER_EFFECT])
    viewer.set_time_fraction(0.0)
    for layer, array in first.items():
        np.testing.assert_array_equal(viewer.layer_array(layer), array)
    viewer.opacity.setValue(viewer.opacity.value() // 2)
    assert viewer.layer_array(LAYER_EFFECT)[..., 3].max() < first[LAYER_EFFECT][..., 3].max()


def test_the_drafted_outline_is_the_covered_cells_eroded_edge():
    """cell_outline (computed per cell side) is exactly the pixels that eroding the upscaled cells
    `width` times with a 4-neighbour step removes, on random masks, scales and widths."""
    from app.ui.images import cell_outline

    rng = np.random.default_rng(0)
    for _ in range(60):
        cells = rng.random((int(rng.integers(1, 9)), int(rng.integers(1, 9)))) < 0.5
        scale = int(rng.integers(2, 30))
        width = int(rng.integers(1, max(2, scale)))
        inside = np.repeat(np.repeat(cells, scale, axis=0), scale, axis=1)
        interior = inside.copy()
        for _ in range(width):
            p = np.pad(interior, 1, constant_values=False)
            interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        np.testing.assert_array_equal(cell_outline(cells, scale, width), inside & ~interior)


def test_the_drafted_layer_is_drawn_pixel_for_pixel_as_its_definition_says():
    """draft_rgba works per cell and caches outlines (it runs on every frame a clip plays); its pixels are
    still the definition's: cyan everywhere, alpha 255 * opacity on the outline of the cells covered at
    least min(0.2, half the peak), (0.25 + 0.55 * coverage) * 255 * opacity on the hatching inside
    covered cells, 0 elsewhere: random covers, opacities and scales, the same mask drawn twice."""
    from app.ui.images import DRAFT_COLOUR, _hatch, cell_outline, draft_rgba, draft_scale

    rng = np.random.default_rng(1)
    for trial in range(40):
        h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        cover = np.where(rng.random((h, w)) < 0.4, rng.random((h, w)), 0.0).astype(np.float32)
        alpha = float(rng.choice([1.0, 0.6, 0.35, float(rng.random())]))
        scale = None if trial % 2 else int(rng.integers(4, 40))
        for _ in range(2):  # the second time from the outline cache
            out = draft_rgba(cover, alpha, scale)
            s = scale or draft_scale(h, w)
            frac = np.repeat(np.repeat(cover, s, axis=0), s, axis=1)
            level = min(0.2, 0.5 * float(cover.max())) if cover.max() > 0 else np.inf
            edge = cell_outline(cover >= level, s, max(1, s // 12))
            hatch = _hatch(*frac.shape, max(4, s // 4))
            a = np.where(hatch & (frac > 0), 0.25 + 0.55 * frac, 0.0)
            a = np.clip(np.round(np.where(edge, 1.0, a) * 255.0 * alpha), 0, 255)
            assert out.shape == (h * s, w * s, 4)
            assert (out[..., :3] == DRAFT_COLOUR).all()
            np.testing.assert_array_equal(out[..., 3], a.astype(np.uint8))
