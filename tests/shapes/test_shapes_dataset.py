import time

import numpy as np

from app.shapes import check_words, label_map, sample_edit_batch, sample_t2i_batch
from app.shapes.dataset import sample_t2i_examples


def test_t2i_batch_pairs_known_captions_with_images():
    batch = sample_t2i_batch(np.random.default_rng(0), 32)
    assert len(batch) == 32
    for caption, image in batch:
        check_words(caption)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert len({c for c, _ in batch}) > 20  # varied, not one caption repeated


def test_t2i_examples_carry_scenes_for_label_maps():
    for cs, image in sample_t2i_examples(np.random.default_rng(1), 10, size=32):
        assert image.shape == (32, 32, 3)
        lm = label_map(cs.scene, grid=8)
        assert lm.shape == (8, 8) and (lm > 0).any()


def test_edit_batch_sources_differ_from_targets():
    for source, instruction, target in sample_edit_batch(np.random.default_rng(2), 20):
        check_words(instruction)
        assert source.shape == target.shape == (64, 64, 3)
        assert (source != target).any()


def test_batches_are_fast_enough_for_training():
    rng = np.random.default_rng(3)
    start = time.perf_counter()
    sample_t2i_batch(rng, 200)
    rate = 200 / (time.perf_counter() - start)
    # Training runs about 1 step/s with batch 32; data must never be the bottleneck.
    assert rate > 150, f"{rate:.0f} images/s"
