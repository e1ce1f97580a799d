"""The timeline: an image track and a video track, a playhead, zoom, clip selection, thumbnails.

It is a view only: the main window gives it `TimelineClip`s made from the project model and listens to
`selection_changed` and `scrubbed`. Thumbnails arrive later from worker threads (`set_thumbnails`), so
painting never decodes video.

A clip made by a video model carries its plan's keyframes (`plan_keyframes`, small heatmaps of the canvas
effect): each is drawn in a thin strip along the clip's bottom edge, at the place in the clip where the
model put that keyframe (app/ui/plan_time.py), so the plan can be read against the frames it shaped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from app.ui.plan_time import DEFAULT_FRAME_STEP, keyframe_places

IMAGE_TRACK, VIDEO_TRACK = "image", "video"
TRACKS = (IMAGE_TRACK, VIDEO_TRACK)


@dataclass
class TimelineClip:
    id: str
    track: str  # IMAGE_TRACK | VIDEO_TRACK
    start: float  # seconds on the timeline
    duration: float  # seconds
    name: str
    frames: int = 1
    fps: float = 24.0
    thumbnails: list[QImage] = field(default_factory=list)
    media_id: str = ""  # the media the clip shows now (its active version)
    plan_key: str = ""  # the plan stored with the active version (its file), "" for none
    plan_keyframes: list[QImage] = field(default_factory=list)  # that plan's keyframes, as heatmaps
    plan_frames: int = 1  # frames of the clip the plan lays out
    plan_step: int = DEFAULT_FRAME_STEP  # how the model that made it packs frames

    @property
    def end(self) -> float:
        return self.start + self.duration


class TimelineView(QWidget):
    selection_changed = Signal(list)  # clip ids, in click order
    scrubbed = Signal(float)  # playhead seconds

    HEADER_W = 70
    RULER_H = 18
    TRACK_H = 54
    PLAN_STRIP_H = 12  # the keyframe strip along a clip's bottom edge

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clips: list[TimelineClip] = []
        self.selected: list[str] = []
        self.playhead = 0.0
        self.px_per_second = 60.0
        self.scroll = 0.0  # seconds at the left edge
        self._scrubbing = False
        self.setMinimumHeight(self.RULER_H + self.TRACK_H * len(TRACKS) + 6)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

    # -- data ------------------------------------------------------------------------------------
    def set_clips(self, clips: list[TimelineClip]) -> None:
        # Keep a clip's thumbnails only while it shows the same media: after undo/redo of a version the
        # strip must show the version now active, not the one before.
        old = {(c.id, c.media_id): c.thumbnails for c in self.clips}
        old_plans = {(c.id, c.plan_key): c.plan_keyframes for c in self.clips if c.plan_key}
        for c in clips:
            if not c.thumbnails and (c.id, c.media_id) in old:
                c.thumbnails = old[(c.id, c.media_id)]
            if not c.plan_keyframes and (c.id, c.plan_key) in old_plans:
                c.plan_keyframes = old_plans[(c.id, c.plan_key)]
        self.clips = clips
        ids = {c.id for c in clips}
        kept = [s for s in self.selected if s in ids]
        if kept != self.selected:
            self.selected = kept
            self.selection_changed.emit(list(kept))
        self.update()

    def set_thumbnails(self, clip_id: str, images: list[QImage]) -> None:
        for c in self.clips:
            if c.id == clip_id:
                c.thumbnails = images
        self.update()

    def set_plan_keyframes(self, plan_key: str, images: list[QImage]) -> None:
        """The keyframe heatmaps of the plan `plan_key`, for every clip that shows it."""
        for c in self.clips:
            if c.plan_key == plan_key:
                c.plan_keyframes = images
        self.update()

    def plan_strip_rects(self, clip: TimelineClip) -> list[QRectF]:
        """Where each keyframe of the clip's plan is drawn (empty without a plan): a square-celled heatmap
        in the strip along the clip's bottom edge, centred on the keyframe's place in the clip."""
        if not clip.plan_keyframes:
            return []
        r = self.clip_rect(clip)
        h = float(self.PLAN_STRIP_H)
        top = r.bottom() - h - 1
        rects = []
        places = keyframe_places(clip.plan_frames, len(clip.plan_keyframes), clip.plan_step)
        for img, place in zip(clip.plan_keyframes, places):
            w = h * img.width() / max(img.height(), 1)
            x = min(max(r.left() + place * r.width() - w / 2, r.left() + 1), r.right() - w - 1)
            rects.append(QRectF(x, top, w, h))
        return rects

    def clip(self, clip_id: str) -> TimelineClip | None:
        return next((c for c in self.clips if c.id == clip_id), None)

    def select(self, ids: list[str]) -> None:
        if ids != self.selected:
            self.selected = list(ids)
            self.selection_changed.emit(list(ids))
            self.update()

    def set_playhead(self, seconds: float, emit: bool = False) -> None:
        self.playhead = max(0.0, seconds)
        if emit:
            self.scrubbed.emit(self.playhead)
        self.update()

    def set_zoom(self, px_per_second: float) -> None:
        self.px_per_second = max(4.0, min(2000.0, px_per_second))
        self.update()

    def duration(self) -> float:
        return max((c.end for c in self.clips), default=0.0)

    # -- geometry --------------------------------------------------------------------------------
    def x_of(self, seconds: float) -> float:
        return self.HEADER_W + (seconds - self.scroll) * self.px_per_second

    def seconds_at(self, x: float) -> float:
        return max(0.0, (x - self.HEADER_W) / self.px_per_second + self.scroll)

    def track_rect(self, track: str) -> QRectF:
        i = TRACKS.index(track)
        return QRectF(self.HEADER_W, self.RULER_H + i * self.TRACK_H, self.width() - self.HEADER_W, self.TRACK_H)

    def clip_rect(self, clip: TimelineClip) -> QRectF:
        tr = self.track_rect(clip.track)
        x0, x1 = self.x_of(clip.start), self.x_of(clip.end)
        return QRectF(x0, tr.top() + 3, max(6.0, x1 - x0), tr.height() - 6)

    def clip_at(self, x: float, y: float) -> TimelineClip | None:
        for c in reversed(self.clips):
            if self.clip_rect(c).contains(x, y):
                return c
        return None

    # -- painting --------------------------------------------------------------------------------
    def paintEvent(self, event: Any) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(26, 26, 30))
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        p.setFont(small)
        # ruler: a tick every "nice" interval so labels never overlap at any zoom
        step = next((s for s in (0.04, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
                     if s * self.px_per_second >= 50), 600)
        p.setPen(QColor(120, 120, 130))
        t = (int(self.scroll / step)) * step
        while self.x_of(t) < self.width():
            x = self.x_of(t)
            if x >= self.HEADER_W:
                p.drawLine(int(x), self.RULER_H - 5, int(x), self.RULER_H)
                p.drawText(int(x) + 2, self.RULER_H - 6, f"{t:g}s")
            t += step
        for track in TRACKS:
            tr = self.track_rect(track)
            p.fillRect(QRectF(0, tr.top(), self.HEADER_W, tr.height()), QColor(34, 34, 40))
            p.fillRect(tr, QColor(30, 30, 35) if track == IMAGE_TRACK else QColor(28, 30, 36))
            p.setPen(QColor(170, 170, 180))
            p.drawText(QRectF(6, tr.top(), self.HEADER_W - 8, tr.height()), Qt.AlignmentFlag.AlignVCenter,
                       "Images" if track == IMAGE_TRACK else "Video")
        p.setClipRect(QRectF(self.HEADER_W, 0, self.width() - self.HEADER_W, self.height()))
        for c in self.clips:
            r = self.clip_rect(c)
            if r.right() < self.HEADER_W or r.left() > self.width():
                continue
            selected = c.id in self.selected
            p.fillRect(r, QColor(60, 78, 110) if c.track == VIDEO_TRACK else QColor(70, 92, 70))
            if c.thumbnails:
                th = r.height() - 14
                for i, img in enumerate(c.thumbnails):
                    tw = th * img.width() / max(img.height(), 1)
                    # spread thumbnails evenly: thumbnail i stands for its share of the clip
                    x = r.left() + i * r.width() / len(c.thumbnails)
                    if x + 2 > r.right():
                        break
                    p.drawImage(QRectF(x + 1, r.top() + 12, min(tw, r.right() - x - 2), th), img,
                                QRectF(0, 0, min(img.width(), img.width() * (r.right() - x - 2) / max(tw, 1)), img.height()))
            strips = self.plan_strip_rects(c)
            if strips:
                h = self.PLAN_STRIP_H
                p.fillRect(QRectF(r.left() + 1, r.bottom() - h - 2, r.width() - 2, h + 2), QColor(12, 12, 16, 200))
                p.setPen(QColor(255, 255, 255, 70))
                for img, sr in zip(c.plan_keyframes, strips):
                    p.drawImage(sr, img)
                    x = sr.center().x()
                    p.drawLine(int(x), int(sr.top()) - 3, int(x), int(sr.top()))  # the keyframe's moment
            p.setPen(QColor(235, 235, 240))
            p.drawText(QRectF(r.left() + 4, r.top(), r.width() - 6, 12), Qt.AlignmentFlag.AlignLeft, c.name)
            p.setPen(QPen(QColor(255, 200, 60) if selected else QColor(0, 0, 0, 120), 2 if selected else 1))
            p.drawRect(r.adjusted(0.5, 0.5, -0.5, -0.5))
        x = self.x_of(self.playhead)
        p.setPen(QPen(QColor(240, 70, 70), 2))
        p.drawLine(int(x), 0, int(x), self.height())
        p.end()

    # -- input -----------------------------------------------------------------------------------
    def mousePressEvent(self, e: Any) -> None:  # noqa: N802
        pos = e.position()
        if pos.y() < self.RULER_H or e.button() == Qt.MouseButton.MiddleButton:
            self._scrubbing = True
            self.set_playhead(self.seconds_at(pos.x()), emit=True)
            return
        clip = self.clip_at(pos.x(), pos.y())
        multi = bool(e.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier))
        if clip is None:
            if not multi:
                self.select([])
            self._scrubbing = True
            self.set_playhead(self.seconds_at(pos.x()), emit=True)
            return
        if multi:
            ids = [s for s in self.selected if s != clip.id] if clip.id in self.selected else self.selected + [clip.id]
        else:
            ids = [clip.id]
        self.select(ids)
        # Clicking a clip also moves the playhead there, so the viewer shows the frame under the mouse.
        self._scrubbing = True
        self.set_playhead(self.seconds_at(pos.x()), emit=True)

    def mouseMoveEvent(self, e: Any) -> None:  # noqa: N802
        if self._scrubbing:
            self.set_playhead(self.seconds_at(e.position().x()), emit=True)

    def mouseReleaseEvent(self, e: Any) -> None:  # noqa: N802
        self._scrubbing = False

    def wheelEvent(self, e: QWheelEvent) -> None:  # noqa: N802
        if e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.px_per_second * (1.25 if e.angleDelta().y() > 0 else 0.8))
        else:
            self.scroll = max(0.0, self.scroll - e.angleDelta().y() / 120 * 40 / self.px_per_second)
            self.update()


class Timeline(QWidget):
    """Timeline view plus a zoom slider and a time readout."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = TimelineView(self)
        self.zoom = QSlider(Qt.Orientation.Horizontal, self)
        self.zoom.setRange(4, 600)
        self.zoom.setValue(int(self.view.px_per_second))
        self.zoom.setFixedWidth(140)
        self.zoom.setToolTip("Zoom (Ctrl+wheel on the timeline)")
        self.zoom.valueChanged.connect(lambda v: self.view.set_zoom(float(v)))
        self.time_label = QLabel("0.00 s", self)
        self.view.scrubbed.connect(self._show_time)
        top = QHBoxLayout()
        top.setContentsMargins(4, 0, 4, 0)
        top.addWidget(QLabel("Timeline", self))
        top.addStretch(1)
        top.addWidget(self.time_label)
        top.addWidget(QLabel("Zoom", self))
        top.addWidget(self.zoom)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.view, 1)

    def _show_time(self, seconds: float) -> None:
        self.time_label.setText(f"{seconds:.2f} s")
