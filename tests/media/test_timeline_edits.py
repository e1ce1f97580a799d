"""Timeline edits by hand (app/media/timeline_edits.py): moves, trims and splits as change records that stay
inside what the media allows, undo exactly, survive save and reopen, and render where they were put."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.media.export import timeline_frames
from app.media.probe import read_video_frames
from app.media.project import Project, invert
from app.media.project_file import import_media, open_project, save_project
from app.media.render import render_project
from app.media.timeline_edits import LEFT, RIGHT, move_edit, split_edit, trim_edit
from media_helpers import frame_index


def _apply(project: Project, change: dict) -> str:
    project.apply(change)
    return change["item"]["id"]


@pytest.fixture
def project_with_clips(tmp_path, indexed_clip):
    """A 4 s video (40 indexed frames at 10 fps) at 0 s on the video track and a still at 0 s on the image
    track, in a saved-to-be project at 10 fps."""
    still = tmp_path / "still.png"
    Image.fromarray(np.full((48, 64, 3), (200, 0, 0), np.uint8)).save(still)
    path = tmp_path / "p.mcproj"
    project = Project("edits")
    project.settings.fps = 10
    video = _apply(project, import_media(project, path, indexed_clip))
    image = _apply(project, import_media(project, path, still))
    clip = project.add_clip(video, "video", start=0.0)
    picture = project.add_clip(image, "image", start=0.0, out_point=3.0)
    return project, path, clip.id, picture.id


def _undo_redo_exact(project: Project, change: dict) -> None:
    before = project.to_dict()
    project.apply(change)
    after = project.to_dict()
    project.apply(invert(change))
    assert project.to_dict() == before
    project.apply(change)
    assert project.to_dict() == after


def test_a_move_clamps_to_zero_and_keeps_video_off_the_image_track(project_with_clips):
    project, _, clip, picture = project_with_clips
    change = move_edit(project, clip, 1.5, "image")  # a video clip may not go on the image track
    _undo_redo_exact(project, change)
    assert project.find_clip(clip)[0] == "video" and project.clip(clip).start == 1.5
    project.apply(move_edit(project, clip, -4.0))
    assert project.clip(clip).start == 0.0
    assert move_edit(project, clip, 0.0) is None  # nothing would change: nothing to undo
    _undo_redo_exact(project, move_edit(project, picture, 5.0, "video"))  # a still may go on the video track
    assert project.find_clip(picture)[0] == "video" and project.clip(picture).start == 5.0


def test_trims_stay_inside_the_source_and_a_still_extends_freely(project_with_clips):
    project, _, clip, picture = project_with_clips
    _undo_redo_exact(project, trim_edit(project, clip, LEFT, 1.0))  # start and in point move together
    c = project.clip(clip)
    assert (c.start, c.in_point, c.out_point) == (1.0, 1.0, 4.0)
    project.apply(trim_edit(project, clip, RIGHT, 3.0))
    assert project.clip(clip).out_point == pytest.approx(3.0)
    project.apply(trim_edit(project, clip, RIGHT, 9.0))  # past the source's end: clamped to it
    assert project.clip(clip).out_point == pytest.approx(4.0)
    assert trim_edit(project, clip, RIGHT, 9.0) is None  # already there: nothing to undo
    project.apply(trim_edit(project, clip, LEFT, -3.0))  # before the source's start: clamped to it
    c = project.clip(clip)
    assert (c.start, c.in_point) == (0.0, 0.0)
    project.apply(trim_edit(project, clip, RIGHT, 0.0))  # never shorter than a frame
    assert project.clip(clip).duration == pytest.approx(0.1)
    project.apply(trim_edit(project, picture, RIGHT, 7.5))
    project.apply(trim_edit(project, picture, LEFT, 2.0))
    p = project.clip(picture)
    assert (p.start, p.in_point, p.end) == (2.0, 0.0, 7.5)


def test_split_gives_two_clips_with_complementary_trims(project_with_clips):
    project, _, clip, picture = project_with_clips
    project.apply(trim_edit(project, clip, LEFT, 0.5))
    change = split_edit(project, [clip, picture], 2.0)
    _undo_redo_exact(project, change)
    video = project.timeline("video")
    assert [(c.start, c.in_point, c.out_point) for c in video] == [(0.5, 0.5, 2.0), (2.0, 2.0, 4.0)]
    assert video[0].media_id == video[1].media_id and video[0].id == clip
    stills = project.timeline("image")
    assert [(c.start, c.end) for c in stills] == [(0.0, 2.0), (2.0, 3.0)]
    assert split_edit(project, [clip], 9.0) is None  # the playhead is not inside the clip


def test_moves_and_trims_survive_save_reopen_and_render(project_with_clips, tmp_path):
    project, path, clip, _ = project_with_clips
    project.apply(trim_edit(project, clip, LEFT, 1.0))  # source 1.0..4.0 s
    project.apply(trim_edit(project, clip, RIGHT, 3.0))  # source 1.0..3.0 s
    project.apply(move_edit(project, clip, 0.5))  # on the timeline 0.5..2.5 s: 0.5 s of black first
    save_project(project, path)
    reopened = open_project(path)
    c = reopened.clip(clip)
    assert (c.start, c.in_point, c.out_point) == (0.5, 1.0, 3.0)

    out = tmp_path / "render.mp4"
    render_project(path, out)
    frames = read_video_frames(out)
    assert len(frames) == 25  # 2.5 s at 10 fps
    assert max(float(f.max()) for f in frames[:5]) < 20  # the gap before the clip is black
    # Frame k of the render (k >= 5) shows source frame 10 + (k - 5): a few spot checks, H.264 within a step.
    for k in (5, 12, 24):
        assert frame_index(frames[k]) == 10 + (k - 5)


def test_an_old_project_file_still_loads_and_renders_the_same(tmp_path, indexed_clip):
    """A file written before timeline editing (schema 1, clips placed by start/in/out, no split clips)."""
    path = tmp_path / "old.mcproj"
    project = Project("old")
    project.settings.fps = 10
    video = _apply(project, import_media(project, path, indexed_clip))
    project.add_clip(video, "video", start=0.0, in_point=0.0, out_point=1.0)
    doc = {"format": "metacanvas-project", "schema": 1, "saved": "2024-01-01T00:00:00+00:00",
           "project": project.to_dict()}
    for clip in doc["project"]["tracks"]["video"]:
        clip.pop("instruction")  # older files lack the newer optional fields
    path.write_text(json.dumps(doc))
    reopened = open_project(path)
    (clip,) = reopened.tracks["video"]
    assert (clip.start, clip.in_point, clip.out_point) == (0.0, 0.0, 1.0)
    out = tmp_path / "old.mp4"
    render_project(path, out)
    assert [frame_index(f) for f in read_video_frames(out)] == list(range(10))


def test_a_video_clip_with_generated_versions_keeps_its_start_but_its_end_trims(project_with_clips):
    """Generated versions play from their own first frame: moving the clip's in point would shift what they show."""
    from app.media.timeline_edits import GeneratedVersionsError

    project, _, clip_id, _ = project_with_clips
    clip = project.clip(clip_id)
    project.apply(project.add_version_change(clip_id, clip.media_id))  # stands in for a generated clip
    with pytest.raises(GeneratedVersionsError, match="trim its end instead"):
        trim_edit(project, clip_id, LEFT, clip.start + 0.5)
    with pytest.raises(GeneratedVersionsError, match="split"):
        split_edit(project, [clip_id], clip.start + 0.5)
    assert trim_edit(project, clip_id, RIGHT, clip.end - 0.5) is not None


def test_a_clip_dropped_on_another_of_its_track_is_on_top(project_with_clips, tmp_path, indexed_clip):
    """A clip moved along its own track onto another kept its place in the track's list and went under it: the
    export and the viewer showed the other clip where the user had just dropped this one."""
    project, path, first, _ = project_with_clips
    second = project.add_clip(project.clip(first).media_id, "video", start=4.0, in_point=3.0, out_point=3.5)
    change = move_edit(project, first, 3.6)  # the first clip (0..4 s of the source) dropped over the second
    _undo_redo_exact(project, change)
    frames, _, _ = timeline_frames(project, path)
    shown = [frame_index(f) for f in frames]
    assert shown[36:40] == [0, 1, 2, 3]  # 3.6-4.0 s: the dropped clip's start
    assert shown[40:45] == [4, 5, 6, 7, 8]  # 4.0-4.5 s: still the dropped clip, over the second (source 30-34)
    assert [c.id for c in project.tracks["video"]][-1] == first and second.id in [c.id for c in project.tracks["video"]]
