"""A video edit keeps its source's own pixels where the model did not change the clip (app/core/keep_source.py):
the blur and specks of a redrawn clip go, the change the edit made stays, on the committed video model too."""
from pathlib import Path

import numpy as np
import pytest

from app.core.checkpoints import load_model
from app.core.draft import DraftConfig
from app.core.keep_source import (at_source_size, changed_nothing, changed_region, drafted_region, source_as_made,
                                  with_source_kept)
from app.core.pipeline import PipelineDefaults
from app.core.request import GenerationRequest, Task
from app.shapes.motion import render_clip
from app.shapes.motion_measure import edit_region, kept_outside
from app.shapes.video_edits import sample_video_edit

COMMITTED = Path(__file__).resolve().parents[2] / "models" / "metacanvas-shapes-video"
BACKGROUND, RED, BLUE, GREEN = (245, 245, 245), (220, 40, 40), (40, 90, 220), (40, 160, 70)


def _frames(square_colour, n=3, size=32):
    """n frames: a square (recoloured by an edit) at the left, a green disc-ish block at the right."""
    f = np.full((n, size, size, 3), BACKGROUND, np.uint8)
    f[:, 8:16, 4:12] = square_colour
    f[:, 10:20, 20:28] = GREEN
    return f


def test_what_the_model_changed_stays_and_its_blur_and_specks_go_back_to_the_source():
    source = _frames(RED)
    drawn = _frames(BLUE).astype(np.int16)
    rng = np.random.default_rng(0)
    drawn += rng.integers(-12, 13, drawn.shape)  # all over: small noise, below the threshold
    drawn[:, 9, 21] += 90  # a lone speck on the untouched object
    drawn[:, 9:21, 19] = 160  # a one-pixel rim at its edge, the blur of a redrawn edge
    drawn = drawn.clip(0, 255).astype(np.uint8)
    kept = with_source_kept(source, drawn, 48)
    outside = np.ones(source.shape[:3], bool)
    outside[:, 7:17, 3:13] = False  # the recoloured square and its 1 px border
    assert np.array_equal(kept[outside], source[outside])  # the rest is the user's own pixels exactly
    assert np.array_equal(kept[:, 8:16, 4:12], drawn[:, 8:16, 4:12])  # the edit as the model drew it
    assert np.abs(kept[:, 12, 8].astype(int) - BLUE).max() <= 12


def test_a_removed_and_a_moved_object_are_changes_too():
    source = _frames(RED)
    drawn = source.copy()
    drawn[:, 10:20, 20:28] = BACKGROUND  # the green block removed ...
    drawn[:, 22:30, 4:12] = RED  # ... and the red square moved down
    drawn[:, 8:16, 4:12] = BACKGROUND
    region = changed_region(source, drawn, 48)
    for rows, cols in [(slice(10, 20), slice(20, 28)), (slice(22, 30), slice(4, 12)), (slice(8, 16), slice(4, 12))]:
        assert region[:, rows, cols].all()
    assert np.array_equal(with_source_kept(source, drawn, 48), drawn)


def test_a_perfect_edit_comes_through_whole_thin_parts_and_first_slivers_included():
    """Composited onto its source, each world edit's own target clip stays right: a recoloured star's arms
    and the slivers by which a re-aimed object first leaves its path are kept with the change."""
    from app.eval.video_eval import score_video_edit, video_edit_set

    edits = video_edit_set(60, 3)
    right = [score_video_edit(s, with_source_kept(s, g, 48), e.source, e.target)["fully_right"]
             for e in edits for s, g in [(render_clip(e.source, 17, 48), render_clip(e.target, 17, 48))]]
    assert np.mean(right) >= 0.98  # on 200 benchmark edits 0.995: a same-colour square-to-circle replace lost


TRACKS = DraftConfig(labels=25, bins=16, sizes=4, half_min=0.08, half_max=0.14, max_objects=3, track=True)
STOP = [0, -1, -1, -1, -1, -1]


