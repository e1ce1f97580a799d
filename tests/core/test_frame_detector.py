"""Clips made from an image or reference stills are drafted from their words and moved onto the objects the
media show (app/core/frame_detector.py): the matching rules, the model folder's component, and the embedded
video model's image-to-video and reference-video plans."""
import json
import shutil

import numpy as np
import pytest
import torch

from app.core.checkpoints import ModelFolderError, load_model
from app.core.draft import DraftConfig, quantize_objects
from app.core.frame_detector import onto_first_frame, onto_found
from app.core.reference_stills import onto_named_stills
from app.core.request import GenerationRequest, Task
from app.shapes.motion import random_motion_scene, render_clip
from app.shapes.palette import label_index
from app.shapes.video_edits import random_reference_video
from app.shapes.video_prompts import make_video_metadata, scene_for_video_metadata

CONFIG = DraftConfig(labels=25, bins=16, max_objects=3, track=True)
VIDEO_MODEL = "models/metacanvas-shapes-video"


def _rows(*objects):
    return torch.as_tensor(np.asarray([[list(o) for o in objects] + [[0, -1, -1, -1, -1, -1]]
                                       + [[-1] * 6] * (CONFIG.length - len(objects) - 1)]))


def _found(*objects):
    rows = torch.full((1, 4, 4), -1, dtype=torch.long)
    for i, o in enumerate(objects):
        rows[0, i] = torch.tensor(o)
    return rows


def test_a_drafted_track_starts_where_the_image_has_its_object_and_keeps_its_motion():
    drafted = _rows((5, 2, 3, 1, 6, 3))  # label 5 drafted at (2, 3), moving 4 bins right
    moved = onto_first_frame(drafted, _found((5, 6, 8, 2)), CONFIG)
    assert moved[0, 0].tolist() == [5, 6, 8, 2, 10, 8] and moved[0, 1, 0] == 0


def test_objects_match_by_label_and_an_object_the_image_lacks_never_takes_over_another():
    drafted = _rows((5, 2, 3, 1, 2, 9), (7, 8, 8, 0, 4, 8))  # 5 moves down 6, 7 moves left 4
    found = _found((9, 12, 2, 0), (5, 3, 3, 1))  # no 7 in the image; 9 is not in the words
    moved = onto_first_frame(drafted, found, CONFIG)
    assert moved[0, 0].tolist() == [5, 3, 3, 1, 3, 9]
    assert moved[0, 1].tolist() == [7, 8, 8, 0, 4, 8]  # not in the image: it keeps its drafted track
    assert moved[0, 2].tolist() == [9, 12, 2, 0, 12, 2]  # found, not named: it does not move
    assert moved[0, 3, 0] == 0


def test_a_track_ends_with_its_whole_object_inside_the_frame_and_undrafted_items_stay_undrafted():
    drafted = torch.cat([_rows((5, 2, 3, 3, 10, 3)), torch.full((1, CONFIG.length, 6), -1)])
    moved = onto_first_frame(drafted, torch.cat([_found((5, 12, 3, 3)), _found((5, 1, 1, 1))]), CONFIG)
    # size bin 3 is a half-side of 0.1325 of the frame: its centre at most in bin 13 (0.84 + 0.13 < 1)
    assert moved[0, 0].tolist() == [5, 12, 3, 3, 13, 3]
    assert (moved[1] == -1).all()
    # A drafted object the image does not hold (it appears later) keeps its drafted track ...
    both = onto_first_frame(_rows((5, 2, 3, 1, 6, 3), (7, 8, 8, 0, 4, 8)), _found((5, 10, 8, 2)), CONFIG)
    assert both[0, 1].tolist() == [7, 8, 8, 0, 4, 8]
    # ... but an image with nothing found in it is not drafted at all.
    assert (onto_first_frame(_rows((5, 2, 3, 1, 6, 3)), _found(), CONFIG) == -1).all()


def test_reference_tracks_take_a_stills_object_of_their_class_when_the_words_name_no_colour():
    red_circle, blue_circle, green_star = label_index("circle", "red"), label_index("circle", "blue"), \
        label_index("star", "green")
    # The words drafted a blue circle (their colour a guess) moving right and a green star moving up.
    drafted = _rows((blue_circle, 2, 3, 1, 8, 3), (green_star, 9, 9, 0, 9, 4))
    # The stills show a red circle, the green star, and a square the words do not take.
    found = _found((red_circle, 4, 5, 2), (green_star, 12, 10, 1), (label_index("square", "red"), 1, 12, 0))
    moved = onto_found(drafted, found, CONFIG, keep_unnamed=False, same_class=True)
    assert moved[0, 0].tolist() == [red_circle, 4, 5, 2, 10, 5]  # the still's circle, in its own colour
    assert moved[0, 1].tolist() == [green_star, 12, 10, 1, 12, 5]
    assert moved[0, 2, 0] == 0  # the square is left out of the clip
    # A label's own object comes before another of its class, whichever the words drafted first.
    both = onto_found(_rows((blue_circle, 2, 3, 1, 8, 3), (red_circle, 9, 9, 0, 9, 4)),
                      _found((red_circle, 4, 5, 2), (blue_circle, 12, 10, 1)), CONFIG, keep_unnamed=False,
                      same_class=True)
    assert [both[0, 0, :2].tolist(), both[0, 1, :2].tolist()] == [[blue_circle, 12], [red_circle, 4]]
    # Image-to-video matches by class only where the words name no colour: "a blue circle" of an image with a
    # red one draws a blue circle (the red one repainted would not be what was asked) ...
    assert onto_first_frame(drafted, found, CONFIG)[0, 0].tolist() == [blue_circle, 2, 3, 1, 8, 3]
    named = onto_first_frame(drafted, found, CONFIG, ["a blue circle moves right and a green star moves up"])
    assert named[0, 0].tolist() == [blue_circle, 2, 3, 1, 8, 3]
    # ... while "the circle moves right" (its blue the drafter's guess) moves the image's red circle.
    guessed = onto_first_frame(drafted, found, CONFIG, ["the circle moves right and a green star moves up"])
    assert guessed[0, 0].tolist() == [red_circle, 4, 5, 2, 10, 5]
    assert guessed[0, 1].tolist() == [green_star, 12, 10, 1, 12, 5]
    # A colour named for another object is not one named for the circle: a drafted green circle is a guess.
    green_circle = label_index("circle", "green")
    greened = onto_first_frame(_rows((green_circle, 2, 3, 1, 8, 3), (green_star, 9, 9, 0, 9, 4)), found, CONFIG,
                               ["the circle moves right and the green star moves up"])
    assert greened[0, 0].tolist() == [red_circle, 4, 5, 2, 10, 5]


