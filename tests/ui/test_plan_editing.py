"""Editing the plan by hand in the studio, with the real embedded model: drag a drafted object over the viewer
(QTest mouse events on the viewer's canvas), Generate makes a version whose request and stored plan carry the
edit and whose image has the object where it was dragged; undo/redo, A/B as planned, save and reopen."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from app.core.plan import Plan
from app.media.probe import load_image
from app.shapes.detect import detect
from app.ui.plan_edit_tool import TOOL_ERASE, TOOL_OBJECTS, TOOL_PAINT, TOOL_REGION
from tests.ui.helpers import MODEL, make_window
from tests.ui.helpers import model_studio as studio  # noqa: F401 - a fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MODEL / "model_index.json").is_file(),
                       reason="the embedded default model (models/metacanvas-shapes) is not built yet"),
]

PROMPT = "a red circle"
SEED = 3
TARGET = (0.25, 0.72)  # where object 1 is dragged to: away from where seed 3 drafts it (near the centre)



def _pixel(w, fx: float, fy: float) -> QPoint:
    return w.viewer.edit_tool.point(fx, fy).toPoint()


def _drag(qtbot, w, start: tuple[float, float], end: tuple[float, float], steps: int = 6) -> None:
    """Press at `start`, move in steps, release at `end` (fractions of the frame), as a hand would."""
    canvas = w.viewer.canvas
    a, b = _pixel(w, *start), _pixel(w, *end)
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, steps + 1):
        QTest.mouseMove(canvas, a + (b - a) * i / steps)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def _red_centre(image: np.ndarray) -> np.ndarray:
    found = [d for d in detect(image) if d.color == "red"]
    assert found, "no red object in the image"
    return np.array(max(found, key=lambda d: d.area).center)


def _generate(qtbot, w) -> None:
    with qtbot.waitSignal(w.result_stored, timeout=120_000):
        assert w.generate() is not None


def _stored_plan_shown(qtbot, w, version: str) -> None:
    """Wait for the plan stored with `version` ("Original", "v1") to be drawn."""
    qtbot.waitUntil(lambda: w.viewer.plan_caption.text().startswith(f"Plan stored with {version}"), timeout=20_000)


def _live_plan(qtbot, w) -> None:
    """Type PROMPT at SEED, as a user would, and wait for its live plan over the viewer."""
    w.generation.seed.setValue(SEED)
    w.instruction.edit.setFocus()
    with qtbot.waitSignal(w.plan_shown, timeout=20_000):
        qtbot.keyClicks(w.instruction.edit, PROMPT)


def test_drag_an_object_generate_undo_compare_save_and_reopen(qtbot, tmp_path, studio):
    w = studio
    _live_plan(qtbot, w)
    # As planned first: a new clip, whose stored plan is then edited.
    _generate(qtbot, w)
    (clip,) = w.document.project.tracks["image"]
    _stored_plan_shown(qtbot, w, "Original")
    planned_request = dict(clip.versions[0].request)
    assert planned_request["seed"] == SEED and not planned_request["plan_edits"]
    planned_image = load_image(w.media_file(clip.versions[0].media_id))

    (label, cx, cy, half) = w.viewer.edit_tool.objects()[0]
    assert np.hypot(cx - TARGET[0], cy - TARGET[1]) > 2 * half  # a real move, not a nudge
    _drag(qtbot, w, (cx, cy), TARGET)
    entry = w.document.project.plan_edits[clip.id]
    assert [e["kind"] for e in entry["edits"]] == ["move_object"] and entry["edits"][0]["number"] == 1
    assert "edited (1 change)" in w.viewer.plan_caption.text()
    (_, mx, my, _) = w.viewer.edit_tool.objects()[0]  # the viewer draws the object where it was dropped
    assert np.hypot(mx - TARGET[0], my - TARGET[1]) <= 1 / 16  # the draft's bins are 1/16 of the frame

    # Generate uses the edited plan with the same seed: the object lands where it was dragged.
    _generate(qtbot, w)
    clip = w.document.project.clip(clip.id)
    assert len(clip.versions) == 2 and clip.active_version == 1
    edited_request = clip.versions[1].request
    assert edited_request["seed"] == SEED and [e["kind"] for e in edited_request["plan_edits"]] == ["move_object"]
    assert {k: v for k, v in edited_request.items() if k != "plan_edits"} == \
        {k: v for k, v in planned_request.items() if k != "plan_edits"}
    stored = Plan.load(w.media_file(clip.versions[1].media_id).parent / clip.versions[1].plan)
    (_, sx, sy, _) = stored.objects(0)[0]  # the edited plan is stored beside the request
    assert np.hypot(sx - TARGET[0], sy - TARGET[1]) <= 1 / 16
    image = load_image(w.media_file(clip.versions[1].media_id))
    size = np.array(image.shape[1::-1], float)
    assert np.hypot(*(_red_centre(image) - np.array(TARGET) * size)) <= 6.0
    assert np.hypot(*(_red_centre(image) - _red_centre(planned_image))) > 10.0

    # A/B of as planned vs as edited is one click.
    qtbot.mouseClick(w.viewer.edit_bar.compare_button, Qt.MouseButton.LeftButton)
    assert w.studio.plan_editing.compare_index() == 0
    assert w.viewer.canvas.labels == ("A: as edited", "B: as planned")
    assert w.viewer.compare_split.isChecked()

    # Undo: the version goes, then the drag; redo brings both back.
    w.act_undo.trigger()
    assert len(w.document.project.clip(clip.id).versions) == 1
    _stored_plan_shown(qtbot, w, "Original")
    qtbot.waitUntil(lambda: "edited" in w.viewer.plan_caption.text(), timeout=20_000)
    w.act_undo.trigger()
    assert clip.id not in w.document.project.plan_edits
    (_, ux, uy, _) = w.viewer.edit_tool.objects()[0]
    assert (ux, uy) == (cx, cy) and "edited" not in w.viewer.plan_caption.text()
    w.act_redo.trigger()
    w.act_redo.trigger()
    assert len(w.document.project.clip(clip.id).versions) == 2

    # A pending edit of the new version's plan (erase with the brush) survives save and reopen.
    _stored_plan_shown(qtbot, w, "v1")
    qtbot.mouseClick(w.viewer.edit_bar.tool_buttons[TOOL_ERASE], Qt.MouseButton.LeftButton)
    _drag(qtbot, w, (0.8, 0.1), (0.95, 0.1))
    qtbot.mouseClick(w.viewer.edit_bar.tool_buttons[TOOL_OBJECTS], Qt.MouseButton.LeftButton)
    pending = w.document.project.plan_edits[clip.id]
    assert {e["kind"] for e in pending["edits"]} == {"scale"} and all(e["factor"] == 0 for e in pending["edits"])
    path = tmp_path / "edited.mcproj"
    assert w.save_as(str(path))

    w2 = make_window(qtbot, tmp_path / "second", start_engine=False)
    try:
        assert w2.open_project(str(path))
        assert w2.document.project.plan_edits == {clip.id: pending}
        w2.timeline.view.select([clip.id])
        _stored_plan_shown(qtbot, w2, "v1")
        assert [e.kind for e in w2.studio.plan_editing.edits()] == ["scale"] * len(pending["edits"])
        assert "edited" in w2.viewer.plan_caption.text()
        assert w2.document.project.clip(clip.id).versions[1].request["plan_edits"] == edited_request["plan_edits"]
    finally:
        w2.shutdown()


def test_delete_key_removes_the_clicked_object_and_add_puts_one_back(qtbot, studio):
    w = studio
    _live_plan(qtbot, w)
    (_, cx, cy, _) = w.viewer.edit_tool.objects()[0]
    QTest.mouseClick(w.viewer.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _pixel(w, cx, cy))
    assert w.viewer.edit_tool.selected == 1
    QTest.keyClick(w.viewer.canvas, Qt.Key.Key_Delete)
    assert w.viewer.edit_tool.objects() == []
    assert w.document.project.plan_edits[""]["edits"][0]["kind"] == "delete_object"
    actions = w.viewer.edit_bar.add_menu.actions()
    blue_star = next(a for a in actions if a.text() == "blue star")
    blue_star.trigger()
    ((label, ax, ay, _),) = w.viewer.edit_tool.objects()
    assert (ax, ay) == pytest.approx((0.5, 0.5), abs=1 / 16)
    w.act_undo.trigger()
    w.act_undo.trigger()
    assert len(w.viewer.edit_tool.objects()) == 1 and "" not in w.document.project.plan_edits


def test_pending_edits_of_a_live_plan_come_back_with_their_seed_and_never_give_way_unsaid(qtbot, tmp_path, studio):
    """Edits of a new generation's live plan were saved but hidden at reopen (the plan is named by its seed, which
    the project did not keep), and an edit made at another seed replaced them without a word."""
    w = studio
    _live_plan(qtbot, w)
    (_, cx, cy, _) = w.viewer.edit_tool.objects()[0]
    _drag(qtbot, w, (cx, cy), TARGET)
    assert w.document.project.plan_edits[""]["settings"]["seed"] == SEED
    path = tmp_path / "pending.mcproj"
    assert w.save_as(str(path))

    # Another seed: its plan is not the edited one; an edit of it gives the earlier edits' place up, said.
    w.generation.seed.setValue(SEED + 1)
    qtbot.waitUntil(lambda: f":{SEED + 1}:" in (w.studio.plan_editing.base or ""), timeout=20_000)
    assert w.studio.plan_editing.edits() == []
    (_, cx, cy, _) = w.viewer.edit_tool.objects()[0]
    _drag(qtbot, w, (cx, cy), (0.7, 0.3))
    assert "gave way to this one; Undo brings it back" in w.messages.history[-1].text
    w.act_undo.trigger()
    assert w.document.project.plan_edits[""]["settings"]["seed"] == SEED

    # Reopened where the seed is another: the edits' seed is set again and the edited plan is shown.
    w.document.mark_saved(str(path))
    w.generation.seed.setValue(0)
    qtbot.waitUntil(lambda: ":0:" in (w.studio.plan_editing.base or ""), timeout=20_000)
    assert w.open_project(str(path))
    qtbot.waitUntil(lambda: "edited (1 change)" in w.viewer.plan_caption.text(), timeout=20_000)
    assert w.studio.params.seed == SEED and len(w.studio.plan_editing.edits()) == 1
    assert any(f"made at seed {SEED}" in m.text for m in w.messages.history)


def test_an_add_the_draft_has_no_room_for_leaves_nothing_selected_and_clicks_work(qtbot, studio):
    """A refused "Add object" (a draft holds 4 objects at most) left the tool's selection on a fifth object that
    was never added: the next click on an object indexed past the last and ended the studio."""
    w = studio
    _live_plan(qtbot, w)
    tool = w.viewer.edit_tool

    def add():  # the menu is made again with each plan shown
        w.viewer.edit_bar.add_menu.actions()[0].trigger()

    while len(tool.objects()) < 4:
        before = len(tool.objects())
        add()
        assert len(tool.objects()) == before + 1 and tool.selected == before + 1
    add()
    assert "at most 4 objects" in w.messages.errors()[-1]
    assert len(tool.objects()) == 4 and tool.selected is None
    (_, cx, cy, _) = tool.objects()[0]
    QTest.mouseClick(w.viewer.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _pixel(w, cx, cy))
    assert tool.selected == tool.object_at(cx, cy) is not None


def test_a_clips_canvas_edit_applies_to_the_keyframe_at_the_playhead(qtbot):
    import torch

    from app.ui.viewer import Viewer

    viewer = Viewer()
    qtbot.addWidget(viewer)
    viewer.resize(640, 480)
    viewer.show()
    g = torch.Generator().manual_seed(0)
    plan = Plan(canvas=torch.randn(1, 3, 6, 6, 8, generator=g), context=torch.zeros(1, 2, 8),
                context_mask=torch.ones(1, 2), words=[[]])  # a clip's plan: 3 keyframes, no draft
    viewer.set_plan(plan, "Live plan")
    viewer.set_plan_frame(16, 17)  # the clip's last frame: its last keyframe
    assert viewer.keyframe == 2
    made = []
    viewer.edit_tool.edits_made.connect(lambda edits, label: made.append((edits, label)))
    qtbot.mouseClick(viewer.edit_bar.tool_buttons[TOOL_ERASE], Qt.MouseButton.LeftButton)
    tool = viewer.edit_tool
    canvas = viewer.canvas
    a, b = tool.point(0.05, 0.05).toPoint(), tool.point(0.4, 0.05).toPoint()
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(canvas, b)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    ((edits, label),) = made
    assert label == "Erase the canvas" and len(edits) == 1  # one stroke along a row: one box
    (edit,) = edits
    assert (edit.kind, edit.factor, edit.keyframe) == ("scale", 0.0, 2)
    assert edit.box == pytest.approx((0.0, 0.0, 3 / 6, 1 / 6))
    assert viewer.edit_bar.add_button.isEnabled() is False  # nothing drafted: no objects to add to

    # Region: drag out a selection (whole cells), then drag it two cells right.
    qtbot.mouseClick(viewer.edit_bar.tool_buttons[TOOL_REGION], Qt.MouseButton.LeftButton)
    for start, end in (((0.05, 0.55), (0.3, 0.9)), ((0.1, 0.6), (0.1 + 2 / 6, 0.6))):
        a, b = tool.point(*start).toPoint(), tool.point(*end).toPoint()
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
        QTest.mouseMove(canvas, b)
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    ((edit,), label) = made[-1]
    assert label == "Move a region of the canvas" and (edit.kind, edit.keyframe) == ("move", 2)
    assert edit.box == pytest.approx((0.0, 3 / 6, 2 / 6, 1.0)) and (edit.dx, edit.dy) == pytest.approx((2 / 6, 0.0))


def test_a_clips_drafted_tracks_get_no_object_tools(qtbot):
    """Object tools (add, drag handles) are for a still's draft; a clip's tracks are not edited by hand yet."""
    import torch

    from app.core.draft import DraftConfig, quantize_objects
    from app.ui.plan_edit_tool import PlanEditBar

    config = DraftConfig(labels=25, max_objects=3, track=True)
    rows = torch.from_numpy(quantize_objects([(4, 0.25, 0.3, 0.1, 0.7, 0.3)], config))[None]
    plan = Plan(canvas=torch.zeros(1, 3, 6, 6, 8), context=torch.zeros(1, 2, 8),
                context_mask=torch.ones(1, 2, dtype=torch.bool), words=[[]], draft=rows,
                draft_cover=torch.ones(1, 3, 6, 6) * 0.1, draft_config=config)
    bar = PlanEditBar()
    qtbot.addWidget(bar)
    chosen = []
    bar.mode_chosen.connect(chosen.append)
    bar.set_plan(plan)
    assert plan.has_draft(0) and not plan.objects_editable(0)
    # Said, not left as a tool with nothing to grab: Objects off with the reason, Paint taken instead.
    objects = bar.tool_buttons[TOOL_OBJECTS]
    assert not bar.add_button.isEnabled() and not objects.isEnabled()
    assert "cannot be edited object by object" in objects.toolTip() and "cannot" in bar.add_button.toolTip()
    assert chosen == [TOOL_PAINT] and bar.keyframe_label.text() == "strokes edit keyframe 1 of 3"
    bar.set_keyframe(2, 3)
    assert bar.keyframe_label.text() == "strokes edit keyframe 3 of 3"
    still = DraftConfig(labels=25)
    still_plan = Plan(canvas=torch.zeros(1, 1, 6, 6, 8), context=torch.zeros(1, 2, 8),
                      context_mask=torch.ones(1, 2, dtype=torch.bool), words=[[]],
                      draft=torch.from_numpy(quantize_objects([(4, 0.25, 0.3, 0.1)], still))[None],
                      draft_cover=torch.ones(1, 1, 6, 6) * 0.1, draft_config=still)
    bar.set_plan(still_plan)
    assert bar.add_button.isEnabled() and objects.isEnabled() and objects.isChecked()  # the tool it had, back
    assert chosen == [TOOL_PAINT, TOOL_OBJECTS] and bar.keyframe_label.text() == ""
    # A tool the user picks on the clip's plan is theirs: a still's plan after it does not take it back.
    bar.set_plan(plan)
    bar.tool_buttons[TOOL_ERASE].click()
    bar.set_plan(still_plan)
    assert bar.tool_buttons[TOOL_ERASE].isChecked() and chosen[-1] == TOOL_ERASE


def test_undoing_another_clips_plan_edit_says_whose_it_was(qtbot, tmp_path):
    """Undo with another clip selected took back the first clip's plan edit with nothing on screen changing."""
    from tests.ui.helpers import SAMPLE_IMAGE, import_and_wait

    w = make_window(qtbot, tmp_path)
    first = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    second = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    edit = {"kind": "scale", "box": [0.0, 0.0, 0.5, 0.5], "factor": 0.0, "dx": 0.0, "dy": 0.0, "keyframe": None,
            "number": 0, "label": 0, "size": 0.0}
    w.timeline.view.select([first])
    w.document.push(w.document.project.set_plan_edits_change(first, f"live:{first}", [edit]), "Erase the canvas")
    w.timeline.view.select([second])
    w.act_undo.trigger()
    assert first not in w.document.project.plan_edits
    name = w.document.project.media_item(w.document.project.clip(first).media_id).name
    assert f"The plan edits of '{name}' changed (not the plan on screen)" in w.messages.history[-1].text
