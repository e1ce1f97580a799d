"""The shapes world's generators: what a scene, a caption and an edit promise."""
import itertools
import re
from collections import Counter

import numpy as np
import pytest

from app.shapes import (CAPTION_KINDS, CLASSES, COLOR_NAMES, COLORS, EDIT_KINDS, BACKGROUND, VOCABULARY,
                        UnknownWordError, check_words, edit_kind, label_index, label_map, random_scene, render,
                        sample_captioned_scene, sample_edit, tokenize_words)
from app.shapes.captions import region_of
from app.shapes.relations import relative_position
from app.shapes.render import object_alpha, object_mask
from app.shapes.scene import MAX_HALF, MIN_HALF, Scene, ShapeObject
from app.shapes.vocab import NUMBER_WORDS

SIZE = 64


def test_scenes_keep_size_count_frame_and_spacing():
    rng = np.random.default_rng(0)
    counts = Counter()
    for _ in range(400):
        scene = random_scene(rng)
        counts[len(scene)] += 1
        assert 1 <= len(scene) <= 4
        for o in scene.objects:
            assert MIN_HALF <= o.half <= MAX_HALF
            x0, y0, x1, y1 = o.footprint
            assert 0 < x0 and 0 < y0 and x1 < 1 and y1 < 1
        # No two objects share a pixel, even at their anti-aliased rims.
        masks = [object_mask(o, SIZE) for o in scene.objects]
        for a, b in itertools.combinations(masks, 2):
            assert not (a & b).any()
    assert set(counts) == {1, 2, 3, 4}


def test_render_has_exact_colours_inside_and_background_outside():
    rng = np.random.default_rng(1)
    for _ in range(100):
        scene = random_scene(rng)
        image = render(scene, SIZE)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        covered = np.zeros((SIZE, SIZE), bool)
        for o in scene.objects:
            y0, x0, alpha = object_alpha(o, SIZE)
            patch = image[y0:y0 + alpha.shape[0], x0:x0 + alpha.shape[1]]
            inside = alpha == 1.0
            assert inside.sum() > 20  # a real interior, not just a rim
            assert (patch[inside] == COLORS[o.color]).all()
            # The rim is anti-aliased: partly covered pixels lie between the colour and the background.
            rim = (alpha > 0) & (alpha < 1)
            if o.cls != "square":  # a square's edges may fall on pixel borders; slanted edges never do
                assert rim.any()
            assert not (patch[rim] == COLORS[o.color]).all(axis=-1).any()
            covered |= object_mask(o, SIZE)
        assert (image[~covered] == BACKGROUND).all()