def test_a_drafted_edit_may_change_only_the_paths_its_draft_changes():
    # The source's tracks: a still object top left (bins 2, 2), one moving down on the right (12, 2 -> 12, 12).
    source = [[5, 2, 2, 1, 2, 2], [9, 12, 2, 1, 12, 12], STOP]
    assert drafted_region(source, source, TRACKS, 9, 48, 48) is None  # a draft that changes nothing bounds nothing
    recoloured = [[7, 2, 2, 1, 2, 2], [9, 12, 2, 1, 12, 12], STOP]
    region = drafted_region(source, recoloured, TRACKS, 9, 48, 48)
    assert region.shape == (9, 48, 48)
    assert region[:, 7, 7].all() and region[:, 2:12, 2:12].all()  # the recoloured object, every frame
    assert not region[:, :, 30:].any()  # the moving object the edit leaves alone, on its whole path
    assert not region[:, 30:].any()
    re_aimed = [[5, 2, 2, 1, 2, 2], [9, 12, 2, 1, 2, 2], STOP]  # "the triangle moves left instead"
    region = drafted_region(source, re_aimed, TRACKS, 9, 48, 48)
    assert region[0, 7, 37] and region[-1, 37, 37]  # its old path, start to end ...
    assert region[-1, 7, 7] and region[4, 7, 22]  # ... and its new one, frame by frame
    assert not region[-1, 7, 37]  # where neither is at that time
    added = [[5, 2, 2, 1, 2, 2], [9, 12, 2, 1, 12, 12], [13, 6, 13, 0, 6, 13], STOP]
    region = drafted_region(source, added, TRACKS, 9, 48, 48)
    assert region[:, 40, 19].all() and not region[:, 7, 7].any()


def test_what_the_model_changed_outside_its_drafts_places_goes_back_to_the_source():
    source = _frames(RED)
    drawn = _frames(BLUE)
    drawn[:, 10:20, 20:28] = RED  # a change the edit did not ask for: the green block turned red
    allowed = np.zeros(source.shape[:3], bool)
    allowed[:, 6:18, 2:14] = True  # the draft's place: the square's
    kept = with_source_kept(source, drawn, 48, allowed)
    assert np.array_equal(kept[:, 8:16, 4:12], drawn[:, 8:16, 4:12])  # the asked-for change stays
    assert np.array_equal(kept[:, 10:20, 20:28], source[:, 10:20, 20:28])  # the other goes back
    assert np.array_equal(with_source_kept(source, drawn, 48)[:, 10:20, 20:28], drawn[:, 10:20, 20:28])
    # A change that reaches past the draft's place is kept whole: the box is where, not how far.
    narrow = np.zeros(source.shape[:3], bool)
    narrow[:, 11:13, 7:9] = True  # a corner of the square's box only
    assert np.array_equal(with_source_kept(source, drawn, 48, narrow)[:, 8:16, 4:12], drawn[:, 8:16, 4:12])
    assert np.array_equal(with_source_kept(source, drawn, 48, narrow)[:, 10:20, 20:28], source[:, 10:20, 20:28])


def test_an_edit_that_gave_its_source_back_is_known():
    source = np.repeat(_frames(RED, n=5, size=64), 2, axis=0)  # 10 frames at 64 px; the model made 9 at 32
    made = source_as_made(source, np.zeros((9, 32, 32, 3), np.uint8))
    assert made.shape == (9, 32, 32, 3)
    assert changed_nothing(source, made)
    changed = made.copy()
    changed[4, 10, 10] = 0
    assert not changed_nothing(source, changed)
    assert not changed_nothing(source[:5], made)  # a source shorter than the edit: frames past it are new


def test_the_clips_must_match_and_the_threshold_is_checked():
    with pytest.raises(ValueError, match="differ in shape"):
        changed_region(_frames(RED, n=3), _frames(RED, n=2), 48)
    assert PipelineDefaults(keep_source_threshold=48.0).keep_source_threshold == 48
    for bad in (-1, 255, 4.5, "48", True):
        with pytest.raises(ValueError, match="keep_source_threshold"):
            PipelineDefaults(keep_source_threshold=bad)
    assert PipelineDefaults().keep_source_threshold == 0  # off unless a model says so


@pytest.mark.skipif(not (COMMITTED / "model_index.json").is_file(), reason="models/metacanvas-shapes-video is not there")
def test_the_committed_model_keeps_an_edited_clips_untouched_pixels_unless_asked_for_them_as_drawn():
    pipe = load_model(COMMITTED)
    assert pipe.defaults.keep_source_threshold > 0
    edit = sample_video_edit(np.random.default_rng(3), "recolour")
    source = render_clip(edit.source, 17, 48)
    args = dict(video=source, width=48, height=48, frames=17, steps=pipe.defaults.steps, seed=3)
    result = pipe(GenerationRequest(Task.VIDEO_EDIT, edit.instruction, **args))
    kept = result.frames
    drawn = pipe(GenerationRequest(Task.VIDEO_EDIT, edit.instruction, keep_source=False, **args)).frames
    assert not np.array_equal(kept, drawn)
    # Outside the edit (where the true target equals the source), the share of pixels within 16 grey levels
    # of the source: the model redraws the whole clip, blurred (0.92 here); kept, the blur goes (0.97: what
    # stays off is a neighbour the model really changed, which the source's pixels do not cover up).
    region = edit_region(edit.source, edit.target, 17, 48)
    assert kept_outside(source, drawn, region) + 0.03 < kept_outside(source, kept, region)
    # What the model changed at its draft's places stays as drawn; what it left alone is the source's.
    allowed = pipe.drafted_edit_region(source, result.plan.draft[0], kept.shape[:3])
    assert allowed is not None and 0 < allowed.mean() < 0.5
    changed = changed_region(source, drawn, pipe.defaults.keep_source_threshold)
    assert np.array_equal(kept[changed & allowed], drawn[changed & allowed])
    assert np.array_equal(kept[~changed], source[~changed])


