import time

import numpy as np

from app.shapes import check_words, label_map, render, sample_edit
from app.shapes.dataset import caption_order, frame_order, sample_t2i_examples
from app.shapes.scene import Scene, ShapeObject


def test_t2i_examples_pair_known_captions_with_images():
    batch = sample_t2i_examples(np.random.default_rng(0), 32)
    assert len(batch) == 32
    for cs, image in batch:
        check_words(cs.caption)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert len({cs.caption for cs, _ in batch}) > 20  # varied, not one caption repeated


def test_t2i_examples_carry_scenes_for_label_maps():
    for cs, image in sample_t2i_examples(np.random.default_rng(1), 10, size=32):
        assert image.shape == (32, 32, 3)
        lm = label_map(cs.scene, grid=8)
        assert lm.shape == (8, 8) and (lm > 0).any()


def test_edit_sources_differ_from_targets():
    rng = np.random.default_rng(2)
    for _ in range(20):
        source, instruction, target = sample_edit(rng)
        check_words(instruction)
        assert (render(source) != render(target)).any()


def test_caption_order_keeps_the_captions_groups_and_frame_order_goes_left_to_right():
    right_star, circle, left_star = (ShapeObject("star", "red", 0.8, 0.3, 0.1), ShapeObject("circle", "blue", 0.1, 0.5, 0.1),
                                     ShapeObject("star", "red", 0.3, 0.7, 0.1))
    scene = Scene((right_star, circle, left_star))
    assert caption_order(scene) == [left_star, right_star, circle]  # the stars first, as named; them left to right
    assert frame_order(scene) == [circle, left_star, right_star]


def test_examples_are_fast_enough_for_training():
    rng = np.random.default_rng(3)
    start = time.perf_counter()
    sample_t2i_examples(rng, 200)
    rate = 200 / (time.perf_counter() - start)
    # Training runs about 1 step/s with batch 32; data must never be the bottleneck.
    assert rate > 150, f"{rate:.0f} images/s"
