"""The shapes world in motion: clips, captions, clip edits, reference clips, and the detector-based checks."""
import itertools
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.shapes import detect, render
from app.shapes.motion import (ACTIONS, MovingObject, MotionScene, clause_of, frame_times, motion_caption,
                               motion_scene_for, parse_caption, random_motion_scene, render_clip)
from app.shapes.motion_measure import (edit_region, edit_scores, edit_success, events_followed, flicker, identity_kept,
                                       kept_outside, motion_followed, objects_right, static_mask, tracks)
from app.shapes.palette import CLASSES, COLOR_NAMES
from app.shapes.render import object_mask
from app.shapes.scene import ShapeObject
from app.shapes.video_edits import (VIDEO_EDIT_KINDS, parse_reference_instruction, random_reference_video,
                                    random_video_edit, sample_video_edit, video_edit_kind)
from app.shapes.video_prompts import (VIDEO_TAGS, make_video_metadata, read_video_metadata, scene_for_video_metadata,
                                      score_clip, write_video_metadata)
from app.shapes.vocab import MOTION_WORDS, VIDEO_VOCABULARY, VOCABULARY, UnknownWordError, check_video_words, check_words

S = ShapeObject
ROOT = Path(__file__).resolve().parents[2]


def _right_clip():
    """A red circle from x 0.2 to 0.7 on the top half, a blue square still below it."""
    return MotionScene((MovingObject(S("circle", "red", 0.2, 0.3, 0.1), dx=0.5),
                        MovingObject(S("square", "blue", 0.5, 0.75, 0.1))))


# ----- clips -----

def test_clips_have_the_right_shape_and_are_deterministic_per_seed():
    a = random_motion_scene(np.random.default_rng(7))
    b = random_motion_scene(np.random.default_rng(7))
    assert a == b and (render_clip(a) == render_clip(b)).all()
    clip = render_clip(a)
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    assert render_clip(a, frames=20, size=48).shape == (20, 48, 48, 3)
    # A frame is exactly a still of the world at that frame's time.
    for k, t in enumerate(frame_times(16)):
        assert (clip[k] == render(a.at(t), 64)).all()
    assert random_motion_scene(np.random.default_rng(8)) != a


def test_generated_clips_keep_objects_in_frame_apart_and_nameable():
    rng = np.random.default_rng(1)
    seen_actions = set()
    for _ in range(60):
        scene = random_motion_scene(rng)
        assert scene.is_valid() and 1 <= len(scene) <= 3
        assert any(m.action == "moves" for m in scene.objects)
        seen_actions.update(m.action for m in scene.objects)
        names = [n for m in scene.objects for n in m.names()]
        assert len(names) == len(set(names))
        for frames in (16, 7):  # no frame count makes two objects touch
            for s in scene.scenes(frames):
                assert s.is_valid()
                for p, q in itertools.combinations(s.objects, 2):
                    assert not (object_mask(p, 64) & object_mask(q, 64)).any()
        for m in scene.objects:
            if m.moving:
                assert 0.25 - 1e-9 <= np.hypot(m.dx, m.dy) <= 0.5 + 1e-9
    assert seen_actions == set(ACTIONS)


def test_clip_round_trips_through_json():
    scene = random_motion_scene(np.random.default_rng(3), actions=["moves", "turns", "appears"])
    assert MotionScene.from_dict(json.loads(json.dumps(scene.to_dict()))) == scene


# ----- captions -----

@pytest.mark.parametrize("caption", ["a red circle moves to the right", "a blue square moves up",
                                     "a green star moves left and a yellow triangle moves down"])
def test_the_issues_captions_are_made_parsed_and_followed(caption):
    clauses = parse_caption(caption)
    scene = motion_scene_for(np.random.default_rng(0), [(c.cls, c.color, c.action, c.arg, None) for c in clauses])
    assert [clause_of(m) for m in scene.objects] == clauses
    assert motion_caption(scene) in (caption, caption.replace("moves left", "moves to the left"))
    assert motion_followed(render_clip(scene), caption)