def test_an_edit_made_small_goes_back_into_its_footage_at_the_footages_size():
    footage = _frames(RED, n=4, size=64)  # the user's clip, 64 px; the model edited it at 32
    small = source_as_made(footage, np.zeros((3, 32, 32, 3), np.uint8))
    edited = small.copy()
    edited[:, 4:8, 2:6] = BLUE  # the model recoloured the square (at 32 px: rows 4-8, columns 2-6)
    full = np.stack(list(at_source_size(footage, edited, iter(footage), 48)))  # frames one at a time
    assert full.shape == (3, 64, 64, 3)
    assert np.abs(full[:, 10, 6].astype(int) - BLUE).max() <= 2  # the change, scaled up
    outside = np.ones((3, 64, 64), bool)
    outside[:, 5:19, 1:15] = False  # the square, a model pixel around it (2 footage pixels), and one more
    assert np.array_equal(full[outside], footage[:3][outside])  # every other pixel is the footage's own
    with pytest.raises(ValueError, match="footage has 2 frames"):
        list(at_source_size(footage, edited, iter(footage[:2]), 48))


@pytest.mark.skipif(not (COMMITTED / "model_index.json").is_file(), reason="models/metacanvas-shapes-video is not there")
def test_an_edit_that_came_back_as_its_source_says_why_and_a_cell_edit_lifts_the_bound(monkeypatch):
    """The user is told whether the plan changed nothing (the clip may not hold what the words name) or the model
    changed only places its plan leaves alone (put back); a canvas cell edit lifts the draft's bound."""
    from app.core.pipeline import NOT_IN_CLIP, NOTHING_PLANNED, PUT_BACK, MetaCanvasPipeline
    from app.core.request import PlanEdit

    pipe = load_model(COMMITTED)
    edit = sample_video_edit(np.random.default_rng(3), "recolour")
    source = render_clip(edit.source, 17, 48)
    args = dict(video=source, width=48, height=48, frames=17, steps=pipe.defaults.steps, seed=3)
    bounds = []
    real = MetaCanvasPipeline.drafted_edit_region

    def nowhere(self, clip, draft, shape, rows=None):  # the draft's places, none of them where the model drew
        bounds.append(real(self, clip, draft, shape, rows))
        return np.zeros(shape, bool)

    monkeypatch.setattr(MetaCanvasPipeline, "drafted_edit_region", nowhere)
    result = pipe(GenerationRequest(Task.VIDEO_EDIT, edit.instruction, **args))
    assert bounds[-1] is not None and result.unchanged and result.unchanged_why == PUT_BACK
    assert np.array_equal(result.frames, source)
    monkeypatch.setattr(MetaCanvasPipeline, "drafted_edit_region", lambda self, clip, draft, shape, rows=None: None)
    monkeypatch.setattr(MetaCanvasPipeline, "keep_source", lambda self, src, frames, allowed=None: source_as_made(src, frames))
    result = pipe(GenerationRequest(Task.VIDEO_EDIT, edit.instruction, **args))
    assert result.unchanged and result.unchanged_why == NOTHING_PLANNED
    absent = next(c for c in ("star", "triangle", "square", "circle") if c not in {m.obj.cls for m in edit.source.objects})
    monkeypatch.undo()
    denoised = []
    real_denoise = MetaCanvasPipeline._denoise
    monkeypatch.setattr(MetaCanvasPipeline, "_denoise", lambda self, *a, **k: denoised.append(1) or real_denoise(self, *a, **k))
    result = pipe(GenerationRequest(Task.VIDEO_EDIT, f"make the {absent} red", **args))
    assert result.unchanged and result.unchanged_why == f"{NOT_IN_CLIP} {absent}"  # no seed makes a missing star red
    assert np.array_equal(result.frames, source) and not denoised  # not made: nothing else in the clip is touched
    monkeypatch.undo()
    monkeypatch.setattr(MetaCanvasPipeline, "drafted_edit_region", nowhere)
    bounds.clear()
    moved = pipe(GenerationRequest(Task.VIDEO_EDIT, edit.instruction, plan_edits=[PlanEdit("move", box=(0.0, 0.0, 0.5, 0.5),
                                                                                              dx=0.25)], **args))
    assert not bounds and not moved.unchanged  # not asked for the draft's places: the cell edit moved the plan
