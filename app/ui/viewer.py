"""The viewer: the selected frame, the plan drawn over it, live previews, and A/B compare.

The plan overlay is computed once per plan (a few KB of numpy) and only scaled at paint time, so typing
fast costs one small array conversion per plan, not per repaint.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QHBoxLayout, QLabel, QPushButton, QRadioButton,
                               QSlider, QVBoxLayout, QWidget)

from app.ui.images import heatmap_rgba, pca_rgba, rgb_to_qimage

OVERLAY_HEATMAP, OVERLAY_PCA = "heatmap", "pca"
COMPARE_OFF, COMPARE_SPLIT, COMPARE_TOGGLE = "off", "split", "toggle"


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
        self.overlay: QImage | None = None
        self.overlay_visible = True
        self.compare_mode = COMPARE_OFF
        self.show_b = False
        self.split = 0.5
        self._overlay_pending = False
        self._dragging = False

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

    def set_overlay(self, image: QImage | None) -> None:
        self.overlay = image
        self._overlay_pending = image is not None
        self.update()

    # -- geometry -------------------------------------------------------------------------------
    def image_rect(self, image: QImage | None = None) -> QRectF:
        image = image or self.preview or self.frame
        w, h = (image.width(), image.height()) if image is not None else (16, 9)
        scale = min(self.width() / max(w, 1), self.height() / max(h, 1))
        dw, dh = w * scale, h * scale
        return QRectF((self.width() - dw) / 2, (self.height() - dh) / 2, dw, dh)

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(18, 18, 20))
        base = self.preview if self.preview is not None else self.frame
        rect = self.image_rect(base)
        # Upscaling tiny latents/frames smoothly would blur the very patches the user is judging.
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, base is not None and base.width() >= 256)
        if base is not None:
            if self.compare is not None and self.preview is None and self.compare_mode == COMPARE_TOGGLE and self.show_b:
                p.drawImage(rect, self.compare)
            else:
                p.drawImage(rect, base)
            if self.compare is not None and self.preview is None and self.compare_mode == COMPARE_SPLIT:
                x = rect.left() + rect.width() * self.split
                src_x = self.compare.width() * self.split
                p.drawImage(QRectF(x, rect.top(), rect.right() - x, rect.height()), self.compare,
                            QRectF(src_x, 0, self.compare.width() - src_x, self.compare.height()))
                p.setPen(QPen(QColor(255, 255, 255, 200), 2))
                p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
                p.drawText(QRectF(rect.left() + 4, rect.top() + 2, 80, 18), "A: now")
                p.drawText(QRectF(x + 4, rect.top() + 2, 120, 18), "B: previous")
        if self.overlay is not None and self.overlay_visible:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            p.drawImage(rect, self.overlay)
        if base is None and self.overlay is None:
            p.setPen(QColor(140, 140, 150))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "Import a photo or clip, or type an instruction to generate one")
        p.end()
        if self._overlay_pending:
            self._overlay_pending = False
            self.plan_drawn.emit(time.perf_counter())

    # -- split dragging -------------------------------------------------------------------------
    def mousePressEvent(self, e: Any) -> None:  # noqa: N802
        if self.compare_mode == COMPARE_SPLIT:
            self._dragging = True
            self._move_split(e.position().x())

    def mouseMoveEvent(self, e: Any) -> None:  # noqa: N802
        if self._dragging:
            self._move_split(e.position().x())

    def mouseReleaseEvent(self, e: Any) -> None:  # noqa: N802
        self._dragging = False

    def _move_split(self, x: float) -> None:
        r = self.image_rect()
        self.split = float(np.clip((x - r.left()) / max(r.width(), 1.0), 0.0, 1.0))
        self.split_moved.emit(self.split)
        self.update()


class Viewer(QWidget):
    """Frame canvas plus its controls: overlay kind, opacity, compare mode, play/pause."""

    play_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = FrameCanvas(self)
        self.plan: Any = None
        self.plan_keyframes = 1
        self.keyframe = 0
        self.word_index: int | None = None
        self.overlay_kind = OVERLAY_HEATMAP

        self.play_button = QPushButton("Play", self)
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause the video clip (Space)")
        self.play_button.toggled.connect(self._on_play)
        self.play_button.setEnabled(False)

        self.show_plan = QCheckBox("Plan", self)
        self.show_plan.setChecked(True)
        self.show_plan.setToolTip("Draw the MetaCanvas plan over the frame")
        self.show_plan.toggled.connect(self._on_show_plan)
        self.heat_radio = QRadioButton("Strength", self)
        self.heat_radio.setToolTip("Heatmap: how strongly the plan acts on each patch")
        self.pca_radio = QRadioButton("PCA colours", self)
        self.pca_radio.setToolTip("The canvas states in 3 principal colours: similar colour, similar plan")
        self.heat_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.heat_radio)
        group.addButton(self.pca_radio)
        self.heat_radio.toggled.connect(lambda on: on and self.set_overlay_kind(OVERLAY_HEATMAP))
        self.pca_radio.toggled.connect(lambda on: on and self.set_overlay_kind(OVERLAY_PCA))
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setFixedWidth(110)
        self.opacity.setToolTip("Plan overlay opacity")
        self.opacity.valueChanged.connect(lambda _: self._rebuild_overlay())

        self.compare_split = QCheckBox("A/B split", self)
        self.compare_split.setToolTip("Compare with the previous version side by side (drag the line)")
        self.compare_split.toggled.connect(self._on_split)
        self.compare_toggle = QPushButton("Show B", self)
        self.compare_toggle.setCheckable(True)
        self.compare_toggle.setToolTip("Flip between this version (A) and the previous one (B)")
        self.compare_toggle.toggled.connect(self._on_toggle_b)
        self.word_label = QLabel("", self)
        self.word_label.setObjectName("wordLabel")

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        for w in (self.play_button, self.show_plan, self.heat_radio, self.pca_radio, QLabel("Opacity", self),
                  self.opacity, self.word_label):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.compare_split)
        bar.addWidget(self.compare_toggle)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas, 1)
        lay.addLayout(bar)
        self._update_compare_controls()

    # -- frame / preview / compare ----------------------------------------------------------------
    def set_frame(self, image: QImage | np.ndarray | None) -> None:
        if isinstance(image, np.ndarray):
            image = rgb_to_qimage(image)
        self.canvas.set_frame(image)

    def set_preview(self, image: QImage | None) -> None:
        self.canvas.set_preview(image)

    def set_compare(self, image: QImage | np.ndarray | None) -> None:
        if isinstance(image, np.ndarray):
            image = rgb_to_qimage(image)
        self.canvas.set_compare(image)
        self._update_compare_controls()

    def set_video_mode(self, is_video: bool) -> None:
        self.play_button.setEnabled(is_video)
        if not is_video:
            self.play_button.setChecked(False)

    # -- plan overlay -----------------------------------------------------------------------------
    def set_plan(self, plan: Any) -> None:
        self.plan = plan
        self.word_index = None
        self.plan_keyframes = int(plan.canvas.shape[1]) if plan is not None else 1
        self.keyframe = min(self.keyframe, self.plan_keyframes - 1)
        self._rebuild_overlay()

    def set_overlay_kind(self, kind: str) -> None:
        self.overlay_kind = kind
        self.word_index = None
        (self.heat_radio if kind == OVERLAY_HEATMAP else self.pca_radio).setChecked(True)
        self._rebuild_overlay()

    def show_word(self, index: int | None) -> None:
        """Draw where the plan puts one instruction word (Plan.word_map); None returns to the whole plan."""
        self.word_index = index
        self._rebuild_overlay()

    def set_time_fraction(self, fraction: float) -> None:
        """Map the playhead inside a clip to the plan keyframe the model laid out for that moment."""
        k = int(round(np.clip(fraction, 0.0, 1.0) * (self.plan_keyframes - 1)))
        if k != self.keyframe:
            self.keyframe = k
            self._rebuild_overlay()

    def overlay_array(self) -> np.ndarray | None:
        """The RGBA overlay currently drawn (tests and benchmarks read it)."""
        return getattr(self, "_overlay_rgba", None)

    def _rebuild_overlay(self) -> None:
        plan = self.plan
        if plan is None:
            self._overlay_rgba = None
            self.word_label.setText("")
            self.canvas.set_overlay(None)
            return
        alpha = self.opacity.value() / 100.0
        if self.word_index is not None:
            words = plan.words[0] if plan.words else []
            name = words[self.word_index][0] if self.word_index < len(words) else "?"
            rgba = heatmap_rgba(plan.word_map(self.word_index, item=0, keyframe=self.keyframe), alpha)
            self.word_label.setText(f"where: “{name}”")
        elif self.overlay_kind == OVERLAY_PCA:
            rgba = pca_rgba(plan.pca_rgb(item=0, keyframe=self.keyframe), alpha)
            self.word_label.setText("")
        else:
            rgba = heatmap_rgba(plan.heatmap(item=0, keyframe=self.keyframe), alpha)
            self.word_label.setText("")
        self._overlay_rgba = rgba
        self.canvas.set_overlay(rgb_to_qimage(rgba))

    # -- controls -----------------------------------------------------------------------------------
    def _on_show_plan(self, on: bool) -> None:
        self.canvas.overlay_visible = on
        self.canvas.update()

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        self.play_toggled.emit(on)

    def _on_split(self, on: bool) -> None:
        self.canvas.compare_mode = COMPARE_SPLIT if on else COMPARE_OFF
        if on:
            self.compare_toggle.setChecked(False)
        self.canvas.update()

    def _on_toggle_b(self, on: bool) -> None:
        if on:
            self.compare_split.setChecked(False)
            self.canvas.compare_mode = COMPARE_TOGGLE
        elif self.canvas.compare_mode == COMPARE_TOGGLE:
            self.canvas.compare_mode = COMPARE_OFF
        self.canvas.show_b = on
        self.compare_toggle.setText("Show A" if on else "Show B")
        self.canvas.update()

    def _update_compare_controls(self) -> None:
        has_b = self.canvas.compare is not None
        self.compare_split.setEnabled(has_b)
        self.compare_toggle.setEnabled(has_b)
        if not has_b:
            self.compare_split.setChecked(False)
            self.compare_toggle.setChecked(False)