def test_captions_use_only_known_words_and_every_new_word_is_used():
    rng = np.random.default_rng(4)
    used = set()
    for _ in range(150):
        scene = random_motion_scene(rng)
        caption = motion_caption(scene, rng)
        used.update(check_video_words(caption))
        assert parse_caption(caption) == [clause_of(m) for m in scene.objects]
        used.update(check_video_words(sample_video_edit(rng).instruction))
        used.update(check_video_words(random_reference_video(rng).instruction))
    assert set(MOTION_WORDS) <= used, set(MOTION_WORDS) - used
    with pytest.raises(UnknownWordError, match="'slowly'"):
        check_video_words("a red circle moves slowly")
    # The image vocabulary is untouched: clip words are refused there, as the image model never learnt them.
    with pytest.raises(UnknownWordError):
        check_words("a red circle moves to the right")


def test_new_words_leave_the_committed_tokenizer_ids_alone():
    assert VIDEO_VOCABULARY[:len(VOCABULARY)] == VOCABULARY and not set(MOTION_WORDS) & set(VOCABULARY)
    vocab = json.loads((ROOT / "models/metacanvas-shapes/planner/tokenizer.json").read_text())["model"]["vocab"]
    words = [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if w in set(VIDEO_VOCABULARY)]
    # The committed model's words are VOCABULARY in order; a tokenizer built from VIDEO_VOCABULARY (same
    # order, new words after) keeps every one of those ids.
    assert words == list(VOCABULARY)


# ----- motion, objects, identity, flicker -----

def test_a_clip_moving_right_is_followed_and_its_reverse_is_not():
    scene = _right_clip()
    clip = render_clip(scene)
    caption = "a red circle moves to the right and a blue square stays still"
    assert motion_caption(scene) == caption
    assert motion_followed(clip, caption) and motion_followed(clip, scene)
    assert motion_followed(clip, "a red circle moves right") and motion_followed(clip, "a circle moves right")
    for wrong in ("a red circle moves left", "a red circle moves up", "a red circle moves down to the right",
                  "a blue circle moves right", "a red circle moves right and a blue square moves up"):
        assert not motion_followed(clip, wrong), wrong
    assert not motion_followed(clip[::-1], caption)
    assert motion_followed(clip[::-1], "a red circle moves left and a blue square stays still")


def test_ground_truth_clips_pass_every_check_and_reversed_ones_fail_motion():
    rng = np.random.default_rng(5)
    for _ in range(12):
        scene = random_motion_scene(rng)
        clip = render_clip(scene)
        found = tracks(clip)
        caption = motion_caption(scene, rng)
        assert motion_followed(clip, caption, found) and events_followed(clip, scene, found)
        assert identity_kept(clip, caption, found)
        assert objects_right(clip, scene) == 1.0 and objects_right(clip, caption) == 1.0
        assert flicker(clip, static_mask(scene, 16, 64)) == 0.0
        assert not motion_followed(clip[::-1], scene)


def test_identity_is_kept_on_a_clean_clip_and_broken_by_an_unannounced_change():
    clean = render_clip(_right_clip())
    assert identity_kept(clean)
    turning = MotionScene((MovingObject(S("circle", "red", 0.2, 0.3, 0.1), dx=0.5, turn="green", turn_at=0.5),
                           MovingObject(S("square", "blue", 0.5, 0.75, 0.1))))
    clip = render_clip(turning)
    assert len([t for t in tracks(clip) if len(t) == 16]) == 2  # linked by position through the change
    assert not identity_kept(clip)
    assert not identity_kept(clip, "a red circle moves right and a blue square stays still")
    assert identity_kept(clip, turning)  # announced: "a red circle turns green"
    # A class change half way is never announced.
    morph = np.concatenate([clean[:8], render_clip(MotionScene((MovingObject(S("star", "red", 0.2, 0.3, 0.1), dx=0.5),
                                                                MovingObject(S("square", "blue", 0.5, 0.75, 0.1)))))[8:]])
    assert not identity_kept(morph)


