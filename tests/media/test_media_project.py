"""The project model: every change is JSON, applying its inverse restores the project exactly, and a
result is always a new version (the source media is never replaced)."""
from __future__ import annotations

import copy
import json

import pytest

from app.media.errors import ProjectError
from app.media.project import Project, invert


def _project() -> tuple[Project, dict]:
    p = Project("demo")
    ids = {}
    ids["photo"] = p.add_media("photo.png", "image", 640, 480, name="photo.png").id
    ids["clip"] = p.add_media("clip.mp4", "video", 320, 240, frames=48, fps=24.0, has_audio=True).id
    ids["result"] = p.add_media("result.mp4", "video", 320, 240, frames=48, fps=24.0).id
    ids["spare"] = p.add_media("spare.png", "image", 64, 64).id
    ids["img_clip"] = p.add_clip(ids["photo"], instruction="make the car red").id
    ids["v1"] = p.add_clip(ids["clip"]).id
    ids["v2"] = p.add_clip(ids["clip"], in_point=0.5, out_point=1.5).id
    ids["version"] = p.add_version(ids["v1"], ids["result"], {"task": "video_edit", "seed": 3}).id
    return p, ids


def _changes(p: Project, ids: dict) -> list[dict]:
    return [
        p.add_media_change("new.png", "image", 32, 32),
        p.remove_media_change(ids["spare"]),
        p.add_clip_change(ids["clip"], start=10.0),
        p.add_clip_change(ids["photo"], track="video", index=0),
        p.remove_clip_change(ids["v1"]),
        p.remove_clip_change(ids["img_clip"]),
        p.move_clip_change(ids["v2"], start=7.5),
        p.move_clip_change(ids["v1"], track="image", index=0),
        p.trim_clip_change(ids["v2"], 0.25, 1.0),
        p.add_version_change(ids["v2"], ids["result"], {"seed": 1}),
        p.add_version_change(ids["v2"], ids["result"], activate=False),
        p.remove_version_change(ids["v1"], ids["version"]),
        p.set_active_version_change(ids["v1"], 0),
        p.set_accepted_change(ids["v1"], ids["version"], True),
        p.set_clip_instruction_change(ids["v2"], "the ball rolls to the right"),
        p.set_setting_change("fps", 30.0),
        p.rename_change("renamed"),
        p.add_result_change(ids["img_clip"], "gen.png", "image", 640, 480, request={"seed": 9}),
    ]


def test_every_change_is_json_and_inverts_exactly():
    p, ids = _project()
    for change in _changes(p, ids):
        change = json.loads(json.dumps(change))  # what a saved change log gives back
        before = copy.deepcopy(p.to_dict())
        p.apply(change)
        after = copy.deepcopy(p.to_dict())
        assert after != before, change["kind"]
        p.apply(invert(change))
        assert p.to_dict() == before, f"undo of {change['kind']} did not restore the project"
        p.apply(change)  # redo gives the same state again (same ids: the change carries them)
        assert p.to_dict() == after
        p.apply(invert(change))
        assert invert(invert(change)) == change


def test_a_log_of_changes_undoes_in_reverse():
    p, ids = _project()
    start = copy.deepcopy(p.to_dict())
    log = []
    for make in (lambda: p.set_clip_instruction_change(ids["v2"], "one"),
                 lambda: p.move_clip_change(ids["v2"], start=3.0),
                 lambda: p.add_version_change(ids["v2"], ids["result"]),
                 lambda: p.remove_clip_change(ids["v1"])):
        change = make()
        p.apply(change)
        log.append(change)
    for change in reversed(log):
        p.apply(invert(change))
    assert p.to_dict() == start


def test_results_are_new_versions_and_the_original_stays():
    p, ids = _project()
    clip = p.clip(ids["v2"])
    assert [v.media_id for v in clip.versions] == [ids["clip"]] and clip.active.request == {}
    p.apply(p.add_result_change(ids["v2"], "gen.mp4", "video", 320, 240, 48, 24.0, request={"seed": 5}, plan="plan.json"))
    clip = p.clip(ids["v2"])
    assert len(clip.versions) == 2 and clip.active_version == 1
    assert clip.versions[0].media_id == ids["clip"] and clip.media_id == ids["clip"]
    assert p.media[clip.active.media_id].path == "gen.mp4" and clip.active.plan == "plan.json"
    assert p.media[ids["clip"]].path == "clip.mp4"


def test_removing_the_shown_version_shows_the_previous_one():
    p, ids = _project()
    clip = p.clip(ids["v1"])
    assert clip.active_version == 1
    p.apply(p.remove_version_change(ids["v1"], ids["version"]))
    assert p.clip(ids["v1"]).active_version == 0 and len(p.clip(ids["v1"]).versions) == 1
    with pytest.raises(ProjectError, match="original"):
        p.remove_version_change(ids["v1"], p.clip(ids["v1"]).versions[0].id)


def test_bad_changes_are_refused_and_change_nothing():
    p, ids = _project()
    before = copy.deepcopy(p.to_dict())
    with pytest.raises(ProjectError, match="still used"):
        p.remove_media_change(ids["clip"])
    with pytest.raises(ProjectError, match="unknown change"):
        p.apply({"kind": "explode"})
    with pytest.raises(ProjectError, match="no clip"):
        p.apply({"kind": "set_clip_instruction", "clip_id": "nope", "old": "", "new": "x"})
    # A batch whose second part fails leaves the project as it was.
    good = p.set_clip_instruction_change(ids["v2"], "changed")
    with pytest.raises(ProjectError):
        p.apply({"kind": "batch", "changes": [good, {"kind": "remove_clip", "track": "video", "index": 0,
                                                      "clip": {"id": "missing"}}]})
    assert p.to_dict() == before


def test_timeline_order_and_duration():
    p, ids = _project()
    assert [c.id for c in p.timeline("video")] == [ids["v1"], ids["v2"]]
    assert p.clip(ids["v2"]).start == pytest.approx(2.0)  # appended after the 2 s clip
    assert p.duration("video") == pytest.approx(3.0)
    assert p.clip(ids["img_clip"]).duration == p.settings.image_duration
    p.move_clip(ids["v1"], start=5.0)
    assert [c.id for c in p.timeline("video")] == [ids["v2"], ids["v1"]]
    assert p.duration("video") == pytest.approx(7.0)


def test_json_round_trip_and_validation():
    p, ids = _project()
    d = json.loads(json.dumps(p.to_dict()))
    assert Project.from_dict(d).to_dict() == p.to_dict()
    broken = copy.deepcopy(d)
    del broken["media"][ids["clip"]]
    with pytest.raises(ProjectError, match="refers to media"):
        Project.from_dict(broken)
    broken = copy.deepcopy(d)
    broken["tracks"]["video"][0]["surprise"] = 1
    with pytest.raises(ProjectError, match="malformed"):
        Project.from_dict(broken)
    # A clip copied by hand in the file (two clips, one id) is refused at open: a removal of one then failed to
    # undo ("already in the project") and a result went to one copy only.
    broken = copy.deepcopy(d)
    broken["tracks"]["image"].append(copy.deepcopy(broken["tracks"]["video"][0]))
    with pytest.raises(ProjectError, match=f"two clips have the id '{ids['v1']}'"):
        Project.from_dict(broken)
