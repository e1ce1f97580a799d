"""The clip words a video model is asked to refuse all others by (PipelineDefaults.trained_words) are the words
the clip generators write: a word they never use was never taught, one they use must not be refused."""
from __future__ import annotations

import numpy as np

from app.shapes.motion import motion_caption, random_motion_scene
from app.shapes.video_edits import random_reference_video, sample_video_edit
from app.shapes.vocab import CLIP_WORDS, tokenize_words


def test_clip_words_are_the_words_the_clip_generators_write():
    rng = np.random.default_rng(0)
    written = set()
    for _ in range(1500):
        written.update(tokenize_words(motion_caption(random_motion_scene(rng), rng)))
        written.update(tokenize_words(sample_video_edit(rng).instruction))
        written.update(tokenize_words(random_reference_video(rng).instruction))
    assert written == set(CLIP_WORDS)
