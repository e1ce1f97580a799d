"""The detector must read ground-truth renders (>= 99.5 %) and survive a generator's noise and blur."""
from collections import Counter

import cv2
import numpy as np
import pytest

from app.shapes import detect, foreground_mask, random_scene, render
from app.shapes.scene import Scene, ShapeObject


def _noisy(image, rng, sigma=6.0, blur=0.8):
    out = cv2.GaussianBlur(image.astype(np.float32), (3, 3), blur) + rng.normal(0, sigma, image.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _accuracy(rng, n_scenes, corrupt=None):
    """Fraction of objects detected with the right class and colour, and of scenes read exactly."""
    objects = right = scenes_right = 0
    for _ in range(n_scenes):
        scene = random_scene(rng)
        image = render(scene)
        if corrupt:
            image = corrupt(image, rng)
        want = Counter((o.cls, o.color) for o in scene.objects)
        got = Counter((d.cls, d.color) for d in detect(image))
        objects += sum(want.values())
        right += sum((want & got).values()) - max(0, sum((got - want).values()))
        scenes_right += want == got
    return objects, right / objects, scenes_right / n_scenes


def test_detector_reads_ground_truth_renders():
    objects, object_acc, scene_acc = _accuracy(np.random.default_rng(100), 420)
    assert objects >= 1000
    assert object_acc >= 0.995 and scene_acc >= 0.995, (object_acc, scene_acc)


def test_detector_survives_noise_and_blur():
    objects, object_acc, scene_acc = _accuracy(np.random.default_rng(101), 420, _noisy)
    assert objects >= 1000
    assert object_acc >= 0.99 and scene_acc >= 0.98, (object_acc, scene_acc)


def test_detection_boxes_and_centres_match_the_scene():
    scene = Scene((ShapeObject("star", "orange", 0.3, 0.3, 0.14), ShapeObject("triangle", "purple", 0.7, 0.72, 0.08)))
    dets = {d.cls: d for d in detect(render(scene))}
    assert set(dets) == {"star", "triangle"}
    for o in scene.objects:
        d = dets[o.cls]
        assert d.color == o.color
        assert abs(d.center[0] - o.cx * 64) < 1.0 and abs(d.center[1] - o.cy * 64) < 1.0
        x0, y0, x1, y1 = (v * 64 for v in o.box)
        assert all(abs(a - b) <= 1.5 for a, b in zip(d.box, (x0, y0, x1, y1)))
    # Largest first: GenEval takes detections in confidence order, ours in size order.
    assert detect(render(scene))[0].cls == "star"


def test_empty_and_unrelated_images():
    assert detect(render(Scene(()))) == []
    assert not foreground_mask(render(Scene(()))).any()
    grey = np.full((64, 64, 3), 60, np.uint8)  # dark grey is no palette colour
    assert detect(grey) == []
    with pytest.raises(ValueError, match="RGB"):
        detect(np.zeros((64, 64), np.uint8))


def test_detector_works_at_other_sizes():
    rng = np.random.default_rng(7)
    for _ in range(30):
        scene = random_scene(rng)
        got = sorted((d.cls, d.color) for d in detect(render(scene, 128)))
        assert got == sorted((o.cls, o.color) for o in scene.objects)
