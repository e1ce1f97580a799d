"""The pictures the studio shows: media-bin icons, timeline thumbnails, the keyframes of a clip's plan on
the timeline, and the viewer's frames.

All decoding runs off the GUI thread with bounded size (app.media.probe.load_preview), so a 56 MP
photo costs the GUI nothing. Icons and thumbnails are cached by media id, so when undo/redo rebuilds
the bin and the timeline every picture comes back at once instead of going blank. Frame requests
are latest-wins, and `clear_frame` makes any frame still decoding arrive to nobody: the viewer only
ever shows the current state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap

from app.ui.images import rgb_to_qimage
from app.ui.workers import LatestOnly, run_task

TIMELINE_THUMBS = 6
ICON_SIDE = 96
FRAME_MAX_SIDE = 2048  # the viewer's frame: the screen never needs more


class Pictures(QObject):
    icon_ready = Signal(str, QIcon)  # media id
    thumbs_ready = Signal(str, list)  # media id, [QImage]
    plan_keyframes_ready = Signal(str, list)  # plan file, [QImage] one heatmap per keyframe
    frame_ready = Signal(object)  # uint8 RGB frame for the viewer
    compare_ready = Signal(object)  # the previous version's frame (A/B)
    frame_failed = Signal(str)  # why the current frame cannot be shown

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool.globalInstance()
        self.icons: dict[str, QIcon] = {}
        self.thumbs: dict[str, list[QImage]] = {}
        self.plan_keyframes: dict[str, list[QImage]] = {}
        self._started: set[tuple] = set()
        self.frames = LatestOnly(self)
        self.frames.ready.connect(lambda key, frame: self._deliver(key, frame, self.frame_ready))
        self.frames.failed.connect(lambda key, e: key == self._want and self.frame_failed.emit(str(e)))
        self.compares = LatestOnly(self)
        self.compares.ready.connect(lambda key, frame: self._deliver(key, frame, self.compare_ready, compare=True))
        self._want: Any = None
        self._want_compare: Any = None

    # ---------------------------------------------------------------- icons and thumbnails (cached)
    def icon(self, media_id: str, path: Path) -> QIcon | None:
        """The cached icon, or None while it is decoded (icon_ready follows)."""
        if media_id in self.icons:
            return self.icons[media_id]
        key = ("icon", media_id)
        if key not in self._started:
            self._started.add(key)
            run_task(self.pool, _icon_picture, path, on_done=lambda arr, m=media_id: self._on_icon(m, arr),
                     on_error=lambda e, k=key: self._started.discard(k), owner=self)
        return None

    def _on_icon(self, media_id: str, arr: np.ndarray) -> None:
        self.icons[media_id] = QIcon(QPixmap.fromImage(rgb_to_qimage(arr)))
        self.icon_ready.emit(media_id, self.icons[media_id])

    def thumbnails(self, media_id: str, path: Path, kind: str, frames: int) -> list[QImage] | None:
        if media_id in self.thumbs:
            return self.thumbs[media_id]
        key = ("thumbs", media_id)
        if key not in self._started:
            self._started.add(key)
            run_task(self.pool, _decode_thumbnails, path, kind, frames,
                     on_done=lambda arrs, m=media_id: self._on_thumbs(m, arrs),
                     on_error=lambda e, k=key: self._started.discard(k), owner=self)
        return None

    def _on_thumbs(self, media_id: str, arrays: list[np.ndarray]) -> None:
        self.thumbs[media_id] = [rgb_to_qimage(a) for a in arrays]
        self.thumbs_ready.emit(media_id, self.thumbs[media_id])

    def plan_keyframe_images(self, plan_path: Path) -> list[QImage] | None:
        """The canvas effect of each keyframe of a stored plan, as small heatmaps (cached by file; None while
        the plan is read, plan_keyframes_ready follows)."""
        key = str(plan_path)
        if key in self.plan_keyframes:
            return self.plan_keyframes[key]
        started = ("plan", key)
        if started not in self._started:
            self._started.add(started)
            run_task(self.pool, _plan_keyframes, plan_path,
                     on_done=lambda arrs, k=key: self._on_plan_keyframes(k, arrs),
                     on_error=lambda e: None, owner=self)  # a plan that cannot be read draws no strip
        return None

    def _on_plan_keyframes(self, key: str, arrays: list[np.ndarray]) -> None:
        self.plan_keyframes[key] = [rgb_to_qimage(a) for a in arrays]
        self.plan_keyframes_ready.emit(key, self.plan_keyframes[key])

    def forget_all(self) -> None:
        """Another project: media ids are its own."""
        self.icons.clear()
        self.thumbs.clear()
        self.plan_keyframes.clear()
        self._started.clear()
        self.clear_frame()

    # ---------------------------------------------------------------- the viewer's frames
    def request_frame(self, path: Path, kind: str, index: int) -> None:
        self._want = (str(path), index)
        self.frames.request(self._want, lambda: _read(path, kind, index))

    def request_compare(self, path: Path | None, kind: str = "image", index: int = 0) -> None:
        if path is None:
            self._want_compare = None
            self.compare_ready.emit(None)
            return
        self._want_compare = (str(path), index)
        self.compares.request(self._want_compare, lambda: _read(path, kind, index))

    def clear_frame(self) -> None:
        self._want = self._want_compare = None
        self.frame_ready.emit(None)
        self.compare_ready.emit(None)

    def _deliver(self, key: Any, frame: np.ndarray, signal: Any, compare: bool = False) -> None:
        if key == (self._want_compare if compare else self._want):
            signal.emit(frame)

    def wait(self, msecs: int = 5000) -> None:
        self.frames.wait(msecs)
        self.compares.wait(msecs)


# ==================================================================== worker functions (no Qt)
def _read(path: Path, kind: str, index: int) -> np.ndarray:
    from app.media.probe import load_preview
    return load_preview(path, max_side=FRAME_MAX_SIDE, frame=index if kind == "video" else 0)


def _plan_keyframes(path: Path) -> list[np.ndarray]:
    from app.core.plan import Plan
    from app.ui.images import heatmap_rgba

    plan = Plan.load(path)
    return [heatmap_rgba(plan.canvas_effect(item=0, keyframe=k)) for k in range(plan.keyframes)]


def _icon_picture(path: Path) -> np.ndarray:
    """The thumbnail centred on a clear square (RGBA): lists draw icons in square boxes, and Qt scaling a 4000 x 30
    panorama's 96 x 1 thumbnail into one made a null pixmap and printed QPainter warnings on every repaint."""
    from app.media.probe import thumbnail
    arr = thumbnail(path, ICON_SIDE)
    h, w = arr.shape[:2]
    side = max(h, w)
    out = np.zeros((side, side, 4), np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[top:top + h, left:left + w, :3] = arr
    out[top:top + h, left:left + w, 3] = 255
    return out


def _decode_thumbnails(path: Path, kind: str, frames: int) -> list[np.ndarray]:
    from app.media.probe import iter_video_frames, thumbnail
    if kind == "image":
        return [thumbnail(path, 64)]
    n = min(TIMELINE_THUMBS, frames)
    idx = sorted({int(i * (frames - 1) / max(n - 1, 1)) for i in range(n)})
    return list(iter_video_frames(path, idx, max_side=64))