def test_objects_right_per_frame_and_flicker():
    scene = _right_clip()
    clip = render_clip(scene)
    extra = MotionScene(scene.objects + (MovingObject(S("star", "green", 0.8, 0.75, 0.09)),))
    assert objects_right(render_clip(extra), scene) == 0.0
    half = np.concatenate([clip[:8], render_clip(MotionScene(scene.objects[:1]))[8:]])
    assert objects_right(half, scene) == 0.5
    static = static_mask(scene, 16, 64)
    assert static.mean() > 0.5 and not static[int(0.3 * 64), int(0.5 * 64)]  # the circle's path is busy
    assert static[int(0.75 * 64), int(0.5 * 64)]  # the still square is not
    noisy = np.clip(clip + np.random.default_rng(0).normal(0, 4, clip.shape), 0, 255).astype(np.uint8)
    assert 3.0 < flicker(noisy, static) < 6.0  # 2 sigma / sqrt(pi) = 4.5 for independent noise per frame


# ----- clip edits -----

@pytest.mark.parametrize("kind", VIDEO_EDIT_KINDS)
def test_each_clip_edit_changes_what_it_says_and_keeps_the_rest(kind):
    rng = np.random.default_rng(40 + VIDEO_EDIT_KINDS.index(kind))
    for _ in range(5):
        source, instruction, target = sample_video_edit(rng, kind)
        assert video_edit_kind(instruction) == kind and target.is_valid()
        check_video_words(instruction)
        a, b = render_clip(source), render_clip(target)
        region = edit_region(source, target, 16, 64, grow=0)
        assert (a[~region] == b[~region]).all(), instruction
        assert (a[region] != b[region]).any(), instruction
        assert kept_outside(a, b, region) == 1.0
        assert edit_success(a, b, source, target), (instruction, edit_scores(a, b, source, target))
        assert not edit_success(a, a, source, target), instruction  # doing nothing is no edit
        _check_instruction_meaning(source, instruction, target)


def _find(scene, ref):
    """The object a reference names ("the square", "the blue square", "the moving square")."""
    words = ref.split()[1:]
    cls = words[-1]
    found = [m for m in scene.objects if m.obj.cls == cls and (len(words) == 1 or words[0] == m.obj.color
                                                                or (words[0] == "moving" and m.moving))]
    assert len(found) == 1, (ref, scene)
    return found[0]


def _check_instruction_meaning(source, instruction, target):
    gone = [m for m in source.objects if m not in target.objects]
    new = [m for m in target.objects if m not in source.objects]
    if m := re.fullmatch(r"make (the .+) (\w+)", instruction):
        (old,), (n,) = gone, new
        assert _find(source, m[1]) == old and n.obj.color == m[2]
        assert (n.obj.cls, n.obj.cx, n.obj.cy, n.dx, n.dy) == (old.obj.cls, old.obj.cx, old.obj.cy, old.dx, old.dy)
    elif m := re.fullmatch(r"(?:remove|delete) (the .+)", instruction):
        assert gone == [_find(source, m[1])] and not new
    elif m := re.fullmatch(r"add an? (\w+) (\w+)(?: moving (.+))?", instruction):
        (n,) = new
        assert not gone and (n.obj.color, n.obj.cls) == (m[1], m[2])
        assert (n.direction is None) == (m[3] is None)
        if m[3]:
            assert n.direction == parse_caption(f"a circle moves {m[3]}")[0].arg
    elif m := re.fullmatch(r"replace (the .+) with an? (\w+) (\w+)", instruction):
        (old,), (n,) = gone, new
        assert _find(source, m[1]) == old and (n.obj.color, n.obj.cls) == (m[2], m[3])
        assert (n.obj.cx, n.obj.cy, n.obj.half, n.dx, n.dy) == (old.obj.cx, old.obj.cy, old.obj.half, old.dx, old.dy)
    else:
        m = re.fullmatch(r"(the .+?) moves (.+) instead", instruction)
        (old,), (n,) = gone, new
        assert _find(source, m[1]) == old and (n.obj.cx, n.obj.cy) == (old.obj.cx, old.obj.cy)
        assert n.direction == parse_caption(f"a circle moves {m[2]}")[0].arg != old.direction


