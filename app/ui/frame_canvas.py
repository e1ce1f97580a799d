"""The viewer's canvas: the frame (or the blank of a frame to be), the plan's layer images over it, the A/B
compare, zoom and pan, and the plan edit tool's drawing and mouse handling (app/ui/plan_edit_tool.py).

It paints what the Viewer (app/ui/viewer.py) hands it and decides nothing about plans: the layers arrive as
images, bottom first, and are stacked by Qt at paint time.

Zoom and pan: the wheel (with or without Ctrl) zooms around the mouse, a middle-button drag pans, and so does
a left drag that nothing else takes (the A/B split line and an active plan edit tool come first, so plan
editing keeps its left button; a left drag pans only when zoomed in); "Fit" goes back to the whole frame.
Space stays Play: it is the window's key. Everything drawn and every plan edit goes through `image_rect`, so
the overlay and the tool follow the view.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from app.ui.plan_edit_tool import PlanEditTool

COMPARE_OFF, COMPARE_SPLIT, COMPARE_TOGGLE = "off", "split", "toggle"

_BACKGROUND = QColor(18, 18, 20)
# What a frame-to-be looks like before it exists: neutral, lighter than the background so its shape
# (the request's aspect ratio) is visible, dark enough that every overlay colour reads on it.
_BLANK = QColor(52, 52, 56)


class FrameCanvas(QWidget):
    """Paints frame + overlay + compare. Emits `plan_drawn(t)` the first time a new plan reaches the screen."""

    plan_drawn = Signal(float)  # perf_counter() when the overlay of the newest plan was painted
    split_moved = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 180)
        self.frame: QImage | None = None
        self.compare: QImage | None = None
        self.preview: QImage | None = None
        self.overlay: QImage | None = None  # the top layer image (None: no plan drawn)
        self.overlay_layers: list[QImage] = []
        self.overlay_visible = True
        self.compare_mode = COMPARE_OFF
        self.show_b = False
        self.split = 0.5
        self.target_size: tuple[int, int] | None = None  # the request's (width, height), with no frame
        self.label_rects: list[QRectF] = []  # where the A/B labels were last painted
        self.labels = ("A: now", "B: previous")  # what A and B are (the A/B of "as planned" names them)
        self.tool: PlanEditTool | None = None  # the hands on the plan (app/ui/plan_edit_tool.py)
        self._overlay_pending = False
        self._dragging = False
        self.zoom = 1.0  # 1: the whole frame fits; 2: twice as large
        self.pan = QPointF(0.0, 0.0)  # pixels the content's centre is moved from the widget's centre
        self._pan_from: QPointF | None = None  # where the last pan step ended, while panning
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # Delete removes the object clicked

    # -- inputs ---------------------------------------------------------------------------------
    def set_frame(self, image: QImage | None) -> None:
        self.frame = image
        self.update()

    def set_preview(self, image: QImage | None) -> None:
        self.preview = image
        self.update()

    def set_compare(self, image: QImage | None) -> None:
        self.compare = image
        self.update()

    def set_overlay(self, layers: list[QImage] | None) -> None:
        """The plan's layer images, bottom first, each drawn over the whole frame (None or []: no plan)."""
        self.overlay_layers = [image for image in (layers or []) if image is not None]
        self.overlay = self.overlay_layers[-1] if self.overlay_layers else None
        self._overlay_pending = self.overlay is not None
        self.update()

    def set_target_size(self, width: int | None, height: int | None) -> None:
        self.target_size = (int(width), int(height)) if width and height and width > 0 and height > 0 else None
        self.update()

    # -- geometry -------------------------------------------------------------------------------
    def content_size(self) -> tuple[int, int]:
        """(width, height) of what is shown: the preview or frame; without one, the request's size, so a
        plan is drawn on the shape its result will have; else the plan's own grid."""
        base = self.preview if self.preview is not None else self.frame
        if base is not None:
            return base.width(), base.height()
        if self.target_size is not None:
            return self.target_size
        if self.overlay is not None:
            return self.overlay.width(), self.overlay.height()
        return 16, 9

    def image_rect(self, image: QImage | None = None) -> QRectF:
        """The content's rectangle: as large as fits, centred, never stretched."""
        w, h = (image.width(), image.height()) if image is not None else self.content_size()
        scale = min(self.width() / max(w, 1), self.height() / max(h, 1)) * self.zoom
        dw, dh = w * scale, h * scale
        return QRectF((self.width() - dw) / 2 + self.pan.x(), (self.height() - dh) / 2 + self.pan.y(), dw, dh)

    # -- zoom and pan ---------------------------------------------------------------------------------
    MIN_ZOOM, MAX_ZOOM = 0.1, 64.0

    def zoom_at(self, pos: QPointF, factor: float) -> None:
        """Zoom by `factor`, keeping the point of the content under `pos` where it is."""
        before = self.image_rect()
        fx = (pos.x() - before.left()) / max(before.width(), 1e-9)
        fy = (pos.y() - before.top()) / max(before.height(), 1e-9)
        self.zoom = float(np.clip(self.zoom * factor, self.MIN_ZOOM, self.MAX_ZOOM))
        self.pan = QPointF(0.0, 0.0)
        centred = self.image_rect()
        self.pan = QPointF(pos.x() - fx * centred.width() - centred.left(),
                           pos.y() - fy * centred.height() - centred.top())
        self.update()

    def pan_by(self, dx: float, dy: float) -> None:
        self.pan = QPointF(self.pan.x() + dx, self.pan.y() + dy)
        self.update()

    def fit(self) -> None:
        """The whole frame, as large as fits, centred."""
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    def wheelEvent(self, e: Any) -> None:  # noqa: N802
        steps = e.angleDelta().y() / 120.0
        if steps:
            self.zoom_at(e.position(), 1.25 ** steps)

    def overlay_rect(self) -> QRectF | None:
        """Where the plan overlay is drawn (the frame's rectangle, or the blank's); None when it is not."""
        return self.image_rect() if self.overlay is not None and self.overlay_visible else None

    # -- painting -------------------------------------------------------------------------------
    def _draw_label(self, p: QPainter, x: float, y: float, text: str) -> None:
        """Light text on a dark rounded backing: readable on any image, bright or dark."""
        metrics = p.fontMetrics()
        box = QRectF(x, y, metrics.horizontalAdvance(text) + 12, metrics.height() + 6)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 210))
        p.drawRoundedRect(box, 5, 5)
        p.setPen(QColor(245, 245, 245))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
        p.setBrush(Qt.BrushStyle.NoBrush)
        self.label_rects.append(box)

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), _BACKGROUND)
        self.label_rects = []
        base = self.preview if self.preview is not None else self.frame
        rect = self.image_rect()
        # Upscaling tiny latents/frames smoothly would blur the very patches the user is judging.
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, base is not None and base.width() >= 256)
        comparing = base is not None and self.compare is not None and self.preview is None
        if base is not None:
            if comparing and self.compare_mode == COMPARE_TOGGLE and self.show_b:
                p.drawImage(rect, self.compare)
            else:
                p.drawImage(rect, base)
            if comparing and self.compare_mode == COMPARE_SPLIT:
                x = rect.left() + rect.width() * self.split
                src_x = self.compare.width() * self.split
                p.drawImage(QRectF(x, rect.top(), rect.right() - x, rect.height()), self.compare,
                            QRectF(src_x, 0, self.compare.width() - src_x, self.compare.height()))
                p.setPen(QPen(QColor(255, 255, 255, 200), 2))
                p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        elif self.target_size is not None or self.overlay is not None:
            p.fillRect(rect, _BLANK)  # the frame to be, at the request's aspect ratio
        if self.overlay is not None and self.overlay_visible:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            for layer in self.overlay_layers:
                p.drawImage(rect, layer)
        if comparing and self.compare_mode == COMPARE_SPLIT:  # labels last: nothing may cover them
            x = rect.left() + rect.width() * self.split
            self._draw_label(p, rect.left() + 4, rect.top() + 4, self.labels[0])
            self._draw_label(p, x + 4, rect.top() + 4, self.labels[1])
        elif comparing and self.compare_mode == COMPARE_TOGGLE:
            self._draw_label(p, rect.left() + 4, rect.top() + 4, self.labels[1] if self.show_b else self.labels[0])
        if self.tool is not None and self.overlay is not None and self.overlay_visible:
            self.tool.paint(p)
        if base is None and self.overlay is None:
            p.setPen(QColor(140, 140, 150))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "Import a photo or clip, or type an instruction to generate one")
        p.end()
        if self._overlay_pending:
            self._overlay_pending = False
            self.plan_drawn.emit(time.perf_counter())

    # -- split dragging, else the plan tool, else panning ---------------------------------------------
    def mousePressEvent(self, e: Any) -> None:  # noqa: N802
        if e.button() == Qt.MouseButton.MiddleButton:
            self._pan_from = e.position()
        elif self.compare_mode == COMPARE_SPLIT:
            self._dragging = True
            self._move_split(e.position().x())
        elif self.tool is not None and self.tool.press(e.position(), e.button()):
            pass
        elif e.button() == Qt.MouseButton.LeftButton and self.zoom > 1.0:  # at fit, a stray drag moves nothing
            self._pan_from = e.position()

    def mouseMoveEvent(self, e: Any) -> None:  # noqa: N802
        if self._pan_from is not None:
            last, self._pan_from = self._pan_from, e.position()
            self.pan_by(e.position().x() - last.x(), e.position().y() - last.y())
        elif self._dragging:
            self._move_split(e.position().x())
        elif self.tool is not None:
            self.tool.move(e.position())

    def mouseReleaseEvent(self, e: Any) -> None:  # noqa: N802
        if self._pan_from is None and not self._dragging and self.tool is not None:
            self.tool.release(e.position())
        self._dragging = False
        self._pan_from = None

    def event(self, e: Any) -> bool:  # noqa: N802
        # The window's Delete removes the selected clip; with a plan object clicked, Delete is the tool's.
        if e.type() == QEvent.Type.ShortcutOverride and self.tool is not None and self.tool.wants_key(e.key()):
            e.accept()
            return True
        return super().event(e)

    def keyPressEvent(self, e: Any) -> None:  # noqa: N802
        if self.tool is None or not self.tool.key(e.key()):
            super().keyPressEvent(e)

    def _move_split(self, x: float) -> None:
        r = self.image_rect()
        self.split = float(np.clip((x - r.left()) / max(r.width(), 1.0), 0.0, 1.0))
        self.split_moved.emit(self.split)
        self.update()
