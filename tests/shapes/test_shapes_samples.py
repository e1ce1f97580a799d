"""The bundled samples (resources/samples) are scenes of the shapes world, written by its renderer,
and their suggested first edits are edits of the forms the model learnt."""
import numpy as np
import pytest

from app.settings import REPO_ROOT
from app.shapes import check_words, detect, render, sample_edit
from app.shapes.edits import EDIT_KINDS
from app.shapes.palette import BACKGROUND, COLORS
from app.shapes.samples import (CLIP_FRAMES, CLIP_NAME, CLIP_SIZE, FIRST_EDITS, SAMPLE_SCENES, SIZES, clip_scenes,
                                edit_target, first_edits, sample_image, write_samples)
from app.shapes.scene import MAX_HALF, MIN_HALF, Scene, ShapeObject

SAMPLES = REPO_ROOT / "resources" / "samples"


@pytest.mark.parametrize("scene", list(SAMPLE_SCENES.values()) + clip_scenes(),
                         ids=list(SAMPLE_SCENES) + [f"clip{k}" for k in range(CLIP_FRAMES)])
def test_every_sample_is_a_scene_of_the_world(scene):
    assert scene.is_valid() and 1 <= len(scene) <= 4
    assert all(MIN_HALF <= o.half <= MAX_HALF for o in scene.objects)


@pytest.mark.parametrize("name", list(SAMPLE_SCENES))
def test_the_committed_pictures_are_the_scenes_drawn_by_the_renderer(name):
    from app.media.probe import load_image

    for size in SIZES:
        image = load_image(SAMPLES / f"{name}_{size}.png")
        assert np.array_equal(image, render(SAMPLE_SCENES[name], size)), f"{name}_{size}.png: regenerate with " \
            "python -m app.shapes.samples resources/samples"
    # Exact palette colours on the exact background, and the detector reads the scene back.
    image = sample_image(name, 64)
    assert tuple(image[0, 0]) == BACKGROUND
    for o in SAMPLE_SCENES[name].objects:
        assert tuple(image[round(o.cy * 64), round(o.cx * 64)]) == COLORS[o.color]
    found = sorted((d.cls, d.color, round(d.center[0]), round(d.center[1])) for d in detect(image))
    want = sorted((o.cls, o.color, round(o.cx * 64), round(o.cy * 64)) for o in SAMPLE_SCENES[name].objects)
    assert found == want


def test_the_folder_holds_exactly_what_the_generator_writes_and_writing_is_deterministic(tmp_path):
    names = {f"{n}_{s}.png" for n in SAMPLE_SCENES for s in SIZES} | {CLIP_NAME}
    assert {p.name for p in SAMPLES.iterdir() if not p.name.startswith(".")} == names
    a = write_samples(tmp_path / "a")
    b = write_samples(tmp_path / "b")
    assert {p.name for p in a} == names
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b))


def test_the_clip_is_the_ball_rolling_right_in_the_world():
    from app.media.probe import read_video_frames

    frames = read_video_frames(SAMPLES / CLIP_NAME)
    assert frames.shape == (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, 3)
    xs = []
    for frame, scene in zip(frames[::4], clip_scenes()[::4]):  # H.264 is lossy: read it with the detector
        found = {(d.cls, d.color): d.center for d in detect(frame)}
        assert set(found) == {(o.cls, o.color) for o in scene.objects}
        for o in scene.objects:
            assert np.hypot(found[o.cls, o.color][0] - o.cx * CLIP_SIZE, found[o.cls, o.color][1] - o.cy * CLIP_SIZE) < 2
        xs.append(found["circle", "red"][0])
    assert xs == sorted(xs) and xs[-1] - xs[0] > CLIP_SIZE / 2


def test_first_edits_are_in_the_vocabulary_and_change_the_named_object():
    assert set(FIRST_EDITS) == set(SAMPLE_SCENES)
    targets = {e.instruction: e.target for name in FIRST_EDITS for e in first_edits(name)}
    for text in targets:
        check_words(text)
    assert all(t.is_valid() for t in targets.values())
    c = ShapeObject("circle", "red", 0.5, 0.5, 0.14)
    assert targets["make the circle blue"] == Scene((ShapeObject("circle", "blue", 0.5, 0.5, 0.14),))
    assert targets["move the square to the right"].objects[0].cx == pytest.approx(0.5)  # MOVE_STEP from 0.25
    assert len(targets["remove the star"]) == 2 and targets["remove the star"].count("star") == 0
    assert edit_target(Scene((c,)), "add a blue square to the right of the circle").objects[1].cx == \
        pytest.approx(0.5 + 0.14 + 0.11 + 0.04)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_edit_target_follows_the_rules_the_training_edits_follow(kind):
    rng = np.random.default_rng(5)
    for _ in range(40):
        edit = sample_edit(rng, kind)
        # An add's half-size is random in training; the instruction does not say it.
        half = edit.target.objects[-1].half if kind == "add" else (MIN_HALF + MAX_HALF) / 2
        assert edit_target(edit.source, edit.instruction, new_half=half) == edit.target, edit.instruction


def test_edit_target_refuses_what_it_cannot_do():
    three = SAMPLE_SCENES["three_shapes"]
    with pytest.raises(ValueError, match="no object"):
        edit_target(three, "make the triangle red")
    with pytest.raises(ValueError, match="no room"):
        edit_target(three, "move the star down")
    with pytest.raises(ValueError):
        edit_target(three, "a photo of a red circle")
