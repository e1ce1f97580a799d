"""The timeline: an image track and a video track, a playhead, zoom, clip selection, thumbnails.

It is a view only: the main window gives it `TimelineClip`s made from the project model and listens to
`selection_changed` and `scrubbed`. Thumbnails arrive later from worker threads (`set_media_thumbnails`), so
painting never decodes video.

A clip made by a video model carries its plan's keyframes (`plan_keyframes`, small heatmaps of the canvas
effect): each is drawn in a thin strip along the clip's bottom edge, at the place in the clip where the
model put that keyframe (app/ui/plan_time.py), so the plan can be read against the frames it shaped.

Editing by hand: drag a clip's body to move it (along its track, or to the other track when its media may go
there), drag within EDGE_PX of an end to trim it. While dragging, the clip is drawn where it would land, with
the same arithmetic the change will use (app/media/timeline_edits.py); edges snap to other clips' edges and
the playhead within SNAP_PX (Shift: no snapping). On release the view only asks (`move_requested`,
`trim_requested`); app/ui/timeline_editing.py turns the request into one undoable project change, and the
clips come back through `set_clips`. Ctrl+wheel zooms around the mouse; the wheel and the scrollbar pan.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollBar, QSlider, QVBoxLayout, QWidget

from app.media.timeline_edits import LEFT, RIGHT, trimmed_span, tracks_for_kind
from app.ui.plan_time import DEFAULT_FRAME_STEP, keyframe_places

IMAGE_TRACK, VIDEO_TRACK = "image", "video"
TRACKS = (IMAGE_TRACK, VIDEO_TRACK)


@dataclass
class TailStrip:
    """The thumbnails of a version a partial edit plays on into, drawn where that version plays: from
    `start` to `end` (shares of the clip), spread over its own first `span` of the clip as on its own strip."""
    media_id: str
    span: float
    start: float
    end: float
    thumbnails: list[QImage] = field(default_factory=list)


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
    plan_share: float = 1.0  # the part of the clip those frames are (a partial edit's plan: its first part)
    # The part of the clip's duration by which the plan's frames start before the clip does: a clip made from words
    # and trimmed at its start (or a split's second half) shows its frames from its in point, as the plan does.
    plan_offset: float = 0.0
    thumb_share: float = 1.0  # the part of the clip its thumbnails stand for (a partial edit: its first part)
    # A partial edit plays on as the version it edited (and an edit of an edit, on through the chain): the
    # strips of those versions fill the rest, each where it plays.
    tails: list["TailStrip"] = field(default_factory=list)
    plan_step: int = DEFAULT_FRAME_STEP  # how the model that made it packs frames
    kind: str = "video"  # its original media's kind: which tracks it may go on, how far it may be trimmed
    in_point: float = 0.0  # seconds into its original media where it begins
    source_duration: float | None = None  # its original media's length (None: a still, no limit)

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class _ClipDrag:
    """A press on a clip that may become a move or a trim once the mouse travels DRAG_PX."""
    original: TimelineClip  # the clip as it was at the press (restored before the request is sent)
    mode: str  # "move" | LEFT | RIGHT
    press_x: float
    press_y: float
    grab: float  # seconds from what was grabbed (the start, or the right end for RIGHT) to the mouse
    dragging: bool = False


class TimelineView(QWidget):
    selection_changed = Signal(list)  # clip ids, in click order
    scrubbed = Signal(float)  # playhead seconds
    move_requested = Signal(str, str, float)  # clip id, track, new start (seconds)
    trim_requested = Signal(str, str, float)  # clip id, edge (LEFT | RIGHT), where that edge goes (seconds)
    view_changed = Signal()  # zoom or scroll changed (the scrollbar and the zoom slider follow)

    HEADER_W = 70
    RULER_H = 18
    TRACK_H = 54
    PLAN_STRIP_H = 12  # the keyframe strip along a clip's bottom edge
    EDGE_PX = 6  # a press this near a clip's end trims it
    SNAP_PX = 8  # an edge this near another clip's edge or the playhead lands on it
    DRAG_PX = 3  # a press that moves less than this is a click

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clips: list[TimelineClip] = []
        self.selected: list[str] = []
        self.playhead = 0.0
        self.px_per_second = 60.0
        self.scroll = 0.0  # seconds at the left edge
        self.frame_seconds = 1.0 / 24.0  # the shortest a trim may leave a clip (the project's frame)
        self._scrubbing = False
        self._drag: _ClipDrag | None = None
        self.setMinimumHeight(self.RULER_H + self.TRACK_H * len(TRACKS) + 6)
        self.setMouseTracking(True)  # the cursor shows where a press would trim
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

    # -- data ------------------------------------------------------------------------------------
    def set_clips(self, clips: list[TimelineClip]) -> None:
        # Keep a clip's thumbnails only while it shows the same media: after undo/redo of a version the
        # strip must show the version now active, not the one before.
        old = {(c.id, c.media_id): c.thumbnails for c in self.clips}
        old_tails = {(c.id, t.media_id): t.thumbnails for c in self.clips for t in c.tails}
        old_plans = {(c.id, c.plan_key): c.plan_keyframes for c in self.clips if c.plan_key}
        for c in clips:
            if not c.thumbnails and (c.id, c.media_id) in old:
                c.thumbnails = old[(c.id, c.media_id)]
            for t in c.tails:
                if not t.thumbnails and (c.id, t.media_id) in old_tails:
                    t.thumbnails = old_tails[(c.id, t.media_id)]
            if not c.plan_keyframes and (c.id, c.plan_key) in old_plans:
                c.plan_keyframes = old_plans[(c.id, c.plan_key)]
        self.clips = clips
        ids = {c.id for c in clips}
        kept = [s for s in self.selected if s in ids]
        if kept != self.selected:
            self.selected = kept
            self.selection_changed.emit(list(kept))
        self.view_changed.emit()  # the timeline's length may have changed: the scrollbar's range follows
        self.update()

    def set_media_thumbnails(self, media_id: str, images: list[QImage]) -> None:
        """The thumbnails of `media_id`, for every clip that shows it: as its active media, or past a
        partial edit's end (its tail)."""
        for c in self.clips:
            if c.media_id == media_id:
                c.thumbnails = images
            for t in c.tails:
                if t.media_id == media_id:
                    t.thumbnails = images
        self.update()

    def set_plan_keyframes(self, plan_key: str, images: list[QImage]) -> None:
        """The keyframe heatmaps of the plan `plan_key`, for every clip that shows it."""
        for c in self.clips:
            if c.plan_key == plan_key:
                c.plan_keyframes = images
        self.update()

    def plan_strip_rects(self, clip: TimelineClip) -> list[QRectF]:
        """Where each keyframe of the clip's plan is drawn (empty without a plan): a square-celled heatmap
        in the strip along the clip's bottom edge, centred on the keyframe's place in the clip; an empty rect for a
        keyframe whose moment the clip does not show (trimmed away)."""
        if not clip.plan_keyframes:
            return []
        r = self.clip_rect(clip)
        h = float(self.PLAN_STRIP_H)
        top = r.bottom() - h - 1
        rects = []
        places = keyframe_places(clip.plan_frames, len(clip.plan_keyframes), clip.plan_step)
        for img, place in zip(clip.plan_keyframes, places):
            at = place * clip.plan_share - clip.plan_offset  # the keyframe's moment, as a part of the clip
            if not -1e-6 <= at <= 1 + 1e-6:
                rects.append(QRectF())
                continue
            w = h * img.width() / max(img.height(), 1)
            x = min(max(r.left() + at * r.width() - w / 2, r.left() + 1), r.right() - w - 1)
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

    def set_zoom(self, px_per_second: float, anchor_x: float | None = None) -> None:
        """Zoom so that the moment under `anchor_x` (default: the left edge) stays where it is."""
        x = self.HEADER_W if anchor_x is None else anchor_x
        anchored = self.seconds_at(x)
        self.px_per_second = max(4.0, min(2000.0, px_per_second))
        self.set_scroll(anchored - (x - self.HEADER_W) / self.px_per_second)

    def set_scroll(self, seconds: float) -> None:
        self.scroll = max(0.0, seconds)
        self.view_changed.emit()
        self.update()

    def visible_seconds(self) -> float:
        return max(0.0, self.width() - self.HEADER_W) / self.px_per_second

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
    @staticmethod
    def _draw_thumbnails(p: QPainter, r: QRectF, images: list[QImage], span: float, shown: QRectF) -> None:
        """`images` spread evenly over the first `span` pixels of the clip's box `r` (thumbnail i stands for
        its share of that part of the clip), drawn only inside `shown`."""
        if not images:
            return
        p.save()
        p.setClipRect(shown, Qt.ClipOperation.IntersectClip)
        th = r.height() - 14
        for i, img in enumerate(images):
            x = r.left() + i * span / len(images)
            if x + 2 > r.right():
                break
            tw = th * img.width() / max(img.height(), 1)
            p.drawImage(QRectF(x + 1, r.top() + 12, min(tw, r.right() - x - 2), th), img,
                        QRectF(0, 0, min(img.width(), img.width() * (r.right() - x - 2) / max(tw, 1)), img.height()))
        p.restore()

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
            # A partial edit's thumbnails stand for its first part (thumb_share); past its end the clip
            # plays the version it edited, so that version's thumbnails fill where it plays (TailStrip),
            # at the places they have on its own strip.
            edge = r.left() + r.width() * c.thumb_share
            self._draw_thumbnails(p, r, c.thumbnails, r.width() * c.thumb_share, QRectF(r.left(), r.top(), edge - r.left(), r.height()))
            for t in c.tails:
                left, right = r.left() + r.width() * t.start, r.left() + r.width() * t.end
                self._draw_thumbnails(p, r, t.thumbnails, r.width() * t.span, QRectF(left, r.top(), right - left, r.height()))
            strips = self.plan_strip_rects(c)
            if strips:
                h = self.PLAN_STRIP_H
                p.fillRect(QRectF(r.left() + 1, r.bottom() - h - 2, r.width() - 2, h + 2), QColor(12, 12, 16, 200))
                p.setPen(QColor(255, 255, 255, 70))
                for img, sr in zip(c.plan_keyframes, strips):
                    if sr.isEmpty():
                        continue  # trimmed away
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
    def grip_at(self, clip: TimelineClip, x: float) -> str:
        """What a press at `x` on the clip takes hold of: its LEFT or RIGHT end, or the whole clip ("move").
        A narrow clip keeps its middle third for moving, so it can always be moved."""
        r = self.clip_rect(clip)
        edge = min(self.EDGE_PX, r.width() / 3)
        if x <= r.left() + edge:
            return LEFT
        if x >= r.right() - edge:
            return RIGHT
        return "move"

    def snap_points(self, moving_id: str) -> list[float]:
        return [0.0, self.playhead] + [t for c in self.clips if c.id != moving_id for t in (c.start, c.end)]

    def snapped(self, times: list[float], points: list[float]) -> float:
        """The shift (seconds) that lands the nearest of `times` on the nearest of `points`, within SNAP_PX;
        0 when none is that near."""
        reach = self.SNAP_PX / self.px_per_second
        best = min(((p - t) for t in times for p in points), key=abs, default=0.0)
        return best if abs(best) <= reach else 0.0

    def track_at(self, y: float) -> str | None:
        return next((t for t in TRACKS if self.track_rect(t).top() <= y < self.track_rect(t).bottom()), None)

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
            self.select(ids)
            return
        self.select([clip.id])
        if e.button() == Qt.MouseButton.LeftButton:
            grip = self.grip_at(clip, pos.x())
            held = clip.end if grip == RIGHT else clip.start
            self._drag = _ClipDrag(replace(clip), grip, pos.x(), pos.y(), self.seconds_at(pos.x()) - held)

    def mouseMoveEvent(self, e: Any) -> None:  # noqa: N802
        pos = e.position()
        if self._scrubbing:
            self.set_playhead(self.seconds_at(pos.x()), emit=True)
            return
        drag = self._drag
        if drag is None:
            hovered = self.clip_at(pos.x(), pos.y())
            trims = hovered is not None and self.grip_at(hovered, pos.x()) != "move"
            self.setCursor(Qt.CursorShape.SizeHorCursor if trims else Qt.CursorShape.ArrowCursor)
            return
        if not drag.dragging:
            if abs(pos.x() - drag.press_x) + abs(pos.y() - drag.press_y) < self.DRAG_PX:
                return
            drag.dragging = True
        self._preview(drag, pos.x(), pos.y(), snap=not e.modifiers() & Qt.KeyboardModifier.ShiftModifier)

    def _preview(self, drag: _ClipDrag, x: float, y: float, snap: bool) -> None:
        """Draw the dragged clip where releasing here would put it."""
        clip = self.clip(drag.original.id)
        if clip is None:
            return
        o = drag.original
        points = self.snap_points(o.id) if snap else []
        if drag.mode == "move":
            start = max(0.0, self.seconds_at(x) - drag.grab)
            start = max(0.0, start + self.snapped([start, start + o.duration], points))
            track = self.track_at(y)
            clip.start = start
            clip.track = track if track in tracks_for_kind(o.kind) else o.track
        else:
            edge_time = self.seconds_at(x) - drag.grab
            edge_time += self.snapped([edge_time], points)
            start, tin, tout = trimmed_span(o.start, o.in_point, o.in_point + o.duration, o.source_duration,
                                            drag.mode, edge_time, self.frame_seconds)
            clip.start, clip.in_point, clip.duration = start, tin, tout - tin
        self.update()

    def mouseReleaseEvent(self, e: Any) -> None:  # noqa: N802
        self._scrubbing = False
        drag, self._drag = self._drag, None
        if drag is None:
            return
        if not drag.dragging:  # a click: the playhead goes where the clip was clicked
            self.set_playhead(self.seconds_at(e.position().x()), emit=True)
            return
        self._preview(drag, e.position().x(), e.position().y(),
                      snap=not e.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        landed = self.clip(drag.original.id)
        # Put the clip back as it was: the project decides, and its clips come back through set_clips.
        self.clips = [drag.original if c.id == drag.original.id else c for c in self.clips]
        self.update()
        if landed is None:
            return
        if drag.mode == "move":
            self.move_requested.emit(landed.id, landed.track, landed.start)
        else:
            edge_time = landed.start if drag.mode == LEFT else landed.end
            self.trim_requested.emit(landed.id, drag.mode, edge_time)

    def wheelEvent(self, e: QWheelEvent) -> None:  # noqa: N802
        if e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.25 if e.angleDelta().y() > 0 else 0.8
            self.set_zoom(self.px_per_second * factor, anchor_x=e.position().x())
        else:
            self.set_scroll(self.scroll - e.angleDelta().y() / 120 * 40 / self.px_per_second)


class Timeline(QWidget):
    """Timeline view plus a zoom slider, a time readout and a horizontal scrollbar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = TimelineView(self)
        self.zoom = QSlider(Qt.Orientation.Horizontal, self)
        self.zoom.setRange(4, 600)
        self.zoom.setValue(int(self.view.px_per_second))
        self.zoom.setFixedWidth(140)
        self.zoom.setToolTip("Zoom (Ctrl+wheel on the timeline)")
        self.zoom.valueChanged.connect(self._on_zoom_slider)
        self.scrollbar = QScrollBar(Qt.Orientation.Horizontal, self)
        self.scrollbar.valueChanged.connect(self._on_scrollbar)
        self.time_label = QLabel("0.00 s", self)
        self.view.scrubbed.connect(self._show_time)
        self.view.view_changed.connect(self._follow_view)
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
        lay.addWidget(self.scrollbar)
        self._follow_view()

    # The scrollbar counts pixels at the current zoom, so one step is one pixel whatever the zoom.
    def _follow_view(self) -> None:
        v = self.view
        content = max(v.duration(), v.playhead) + v.visible_seconds() / 2  # room to drag clips past the end
        for widget, value, top in ((self.scrollbar, v.scroll * v.px_per_second,
                                    max(content - v.visible_seconds(), v.scroll) * v.px_per_second),
                                   (self.zoom, v.px_per_second, None)):
            widget.blockSignals(True)
            if top is not None:
                widget.setRange(0, int(top))
                widget.setPageStep(max(1, int(v.visible_seconds() * v.px_per_second)))
            widget.setValue(int(round(value)))
            widget.blockSignals(False)

    def _on_scrollbar(self, value: int) -> None:
        self.view.set_scroll(value / self.view.px_per_second)

    def _on_zoom_slider(self, value: int) -> None:
        self.view.set_zoom(float(value), anchor_x=self.view.x_of(self.view.playhead))

    def resizeEvent(self, e: Any) -> None:  # noqa: N802
        super().resizeEvent(e)
        self._follow_view()

    def _show_time(self, seconds: float) -> None:
        self.time_label.setText(f"{seconds:.2f} s")