def test_shapes_are_upright():
    # A triangle's apex and a star's top point are at the top: the topmost row is narrow, the bottom wide.
    for cls in ("triangle", "star"):
        image = render(Scene((ShapeObject(cls, "blue", 0.5, 0.5, 0.14),)), 128)
        rows = np.nonzero((image != BACKGROUND).any(axis=(1, 2)))[0]
        top_width = (image[rows[1]] != BACKGROUND).any(axis=-1).sum()
        mid_width = (image[rows[len(rows) // 2]] != BACKGROUND).any(axis=-1).sum()
        assert top_width < mid_width / 3


def test_size_is_a_parameter():
    scene = random_scene(np.random.default_rng(2), 3)
    big = render(scene, 128)
    assert big.shape == (128, 128, 3)
    assert set(map(tuple, big.reshape(-1, 3))) >= {COLORS[o.color] for o in scene.objects}


# ----- captions: parsed here independently of the generator -----

_COUNT = {"a": 1, "an": 1, **{w: n for n, w in NUMBER_WORDS.items()}}


def _noun_phrase(text):
    words = text.split()
    count = _COUNT[words[0]]
    cls = words[-1][:-1] if words[-1].endswith("s") else words[-1]
    color = words[1] if len(words) == 3 else None
    assert cls in CLASSES and (color is None or color in COLOR_NAMES), text
    assert (count > 1) == words[-1].endswith("s"), text
    return count, color, cls


def _parse(caption):
    """-> (noun phrases, relation or None, region or None)."""
    text = re.sub(r"^a (photo|picture) of ", "", caption)
    m = re.match(r"(.+?) (?:to the )?(left of|right of|above|below) (.+)$", text)
    if m:
        return [_noun_phrase(m.group(1)), _noun_phrase(m.group(3))], m.group(2), None
    m = re.match(r"(.+) (on the left|on the right|at the top|at the bottom)$", text)
    if m:
        return [_noun_phrase(m.group(1))], None, m.group(2)
    return [_noun_phrase(p) for p in re.split(r", | and ", text)], None, None


def _assign(scene, phrases):
    """Objects of the scene per phrase; fails unless the scene holds exactly the named objects."""
    left = list(scene.objects)
    groups = []
    # Coloured phrases first, so an uncoloured "circle" cannot steal the "red circle".
    for count, color, cls in sorted(phrases, key=lambda p: p[1] is None):
        mine = [o for o in left if o.cls == cls and (color is None or o.color == color)][:count]
        assert len(mine) == count, (phrases, scene)
        for o in mine:
            left.remove(o)
        groups.append(((count, color, cls), mine))
    assert not left, f"extra objects {left} not in the caption"
    order = {p: i for i, p in enumerate(phrases)}
    return [g for _, g in sorted(groups, key=lambda g: order[g[0]])]


@pytest.mark.parametrize("kind", CAPTION_KINDS)
def test_every_caption_kind_describes_its_scene_exactly(kind):
    rng = np.random.default_rng(CAPTION_KINDS.index(kind))
    for _ in range(60):
        cs = sample_captioned_scene(rng, kind)
        assert cs.kind == kind and cs.scene.is_valid()
        check_words(cs.caption)
        phrases, relation, region = _parse(cs.caption)
        groups = _assign(cs.scene, phrases)
        if relation:
            (a,), (b,) = groups
            assert relation in relative_position(a.box, b.box), cs
        if region:
            assert region in region_of(groups[0][0]), cs


def test_caption_kinds_use_geneval_templates():
    rng = np.random.default_rng(5)
    examples = {k: sample_captioned_scene(rng, k) for k in CAPTION_KINDS[:6]}
    assert re.fullmatch(r"a photo of an? (circle|square|triangle|star)", examples["single_object"].caption)
    assert re.fullmatch(r"a photo of (two|three|four) \w+s", examples["counting"].caption)
    meta = examples["counting"].metadata
    assert meta["exclude"] == [{"class": meta["include"][0]["class"], "count": meta["include"][0]["count"] + 1}]
    pos = examples["position"].metadata
    assert pos["include"][1]["position"][1] == 0 and pos["prompt"].split()[4] == pos["include"][1]["class"]


def test_an_before_orange():
    rng = np.random.default_rng(6)
    captions = [sample_captioned_scene(rng, "colors").caption for _ in range(200)]
    assert all(" an orange" in c for c in captions if "orange" in c)
    assert not any(" a orange" in c for c in captions)


# ----- edits -----

@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_edits_change_only_the_named_object(kind):
    rng = np.random.default_rng(10 + EDIT_KINDS.index(kind))
    for _ in range(40):
        source, instruction, target = sample_edit(rng, kind)
        assert edit_kind(instruction) == kind
        check_words(instruction)
        assert source.is_valid() and target.is_valid()
        changed = set(source.objects) ^ set(target.objects)
        assert 1 <= len(changed) <= 2
        a, b = render(source), render(target)
        area = np.zeros((SIZE, SIZE), bool)
        for o in changed:
            area |= object_mask(o, SIZE)
        assert (a[~area] == b[~area]).all(), instruction
        assert (a[area] != b[area]).any(), instruction


def test_edit_instructions_name_objects_unambiguously():
    rng = np.random.default_rng(20)
    for _ in range(200):
        source, instruction, target = sample_edit(rng)
        words = instruction.split()
        # "add ... to the left of the square" names its reference last; the others name it first.
        the = len(words) - 1 - words[::-1].index("the") if words[0] == "add" else words.index("the")
        named = words[the + 1:the + 3] if words[the + 1] in COLOR_NAMES else words[the + 1:the + 2]
        cls = named[-1]
        color = named[0] if len(named) == 2 else None
        matches = [o for o in source.objects if o.cls == cls and (color is None or o.color == color)]
        assert len(matches) == 1, (instruction, source)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_ambiguous_edits_name_an_object_that_has_a_twin_of_its_class(kind):
    """sample_edit(..., ambiguous=True): the named object (an add's reference) shares its class with
    another object of the source, so the instruction names it by colour and class, and only one
    object has both; the edit is as valid as any other."""
    rng = np.random.default_rng(30 + EDIT_KINDS.index(kind))
    for _ in range(30):
        source, instruction, target = sample_edit(rng, kind, ambiguous=True)
        words = instruction.split()
        the = len(words) - 1 - words[::-1].index("the") if kind == "add" else words.index("the")
        color, cls = words[the + 1], words[the + 2]
        assert color in COLOR_NAMES, instruction
        assert sum(o.cls == cls for o in source.objects) >= 2, (instruction, source)
        assert sum(o.cls == cls and o.color == color for o in source.objects) == 1
        assert edit_kind(instruction) == kind and target.is_valid()


def test_teaching_batches_take_the_share_of_ambiguous_edits_asked():
    from app.train.data import make_batch

    def colour_named(batch):  # "the <colour> <class>": the named object needed its colour
        return sum(any(w == "the" and words[i + 1] in COLOR_NAMES for i, w in enumerate(words[:-1]))
                   for words in (t.split() for t in batch["texts"]))

    all_ambiguous = make_batch(np.random.default_rng(0), 64, SIZE, 8, edit=True, ambiguous_fraction=1.0)
    assert colour_named(all_ambiguous) == 64
    as_before = make_batch(np.random.default_rng(0), 64, SIZE, 8, edit=True)
    assert colour_named(as_before) < 40  # random scenes need the colour for about a third
    assert as_before["texts"] == make_batch(np.random.default_rng(0), 64, SIZE, 8, edit=True, ambiguous_fraction=0.0)["texts"]


def test_edit_targets_follow_the_instruction():
    rng = np.random.default_rng(21)
    for _ in range(100):
        source, instruction, target = sample_edit(rng)
        kind = edit_kind(instruction)
        gone = set(source.objects) - set(target.objects)
        new = set(target.objects) - set(source.objects)
        if kind == "remove":
            assert len(gone) == 1 and not new and len(target) == len(source) - 1
        elif kind == "add":
            assert not gone and len(new) == 1
            (n,) = new
            assert instruction.startswith(f"add {'an' if n.color == 'orange' else 'a'} {n.color} {n.cls}")
        else:
            (old,), (n,) = gone, new
            if kind == "recolour":
                assert (n.cls, n.cx, n.cy) == (old.cls, old.cx, old.cy) and instruction.endswith(n.color)
            elif kind == "replace":
                assert (n.cx, n.cy, n.half) == (old.cx, old.cy, old.half) and instruction.endswith(f"{n.color} {n.cls}")
            elif kind == "move":
                dx, dy = n.cx - old.cx, n.cy - old.cy
                direction = {"left": dx < -0.1, "right": dx > 0.1, "up": dy < -0.1, "down": dy > 0.1}
                assert direction[instruction.split()[-1]], instruction


# ----- vocabulary -----

def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize_words("Make the Circle blue!") == ["make", "the", "circle", "blue"]
    assert tokenize_words("a red circle,two stars.") == ["a", "red", "circle", "two", "stars"]


def test_unknown_words_are_named_and_known_words_listed():
    with pytest.raises(UnknownWordError) as err:
        check_words("a photo of a pink elephant and a red circle")
    message = str(err.value)
    assert "'pink'" in message and "'elephant'" in message
    assert err.value.unknown == ["pink", "elephant"]
    for word in ("circle", "stars", "orange", "three", "above", "replace"):
        assert word in message
    assert check_words("Replace the square with a green star.") == ["replace", "the", "square", "with", "a", "green", "star"]


def test_every_generated_word_is_in_the_vocabulary_and_every_vocabulary_word_is_used():
    rng = np.random.default_rng(30)
    used = set()
    for _ in range(600):
        used.update(tokenize_words(sample_captioned_scene(rng).caption))
        used.update(tokenize_words(sample_edit(rng).instruction))
    assert used <= set(VOCABULARY)
    # A word the model never sees in training would be "known" yet meaningless to it.
    assert set(VOCABULARY) == used, set(VOCABULARY) - used


# ----- label maps -----

def test_label_map_marks_each_object_where_it_is():
    scene = Scene((ShapeObject("square", "green", 0.25, 0.25, 0.12), ShapeObject("circle", "red", 0.75, 0.7, 0.1)))
    lm = label_map(scene, 16)
    assert lm.shape == (16, 16)
    assert lm[4, 4] == label_index("square", "green") == 1 + 1 * 6 + 3
    assert lm[11, 12] == label_index("circle", "red") == 1
    assert lm[0, 15] == 0 and lm[15, 0] == 0
    assert set(np.unique(lm)) == {0, label_index("square", "green"), label_index("circle", "red")}
    # The green square spans 0.13..0.37 of the side: about 4 of 16 cells each way.
    assert 12 <= (lm == label_index("square", "green")).sum() <= 20
