"""The viewer: the selected frame, the plan drawn over it, live previews, and A/B compare.

A plan is drawn as two layers, each switchable and named for what it is: the drafted layout (where a
drafting model decided to put objects; only plans that have one) and the canvas effect (what the canvas
connector adds to each patch). They answer different questions and disagree on drafted plans, so they
are never merged into one "plan heatmap".

The overlay is computed once per plan (a few KB of numpy) and only scaled at paint time, so typing
fast costs one small array conversion per plan, not per repaint. The layers go to the canvas as separate
images and Qt stacks them while it paints (its compositing is native and far cheaper than ours in numpy at
the drafted layout's 256 px); the numpy composite is made only when asked for (overlay_array). Overlays
are kept per playhead blend, so a looping clip draws each frame's overlay once, and the handlers that
change several things at once (a new plan and its frame) rebuild once (batched_overlay).

A video plan has a few keyframes; the overlay follows the playhead, blending the two keyframes around it
with the weights the model itself uses at that frame (app/ui/plan_time.py), so scrubbing a clip shows the
plan that shaped each frame. Each keyframe's maps are computed once per plan and only blended per frame.

The painting, zoom and pan are the canvas's (app/ui/frame_canvas.py): the wheel zooms around the mouse, a
middle-button drag pans, and so does a left drag that nothing else takes; "Fit" goes back to the whole frame.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QHBoxLayout, QLabel, QPushButton, QRadioButton,
                               QSlider, QVBoxLayout, QWidget)

from app.ui.frame_canvas import COMPARE_OFF, COMPARE_SPLIT, COMPARE_TOGGLE, FrameCanvas
from app.ui.images import draft_rgba, heatmap_rgba, over, pca_rgba, rgb_to_qimage
from app.ui.plan_edit_tool import PlanEditBar, PlanEditTool
from app.ui.plan_time import DEFAULT_FRAME_STEP, keyframe_weights

OVERLAY_HEATMAP, OVERLAY_PCA = "heatmap", "pca"
# Overlays kept per plan: a clip's frames are at most a few dozen playhead blends.
OVERLAY_CACHE_SIZE = 64
LAYER_DRAFT, LAYER_EFFECT = "draft", "effect"

DRAFT_TIP = ("Drafted layout (cyan outlines): where the model's layout drafter placed the objects before "
             "planning (a clip's: each object's track, which starts where the given image has the object when "
             "the clip is made from an image). The canvas was started from this draft; it is a guess at the "
             "layout, not what the canvas does.")
NO_DRAFT_TIP = ("No drafted layout: the model that made this plan has no layout drafter, or did not draft "
                "this request. Only the canvas effect can be shown.")
EFFECT_TIP = ("Canvas effect: how strongly the canvas changes the picture at each patch, i.e. what the "
              "canvas connector adds to the image being generated, per keyframe. Brighter means a stronger "
              "push. \u201cStrength\u201d draws it as a heatmap, \u201cPCA colours\u201d shows what kind "
              "of push (similar colour, similar plan).")
EFFECT_ESTIMATED_TIP = (" This plan carries no recorded connector output, so the effect is estimated from "
                        "how much each canvas cell stands out.")


class Viewer(QWidget):
    """Frame canvas plus its controls: plan layers, overlay kind, opacity, compare mode, play/pause."""

    play_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = FrameCanvas(self)
        self.plan: Any = None
        self.plan_keyframes = 1
        self.keyframe = 0  # the keyframe weighing most at the playhead
        self.keyframe_weights: list[tuple[int, float]] = [(0, 1.0)]
        # The playhead is past the frames the plan laid out (a partial edit plays on as its source did):
        # the plan is not drawn over frames it did not make.
        self.past_plan = False
        self._maps: dict[tuple, Any] = {}  # (what, keyframe[, word]) -> that keyframe's map, for this plan
        self.word_index: int | None = None
        self.overlay_kind = OVERLAY_HEATMAP
        self._layers: dict[str, np.ndarray | None] = {LAYER_DRAFT: None, LAYER_EFFECT: None}
        self._overlay_rgba: np.ndarray | None = None  # the layers composited in numpy, made when asked for
        # This plan's overlays by what decides them (blend, word, layers, kind, opacity): numpy layers and
        # their images. A clip's frames are a handful of blends, so a looping clip rebuilds nothing.
        self._overlay_cache: dict[tuple, tuple[dict, list[QImage]]] = {}
        self._batch_depth = 0
        self._rebuild_pending = False
        self._draft_wanted = True  # the user's choice, kept while a plan without a draft greys the box out

        self.play_button = QPushButton("Play", self)
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause the video clip (Space)")
        self.play_button.toggled.connect(self._on_play)
        self.play_button.setEnabled(False)

        self.show_plan = QCheckBox("Plan", self)
        self.show_plan.setChecked(True)
        self.show_plan.setToolTip("Draw the MetaCanvas plan over the frame")
        self.show_plan.toggled.connect(self._on_show_plan)
        self.plan_caption = QLabel("", self)
        self.plan_caption.setObjectName("planCaption")
        self.plan_caption.setToolTip("Which plan the overlay shows")
        self.draft_check = QCheckBox("Drafted layout", self)
        self.draft_check.setChecked(True)
        self.draft_check.setEnabled(False)
        self.draft_check.setToolTip(NO_DRAFT_TIP)
        self.draft_check.toggled.connect(self._on_draft_toggled)
        self.effect_check = QCheckBox("Canvas effect", self)
        self.effect_check.setChecked(True)
        self.effect_check.setToolTip(EFFECT_TIP)
        self.effect_check.toggled.connect(self._on_effect_toggled)
        self.heat_radio = QRadioButton("Strength", self)
        self.heat_radio.setToolTip("Canvas effect as a heatmap: brighter patches are pushed harder by the canvas")
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

        self.fit_button = QPushButton("Fit", self)
        self.fit_button.setToolTip("Show the whole frame (the wheel zooms, a middle-button drag pans)")
        self.fit_button.clicked.connect(self.canvas.fit)
        self.compare_split = QCheckBox("A/B split", self)
        self.compare_split.setToolTip("Compare with the previous version side by side (drag the line)")
        self.compare_split.toggled.connect(self._on_split)
        self.compare_toggle = QPushButton("Show B", self)
        self.compare_toggle.setCheckable(True)
        self.compare_toggle.setToolTip("Flip between this version (A) and the previous one (B)")
        self.compare_toggle.toggled.connect(self._on_toggle_b)
        self.word_label = QLabel("", self)
        self.word_label.setObjectName("wordLabel")
        self.edit_tool = PlanEditTool(self.canvas, keyframe=lambda: self.keyframe)
        self.canvas.tool = self.edit_tool
        self.edit_bar = PlanEditBar(self)
        self.edit_bar.mode_chosen.connect(self.edit_tool.set_mode)
        self.edit_bar.keyframe_picked.connect(lambda k: self._set_weights([(k, 1.0)]))
        self.edit_bar.add_chosen.connect(self.edit_tool.add_object)

        # Two rows, so the viewer stays as narrow as it was between the docks: what is shown and compared
        # above, how the plan is drawn below.
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        for w in (self.play_button, self.show_plan, self.plan_caption):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.compare_split)
        bar.addWidget(self.compare_toggle)
        layers = QHBoxLayout()
        layers.setContentsMargins(4, 0, 4, 2)
        for w in (self.draft_check, self.effect_check, self.heat_radio, self.pca_radio, QLabel("Opacity", self),
                  self.opacity, self.word_label):
            layers.addWidget(w)
        layers.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.canvas, 1)
        lay.addLayout(bar)
        lay.addLayout(layers)
        lay.addWidget(self.edit_bar)
        self._update_compare_controls()
        self._update_layer_controls()

    # -- frame / preview / compare ----------------------------------------------------------------
    def set_frame(self, image: QImage | np.ndarray | None) -> None:
        """Show a frame; None clears it, so a plan is drawn on a blank (see set_target_size), never over
        the frame of a clip that is no longer selected."""
        if isinstance(image, np.ndarray):
            image = rgb_to_qimage(image)
        self.canvas.set_frame(image)

    def set_target_size(self, width: int | None, height: int | None) -> None:
        """The size the next result will have: with no frame, the plan is drawn on a neutral blank of this
        aspect ratio, centred and never stretched. None (or 0) forgets it."""
        self.canvas.set_target_size(width, height)

    def set_preview(self, image: QImage | None) -> None:
        self.canvas.set_preview(image)

    def set_compare(self, image: QImage | np.ndarray | None) -> None:
        if isinstance(image, np.ndarray):
            image = rgb_to_qimage(image)
        self.canvas.set_compare(image)
        self._update_compare_controls()

    def set_compare_labels(self, a: str, b: str) -> None:
        """What the A/B labels call the two pictures ("A: now", "B: previous" unless told)."""
        self.canvas.labels = (a, b)
        self.canvas.update()

    def set_video_mode(self, is_video: bool) -> None:
        self.play_button.setEnabled(is_video)
        if not is_video:
            self.play_button.setChecked(False)

    # -- plan overlay -----------------------------------------------------------------------------
    def set_plan(self, plan: Any, caption: str | None = None) -> None:
        """Draw `plan` (None: no plan); `caption` says which plan it is ("Live plan", "Plan stored with v2")."""
        self.plan = plan
        self.word_index = None
        self.past_plan = False
        self._maps = {}
        self._overlay_cache = {}
        self.plan_keyframes = int(plan.canvas.shape[1]) if plan is not None else 1
        if any(k >= self.plan_keyframes for k, w in self.keyframe_weights if w > 0):
            self.keyframe_weights = [(min(k, self.plan_keyframes - 1), w) for k, w in self.keyframe_weights]
        self.keyframe = min(self.keyframe, self.plan_keyframes - 1)
        self.plan_caption.setText((caption or "") if plan is not None else "")
        self.edit_tool.set_plan(plan)
        self.edit_bar.set_plan(plan)
        self.edit_bar.set_keyframe(self.keyframe, self.plan_keyframes)
        self._update_layer_controls()
        self._rebuild_overlay()

    def has_draft(self) -> bool:
        """Whether the plan shown has a drafted layout to draw."""
        return self.plan is not None and bool(self.plan.has_draft(0))

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        """Switch one plan layer (LAYER_DRAFT or LAYER_EFFECT) on or off, as its checkbox does."""
        if layer == LAYER_DRAFT:
            self._draft_wanted = visible
            if self.draft_check.isEnabled():
                self.draft_check.setChecked(visible)
        elif layer == LAYER_EFFECT:
            self.effect_check.setChecked(visible)
        else:
            raise ValueError(f"unknown plan layer {layer!r}; expected {LAYER_DRAFT!r} or {LAYER_EFFECT!r}")

    def visible_layers(self) -> list[str]:
        """The plan layers drawn now (bottom first)."""
        self._flush_overlay()
        return [name for name in (LAYER_EFFECT, LAYER_DRAFT) if self._layers[name] is not None]

    def layer_array(self, layer: str) -> np.ndarray | None:
        """One layer's RGBA as drawn (None when off or absent): the canvas effect (or PCA colours, or a
        word's map) one pixel per cell; the drafted layout images.draft_scale pixels per cell."""
        self._flush_overlay()
        return self._layers[layer]

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
        """The plan at a moment `fraction` (0..1) of a still's time on the timeline: its keyframes blended
        linearly, as the model spreads them over a clip (for a clip, set_plan_frame is exact)."""
        if self.past_plan:
            self.past_plan = False
            self._rebuild_overlay()
        pos = float(np.clip(fraction, 0.0, 1.0)) * (self.plan_keyframes - 1)
        lo = min(int(np.floor(pos)), max(0, self.plan_keyframes - 2))
        frac = pos - lo
        weights = [(0, 1.0)] if self.plan_keyframes <= 1 else [(lo, 1.0 - frac), (lo + 1, frac)]
        self._set_weights(weights)

    def set_plan_frame(self, frame: int, frames: int, step: int = DEFAULT_FRAME_STEP) -> None:
        """The plan at pixel frame `frame` of the `frames`-frame clip it lays out: the keyframes blended as
        the model blends them for that frame (step: how the model's codec packs frames, Wan's 4). Past the
        clip's `frames` nothing is drawn: those frames were not made by this plan."""
        past = frame >= frames
        if past != self.past_plan:
            self.past_plan = past
            self._rebuild_overlay()
        self._set_weights(keyframe_weights(frame, frames, self.plan_keyframes, step))

    def _set_weights(self, weights: list[tuple[int, float]]) -> None:
        weights = [(int(k), float(w)) for k, w in weights]
        if weights == self.keyframe_weights:
            return
        self.keyframe_weights = weights
        self.keyframe = max(weights, key=lambda kw: (kw[1], kw[0]))[0]
        self.edit_bar.set_keyframe(self.keyframe, self.plan_keyframes)
        self._rebuild_overlay()

    def _map(self, what: str, keyframe: int, word: int | None = None) -> Any:
        """One keyframe's map of the plan shown, computed once per plan: "effect" (canvas_effect), "pca"
        (pca_rgb, as float), "word" (word_map) or "draft" (draft_map, None without a draft)."""
        key = (what, keyframe, word)
        if key not in self._maps:
            plan = self.plan
            if what == "effect":
                value = plan.canvas_effect(item=0, keyframe=keyframe)
            elif what == "pca":
                value = plan.pca_rgb(item=0, keyframe=keyframe).astype(np.float32)
            elif what == "word":
                value = plan.word_map(word, item=0, keyframe=keyframe)
            else:
                value = plan.draft_map(item=0, keyframe=keyframe)
            self._maps[key] = value
        return self._maps[key]

    def _blend(self, what: str, word: int | None = None) -> Any:
        """The map under the playhead: the keyframes' maps weighted as the model weighs them there."""
        parts = [(self._map(what, k, word), w) for k, w in self.keyframe_weights if w > 1e-6]
        if not parts or any(m is None for m, _ in parts):
            return None
        if len(parts) == 1:
            return parts[0][0]
        return sum(np.asarray(m, np.float32) * w for m, w in parts)

    def overlay_array(self) -> np.ndarray | None:
        """The RGBA overlay currently drawn: the visible layers composited, one pixel per cell when only
        the canvas layer is on, images.draft_scale pixels per cell when the drafted layout is (tests and
        benchmarks read it); None with no plan or every layer off."""
        self._flush_overlay()
        if self._overlay_rgba is None:
            draft, effect = self._layers[LAYER_DRAFT], self._layers[LAYER_EFFECT]
            if draft is not None and effect is not None:
                self._overlay_rgba = over(draft, effect)
            else:
                self._overlay_rgba = draft if draft is not None else effect
        return self._overlay_rgba

    @contextmanager
    def batched_overlay(self) -> Iterator[None]:
        """Changes made inside (a new plan, then the playhead's blend) rebuild the overlay once, at the end."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            self._flush_overlay()

    def _flush_overlay(self) -> None:
        if self._rebuild_pending and self._batch_depth == 0:
            self._rebuild_pending = False
            self._rebuild_overlay()

    def _rebuild_overlay(self) -> None:
        if self._batch_depth:
            self._rebuild_pending = True
            return
        plan = self.plan
        self._layers = {LAYER_DRAFT: None, LAYER_EFFECT: None}
        self._overlay_rgba = None
        self.word_label.setText("")
        if plan is None or self.past_plan:
            self.canvas.set_overlay(None)
            return
        key = (tuple(self.keyframe_weights), self.word_index, self.overlay_kind, self.effect_check.isChecked(),
               self.draft_check.isEnabled() and self.draft_check.isChecked(), self.opacity.value())
        if key in self._overlay_cache:
            self._layers, images = self._overlay_cache.pop(key)
            self._overlay_cache[key] = (self._layers, images)  # the most recently used goes last
            self._show_word_label()
            self.canvas.set_overlay(images)
            return
        alpha = self.opacity.value() / 100.0
        effect = None
        if self.word_index is not None:  # a word asked for explicitly is shown even with the layer off
            effect = heatmap_rgba(self._blend("word", self.word_index), alpha)
            self._show_word_label()
        elif self.effect_check.isChecked():
            if self.overlay_kind == OVERLAY_PCA:
                effect = pca_rgba(np.clip(np.round(self._blend("pca")), 0, 255).astype(np.uint8), alpha)
            else:
                effect = heatmap_rgba(self._blend("effect"), alpha)
        draft = None
        if self.draft_check.isEnabled() and self.draft_check.isChecked():
            cover = self._blend("draft")
            draft = draft_rgba(cover, alpha) if cover is not None else None
        self._layers = {LAYER_DRAFT: draft, LAYER_EFFECT: effect}
        # Premultiplied once here, not by Qt at every paint.
        images = [rgb_to_qimage(layer).convertToFormat(QImage.Format.Format_RGBA8888_Premultiplied)
                  for layer in (effect, draft) if layer is not None]
        if len(self._overlay_cache) >= OVERLAY_CACHE_SIZE:
            self._overlay_cache.pop(next(iter(self._overlay_cache)))
        self._overlay_cache[key] = (self._layers, images)
        self.canvas.set_overlay(images)

    def _show_word_label(self) -> None:
        if self.word_index is not None:
            words = self.plan.words[0] if self.plan.words else []
            name = words[self.word_index][0] if self.word_index < len(words) else "?"
            self.word_label.setText(f"where: “{name}”")

    def _update_layer_controls(self) -> None:
        """The draft box is offered only for a plan that has a draft; the effect's tooltip says when the
        effect is an estimate."""
        drafted = self.has_draft()
        self.draft_check.blockSignals(True)
        self.draft_check.setEnabled(drafted)
        self.draft_check.setChecked(self._draft_wanted and drafted)
        self.draft_check.blockSignals(False)
        self.draft_check.setToolTip(DRAFT_TIP if drafted or self.plan is None else NO_DRAFT_TIP)
        estimated = self.plan is not None and getattr(self.plan, "strength", None) is None
        self.effect_check.setToolTip(EFFECT_TIP + (EFFECT_ESTIMATED_TIP if estimated else ""))

    # -- controls -----------------------------------------------------------------------------------
    def _on_draft_toggled(self, on: bool) -> None:
        self._draft_wanted = on
        self._rebuild_overlay()

    def _on_effect_toggled(self, on: bool) -> None:
        self.heat_radio.setEnabled(on)
        self.pca_radio.setEnabled(on)
        self._rebuild_overlay()

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
