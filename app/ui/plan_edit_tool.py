"""The viewer's hands on the plan: drag a drafted object, resize it by its handle, delete it (Delete key), add
one from a menu of labels; paint or erase the canvas's strength with a brush; select a region of the canvas
and drag it. Each gesture ends as `PlanEdit`s in `edits_made` (app/ui/plan_editing.py records them as one
undoable step); while a gesture lasts, only its outline is drawn, nothing is recomputed.

The drafted objects carry their numbers over the viewer (the draft's order: what `--plan-edit` and the plan
picture call them). Places are fractions of the frame, as PlanEdit's are; the brush and the region work in
whole canvas cells, the grain of a cell edit.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (QButtonGroup, QHBoxLayout, QLabel, QMenu, QPushButton, QSpinBox, QToolButton,
                               QWidget)

from app.core.request import PlanEdit
from app.plan_edit_text import PAINT_FACTOR, default_size, plan_labels

TOOL_OBJECTS, TOOL_PAINT, TOOL_ERASE, TOOL_REGION = "objects", "paint", "erase", "region"
TOOL_NAMES = {TOOL_OBJECTS: "Objects", TOOL_PAINT: "Paint", TOOL_ERASE: "Erase", TOOL_REGION: "Region"}
TOOL_TIPS = {
    TOOL_OBJECTS: "Drag a drafted object to move it, drag its handle to resize it, click it and press Delete to "
                  "remove it",
    TOOL_PAINT: "Brush: strengthen the canvas's push where you paint",
    TOOL_ERASE: "Brush: erase the canvas's push where you paint (the model plans nothing there)",
    TOOL_REGION: "Drag to select a region of the canvas, then drag the region to move it",
}
HANDLE_PX = 7  # the resize handle's half-width, and how near a press must come to it
CLICK_PX = 2  # a press that moves less than this is a click (it selects), not a drag
_NUMBER_BACK, _NUMBER_FRONT = QColor(0, 0, 0, 220), QColor(255, 255, 255)
_SELECTED = QColor(255, 214, 10)
_DRAG = QColor(255, 255, 255, 230)


class PlanEditTool(QObject):
    """Mouse and key handling over the viewer's canvas (FrameCanvas delegates to it) and what it draws."""

    edits_made = Signal(list, str)  # [PlanEdit], the undo step's name

    def __init__(self, canvas: Any, keyframe: Callable[[], int]) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.keyframe = keyframe  # the keyframe at the playhead: an edit of a clip's canvas applies to it
        self.mode = TOOL_OBJECTS
        self.plan: Any = None
        self._objects: list[tuple[int, float, float, float]] = []
        self.selected: int | None = None  # the number of the object clicked last
        self.region: tuple[float, float, float, float] | None = None  # the region selected, whole cells
        self._drag: dict | None = None

    # -- state ------------------------------------------------------------------------------------
    def set_plan(self, plan: Any) -> None:
        self.plan = plan
        # Read once per plan, not per paint: they are tensor ops, and each releases the GIL, which the
        # engine's thread may then hold for a switch interval while a clip is generated (a stalled frame).
        self._objects = plan.objects(0) if plan is not None and plan.objects_editable(0) else []
        self._drag = None
        if self.selected is not None and self.selected > len(self.objects()):
            self.selected = None
        self.canvas.update()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._drag = None
        if mode != TOOL_REGION:
            self.region = None
        self.canvas.update()

    def objects(self) -> list[tuple[int, float, float, float]]:
        # A clip's drafted tracks are not edited object by object: no handles to drag.
        return self._objects

    def active(self) -> bool:
        """Whether the plan is on screen to be edited."""
        return self.plan is not None and self.canvas.overlay_rect() is not None

    # -- geometry ---------------------------------------------------------------------------------
    def fraction(self, pos: QPointF) -> tuple[float, float]:
        r = self.canvas.image_rect()
        return (pos.x() - r.left()) / max(r.width(), 1.0), (pos.y() - r.top()) / max(r.height(), 1.0)

    def point(self, fx: float, fy: float) -> QPointF:
        r = self.canvas.image_rect()
        return QPointF(r.left() + fx * r.width(), r.top() + fy * r.height())

    def object_at(self, fx: float, fy: float) -> int | None:
        """The number of the object under (fx, fy) (the first in the draft's order, as drawn on top)."""
        for n, (_, cx, cy, half) in enumerate(self.objects(), 1):
            if math.hypot(fx - cx, fy - cy) <= half:
                return n
        return None

    def handle_point(self, number: int) -> QPointF:
        _, cx, cy, half = self.objects()[number - 1]
        return self.point(cx + half, cy)

    def _cell(self, fx: float, fy: float) -> tuple[int, int]:
        rows, cols = self.plan.grid
        return min(max(int(fy * rows), 0), rows - 1), min(max(int(fx * cols), 0), cols - 1)

    # -- mouse and keys (True: the event was the tool's) ---------------------------------------------
    def press(self, pos: QPointF, button: Any) -> bool:
        if not self.active() or button != Qt.MouseButton.LeftButton:
            return False
        fx, fy = self.fraction(pos)
        if self.mode == TOOL_OBJECTS:
            if self.selected is not None and _near(pos, self.handle_point(self.selected), HANDLE_PX):
                _, _, _, half = self.objects()[self.selected - 1]
                self._drag = {"kind": "resize", "number": self.selected, "half": half}
                return True
            number = self.object_at(fx, fy)
            self.selected = number
            if number is not None:
                self._drag = {"kind": "move", "number": number, "start": (fx, fy), "now": (fx, fy), "pos": pos}
            self.canvas.update()
            return True
        if self.mode in (TOOL_PAINT, TOOL_ERASE):
            self._drag = {"kind": "brush", "cells": {self._cell(fx, fy)}, "last": (fx, fy)}
            self.canvas.update()
            return True
        if self.region is not None and _inside(self.region, fx, fy):
            self._drag = {"kind": "region-move", "start": (fx, fy), "now": (fx, fy)}
        else:
            self._drag = {"kind": "region-select", "start": (fx, fy), "now": (fx, fy)}
        return True

    def move(self, pos: QPointF) -> bool:
        if self._drag is None:
            return False
        fx, fy = self.fraction(pos)
        kind = self._drag["kind"]
        if kind == "brush":  # every cell along the stroke, however fast the mouse went
            (x0, y0), self._drag["last"] = self._drag["last"], (fx, fy)
            rows, cols = self.plan.grid
            steps = max(1, math.ceil(2 * max(abs(fx - x0) * cols, abs(fy - y0) * rows)))
            for i in range(1, steps + 1):
                self._drag["cells"].add(self._cell(x0 + (fx - x0) * i / steps, y0 + (fy - y0) * i / steps))
        elif kind == "resize":
            _, cx, cy, _ = self.objects()[self._drag["number"] - 1]
            self._drag["half"] = max(0.02, math.hypot(fx - cx, fy - cy))
        else:
            self._drag["now"] = (fx, fy)
        self.canvas.update()
        return True

    def release(self, pos: QPointF) -> bool:
        if self._drag is None:
            return False
        self.move(pos)
        drag, self._drag = self._drag, None
        kind = drag["kind"]
        if kind == "move" and not _near(pos, drag["pos"], CLICK_PX):
            (x0, y0), (x1, y1) = drag["start"], drag["now"]
            n = drag["number"]
            self.edits_made.emit([PlanEdit("move_object", number=n, dx=x1 - x0, dy=y1 - y0)], f"Move object {n}")
        elif kind == "resize":
            n = drag["number"]
            self.edits_made.emit([PlanEdit("resize_object", number=n, size=2 * drag["half"])], f"Resize object {n}")
        elif kind == "brush":
            erase = self.mode == TOOL_ERASE
            factor = 0.0 if erase else PAINT_FACTOR
            edits = [PlanEdit("scale", box=box, factor=factor, keyframe=self._keyframe())
                     for box in _runs(drag["cells"], *self.plan.grid)]
            self.edits_made.emit(edits, "Erase the canvas" if erase else "Paint the canvas")
        elif kind == "region-select":
            self.region = self._cells_box(drag["start"], drag["now"])
        elif kind == "region-move":
            dx, dy = self._whole_cells(drag["start"], drag["now"])
            if (dx, dy) != (0.0, 0.0):
                self.edits_made.emit([PlanEdit("move", box=self.region, dx=dx, dy=dy, keyframe=self._keyframe())],
                                     "Move a region of the canvas")
                left, top, right, bottom = self.region
                self.region = (left + dx, top + dy, right + dx, bottom + dy)
        self.canvas.update()
        return True

    def wants_key(self, key: int) -> bool:
        return self.active() and self.mode == TOOL_OBJECTS and self.selected is not None and \
            key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)

    def key(self, key: int) -> bool:
        if not self.wants_key(key):
            return False
        n, self.selected = self.selected, None
        self.edits_made.emit([PlanEdit("delete_object", number=n)], f"Delete object {n}")
        return True

    def add_object(self, label: int) -> None:
        """Add an object of `label` at the frame's centre (drag it where it goes)."""
        if self.plan is None:
            return
        size = default_size(self.plan)
        name = plan_labels(self.plan).get(label, f"label {label}")
        before = len(self.objects())
        self.selected = before + 1  # the new one, once the plan with it is shown (set_plan, during the emit)
        self.edits_made.emit([PlanEdit("add_object", label=label, box=(0.5 - size / 2, 0.5 - size / 2,
                                                                       0.5 + size / 2, 0.5 + size / 2))], f"Add {name}")
        if len(self.objects()) <= before:
            # Refused (a draft holds so many objects at most): nothing is selected. A number past the last object
            # made the next click index past it, an exception out of a Qt event handler that ended the studio.
            self.selected = None

    def _keyframe(self) -> int | None:
        """A clip's plan has keyframes: an edit of its canvas applies to the one at the playhead."""
        return int(self.keyframe()) if self.plan is not None and self.plan.keyframes > 1 else None

    def _cells_box(self, a: tuple, b: tuple) -> tuple[float, float, float, float] | None:
        rows, cols = self.plan.grid
        (r0, c0), (r1, c1) = self._cell(*a), self._cell(*b)
        top, bottom = min(r0, r1), max(r0, r1) + 1
        left, right = min(c0, c1), max(c0, c1) + 1
        return left / cols, top / rows, right / cols, bottom / rows

    def _whole_cells(self, a: tuple, b: tuple) -> tuple[float, float]:
        rows, cols = self.plan.grid
        return round((b[0] - a[0]) * cols) / cols, round((b[1] - a[1]) * rows) / rows

    # -- drawing ----------------------------------------------------------------------------------
    def paint(self, p: QPainter) -> None:
        if not self.active():
            return
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        r = self.canvas.image_rect()
        drag = self._drag or {}
        for n, (_, cx, cy, half) in enumerate(self.objects(), 1):
            centre = self.point(cx, cy)
            if n == self.selected:
                self._circle(p, centre, half, r, QPen(_SELECTED, 2))
                handle = self.handle_point(n)
                side = float(HANDLE_PX)
                p.fillRect(QRectF(handle.x() - side / 2, handle.y() - side / 2, side, side), _SELECTED)
            if drag.get("number") == n:
                if drag["kind"] == "move":
                    (x0, y0), (x1, y1) = drag["start"], drag["now"]
                    centre = self.point(cx + x1 - x0, cy + y1 - y0)
                else:
                    half = drag["half"]
                self._circle(p, centre, half, r, QPen(_DRAG, 2, Qt.PenStyle.DashLine))
            _number(p, centre, n)
        if drag.get("kind") == "brush":
            rows, cols = self.plan.grid
            for row, col in drag["cells"]:
                a, b = self.point(col / cols, row / rows), self.point((col + 1) / cols, (row + 1) / rows)
                p.fillRect(QRectF(a, b), QColor(255, 255, 255, 70))
        region = self.region
        if drag.get("kind") == "region-select":
            region = self._cells_box(drag["start"], drag["now"])
        if region is not None:
            left, top, right, bottom = region
            if drag.get("kind") == "region-move":
                dx, dy = self._whole_cells(drag["start"], drag["now"])
                left, top, right, bottom = left + dx, top + dy, right + dx, bottom + dy
            p.setPen(QPen(_SELECTED, 2, Qt.PenStyle.DashLine))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(self.point(left, top), self.point(right, bottom)))

    def _circle(self, p: QPainter, centre: QPointF, half: float, r: QRectF, pen: QPen) -> None:
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(centre, half * r.width(), half * r.height())


