"""The video model's own parts: the pixel codec's causal frame packing, clip lengths, the saved codec
entry, and the four video tasks end to end on an untrained model of the embedded video format."""
import json

import numpy as np
import pytest
import torch

from app.core.checkpoints import ModelFolderError, load_model
from app.core.latents import PixelCodec
from app.core.request import GenerationRequest, Task
from app.shapes.motion import random_motion_scene, render_clip


def _clip(frames=17, size=48, seed=0):
    return render_clip(random_motion_scene(np.random.default_rng(seed)), frames, size)


def test_causal_packing_round_trips_a_clip_and_keeps_frame_zero_alone():
    codec = PixelCodec(temporal_factor=4)
    clip = _clip()
    z = codec.encode(clip, 48, 48, "cpu", torch.float32)
    assert z.shape == (1, 12, 5, 48, 48) == (1, *codec.latent_shape(48, 48, 17))
    # latent frame 0 is frame 0 alone (repeated), so a given first frame is a latent frame of its own
    first = codec.encode(clip[:1], 48, 48, "cpu", torch.float32)
    assert first.shape == (1, 12, 1, 48, 48)
    assert torch.equal(first[:, :, 0], z[:, :, 0])
    assert np.array_equal(codec.decode(z), clip)


def test_a_clip_of_another_length_is_cut_to_the_packing():
    codec = PixelCodec(temporal_factor=4)
    z = codec.encode(_clip(frames=19), 48, 48, "cpu", torch.float32)
    assert z.shape[2] == 5 and len(codec.decode(z)) == 17


def test_the_still_codec_is_unchanged():
    codec = PixelCodec()
    image = _clip(frames=1, size=64)[0]
    z = codec.encode(image, 64, 64, "cpu", torch.float32)
    assert z.shape == (1, 3, 64, 64) and codec.config() is None
    assert np.array_equal(codec.decode(z)[0], image)


def test_model_folder_records_and_checks_its_codec(tiny_video_model, tmp_path):
    pipe = load_model(tiny_video_model)
    assert pipe.codec.temporal_factor == 4 and pipe.defaults.frames == 17
    index = json.loads((tiny_video_model / "model_index.json").read_text())
    assert index["codec"] == {"kind": "pixel", "temporal_factor": 4}
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_video_model, broken)
    index["codec"] = {"kind": "mystery"}
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match="unknown codec"):
        load_model(broken)


def test_clip_lengths_are_checked_in_one_line(tiny_video_model):
    pipe = load_model(tiny_video_model)
    with pytest.raises(ValueError, match="nearest is 17"):
        pipe(GenerationRequest(Task.TEXT_TO_VIDEO, "a red circle moves up", width=48, height=48, frames=16, steps=1))
    assert pipe.clip_length(16) == 13 and pipe.clip_length(17) == 17 and pipe.clip_length(100) == 97


def test_an_edit_asking_for_more_frames_than_its_source_has_is_refused_in_words(tiny_video_model):
    pipe = load_model(tiny_video_model)
    short = _clip()[:9]
    with pytest.raises(ValueError, match="source clip has 9 frames and the edit asks for 17"):
        pipe(GenerationRequest(Task.VIDEO_EDIT, "make the circle blue", width=48, height=48, frames=17, steps=1,
                               video=short))


def test_planner_sees_evenly_spaced_frames_of_a_source_clip(tiny_video_model):
    pipe = load_model(tiny_video_model)
    clip = _clip()
    seen = pipe.planner_clip(clip)
    assert len(seen) == pipe.defaults.planner_frames
    assert np.array_equal(seen[0], clip[0]) and np.array_equal(seen[-1], clip[-1])


@pytest.mark.parametrize("task", [Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.VIDEO_EDIT, Task.REFERENCE_TO_VIDEO])
def test_each_video_task_makes_a_clip_with_a_keyframe_plan(tiny_video_model, task):
    pipe = load_model(tiny_video_model)
    clip = _clip()
    inputs = {Task.TEXT_TO_VIDEO: {}, Task.IMAGE_TO_VIDEO: {"images": [clip[0]]}, Task.VIDEO_EDIT: {"video": clip},
              Task.REFERENCE_TO_VIDEO: {"images": [clip[0], clip[8]]}}[task]
    result = pipe(GenerationRequest(task, "a red circle moves to the right", width=48, height=48, frames=17,
                                    steps=2, seed=3, **inputs))
    assert result.frames.shape == (17, 48, 48, 3)
    assert result.plan.canvas.shape[1] == 3  # three keyframes
    if task is Task.IMAGE_TO_VIDEO:  # the given first frame is kept exactly (clean at timestep 0)
        assert np.array_equal(result.frames[0], clip[0])
    again = pipe(GenerationRequest(task, "a red circle moves to the right", width=48, height=48, frames=17,
                                   steps=2, seed=3, **inputs))
    assert np.array_equal(again.frames, result.frames)  # a seed gives the same clip
