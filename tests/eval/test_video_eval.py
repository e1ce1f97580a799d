"""The video measures on clips whose truth is known: ground-truth renders pass, wrong clips fail."""
import numpy as np
import pytest

from app.eval.video_eval import (image_to_video_set, reference_video_set, score_image_to_video,
                                 score_reference_video, score_video_edit, video_edit_set)
from app.shapes.motion import render_clip


def test_image_to_video_ground_truth_passes_and_a_frozen_clip_does_not():
    for meta, clip in image_to_video_set(4, seed=7, frames=17, size=48):
        good = score_image_to_video(clip, clip[0], meta)
        assert good["motion_followed"] and good["first_frame_psnr"] >= 35
        frozen = np.repeat(clip[:1], len(clip), axis=0)  # the first frame, never moving
        if meta["tag"] in ("one_moves", "diagonal", "two_move"):
            assert not score_image_to_video(frozen, clip[0], meta)["motion_followed"]


def test_video_edit_target_is_fully_right_and_the_unedited_source_is_not():
    for triple in video_edit_set(5, seed=7):
        source = render_clip(triple.source, 17, 48)
        target = render_clip(triple.target, 17, 48)
        assert score_video_edit(source, target, triple.source, triple.target)["fully_right"]
        assert not score_video_edit(source, source, triple.source, triple.target)["fully_right"]


def test_an_added_object_may_go_wherever_its_path_is_clear_but_nothing_else_may_change():
    """"add a red square" says nothing of where: drawn on a clear path other than the benchmark target's,
    the edit is still fully right; drawn there with another object changed, it is not kept; and an object
    whose place the edit fixes (a recolour) drawn elsewhere is not right either."""
    from dataclasses import replace

    from app.shapes.motion import MotionScene, direction_name, place_moving
    from app.shapes.motion_measure import frame_times, object_mask
    from app.shapes.video_edits import sample_video_edit

    rng = np.random.default_rng(5)
    checked = 0
    while checked < 4:
        triple = sample_video_edit(rng, "add")
        new = triple.target.objects[-1]
        direction = direction_name(new.dx, new.dy) if new.moving else None
        elsewhere = place_moving(rng, new.obj.cls, new.obj.color, direction, triple.source.objects)
        if elsewhere is None or abs(elsewhere.obj.cx - new.obj.cx) + abs(elsewhere.obj.cy - new.obj.cy) < 0.3:
            continue
        source = render_clip(triple.source, 17, 48)
        moved = render_clip(MotionScene(triple.source.objects + (elsewhere,)), 17, 48)
        assert score_video_edit(source, moved, triple.source, triple.target)["fully_right"], triple.instruction
        other = triple.source.objects[0]
        recoloured = replace(other, obj=replace(other.obj, color="purple" if other.obj.color != "purple" else "red"))
        spoiled = render_clip(MotionScene((recoloured,) + triple.source.objects[1:] + (elsewhere,)), 17, 48)
        assert not score_video_edit(source, spoiled, triple.source, triple.target)["kept"]
        ghost = moved.copy()  # drawn elsewhere, and a grey smear along the benchmark target's own path
        for k, t in enumerate(frame_times(17)):
            at = [m for m in triple.target.at(t).objects if (m.cls, m.color) == (new.obj.cls, new.obj.color)]
            ghost[k][object_mask(at[0], 48)] = 128
        assert not score_video_edit(source, ghost, triple.source, triple.target)["kept"], triple.instruction
        checked += 1
    for triple in video_edit_set(10, seed=7):
        if triple.instruction.startswith("make"):  # a recolour keeps its path: drawn 10 px off it, it is wrong
            changed = [b for a, b in zip(triple.source.objects, triple.target.objects) if a != b][0]
            shifted = replace(changed, obj=replace(changed.obj, cx=changed.obj.cx + (0.2 if changed.obj.cx < 0.5 else -0.2)))
            off = MotionScene(tuple(shifted if m is changed else m for m in triple.target.objects))
            source = render_clip(triple.source, 17, 48)
            assert not score_video_edit(source, render_clip(off, 17, 48), triple.source, triple.target)["fully_right"]


def test_a_still_object_set_moving_may_go_any_distance_from_its_start_but_not_start_elsewhere():
    from dataclasses import replace

    from app.shapes.motion import MotionScene
    from app.shapes.video_edits import sample_video_edit

    rng = np.random.default_rng(1)
    checked = 0
    while checked < 4:
        triple = sample_video_edit(rng, "motion")
        a, b = next((a, b) for a, b in zip(triple.source.objects, triple.target.objects) if a != b)
        if a.moving:
            continue
        source = render_clip(triple.source, 17, 48)
        shorter = replace(b, dx=b.dx * 0.8, dy=b.dy * 0.8)  # the same way, less far: the words do not say how far
        elsewhere = replace(b, obj=replace(b.obj, cx=b.obj.cx + (0.15 if b.obj.cx < 0.5 else -0.15)))
        for moved, right in ((shorter, True), (elsewhere, False)):
            clip = render_clip(MotionScene(tuple(moved if m is b else m for m in triple.target.objects)), 17, 48)
            assert score_video_edit(source, clip, triple.source, triple.target)["fully_right"] is right
        checked += 1