class PlanEditBar(QWidget):
    """The plan-editing row under the viewer: the tool, a menu of labels to add an object, clear, and A/B."""

    mode_chosen = Signal(str)
    add_chosen = Signal(int)  # a label
    clear_clicked = Signal()
    compare_clicked = Signal()
    keyframe_picked = Signal(int)  # a keyframe of a new clip's plan (counted from 0)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._objects_given_up = False  # the Objects tool was switched to Paint for a plan it cannot act on
        self._switching = False  # the bar, not the user, is choosing a tool
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 2)
        lay.addWidget(QLabel("Edit plan:", self))
        self.tools = QButtonGroup(self)
        self.tool_buttons: dict[str, QPushButton] = {}
        for mode, name in TOOL_NAMES.items():
            b = QPushButton(name, self)
            b.setCheckable(True)
            b.setToolTip(TOOL_TIPS[mode])
            b.toggled.connect(lambda on, m=mode: on and self._chosen(m))
            self.tools.addButton(b)
            self.tool_buttons[mode] = b
            lay.addWidget(b)
        self.tool_buttons[TOOL_OBJECTS].setChecked(True)
        self.add_button = QToolButton(self)
        self.add_button.setText("Add object")
        self.add_button.setToolTip("Add a drafted object at the centre (pick its label), then drag it into place")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_menu = QMenu(self.add_button)
        self.add_button.setMenu(self.add_menu)
        lay.addWidget(self.add_button)
        self.clear_button = QPushButton("Clear edits", self)
        self.clear_button.setToolTip("Back to the plan as the model made it (undoable)")
        self.clear_button.clicked.connect(self.clear_clicked)
        lay.addWidget(self.clear_button)
        self.compare_button = QPushButton("A/B as planned", self)
        self.compare_button.setToolTip("Compare this version, made from an edited plan, with the same request made "
                                       "from the plan as planned")
        self.compare_button.clicked.connect(self.compare_clicked)
        lay.addWidget(self.compare_button)
        # Which keyframe a stroke edits (a clip's plan): the one weighing most at the playhead, said, since the
        # model may blend two there and the stroke goes to one.
        self.keyframe_label = QLabel(self)
        lay.addWidget(self.keyframe_label)
        # A new clip's plan has no clip to scrub: the keyframe shown and edited is picked here instead.
        self.keyframe_box = QSpinBox(self)
        self.keyframe_box.setToolTip("The keyframe of the new clip's plan shown and edited (a clip on the timeline: "
                                     "the playhead picks it)")
        self.keyframe_box.valueChanged.connect(lambda v: self.keyframe_picked.emit(v - 1))
        self.keyframe_box.hide()
        lay.addWidget(self.keyframe_box)
        lay.addStretch(1)
        self.set_plan(None)

    def _chosen(self, mode: str) -> None:
        if not self._switching:
            self._objects_given_up = False  # the user's own choice: kept, not undone on the next still's plan
        self.mode_chosen.emit(mode)

    def _switch_to(self, mode: str) -> None:
        self._switching = True
        try:
            self.tool_buttons[mode].setChecked(True)
        finally:
            self._switching = False

    def set_plan(self, plan: Any) -> None:
        """Object tools only for a plan with editable drafted objects (a still's draft, not a clip's
        tracks: disabled, the reason in their tooltips); the label menu is the plan's model's labels."""
        drafted = plan is not None and plan.objects_editable(0)
        tracks = plan is not None and not drafted and plan.has_draft(0)
        self.add_button.setEnabled(drafted)
        why = ("A clip's drafted tracks cannot be edited object by object yet: paint, erase or move regions of the "
               "canvas at a keyframe (the playhead picks it)") if tracks else \
            "This plan has no drafted objects to edit (its model drafts none)" if plan is not None and not drafted \
            else ""
        self.add_button.setToolTip(why or "Add a drafted object at the centre (pick its label), then drag it into place")
        self.add_menu.clear()
        for label, name in plan_labels(plan).items() if drafted else ():
            self.add_menu.addAction(name, lambda lab=label: self.add_chosen.emit(lab))
        for b in self.tool_buttons.values():
            b.setEnabled(plan is not None)
        objects = self.tool_buttons[TOOL_OBJECTS]
        objects.setEnabled(drafted)
        objects.setToolTip(why or TOOL_TIPS[TOOL_OBJECTS])
        if objects.isChecked() and plan is not None and not drafted:
            self._switch_to(TOOL_PAINT)  # a tool that acts on this plan, not a dead one
            self._objects_given_up = True
        elif drafted and self._objects_given_up:
            self._switch_to(TOOL_OBJECTS)  # back to the tool the studio took away, on a plan it acts on again
            self._objects_given_up = False
        self.set_keyframe(0, int(plan.canvas.shape[1]) if plan is not None else 1)

    def set_keyframe(self, keyframe: int, keyframes: int) -> None:
        self.keyframe_label.setText(f"strokes edit keyframe {keyframe + 1} of {keyframes}" if keyframes > 1 else "")
        self.keyframe_box.blockSignals(True)
        self.keyframe_box.setRange(1, max(1, keyframes))
        self.keyframe_box.setValue(keyframe + 1)
        self.keyframe_box.blockSignals(False)

    def offer_keyframe_choice(self, on: bool) -> None:
        """The keyframe picked here (a new clip's plan), or by the playhead (a clip on the timeline)."""
        self.keyframe_box.setVisible(on and self.keyframe_box.maximum() > 1)


