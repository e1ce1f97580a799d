import json
from collections import Counter

import numpy as np
import pytest

from app.eval.geneval import (ground_truth_images, make_geneval_metadata, score_folder, score_image, summarize,
                              write_folder, write_report)
from app.shapes import COLORS, render, scene_for_metadata
from app.shapes.captions import GENEVAL_TAGS
from app.shapes.scene import Scene, ShapeObject


def test_metadata_has_geneval_format_and_covers_tags_evenly():
    meta = make_geneval_metadata(60, seed=1)
    assert Counter(m["tag"] for m in meta) == {t: 10 for t in GENEVAL_TAGS}
    for m in meta:
        assert set(m) <= {"tag", "include", "exclude", "prompt"}
        for req in m["include"]:
            assert set(req) <= {"class", "count", "color", "position"}
        json.loads(json.dumps(m))
    pos = next(m for m in meta if m["tag"] == "position")
    assert pos["include"][1]["position"][1] == 0
    # Same seed, same suite: runs are comparable.
    assert make_geneval_metadata(60, seed=1) == meta


def test_ground_truth_scores_perfect_and_wrong_images_fail(tmp_path):
    meta = make_geneval_metadata(30, seed=2)
    images = [ground_truth_images(m, 2, seed=i) for i, m in enumerate(meta)]
    results = score_folder(write_folder(tmp_path / "gt", meta, images), tmp_path / "results.jsonl")
    assert len(results) == 60 and len((tmp_path / "results.jsonl").read_text().splitlines()) == 60
    summary = summarize(results)
    assert summary["overall"] == 1.0, [r for r in results if not r["correct"]]
    assert summary["total_prompts"] == len({json.dumps(m) for m in meta})

    # Blank images fail everything.
    blank = [[render(Scene(()))] for _ in meta]
    assert summarize(score_folder(write_folder(tmp_path / "blank", meta, blank)))["overall"] == 0.0


def _scene(*objs):
    return Scene(tuple(ShapeObject(*o) for o in objs))


def test_rules_on_wrong_images():
    red_circle = {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}], "prompt": "a photo of a red circle"}
    assert score_image(render(_scene(("circle", "red", 0.5, 0.5, 0.12))), red_circle)[0]
    ok, reason = score_image(render(_scene(("circle", "blue", 0.5, 0.5, 0.12))), red_circle)
    assert not ok and "expected red circle" in reason

    three = {"tag": "counting", "include": [{"class": "star", "count": 3}], "exclude": [{"class": "star", "count": 4}],
             "prompt": "a photo of three stars"}
    stars = [("star", "green", x, y, 0.09) for x, y in ((0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8))]
    assert score_image(render(_scene(*stars[:3])), three)[0]
    assert not score_image(render(_scene(*stars[:2])), three)[0]
    ok, reason = score_image(render(_scene(*stars)), three)
    assert not ok and "star<4" in reason

    left = {"tag": "position", "include": [{"class": "square", "count": 1}, {"class": "circle", "count": 1, "position": ["left of", 0]}],
            "prompt": "a photo of a circle left of a square"}
    assert score_image(render(_scene(("circle", "red", 0.25, 0.5, 0.1), ("square", "blue", 0.75, 0.5, 0.1))), left)[0]
    ok, reason = score_image(render(_scene(("circle", "red", 0.75, 0.5, 0.1), ("square", "blue", 0.25, 0.5, 0.1))), left)
    assert not ok and "right of" in reason

    attr = {"tag": "color_attr", "include": [{"class": "circle", "count": 1, "color": "red"}, {"class": "square", "count": 1, "color": "blue"}],
            "prompt": "a photo of a red circle and a blue square"}
    swapped = render(_scene(("circle", "blue", 0.25, 0.5, 0.1), ("square", "red", 0.75, 0.5, 0.1)))
    assert not score_image(swapped, attr)[0]


def test_swapped_colours_lower_the_score(tmp_path):
    meta = [m for m in make_geneval_metadata(60, seed=3) if m["tag"] in ("colors", "color_attr")]
    rng = np.random.default_rng(0)
    names = list(COLORS)
    wrong = []
    for m in meta:
        # Every included colour changed to the next palette colour: right shapes, wrong colours.
        bad = json.loads(json.dumps(m))
        for req in bad["include"]:
            req["color"] = names[(names.index(req["color"]) + 1) % len(names)]
        if bad["tag"] == "color_attr" and bad["include"][0]["color"] == bad["include"][1]["color"]:
            continue
        wrong.append([render(scene_for_metadata(bad, rng))])
    meta = meta[:len(wrong)]
    summary = summarize(score_folder(write_folder(tmp_path, meta, wrong)))
    assert summary["overall"] == 0.0


def test_summary_matches_geneval_arithmetic(tmp_path):
    results = [{"tag": "colors", "correct": c, "metadata": "a"} for c in (True, True, False, False)] + \
              [{"tag": "counting", "correct": True, "metadata": "b"}]
    s = summarize(results)
    # Mean over tasks (0.5 and 1.0), not over images (0.6).
    assert s["overall"] == pytest.approx(0.75)
    assert s["correct_images"] == pytest.approx(0.6)
    assert s["correct_prompts"] == 1.0
    table = write_report(s, tmp_path)
    assert "colors" in table and "0.75000" in table
    assert json.loads((tmp_path / "geneval_summary.json").read_text())["overall"] == pytest.approx(0.75)
    assert (tmp_path / "geneval_summary.png").read_bytes()[:4] == b"\x89PNG"