def test_the_issues_edit_examples():
    rng = np.random.default_rng(0)
    source = MotionScene((MovingObject(S("square", "red", 0.2, 0.25, 0.1), dx=0.4),
                          MovingObject(S("square", "green", 0.5, 0.75, 0.1))))
    for kind in VIDEO_EDIT_KINDS:
        instruction, target = random_video_edit(source, rng, kind)
        assert target.is_valid() and video_edit_kind(instruction) == kind
    # "the moving square" names the one moving square of two.
    texts = {random_video_edit(source, rng, "recolour")[0] for _ in range(60)}
    assert any(t.startswith("make the moving square ") for t in texts)
    with pytest.raises(ValueError):
        random_video_edit(MotionScene(source.objects[:1]), rng, "remove")


# ----- reference-image clips -----

def test_reference_instructions_name_objects_that_are_in_the_references():
    rng = np.random.default_rng(6)
    counts = set()
    for _ in range(25):
        ref = random_reference_video(rng)
        counts.add(len(ref.references))
        check_video_words(ref.instruction)
        named = parse_reference_instruction(ref.instruction)
        assert len(named) == len(ref.target) and len(ref.references) in (1, 2)
        images = ref.images(64)
        for part, m in zip(named, ref.target.objects):
            still = ref.references[part.image]
            matches = [o for o in still.objects if o.cls == part.cls and (part.color is None or o.color == part.color)]
            assert len(matches) == 1, (ref.instruction, still)  # named alone in its image
            (o,) = matches
            assert (o.cls, o.color, o.half) == (m.obj.cls, m.obj.color, m.obj.half)  # identity from the image
            assert (o.cx, o.cy) == (m.obj.cx, m.obj.cy) and m.direction == part.direction
            assert (o.cls, o.color) in {(d.cls, d.color) for d in detect(images[part.image])}
        assert motion_followed(render_clip(ref.target), ref.target)
    assert counts == {1, 2}
    two = random_reference_video(np.random.default_rng(1), n_images=2)
    assert re.fullmatch(r"the (\w+ )?\w+ from the first image moves .+ and the (\w+ )?\w+ from the second image moves .+",
                        two.instruction)


# ----- GenEval-style clip prompts -----

def test_video_prompt_records_are_deterministic_cover_every_tag_and_score_their_ground_truth(tmp_path):
    records = make_video_metadata(14, seed=1)
    assert records == make_video_metadata(14, seed=1)
    assert {r["tag"] for r in records} == set(VIDEO_TAGS)
    path = write_video_metadata(tmp_path / "evaluation_metadata.jsonl", records)
    assert read_video_metadata(path) == records
    rng = np.random.default_rng(0)
    for r in records[:7]:
        check_video_words(r["prompt"])
        assert all(i["class"] in CLASSES and i["color"] in COLOR_NAMES for i in r["include"])
        clip = render_clip(scene_for_video_metadata(r, rng), frames=r["frames"])
        score = score_clip(clip, r)
        assert score["correct"] and score["steady"] and score["flicker"] == 0.0, (r, score)
        assert not score_clip(clip[::-1], r)["correct"], r


def test_checks_survive_a_generators_noise_and_blur():
    rng = np.random.default_rng(9)
    for r in make_video_metadata(7, seed=2):
        clip = render_clip(scene_for_video_metadata(r, rng))
        blurred = np.stack([cv2.GaussianBlur(f.astype(np.float32), (3, 3), 0.8) for f in clip])
        noisy = np.clip(np.rint(blurred + rng.normal(0, 6, clip.shape)), 0, 255).astype(np.uint8)
        score = score_clip(noisy, r)
        assert score["correct"] and not score["steady"], (r["prompt"], score)