def _near(a: QPointF, b: QPointF, px: float) -> bool:
    return math.hypot(a.x() - b.x(), a.y() - b.y()) <= px


def _inside(box: tuple, fx: float, fy: float) -> bool:
    left, top, right, bottom = box
    return left <= fx <= right and top <= fy <= bottom


def _runs(cells: set, rows: int, cols: int) -> list[tuple[float, float, float, float]]:
    """Cells as boxes: each row's runs of neighbouring cells one box (fewer edits for one stroke)."""
    boxes = []
    for row in sorted({r for r, _ in cells}):
        columns = sorted(c for r, c in cells if r == row)
        start = prev = columns[0]
        for c in columns[1:] + [None]:
            if c is not None and c == prev + 1:
                prev = c
                continue
            boxes.append((start / cols, row / rows, (prev + 1) / cols, (row + 1) / rows))
            if c is not None:
                start = prev = c
    return boxes


def _number(p: QPainter, centre: QPointF, n: int) -> None:
    """An object's number, light on a dark disc: readable on any frame and over either plan layer."""
    radius = 9.0
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(_NUMBER_BACK)
    p.drawEllipse(centre, radius, radius)
    p.setPen(_NUMBER_FRONT)
    p.drawText(QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius),
               Qt.AlignmentFlag.AlignCenter, str(n))
    p.setBrush(Qt.BrushStyle.NoBrush)