def test_reference_tracks_take_each_object_from_the_still_the_words_name():
    yellow_star, purple_star = label_index("star", "yellow"), label_index("star", "purple")
    words = "the star from the first image moves to the right and the star from the second image moves up"
    # The drafter guessed the colours the other way round: a purple star moving right, a yellow one moving up.
    drafted = _rows((purple_star, 2, 8, 1, 8, 8), (yellow_star, 10, 12, 1, 10, 6))
    first, second = _found((yellow_star, 3, 8, 1)), _found((purple_star, 12, 12, 1))
    # Matched as one pool, each drafted star takes the still of its guessed colour: the first image's star
    # would move up, against the words.
    pooled = onto_found(drafted, torch.cat([first, second], dim=1), CONFIG, keep_unnamed=False, same_class=True)
    assert pooled[0, 0].tolist()[:3] == [purple_star, 12, 12]
    named = onto_named_stills(drafted[0], [first[0], second[0]], words, CONFIG)
    assert named[0].tolist() == [yellow_star, 3, 8, 1, 9, 8]  # the first image's star, moving right
    assert named[1].tolist() == [purple_star, 12, 12, 1, 12, 6]  # the second image's, moving up
    assert named[2, 0] == 0
    # A colour the words name picks that object of the still; a drafted object they do not name is left out;
    # a named object the still lacks keeps its drafted track.
    red_circle, blue_circle = label_index("circle", "red"), label_index("circle", "blue")
    still = _found((red_circle, 4, 4, 0), (blue_circle, 11, 4, 0))
    chosen = onto_named_stills(_rows((red_circle, 5, 5, 0, 5, 11), (label_index("square", "green"), 8, 8, 0, 2, 8))[0],
                               [still[0]], "the blue circle from the image moves down", CONFIG)
    assert chosen[0].tolist() == [blue_circle, 11, 4, 0, 11, 10] and chosen[1, 0] == 0
    lacking = onto_named_stills(_rows((purple_star, 2, 8, 1, 8, 8))[0], [_found((red_circle, 4, 4, 0))[0]],
                                "the star from the image moves right", CONFIG)
    assert lacking[0].tolist() == [purple_star, 2, 8, 1, 8, 8]
    # Words of another form, or a named object with no drafted row of its class: the pooled matching decides.
    assert onto_named_stills(drafted[0], [first[0], second[0]], "two stars dance", CONFIG) is None
    assert onto_named_stills(drafted[0], [first[0], second[0]], "the circle from the image moves up", CONFIG) is None


@pytest.fixture(scope="module")
def video_model():
    return load_model(VIDEO_MODEL)


def test_the_embedded_video_model_drafts_a_clip_from_an_image_where_the_image_has_its_objects(video_model):
    """Its plan for an image-to-video request starts each named object where the image has it and moves it
    the named way; a text-to-video request for the same words is drafted anywhere the words allow."""
    pipe = video_model
    assert pipe.planner.frame_detector is not None
    config = pipe.planner.drafter.config
    metas = [m for m in make_video_metadata(60, seed=123) if m["tag"] == "one_moves"][:6]
    assert metas
    rng = np.random.default_rng(5)
    placed = moved_right = 0
    for k, meta in enumerate(metas):
        scene = scene_for_video_metadata(meta, rng)
        image = render_clip(scene, 17, 48)[0]
        request = GenerationRequest(Task.IMAGE_TO_VIDEO, meta["prompt"], images=[image], width=48, height=48,
                                    frames=17, seed=k)
        rows = pipe.plan(request).draft[0]
        truth = quantize_objects([(label_index(m.obj.cls, m.obj.color), m.obj.cx, m.obj.cy, m.obj.half,
                                   m.obj.cx + m.dx, m.obj.cy + m.dy) for m in scene.objects], config)
        label, x, y = rows[0, :3].tolist()
        placed += label == truth[0, 0] and abs(x - truth[0, 1]) <= 1 and abs(y - truth[0, 2]) <= 1
        dx, dy = rows[0, 4] - rows[0, 1], rows[0, 5] - rows[0, 2]
        want_dx, want_dy = np.sign(truth[0, 4] - truth[0, 1]), np.sign(truth[0, 5] - truth[0, 2])
        moved_right += (np.sign(int(dx)) == want_dx) and (np.sign(int(dy)) == want_dy)
    assert placed >= len(metas) - 1 and moved_right >= len(metas) - 1
    # An image with nothing of the model's world in it is not drafted (the words' tracks would fight it).
    blank = GenerationRequest(Task.IMAGE_TO_VIDEO, metas[0]["prompt"], images=[np.full((48, 48, 3), 30, np.uint8)],
                              width=48, height=48, frames=17, seed=0)
    assert pipe.plan(blank).draft is None or (pipe.plan(blank).draft[0, 0, 0] < 0)
    # Without a frame detector nothing is drafted for a clip from an image (the model plans it as trained to).
    detector, pipe.planner.frame_detector = pipe.planner.frame_detector, None
    try:
        assert pipe.plan(request).draft is None or (pipe.plan(request).draft[0, 0, 0] < 0)
    finally:
        pipe.planner.frame_detector = detector


