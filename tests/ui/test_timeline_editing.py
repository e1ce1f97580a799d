"""Editing the timeline by hand, driven through the timeline's mouse events as a user would: move a clip along
and between tracks, trim its ends, snap, split at the playhead; every edit one undo step that undo and redo
restore exactly; the edits survive save, reopen and render. And the viewer's zoom, pan and fit."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest

from app.media.probe import read_video_frames
from app.media.project_file import open_project
from app.media.render import render_project
from app.ui.timeline import IMAGE_TRACK, VIDEO_TRACK

from .helpers import SAMPLE_IMAGE, SAMPLE_VIDEO, import_and_wait, make_window

SHIFT = Qt.KeyboardModifier.ShiftModifier
NONE = Qt.KeyboardModifier.NoModifier
LEFT_BUTTON = Qt.MouseButton.LeftButton


@pytest.fixture
def studio(qtbot, tmp_path):
    """The window with the 2 s sample clip (12 fps) at 0 s on the video track and a 3 s still at 0 s on the
    image track, the timeline at 60 px a second."""
    w = make_window(qtbot, tmp_path)
    video = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    still = import_and_wait(qtbot, w, SAMPLE_IMAGE)
    view = w.timeline.view
    view.resize(900, view.height())
    view.set_zoom(60.0)
    view.set_scroll(0.0)
    yield w, video, still
    w.shutdown()


def _drag(view, track: str, x0: float, x1: float, modifier=SHIFT, to_track: str | None = None) -> None:
    """Press at time-pixel x0 on `track`, move in steps to x1 (on `to_track`), release with `modifier`."""
    y0 = int(view.track_rect(track).center().y())
    y1 = int(view.track_rect(to_track or track).center().y())
    QTest.mousePress(view, LEFT_BUTTON, NONE, QPoint(int(x0), y0))
    for i in range(1, 6):
        QTest.mouseMove(view, QPoint(int(x0 + (x1 - x0) * i / 5), int(y0 + (y1 - y0) * i / 5)))
    QTest.mouseRelease(view, LEFT_BUTTON, modifier, QPoint(int(x1), y1))


def _placement(w, clip_id: str) -> tuple:
    track, _, c = w.document.project.find_clip(clip_id)
    return track, round(c.start, 6), round(c.in_point, 6), round(c.out_point, 6)


def _undo_redo_exact(w, before: dict) -> None:
    after = w.document.project.to_dict()
    w.document.undo_stack.undo()
    assert _without_history(w.document.project.to_dict()) == _without_history(before)
    w.document.undo_stack.redo()
    assert _without_history(w.document.project.to_dict()) == _without_history(after)


def _without_history(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "history"}


def test_dragging_a_clip_moves_it_and_undo_redo_restore_it(studio):
    w, video, still = studio
    view = w.timeline.view
    before, steps = w.document.project.to_dict(), w.document.undo_stack.count()
    _drag(view, VIDEO_TRACK, view.x_of(1.0), view.x_of(1.0) + 90)  # 1.5 s to the right
    assert _placement(w, video) == (VIDEO_TRACK, 1.5, 0.0, 2.0)
    assert w.document.undo_stack.count() == steps + 1  # one drag, one undo step
    assert view.clip(video).start == pytest.approx(1.5)  # the timeline shows the project's placement
    _undo_redo_exact(w, before)

    # A video clip dragged onto the image track stays on the video track; a still may go on the video track.
    _drag(view, VIDEO_TRACK, view.x_of(2.5), view.x_of(2.5) + 30, to_track=IMAGE_TRACK)
    assert _placement(w, video)[:2] == (VIDEO_TRACK, 2.0)
    _drag(view, IMAGE_TRACK, view.x_of(1.0), view.x_of(1.0) + 360, to_track=VIDEO_TRACK)
    assert _placement(w, still)[:2] == (VIDEO_TRACK, 6.0)


def test_dragging_the_ends_trims_within_the_source(studio):
    w, video, _ = studio
    view = w.timeline.view
    before = w.document.project.to_dict()
    _drag(view, VIDEO_TRACK, view.x_of(2.0) - 2, view.x_of(1.5) - 2)  # right end to 1.5 s
    assert _placement(w, video) == (VIDEO_TRACK, 0.0, 0.0, 1.5)
    _undo_redo_exact(w, before)
    before = w.document.project.to_dict()
    _drag(view, VIDEO_TRACK, view.x_of(0.0) + 2, view.x_of(0.5) + 2)  # left end to 0.5 s: start and in point
    assert _placement(w, video) == (VIDEO_TRACK, 0.5, 0.5, 1.5)
    _undo_redo_exact(w, before)
    _drag(view, VIDEO_TRACK, view.x_of(1.5) - 2, view.x_of(6.0))  # past the source's end: stops at it
    assert _placement(w, video) == (VIDEO_TRACK, 0.5, 0.5, 2.0)
    _drag(view, VIDEO_TRACK, view.x_of(0.5) + 2, view.x_of(0.0) - 20)  # before its start: stops at 0
    assert _placement(w, video) == (VIDEO_TRACK, 0.0, 0.0, 2.0)


def test_edges_snap_to_other_clips_and_the_playhead_unless_shift_is_held(studio):
    w, video, _ = studio
    view = w.timeline.view
    # The clip's start released 4 px short of the still's end (3 s): it lands on 3 s; with Shift, where dropped.
    _drag(view, VIDEO_TRACK, view.x_of(1.0), view.x_of(1.0) + 3 * 60 - 4)
    assert _placement(w, video)[1] == pytest.approx(3.0 - 4 / 60)
    w.document.undo_stack.undo()
    _drag(view, VIDEO_TRACK, view.x_of(1.0), view.x_of(1.0) + 3 * 60 - 4, modifier=NONE)
    assert _placement(w, video)[1] == 3.0
    # Its right end (5 s) trimmed to 5 px past the playhead: caught by it; with Shift, not.
    view.set_playhead(4.5)  # (after the clip is selected: selecting a clip moves the playhead into it)
    _drag(view, VIDEO_TRACK, view.x_of(5.0) - 2, view.x_of(4.5) + 3)
    assert w.document.project.clip(video).end == pytest.approx(4.5 + 5 / 60)
    w.document.undo_stack.undo()
    _drag(view, VIDEO_TRACK, view.x_of(5.0) - 2, view.x_of(4.5) + 3, modifier=NONE)
    assert w.document.project.clip(video).end == pytest.approx(4.5)


def test_split_at_the_playhead_by_menu_and_key_then_undo(qtbot, studio):
    w, video, still = studio
    view = w.timeline.view
    view.select([video])
    view.set_playhead(0.75, emit=True)
    before, steps = w.document.project.to_dict(), w.document.undo_stack.count()
    w.act_split.trigger()
    assert w.document.undo_stack.count() == steps + 1
    parts = w.document.project.timeline(VIDEO_TRACK)
    assert [(c.start, c.in_point, c.out_point) for c in parts] == [(0.0, 0.0, 0.75), (0.75, 0.75, 2.0)]
    assert parts[0].id == video and parts[1].media_id == parts[0].media_id
    assert w.document.project.timeline(IMAGE_TRACK)[0].end == 3.0  # only the selected clip is split
    _undo_redo_exact(w, before)

    # The S key, with nothing selected: every clip under the playhead.
    view.select([])
    view.set_playhead(2.5, emit=True)
    w.activateWindow()
    view.setFocus()
    qtbot.waitUntil(view.hasFocus, timeout=3000)
    QTest.keyClick(view, Qt.Key.Key_S)
    assert [(c.start, c.end) for c in w.document.project.timeline(IMAGE_TRACK)] == [(0.0, 2.5), (2.5, 3.0)]


def test_split_never_cuts_a_clip_other_than_the_selected_one(qtbot, studio):
    """Selecting a clip puts the playhead at its start, where it is not inside the clip: S then split the clip on
    the other track that the playhead crossed, unasked. With a clip selected only it is split; at its very edge
    nothing is, and the message says why (it said to put the playhead inside a clip, where it was)."""
    w, video, still = studio
    view = w.timeline.view
    view.select([video])
    view.set_playhead(w.document.project.clip(video).start + 0.01, emit=True)  # the still spans this time too
    before = w.document.project.to_dict()
    assert not w.timeline_editing.split_at_playhead()
    assert w.document.project.to_dict() == before
    assert "within a frame" in w.messages.history[-1].text
    view.set_playhead(2.5, emit=True)  # past the selected clip, inside the still
    assert not w.timeline_editing.split_at_playhead()
    assert w.document.project.to_dict() == before and "not on a selected clip" in w.messages.history[-1].text


def test_moves_and_trims_survive_save_reopen_and_render(qtbot, studio, tmp_path):
    w, video, _ = studio
    view = w.timeline.view
    _drag(view, VIDEO_TRACK, view.x_of(0.0) + 2, view.x_of(0.5) + 2)  # trim the first 0.5 s
    _drag(view, VIDEO_TRACK, view.x_of(1.0), view.x_of(1.0) + 30)  # and move it to 1.0 s
    assert _placement(w, video) == (VIDEO_TRACK, 1.0, 0.5, 2.0)
    path = tmp_path / "edited.mcproj"
    assert w.save_as(str(path))
    reopened = open_project(path)
    assert (reopened.clip(video).start, reopened.clip(video).in_point, reopened.clip(video).out_point) == (1.0, 0.5, 2.0)

    out = tmp_path / "edited.mp4"
    render_project(path, out)
    frames = read_video_frames(out)
    fps = reopened.settings.fps
    assert len(frames) == round(2.5 * fps)  # 1 s of black, then 1.5 s of the clip
    assert frames[int(0.5 * fps)].max() < 20
    source = read_video_frames(w.media_file(reopened.clip(video).media_id))
    for t in (1.0, 1.6, 2.4):  # timeline seconds: source frame at 0.5 + (t - 1.0) s, 12 fps
        rendered = frames[int(round(t * fps))].astype(int)
        right = source[int((0.5 + t - 1.0) * 12 + 1e-6)].astype(int)
        wrong = source[int((t - 1.0) * 12 + 1e-6)].astype(int)  # what an untrimmed clip would show
        assert abs(rendered - right).mean() < 6 < abs(rendered - wrong).mean()


def test_timeline_zoom_keeps_the_moment_under_the_mouse_and_the_scrollbar_follows(studio):
    w, _, _ = studio
    view, bar = w.timeline.view, w.timeline.scrollbar
    x = view.x_of(1.0)
    wheel = QWheelEvent(QPointF(x, 40), view.mapToGlobal(QPointF(x, 40)), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    view.wheelEvent(wheel)
    assert view.px_per_second == pytest.approx(75.0)
    assert view.seconds_at(x) == pytest.approx(1.0)
    view.set_zoom(400.0)
    assert bar.maximum() > 0  # 3 s at 400 px/s do not fit: the scrollbar scrolls
    bar.setValue(400)
    assert view.scroll == pytest.approx(1.0)


def test_viewer_zoom_pan_and_fit(qtbot, studio):
    w, _, still = studio
    w.timeline.view.select([still])
    canvas = w.viewer.canvas
    qtbot.waitUntil(lambda: canvas.frame is not None, timeout=5000)
    fitted = canvas.image_rect()
    centre = fitted.center()
    canvas.wheelEvent(QWheelEvent(centre, canvas.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 240),
                                  Qt.MouseButton.NoButton, NONE, Qt.ScrollPhase.NoScrollPhase, False))
    zoomed = canvas.image_rect()
    assert zoomed.width() == pytest.approx(fitted.width() * 1.25 ** 2)
    assert zoomed.center().x() == pytest.approx(centre.x()) and zoomed.center().y() == pytest.approx(centre.y())
    p = QPoint(int(centre.x()), int(centre.y()))
    QTest.mousePress(canvas, Qt.MouseButton.MiddleButton, NONE, p)
    QTest.mouseMove(canvas, p + QPoint(30, -20))
    QTest.mouseRelease(canvas, Qt.MouseButton.MiddleButton, NONE, p + QPoint(30, -20))
    assert canvas.image_rect().left() == pytest.approx(zoomed.left() + 30)
    assert canvas.image_rect().top() == pytest.approx(zoomed.top() - 20)
    w.viewer.fit_button.click()
    assert canvas.image_rect() == fitted


def test_a_removed_clip_comes_back_selected_on_undo(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    clip_id = import_and_wait(qtbot, w, SAMPLE_VIDEO)
    w.timeline.view.select([])
    w.timeline.view.select([clip_id])
    qtbot.waitUntil(lambda: w.studio.selection == [clip_id])
    w.timeline.view.setFocus()
    w.remove_selected_clip()
    qtbot.waitUntil(lambda: w.studio.selection == [] and w.versions.count() == 0)
    w.document.undo_stack.undo()
    qtbot.waitUntil(lambda: w.studio.selection == [clip_id] and w.versions.count() == 1)  # its versions shown again
    # Only an undone removal selects: a split with nothing selected leaves nothing selected.
    w.timeline.view.select([])
    qtbot.waitUntil(lambda: w.studio.selection == [])
    w.timeline.view.set_playhead(1.0)
    assert w.timeline_editing.split_at_playhead()
    qtbot.wait(50)
    assert w.studio.selection == [] and len(w.document.project.tracks["video"]) == 2