def test_an_add_made_by_recolouring_another_object_is_not_kept():
    from dataclasses import replace

    from app.shapes.motion import MotionScene
    from app.shapes.video_edits import sample_video_edit

    rng = np.random.default_rng(2)
    checked = 0
    while checked < 4:
        triple = sample_video_edit(rng, "add")
        new = triple.target.objects[-1]
        same = [m for m in triple.source.objects if m.obj.cls == new.obj.cls]
        if not same:
            continue
        turned = replace(same[0], obj=replace(same[0].obj, color=new.obj.color))
        clip = render_clip(MotionScene(tuple(turned if m is same[0] else m for m in triple.source.objects)), 17, 48)
        assert not score_video_edit(render_clip(triple.source, 17, 48), clip, triple.source, triple.target)["kept"]
        checked += 1


def test_reference_video_ground_truth_is_right_and_an_empty_clip_is_not():
    for ref in reference_video_set(4, seed=7):
        clip = render_clip(ref.target, 17, 48)
        stills = ref.images(48)
        assert score_reference_video(clip, ref.instruction, stills)["right"]
        blank = np.full_like(clip, clip[0, 0, 0])
        assert not score_reference_video(blank, ref.instruction, stills)["right"]


# ---------------------------------------------------------------------------------------------------
# Text-to-video, the scores' details, the batched sampler and the whole evaluation on the tiny model.

from app.eval.video_eval import (PSNR_CAP, VIDEO_EVAL_TASKS, clip_flicker, evaluate_video_model, format_markdown,  # noqa: E402
                                 reference_clauses, sample_clips, score_text_to_video, score_video_folder,
                                 summarize_video_results, text_to_video_set, write_sample_clip)
from app.shapes.video_prompts import scene_for_video_metadata  # noqa: E402

MOVERS = ("one_moves", "diagonal", "two_move", "moves_still")


def test_text_to_video_ground_truth_is_right_and_steady_and_wrong_clips_drop():
    rng = np.random.default_rng(0)
    for meta in text_to_video_set(14, seed=7, frames=17):
        clip = render_clip(scene_for_video_metadata(meta, rng), 17, 48)
        good = score_text_to_video(clip, meta)
        assert good["correct"] and good["objects_right"] == 1.0 and good["identity_kept"], (meta, good)
        assert good["flicker"] is not None and good["flicker"] < 0.5
        if meta["tag"] in MOVERS:
            assert not score_text_to_video(clip[::-1], meta)["motion_followed"]  # played backwards
        blank = np.full_like(clip, 245)
        wrong = score_text_to_video(blank, meta)
        assert wrong["objects_right"] == 0.0 and not wrong["correct"]


def test_flicker_is_measured_on_what_stands_still():
    rng = np.random.default_rng(1)
    meta = text_to_video_set(4, seed=7, frames=17)[3]  # moves_still
    clip = render_clip(scene_for_video_metadata(meta, rng), 17, 48)
    noisy = np.clip(clip + np.random.default_rng(2).normal(0, 6, clip.shape), 0, 255).astype(np.uint8)
    assert clip_flicker(clip) < 0.5 < 3.0 < clip_flicker(noisy)


def test_first_frame_psnr_and_psnr_outside_the_edit_drop_on_wrong_clips():
    meta, clip = image_to_video_set(1, seed=7, frames=17, size=48)[0]
    assert score_image_to_video(clip, clip[0], meta)["first_frame_psnr"] == PSNR_CAP
    shifted = np.roll(clip, 3, axis=2)
    assert score_image_to_video(shifted, clip[0], meta)["first_frame_psnr"] < 25
    triple = video_edit_set(1, seed=7)[0]
    source, target = render_clip(triple.source, 17, 48), render_clip(triple.target, 17, 48)
    assert score_video_edit(source, target, triple.source, triple.target)["psnr_outside"] == PSNR_CAP
    noisy = np.clip(target + np.random.default_rng(0).normal(0, 20, target.shape), 0, 255).astype(np.uint8)
    scores = score_video_edit(source, noisy, triple.source, triple.target)
    assert scores["psnr_outside"] < 28 and not scores["fully_right"]


