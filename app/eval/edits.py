"""Edit metrics on the shapes world: did the edit happen, and was the rest left alone."""
from __future__ import annotations

import itertools

import cv2
import numpy as np

from app.shapes.detect import detect
from app.shapes.edits import EDIT_KINDS, EditTriple, add_anchor, sample_edit
from app.shapes.render import object_mask
from app.shapes.scene import Scene

# Centre distance, as a fraction of the side, within which a detected object counts as in place:
# about 6 px at 64, well under the smallest move (MIN_MOVE 0.15), so an unedited image fails a move.
POSITION_TOLERANCE = 0.1


def make_edit_benchmark(n: int, seed: int = 0) -> list[EditTriple]:
    """n edit triples, the five kinds taking turns."""
    rng = np.random.default_rng(seed)
    return [sample_edit(rng, EDIT_KINDS[i % len(EDIT_KINDS)]) for i in range(n)]


def edit_success(result_image: np.ndarray, target_scene: Scene, tolerance: float = POSITION_TOLERANCE) -> bool:
    """True when the result shows exactly the target's objects (same multiset of class and colour)
    with each centre within `tolerance` of its target position."""
    size = result_image.shape[0]
    found = detect(result_image)
    want = target_scene.objects
    if sorted((d.cls, d.color) for d in found) != sorted((o.cls, o.color) for o in want):
        return False
    tol = tolerance * size
    # Same (class, colour) objects may pair up either way: accept if any pairing fits (at most 4! ways).
    for perm in itertools.permutations(range(len(found))):
        if all(found[p].cls == o.cls and found[p].color == o.color
               and np.hypot(found[p].center[0] - o.cx * size, found[p].center[1] - o.cy * size) <= tol
               for p, o in zip(perm, want)):
            return True
    return False


FAILURE_CAUSES = ("done", "misplaced", "unchanged", "missing", "extra", "wrong object")


def edit_failure_cause(result_image: np.ndarray, source_scene: Scene, target_scene: Scene) -> str:
    """Why an edit failed, as the detector sees it: "done" (it succeeded); "misplaced" (the target's
    objects, one or more out of place); "unchanged" (the source's objects); "missing" / "extra"
    (fewer / more objects than the target); "wrong object" (as many, but a class or colour is off:
    often another object than the one named was edited)."""
    if edit_success(result_image, target_scene):
        return "done"
    found = sorted((d.cls, d.color) for d in detect(result_image))
    want = sorted((o.cls, o.color) for o in target_scene.objects)
    if found == want:
        return "misplaced"
    if found == sorted((o.cls, o.color) for o in source_scene.objects):
        return "unchanged"
    if len(found) != len(want):
        return "missing" if len(found) < len(want) else "extra"
    return "wrong object"


ADD_SIDE_CAUSES = ("instructed side", "opposite side", "not drawn")


def added_object_side(result_image: np.ndarray, edit: EditTriple) -> str:
    """For an add edit, where the result put the new object, measured along the named direction
    from its reference object: "instructed side" (beyond the reference's centre that way),
    "opposite side", or "not drawn" (no new object of that class and colour). Tells a placement off
    by a few pixels from one mirrored ("to the left of" drawn to the right)."""
    size = result_image.shape[0]
    new = edit.target.objects[-1]
    ref, (ux, uy) = add_anchor(edit)
    old = [(o.cx * size, o.cy * size) for o in edit.source.objects if (o.cls, o.color) == (new.cls, new.color)]
    tol = POSITION_TOLERANCE * size
    # The new object: a detection of its class and colour where no such object was before.
    found = [d.center for d in detect(result_image) if (d.cls, d.color) == (new.cls, new.color)
             and all(np.hypot(d.center[0] - x, d.center[1] - y) > tol for x, y in old)]
    if not found:
        return "not drawn"
    want = (new.cx * size, new.cy * size)
    x, y = min(found, key=lambda c: np.hypot(c[0] - want[0], c[1] - want[1]))
    along = (x - ref.cx * size) * ux + (y - ref.cy * size) * uy
    return "instructed side" if along > 0 else "opposite side"


def edited_mask(source_scene: Scene, target_scene: Scene, size: int = 64, dilate: int | None = None) -> np.ndarray:
    """Bool [size, size]: where the edit may change pixels, i.e. every object present in only one of
    the two scenes (old and new place of a moved object, both colours of a recoloured one), dilated
    by `dilate` px (default 2 px at 64, scaled with size) so a model's soft edges are not counted
    as damage to the rest of the image."""
    mask = np.zeros((size, size), bool)
    src, tgt = set(source_scene.objects), set(target_scene.objects)
    for obj in src ^ tgt:
        mask |= object_mask(obj, size)
    dilate = max(1, round(2 * size / 64)) if dilate is None else dilate
    if dilate > 0 and mask.any():
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8)).astype(bool)
    return mask


def psnr_outside(result: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 255) between result and reference over the pixels where mask is False;
    inf when they are identical there."""
    keep = ~np.asarray(mask, bool)
    if not keep.any():
        raise ValueError("the edited mask covers the whole image: nothing outside it to compare")
    diff = result.astype(np.float64)[keep] - reference.astype(np.float64)[keep]
    mse = float((diff ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))
