"""The video measures on clips whose truth is known: ground-truth renders pass, wrong clips fail."""
import numpy as np

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


def test_reference_video_ground_truth_is_right_and_an_empty_clip_is_not():
    for ref in reference_video_set(4, seed=7):
        clip = render_clip(ref.target, 17, 48)
        stills = ref.images(48)
        assert score_reference_video(clip, ref.instruction, stills)["right"]
        blank = np.full_like(clip, clip[0, 0, 0])
        assert not score_reference_video(blank, ref.instruction, stills)["right"]
