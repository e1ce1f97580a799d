"""Plans in words: the ways of drafted tracks, and what a user is told of a video edit that falls short of its
plan (app/plan_edit_text.py)."""
from types import SimpleNamespace

from app.plan_edit_text import motion_words, shortfall_words
from app.shapes.palette import label_index


def _result(monkeypatch, unseen, unplanned):
    import app.plan_edit_text as words
    from app.shapes.palette import NUM_LABELS

    monkeypatch.setattr(words, "plan_labels", lambda plan: words.label_names(NUM_LABELS))
    return SimpleNamespace(plan=None, shortfall=(unseen, unplanned))


def test_a_tracks_way_reads_as_seen_with_y_growing_downward():
    assert motion_words([1, 4, 10, 1, 4, 3]) == "moving up"
    assert motion_words([1, 4, 3, 1, 4, 10]) == "moving down"
    assert motion_words([1, 12, 8, 1, 3, 8]) == "moving left"
    assert motion_words([1, 3, 12, 1, 12, 3]) == "moving up to the right"
    assert motion_words([1, 3, 3, 1, 4, 4]) == "staying put"  # a bin either way is the detector's own error


def test_an_edit_that_falls_short_is_said_once_for_each_object(monkeypatch):
    """A planned object drawn off its path is one finding, not a missing and an unplanned object of one name;
    what is missing and what is unplanned are said as such; a clip that shows its plan says nothing."""
    circle, star, square = label_index("circle", "orange"), label_index("star", "red"), label_index("square", "blue")
    said = shortfall_words(_result(monkeypatch, [[circle, 4, 3, 1, 4, 12], [star, 8, 8, 1, 8, 8]],
                                   [[circle, 10, 3, 1, 10, 3], [square, 2, 2, 1, 12, 2]]))
    assert said == ("the clip does not show a red star staying put; "
                    "it draws the orange circle staying put, off the path its plan has for it (moving down); "
                    "it shows what was not planned: a blue square moving right")
    assert shortfall_words(_result(monkeypatch, [], [])) == ""
    assert shortfall_words(SimpleNamespace(plan=None, shortfall=None)) == ""