def test_reference_video_is_judged_by_the_references_colours_and_the_named_motion():
    for ref in reference_video_set(6, seed=11):
        stills = ref.images(48)
        clauses = reference_clauses(ref.instruction, stills)
        assert [(c.cls, c.color, c.arg) for c in clauses] == \
            [(m.obj.cls, m.obj.color, m.direction) for m in ref.target.objects]  # the colour from the still
        clip = render_clip(ref.target, 17, 48)
        assert not score_reference_video(clip[::-1], ref.instruction, stills)["right"]  # the wrong way


def test_a_clip_sampled_in_a_batch_is_the_clip_the_pipeline_makes(tiny_video_model):
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task

    pipe = load_model(tiny_video_model)
    d = pipe.defaults
    meta, clip = image_to_video_set(2, seed=7, frames=17, size=48)[1]
    alone = pipe(GenerationRequest(Task.IMAGE_TO_VIDEO, meta["prompt"], images=[clip[0]], width=48, height=48,
                                   frames=17, steps=d.steps, guidance=d.guidance, seed=5)).frames
    batched = sample_clips(pipe, "image_to_video", ["a red circle moves up", meta["prompt"]], [9, 5],
                           images=[[clip[0]], [clip[0]]])
    assert batched[1].shape == (17, 48, 48, 3)
    assert np.abs(batched[1].astype(int) - alone).max() <= 8  # the planner's padding in a batch, no more
    assert np.array_equal(batched[1][0], clip[0])  # the given first frame, exactly
    with pytest.raises(ValueError, match="one list of stills per item"):
        sample_clips(pipe, "reference_to_video", ["a red circle", "a star"], [1, 2],
                     images=[[clip[0]], [clip[0], clip[1]]])


def test_the_whole_evaluation_runs_and_reports_every_figure(tiny_video_model):
    from app.core.checkpoints import load_model

    pipe = load_model(tiny_video_model)
    done = []
    row = evaluate_video_model(pipe, 3, seed=7, batch=2, progress=done.append)
    assert sum(done) == 12
    for key in ("t2v_correct", "t2v_motion_followed", "t2v_objects_right", "t2v_identity_kept", "i2v_motion_followed",
                "edit_fully_right", "r2v_right", "r2v_motion_followed"):
        assert 0.0 <= row[key] <= 1.0, key
    assert row["i2v_first_frame_psnr"] == PSNR_CAP  # the first frame is given, clean
    # Edits are scored as the product gives them (the source's unchanged pixels back) and as the DiT drew them.
    for key in ("edit_fully_right_drawn", "edit_done_drawn", "edit_kept_drawn", "edit_done", "edit_kept"):
        assert 0.0 <= row[key] <= 1.0, key
    assert row["edit_psnr_outside"] >= row["edit_psnr_outside_drawn"]
    assert "edit_bounded" not in row  # an undrafting model's edits have no draft to bound them
    assert row["t2v_clips"] == row["i2v_clips"] == row["edit_clips"] == row["r2v_clips"] == 3
    assert all(row[f"{t}_seconds"] >= 0 for t in VIDEO_EVAL_TASKS)
    off = evaluate_video_model(pipe, 2, seed=7, tasks=("text_to_video",), use_canvas=False)
    assert set(off) >= {"t2v_correct", "text_to_video_seconds"} and "i2v_clips" not in off
    table = format_markdown([{**row, "label": "tiny", "n": 3, "seconds": 1.0}, {**off, "label": "tiny (canvas off)"}])
    assert "| | tiny | tiny (canvas off) | issue's bar |" in table and ">= 0.85" in table
    with pytest.raises(ValueError, match="unknown video task"):
        evaluate_video_model(pipe, 1, tasks=("text_to_image",))


def test_sample_files_keep_the_pixels_and_a_folder_of_truth_scores_one(tmp_path):
    import json

    from app.media.probe import read_video_frames

    rng = np.random.default_rng(0)
    metas = text_to_video_set(7, seed=3, frames=17)
    for i, meta in enumerate(metas):
        (tmp_path / f"{i:05d}" / "samples").mkdir(parents=True)
        (tmp_path / f"{i:05d}" / "metadata.jsonl").write_text(json.dumps(meta) + "\n")
        clip = render_clip(scene_for_video_metadata(meta, rng), 17, 48)
        path = write_sample_clip(clip, tmp_path / f"{i:05d}" / "samples" / "0000.mp4")
        assert np.abs(read_video_frames(path).astype(int) - clip).max() <= 1
    summary = summarize_video_results(score_video_folder(tmp_path))
    assert summary["overall"] == 1.0 and summary["clips"] == 7 and summary["total_prompts"] == 7
    assert summary["flicker"] < 0.5
