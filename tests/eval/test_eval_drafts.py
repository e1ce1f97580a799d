"""A layout draft scored on its own: the scene it drafts, drawn and judged by the GenEval rules."""
import numpy as np
import torch

from app.core.draft import DraftConfig
from app.eval.drafts import draft_scene, score_drafts
from app.eval.geneval import make_geneval_metadata
from app.shapes.captions import scene_for_metadata
from app.shapes.palette import NUM_LABELS
from app.train.data import draft_rows

CONFIG = DraftConfig(labels=NUM_LABELS, max_objects=4)


def test_drafts_of_the_right_scenes_score_right_and_one_object_short_fails_the_count():
    metas = make_geneval_metadata(60, seed=3)
    rng = np.random.default_rng(0)
    scenes = [scene_for_metadata(m, rng) for m in metas]
    drafts = torch.from_numpy(np.stack([draft_rows(s, CONFIG) for s in scenes]))
    scores = score_drafts(drafts, metas, CONFIG)
    # Bins move an object by up to 2 px and its size by up to 1 px: some scenes drawn from their
    # drafts then touch a neighbour or the frame (0.87 here), and still score right.
    assert scores["draft_overall"] >= 0.95 and scores["draft_valid"] >= 0.8
    back = draft_scene(drafts[0], CONFIG)
    assert sorted((o.cls, o.color) for o in back.objects) == sorted((o.cls, o.color) for o in scenes[0].objects)

    counting = [i for i, m in enumerate(metas) if m["tag"] == "counting"]
    short = drafts[counting].clone()
    for row in short:  # drop the last object: "three stars" drafted as two
        n = int((row[:, 0] > 0).sum())
        row[n - 1] = torch.tensor([0, -1, -1, -1])
        row[n:] = -1
    assert score_drafts(short, [metas[i] for i in counting], CONFIG)["draft_counting"] == 0.0


def test_a_scene_is_drafted_in_the_order_its_caption_names_the_objects():
    from app.core.draft import draft_objects
    from app.shapes.captions import describe
    from app.shapes.scene import Scene, ShapeObject

    star, circle = ShapeObject("star", "red", 0.8, 0.3, 0.1), ShapeObject("circle", "blue", 0.2, 0.7, 0.1)
    blue_star = ShapeObject("star", "blue", 0.5, 0.8, 0.1)
    rows = draft_rows(Scene((star, circle, blue_star)), CONFIG)
    assert describe(Scene((star, circle, blue_star))) == "a photo of a red star, a blue circle and a blue star"
    assert [back.color + " " + back.cls for back in draft_scene(rows, CONFIG).objects] == [
        "red star", "blue circle", "blue star"]  # as named, not left to right
    two = draft_rows(Scene((ShapeObject("star", "red", 0.8, 0.3, 0.1), ShapeObject("star", "red", 0.2, 0.7, 0.1))), CONFIG)
    assert [o[1] < 0.5 for o in draft_objects(two, CONFIG)] == [True, False]  # "two red stars": left to right


def test_track_drafts_are_judged_by_the_motion_they_draw():
    """The drafter's own figure: a record's true tracks, drawn, follow its motion; the same tracks
    reversed do not."""
    from app.core.draft import DraftConfig
    from app.eval.drafts import track_drafts_motion_followed
    from app.shapes.video_prompts import make_video_metadata, scene_for_video_metadata
    from app.train.video_data import track_rows

    config = DraftConfig(labels=25, max_objects=3, track=True)
    metas = [m for m in make_video_metadata(40, seed=5, frames=17) if all(r["action"] == "moves" for r in m["include"])][:4]
    assert metas
    rng = np.random.default_rng(0)
    rows = [track_rows(scene_for_video_metadata(m, rng), config) for m in metas]
    assert track_drafts_motion_followed(rows, metas, config, frames=17, size=48) == 1.0
    reversed_rows = [r.copy() for r in rows]
    for r in reversed_rows:
        r[:, [1, 2, 4, 5]] = r[:, [4, 5, 1, 2]]
    assert track_drafts_motion_followed(reversed_rows, metas, config, frames=17, size=48) == 0.0