def test_a_frame_detector_that_does_not_fit_the_track_drafter_is_refused(tmp_path):
    folder = tmp_path / "video"
    shutil.copytree(VIDEO_MODEL, folder)
    config = folder / "frame_detector" / "config.json"
    cfg = json.loads(config.read_text())
    cfg["draft"]["bins"] = 12
    config.write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="frame detector.*bins"):
        load_model(folder)
    index = json.loads((folder / "model_index.json").read_text())
    del index["layout_drafter"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match="track drafter"):
        load_model(folder)


def test_the_frame_detector_goes_only_into_a_folder_with_a_track_drafter(tmp_path):
    from app.train.frame_detector import attach_frame_detector, frame_detector_from, main

    detector = frame_detector_from("models/metacanvas-shapes")
    with pytest.raises(ModelFolderError, match="no track drafter"):
        attach_frame_detector("models/metacanvas-shapes-video-text-only", detector)
    folder = tmp_path / "video"
    shutil.copytree(VIDEO_MODEL, folder, ignore=shutil.ignore_patterns("frame_detector"))
    index = json.loads((folder / "model_index.json").read_text())
    del index["frame_detector"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert load_model(folder).planner.frame_detector is None
    assert main(["--from", "models/metacanvas-shapes", "--into", str(folder)]) == 0
    assert load_model(folder).planner.frame_detector is not None


def test_image_to_video_training_batches_carry_their_true_tracks_once_asked():
    from app.train.video_data import VideoRecipe, make_video_batch, track_draft_config

    recipe = VideoRecipe.load("app/train/recipes/video/shapes-video-48-tracks-cpu.json")
    config = track_draft_config(recipe)
    rng = np.random.default_rng(0)
    assert "draft" not in make_video_batch(rng, recipe, "image_to_video", 2, config)
    batch = make_video_batch(rng, recipe, "image_to_video", 2, config, ("text_to_video", "image_to_video"))
    assert batch["draft"].shape == (2, config.length, 6) and (batch["draft"][:, 0, 0] > 0).all()
    assert "draft" not in make_video_batch(rng, recipe, "video_edit", 2, config, ("text_to_video", "image_to_video"))
    batch = make_video_batch(rng, recipe, "reference_to_video", 2, config, ("reference_to_video",))
    assert batch["draft"].shape == (2, config.length, 6) and (batch["draft"][:, 0, 0] > 0).all()


def test_the_embedded_video_model_drafts_a_reference_clip_from_where_its_stills_show_the_objects(video_model):
    """Each named object's drafted track starts where its still shows it, in its class and colour there."""
    pipe = video_model
    config = pipe.planner.drafter.config
    rng = np.random.default_rng(11)
    starts_right = named = 0
    for k in range(6):
        ref = random_reference_video(rng)
        request = GenerationRequest(Task.REFERENCE_TO_VIDEO, ref.instruction, images=ref.images(48), width=48,
                                    height=48, frames=17, seed=k)
        rows = [r for r in pipe.plan(request).draft[0].tolist() if r[0] > 0]
        truth = quantize_objects([(label_index(m.obj.cls, m.obj.color), m.obj.cx, m.obj.cy, m.obj.half,
                                   m.obj.cx + m.dx, m.obj.cy + m.dy) for m in ref.target.objects], config)
        for want in truth[truth[:, 0] > 0].tolist():
            named += 1
            starts_right += any(r[0] == want[0] and abs(r[1] - want[1]) <= 1 and abs(r[2] - want[2]) <= 1
                                for r in rows)
        assert len(rows) <= len(truth[truth[:, 0] > 0])  # the stills' other objects are not drafted into the clip
    assert starts_right >= named - 1


def test_two_stills_that_centre_their_objects_do_not_start_them_on_top_of_each_other():
    red_circle, yellow_star = label_index("circle", "red"), label_index("star", "yellow")
    drafted = _rows((red_circle, 3, 4, 1, 9, 4), (yellow_star, 12, 11, 1, 6, 11))[0]
    centred = onto_named_stills(drafted, [_found((red_circle, 8, 8, 3))[0], _found((yellow_star, 8, 8, 3))[0]],
                                "the circle from the first image moves right and the star from the second image moves "
                                "left", CONFIG)
    assert centred[0].tolist()[:3] == [red_circle, 8, 8]  # the first where its still has it
    assert centred[1].tolist()[:3] == [yellow_star, 12, 11] and centred[1, 4] < centred[1, 1]  # the drafted start
    assert centred[1, 3] == 3  # the still's size and look


def test_reference_words_read_in_part_or_without_which_still_leave_the_pooled_matching_to_decide():
    red_circle, blue_circle = label_index("circle", "red"), label_index("circle", "blue")
    star = label_index("star", "purple")
    drafted = _rows((red_circle, 3, 8, 1, 9, 8), (star, 10, 12, 1, 10, 6))[0]
    first, second = _found((red_circle, 3, 8, 1))[0], _found((star, 12, 12, 1))[0]
    # A clause not of the form ("the star moves up") would have its object dropped: the words are not read.
    assert onto_named_stills(drafted, [first, second], "the circle from the first image moves right and the star "
                             "moves up", CONFIG) is None
    # "still" and "picture" are "image", as the request's own check reads them.
    read = onto_named_stills(drafted, [first, second], "the circle from the first still moves right and the star "
                             "from the second picture moves up", CONFIG)
    assert read is not None and read[1].tolist() == [star, 12, 12, 1, 12, 6]
    # "the image" of two stills says not which: not read. Nothing found in any still: left undrafted by the pool.
    assert onto_named_stills(drafted, [first, second], "the star from the image moves up", CONFIG) is None
    assert onto_named_stills(drafted, [_found()[0]], "the circle from the image moves right", CONFIG) is None
    # A colour the words name is served first: "the circle" does not take the red circle "the red circle" names.
    both = onto_named_stills(_rows((red_circle, 2, 2, 0, 8, 2), (red_circle, 9, 9, 0, 9, 3))[0],
                             [_found((red_circle, 4, 4, 0), (blue_circle, 11, 11, 0))[0]],
                             "the circle from the image moves right and the red circle from the image moves up", CONFIG)
    assert both[0].tolist()[:3] == [blue_circle, 11, 11] and both[1].tolist()[:3] == [red_circle, 4, 4]


def test_the_detectors_second_look_adds_only_objects_the_first_did_not_see_anywhere_near():
    """The looks can read one object's class differently: a second-look find beside a first-look find of another
    label is that object again, not a second one."""
    from app.core.frame_detector import FrameDetector

    config = DraftConfig(labels=25, bins=16, max_objects=3, track=True, pixel_width=8)
    looks = iter([_found((17, 13, 6, 1)), _found((23, 12, 6, 1), (5, 3, 3, 0))])

    class Stubbed(FrameDetector):
        def _pixel_tokens(self, sources, device):
            return None, [(16, 16)] * len(sources)

        def detect(self, tokens, grids, min_confidence=0.0):
            return next(looks).clone()

    rows = Stubbed(config).find([torch.zeros(3, 64, 64)])[0].tolist()
    assert [r for r in rows if r[0] > 0] == [[5, 3, 3, 0], [17, 13, 6, 1]]  # the far one added, left to right


def test_reference_stills_reach_the_model_with_only_the_objects_the_words_name(video_model):
    """A still's objects the words leave out are painted over in its background before the planner and the DiT
    see it (they had come into the clip); the named ones, a still the words do not read, and a photo stay."""
    from app.core.reference_stills import named_objects_only
    from app.shapes.palette import BACKGROUND
    from app.shapes.render import render
    from app.shapes.scene import Scene, ShapeObject

    pipe = video_model
    circle, square = ShapeObject("circle", "red", 0.3, 0.3, 0.12), ShapeObject("square", "blue", 0.72, 0.7, 0.12)
    still = render(Scene((circle, square)), 48)
    circle_px = (np.abs(render(Scene((circle,)), 48).astype(int) - np.asarray(BACKGROUND)).max(-1) > 0)
    square_px = (np.abs(render(Scene((square,)), 48).astype(int) - np.asarray(BACKGROUND)).max(-1) > 0)
    given = named_objects_only(pipe.planner, "the circle from the image moves right", [still])[0]
    assert (given[square_px] == np.asarray(BACKGROUND)).all()  # the square is gone ...
    assert (given[circle_px] == still[circle_px]).all()  # ... the circle untouched
    assert (still[square_px] != np.asarray(BACKGROUND)).any()  # the user's still itself is not changed
    # Two stills: the second still's square is the one named; the first still's circle is not.
    both = named_objects_only(pipe.planner, "the square from the second image moves up and the circle from the "
                              "first image moves down", [render(Scene((circle,)), 48), still])
    assert (both[0][circle_px] == still[circle_px]).all()
    assert (both[1][square_px] == still[square_px]).all() and (both[1][circle_px] == np.asarray(BACKGROUND)).all()
    # Words of another form, a named object the still lacks, and a still that is not on a plain background are
    # given as they are.
    for words in ("a circle dances", "the star from the image moves up"):
        assert np.array_equal(named_objects_only(pipe.planner, words, [still])[0], still)
    noisy = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    noisy[8:20, 8:20] = still[8:20, 8:20]
    assert np.array_equal(named_objects_only(pipe.planner, "the circle from the image moves right", [noisy])[0], noisy)
    # The pipeline gives the DiT the painted still, and keeps the user's in the request.
    request = GenerationRequest(Task.REFERENCE_TO_VIDEO, "the circle from the image moves right", images=[still],
                                width=48, height=48, frames=9, seed=1)
    assert np.array_equal(pipe.given_stills(request.task, request.instruction, request.images), [given])
    result = pipe(request)
    assert result.request.images[0] is still


@pytest.mark.parametrize("sample, label", [("red_circle_64", ("circle", "red")), ("red_circle_256", ("circle", "red")),
                                           ("blue_square_left_64", ("square", "blue"))])
def test_an_object_centred_on_the_detectors_cell_corners_is_found_and_its_clip_drafted(video_model, sample, label):
    """The bundled samples centre their object where four of the detector's cells meet; each cell alone was
    under MIN_CONFIDENCE, and a clip from such an image was planned undrafted."""
    from PIL import Image

    pipe = video_model
    image = np.asarray(Image.open(f"resources/samples/{sample}.png").convert("RGB"))
    planner = pipe.planner
    rows = [r for r in planner.frame_detector.find(planner.source_images(planner.processor(["x"], images=[[image]])))[0]
            .tolist() if r[0] > 0]
    assert [r[0] for r in rows] == [label_index(*label)]
    name = label[0]
    request = GenerationRequest(Task.IMAGE_TO_VIDEO, f"the {name} moves down", images=[image], width=48, height=48,
                                frames=17, seed=3)
    drafted = [r for r in pipe.plan(request).draft[0].tolist() if r[0] > 0]
    assert drafted and drafted[0][0] == label_index(*label) and abs(drafted[0][1] - rows[0][1]) <= 1
    assert drafted[0][5] > drafted[0][2]  # it moves down from where the image has it


def test_words_naming_no_colour_are_drafted_with_the_images_colour(video_model):
    """"the circle moves right" of the bundled red circle: the drafter, which learned captions naming every colour,
    drew slanted paths (down and right in 3 of 4 seeds); read as "the red circle moves right" it goes right."""
    from PIL import Image

    from app.core.frame_detector import with_image_colours

    image = np.asarray(Image.open("resources/samples/red_circle_64.png").convert("RGB"))
    for seed in range(4):
        request = GenerationRequest(Task.IMAGE_TO_VIDEO, "the circle moves right", images=[image], width=48,
                                    height=48, frames=17, seed=seed)
        (row,) = [r for r in video_model.plan(request).draft[0].tolist() if r[0] > 0]
        assert row[4] - row[1] >= 3 and abs(row[5] - row[2]) <= 1, row
    config = video_model.planner.drafter.config
    found = torch.tensor([[label_index("circle", "red"), 3, 3, 1], [label_index("circle", "blue"), 9, 9, 1],
                          [label_index("triangle", "orange"), 12, 4, 1]])
    assert with_image_colours("a triangle moves up and the circle moves down", found, config) == \
        "an orange triangle moves up and the circle moves down"  # two circles: which one is not guessed


def test_image_to_video_does_not_bring_a_moved_object_back_where_it_started(video_model):
    """Keeping the image's pixels away from the named object's path holds its whole path, in every frame: kept to
    the frame's own drafted box, the image's square came back at its start once the model's had moved on."""
    from PIL import Image

    image = np.asarray(Image.open("resources/samples/blue_square_left_64.png").convert("RGB"))
    result = video_model(GenerationRequest(Task.IMAGE_TO_VIDEO, "the blue square moves right", images=[image],
                                           width=48, height=48, frames=17, seed=0))
    first = result.frames[0].astype(int)
    square = np.abs(first - first[0, 0]).max(-1) > 60  # the image's square, as the clip's first frame has it
    last = result.frames[-1].astype(int)
    assert square.sum() > 50
    assert (np.abs(last - first).max(-1)[square] <= 24).mean() < 0.2  # gone from where it started


# ----- video edits: the source clip's tracks -----

def test_finds_are_linked_into_tracks_through_a_colour_change_and_a_misfire_is_dropped():
    from app.core.frame_detector import _link

    red_circle, blue_circle, green_star = 1 + 0 * 6 + 0, 1 + 0 * 6 + 2, 1 + 3 * 6 + 1  # (class, colour) labels
    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    found = [[[red_circle, 2, 8, 1], [green_star, 12, 3, 2]],
             [[red_circle, 4, 8, 1], [green_star, 12, 5, 2]],
             [[blue_circle, 6, 8, 1], [green_star, 12, 7, 2], [green_star, 2, 14, 0]],  # the last: a misfire
             [[blue_circle, 8, 8, 1], [green_star, 12, 9, 2]],
             [[blue_circle, 10, 8, 1], [green_star, 12, 11, 2]]]
    tracks = _link(found, times, CONFIG)
    # the circle keeps its first colour's label (as a training clip's track does), left to right
    assert tracks == [[red_circle, 2, 8, 1, 10, 8], [green_star, 12, 3, 2, 12, 11]]


def test_an_object_that_comes_in_is_drafted_where_its_path_would_be_at_the_clip_start():
    from app.core.frame_detector import _link

    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    found = [[], [], [[7, 8, 4, 1]], [[7, 8, 6, 1]], [[7, 8, 8, 1]]]
    assert _link(found, times, CONFIG) == [[7, 8, 0, 1, 8, 8]]


def test_the_embedded_video_model_finds_a_source_clips_tracks(video_model):
    """What a video edit's draft is built from: on 24 random clips, every object that is on screen the whole
    clip is found with its label, starting and ending within a bin and a half of its true track."""
    from app.core.frame_detector import source_tracks
    from app.shapes.motion import random_motion_scene
    from app.core.draft_rows import draft_objects

    planner = video_model.planner
    config = planner.drafter.config
    rng = np.random.default_rng(5)
    right = 0
    for _ in range(24):
        scene = random_motion_scene(rng)
        found = draft_objects(source_tracks(planner, [render_clip(scene, 17, 48)], config)[0], config)
        plain = [m for m in scene.objects if m.plain]
        hits = 0
        for m in plain:
            label = label_index(m.obj.cls, m.obj.color)
            hits += any(o[0] == label and abs(o[1] - m.obj.cx) <= 1.5 / config.bins and abs(o[2] - m.obj.cy) <= 1.5 / config.bins
                        and abs(o[4] - (m.obj.cx + m.dx)) <= 1.5 / config.bins
                        and abs(o[5] - (m.obj.cy + m.dy)) <= 1.5 / config.bins for o in found)
        right += hits == len(plain)
    assert right >= 21, f"{right} of 24 clips had every whole-clip object's track found"


def test_the_embedded_video_model_drafts_an_edit_from_its_source_clips_tracks(video_model):
    """A video edit's draft is the source's tracks with the named change: on 9 recolour, remove and replace
    edits, the drafted labels are the target's (the changed object's new label in, its old one out, the
    others kept) in at least 7."""
    from app.core.frame_detector import edit_drafts
    from app.core.draft_rows import draft_objects
    from app.shapes.video_edits import sample_video_edit

    planner = video_model.planner
    assert planner.edit_drafter is not None and planner.edit_drafter.config.reads_sources
    rng = np.random.default_rng(21)
    right = 0
    for kind in ("recolour", "remove", "replace") * 3:
        triple = sample_video_edit(rng, kind)
        drafts = edit_drafts(planner, [triple.instruction], [render_clip(triple.source, 17, 48)], [1])
        drafted = sorted(o[0] for o in draft_objects(drafts[0], planner.drafter.config))
        right += drafted == sorted(label_index(m.obj.cls, m.obj.color) for m in triple.target.objects)
    assert right >= 7, f"{right} of 9 edits drafted with the target's objects"


def test_a_clip_in_which_nothing_is_found_is_edited_undrafted(video_model):
    from app.core.frame_detector import edit_drafts

    noise = np.random.default_rng(0).integers(0, 256, (17, 48, 48, 3), dtype=np.uint8)
    blank = np.full((17, 48, 48, 3), 255, np.uint8)
    drafts = edit_drafts(video_model.planner, ["make the square blue", "remove the star"], [noise, blank], [1, 2])
    assert (drafts == -1).all()


def test_an_edited_clip_is_checked_against_the_tracks_it_was_drafted_with(video_model):
    """A user whose edit came back half made is told (frame_detector.edit_shortfall): on 9 recolour, remove and
    replace edits checked against their true target tracks, the target clip shows its plan (nothing unseen,
    nothing unplanned) in at least 8, and the source clip (the edit not made) falls short of it in all 9."""
    from app.core.frame_detector import edit_shortfall
    from app.shapes.video_edits import sample_video_edit
    from app.train.video_data import track_rows

    planner = video_model.planner
    config = planner.edit_drafter.config
    rng = np.random.default_rng(8)
    shown = short = 0
    for kind in ("recolour", "remove", "replace") * 3:
        triple = sample_video_edit(rng, kind)
        rows = torch.as_tensor(track_rows(triple.target, config))
        shown += edit_shortfall(planner, rows, render_clip(triple.target, 17, 48)) == ([], [])
        unseen, unplanned = edit_shortfall(planner, rows, render_clip(triple.source, 17, 48))
        short += bool(unseen or unplanned)
    assert shown >= 8, f"{shown} of 9 target clips showed their own tracks"
    assert short == 9, f"{short} of 9 unedited sources were found short of the edit"


def test_an_edit_naming_an_object_the_clip_lacks_is_known():
    from app.core.frame_detector import named_but_absent
    from app.shapes.palette import label_index

    rows = [[label_index("circle", "red"), 2, 2, 1, 8, 2], [label_index("square", "blue"), 9, 9, 1, 9, 9], [0] * 6]
    assert named_but_absent("make the star red", rows) == "star"
    assert named_but_absent("remove the green circle", rows) == "green circle"
    assert named_but_absent("remove the red circle", rows) == ""
    assert named_but_absent("the square moves left instead", rows) == ""
    assert named_but_absent("replace the square with a purple star", rows) == ""  # the star is what it becomes
    assert named_but_absent("make the moving circle blue", rows) == ""
    assert named_but_absent("add a yellow star moving up", rows) == ""  # an add names what the clip lacks
    assert named_but_absent("make it brighter", rows) == ""


def test_the_edit_check_does_not_call_missing_an_object_the_detector_misses_in_the_source_at_that_size(monkeypatch):
    """An edit that keeps a small object of a large source as it was: the draft read it in the source as given,
    but at the model's size the detector misses it in the source as in the edit. Not said to be missing then;
    an object it finds in the source at that size and not in the edit still is, and so is the edit's own change."""
    from types import SimpleNamespace

    import app.core.frame_detector as fd

    red_circle, blue_circle = label_index("circle", "red"), label_index("circle", "blue")
    square = label_index("square", "green")
    edited, small_source = np.zeros((5, 8, 8, 3), np.uint8), np.ones((5, 8, 8, 3), np.uint8)
    seen = {id(edited): [(blue_circle, 2, 6, 1, 10, 6)], id(small_source): [(red_circle, 2, 6, 1, 10, 6)]}
    monkeypatch.setattr(fd, "source_tracks", lambda planner, clips, config: _rows(*seen[id(clips[0])]))
    planner = SimpleNamespace(edit_drafter=SimpleNamespace(config=CONFIG))
    drafts = _rows((blue_circle, 2, 6, 1, 10, 6), (square, 8, 13, 0, 8, 13))[0]
    read = _rows((red_circle, 2, 6, 1, 10, 6), (square, 8, 13, 0, 8, 13))[0]  # what the draft read
    assert fd.edit_shortfall(planner, drafts, edited) == ([[square, 8, 13, 0, 8, 13]], [])  # as before
    assert fd.edit_shortfall(planner, drafts, edited, source=small_source, source_rows=read) == ([], [])
    seen[id(small_source)].append((square, 8, 13, 0, 8, 13))  # found in the source at this size: a real miss
    assert fd.edit_shortfall(planner, drafts, edited, source=small_source, source_rows=read)[0] == \
        [[square, 8, 13, 0, 8, 13]]
    seen[id(edited)] = []  # the change itself missing (its label is not the source's): always said
    unseen, _ = fd.edit_shortfall(planner, drafts, edited, source=small_source, source_rows=read)
    assert [blue_circle, 2, 6, 1, 10, 6] in unseen



def test_the_edit_check_holds_a_new_object_to_its_class_where_the_words_name_no_colour(monkeypatch):
    """"replace the circle with a triangle" drafted a blue triangle (its colour the drafter's guess) and the clip
    shows a red one: what the words asked for, not "does not show a blue triangle". A colour the words name is
    still held to."""
    from types import SimpleNamespace

    import app.core.frame_detector as fd

    red_circle, blue_triangle, red_triangle = (label_index("circle", "red"), label_index("triangle", "blue"),
                                               label_index("triangle", "red"))
    edited = np.zeros((5, 8, 8, 3), np.uint8)
    monkeypatch.setattr(fd, "source_tracks", lambda planner, clips, config: _rows((red_triangle, 2, 6, 1, 10, 6)))
    planner = SimpleNamespace(edit_drafter=SimpleNamespace(config=CONFIG))
    drafts = _rows((blue_triangle, 2, 6, 1, 10, 6))[0]
    read = _rows((red_circle, 2, 6, 1, 10, 6))[0]
    assert fd.edit_shortfall(planner, drafts, edited, source_rows=read,
                             instruction="replace the circle with a triangle") == ([], [])
    unseen, unplanned = fd.edit_shortfall(planner, drafts, edited, source_rows=read,
                                          instruction="replace the circle with a blue triangle")
    assert unseen == [[blue_triangle, 2, 6, 1, 10, 6]] and unplanned == [[red_triangle, 2, 6, 1, 10, 6]]


def test_objects_named_as_given_are_looked_for_in_the_still_they_are_named_in():
    from app.core.frame_detector import named_but_missing

    red_circle, green_star = label_index("circle", "red"), label_index("star", "green")
    assert named_but_missing("the circle moves down", [{red_circle}]) == []
    assert named_but_missing("the star moves left and the red circle moves up", [{red_circle}]) == ["star"]
    assert named_but_missing("the blue circle moves down", [{red_circle}]) == ["blue circle"]
    assert named_but_missing("a green star appears and the circle moves up", [{red_circle}]) == []  # a new one
    two = [{red_circle}, {green_star}]
    assert named_but_missing("the circle from the first image moves right and the star from the second image "
                             "moves left", two) == []
    assert named_but_missing("the star from the first image moves right", two) == ["star in the first image"]
    assert named_but_missing("the circle moves right and the star moves left", two) == []  # either still


def test_a_motion_edits_draft_is_held_to_the_way_its_words_say():
    """"the circle moves down instead" drafted as the circle staying put (or moving right) passed the edit check,
    which compares the clip with its plan: the plan is now compared with the words."""
    from app.core.frame_detector import plan_off_words

    red_circle, star = label_index("circle", "red"), label_index("star", "green")
    down = [[red_circle, 4, 3, 1, 4, 10], [star, 10, 10, 1, 10, 10]]
    assert plan_off_words("the circle moves down instead", down) == ""
    assert plan_off_words("the red circle moves down to the right instead", [[red_circle, 4, 3, 1, 9, 8]]) == ""
    assert plan_off_words("the circle moves down instead", [[red_circle, 4, 3, 1, 4, 3]]) == "the circle staying put"
    assert plan_off_words("The circle moves to the left instead.", [[red_circle, 4, 3, 1, 11, 3]]) == \
        "the circle moving right"
    assert plan_off_words("make the circle blue", down) == ""  # not a motion edit
    assert plan_off_words("the square moves up instead", down) == ""  # not drafted: the edit check says so


def test_image_to_video_keeps_the_objects_its_words_leave_alone_as_the_image_has_them(video_model):
    """"the star moves left" of a still holding a star and two triangles: the triangles stay as the image has
    them, pixel for pixel, in every frame (the DiT had repainted or dropped such objects); the star moves."""
    rng = np.random.default_rng(4)
    scene = random_motion_scene(rng)  # a yellow star at the bottom, an orange triangle right, a blue one left
    image = render_clip(scene, 17, 48)[0]
    request = GenerationRequest(Task.IMAGE_TO_VIDEO, "the star moves left", images=[image], width=48, height=48,
                                frames=17, seed=3)
    clip = video_model(request).frames
    right = (slice(None), slice(10, 30), slice(36, 48))  # the orange triangle, at (0.86, 0.40), and around it
    assert np.array_equal(clip[right], np.broadcast_to(image[right[1:]], clip[right].shape))
    as_drawn = video_model(GenerationRequest(Task.IMAGE_TO_VIDEO, "the star moves left", images=[image], width=48,
                                             height=48, frames=17, seed=3, keep_source=False)).frames
    assert not np.array_equal(as_drawn[right], clip[right])  # the model's own drawing differs there


# ------------------------------------------------------------------------------------------- image edits checked
IMAGE_MODEL = "models/metacanvas-shapes"


@pytest.fixture(scope="module")
def image_pipe():
    return load_model(IMAGE_MODEL).eval()


def _scene_rows(pipe, scene):
    from app.core.draft import quantize_objects

    config = pipe.planner.edit_drafter.config
    return torch.as_tensor(quantize_objects([(label_index(o.cls, o.color), o.cx, o.cy, o.half) for o in scene.objects],
                                            config))


def test_an_image_edit_is_checked_against_its_draft(image_pipe):
    """An image edit that left its source as it was ("make the circle green" came back with the red circle), or
    drew another object in place of the named one, was stored as a good version without a word. The still check
    finds what the draft has that the picture lacks, and what the picture has that no drafted object accounts
    for; a picture that shows its draft passes."""
    from app.core.frame_detector import still_edit_shortfall
    from app.plan_edit_text import shortfall_words
    from app.shapes.render import render
    from app.shapes.scene import Scene, ShapeObject

    source = Scene((ShapeObject("circle", "red", 0.25, 0.5, 0.12), ShapeObject("square", "blue", 0.75, 0.5, 0.12)))
    target = Scene((ShapeObject("circle", "green", 0.25, 0.5, 0.12), ShapeObject("square", "blue", 0.75, 0.5, 0.12)))
    draft = _scene_rows(image_pipe, target)
    shown = still_edit_shortfall(image_pipe.planner, draft, render(target, 64), source=render(source, 64),
                                 instruction="make the circle green")
    assert shown == ([], [])
    unseen, unplanned = still_edit_shortfall(image_pipe.planner, draft, render(source, 64), source=render(source, 64),
                                             instruction="make the circle green")
    assert [r[0] for r in unseen] == [label_index("circle", "green")]
    assert [r[0] for r in unplanned] == [label_index("circle", "red")]

    class Result:  # what GenerationResult carries to the words
        shortfall = (unseen, unplanned)
        plan = type("Plan", (), {"draft": draft[None], "layout_config": lambda self: image_pipe.planner.edit_drafter.config})()

    said = shortfall_words(Result())
    assert said == "the picture does not show a green circle on the left; it shows what was not planned: a red " \
                   "circle on the left", said
    # The named object drawn elsewhere is one finding: drawn off its place.
    moved = Scene((ShapeObject("circle", "green", 0.5, 0.15, 0.12), ShapeObject("square", "blue", 0.75, 0.5, 0.12)))
    Result.shortfall = still_edit_shortfall(image_pipe.planner, draft, render(moved, 64), instruction="make the "
                                            "circle green")
    assert shortfall_words(Result()) == ("the picture draws the green circle at the top, off the place its plan has "
                                         "for it (on the left)")


def test_a_cli_image_edit_that_falls_short_of_its_plan_is_said(image_pipe, monkeypatch, tmp_path, capsys):
    """The pipeline runs the check on drafted image edits; the CLI says what fell short, as for clips."""
    import app.core.pipeline as pipeline
    from app.cli import main
    from app.shapes.render import render
    from app.shapes.scene import Scene, ShapeObject

    seen = []

    def falls_short(planner, drafts, image, source=None, instruction=None):
        seen.append((image.shape, instruction))
        return [[label_index("circle", "green"), 3, 8, 1]], []

    monkeypatch.setattr(pipeline, "still_edit_shortfall", falls_short)
    source = tmp_path / "source.png"
    from PIL import Image

    Image.fromarray(render(Scene((ShapeObject("circle", "red", 0.25, 0.5, 0.12),)), 64)).save(source)
    code = main(["edit", str(source), "make the circle green", "-o", str(tmp_path / "out.png"), "--steps", "2"])
    said = capsys.readouterr().out
    assert code == 0 and seen == [((64, 64, 3), "make the circle green")]
    assert "the edit was not made as planned: the picture does not show a green circle on the left" in said, said
    assert "another --seed" in said
