"""Layout drafts: a scene drafted object by object, drawn onto the canvas, sampled with the seed."""
import numpy as np
import pytest
import torch

from app.core.canvas import CanvasSpec, CanvasTokens
from app.core.draft import DraftConfig, LayoutDrafter, draft_coverage, draft_objects, no_drafts, quantize_objects

CONFIG = DraftConfig(labels=5, bins=16, sizes=4, max_objects=3, dim=32, layers=1, heads=2)


def test_a_scene_becomes_rows_in_the_order_given_with_stop_and_back_to_the_same_places():
    objects = [(2, 0.70, 0.30, 0.12), (4, 0.20, 0.75, 0.09)]
    rows = quantize_objects(objects, CONFIG)
    assert rows.shape == (CONFIG.length, 4)
    assert rows[0, 0] == 2 and rows[1, 0] == 4  # in the order given (the caption's)
    assert rows[2, 0] == 0 and (rows[3] == -1).all()  # stop, then padding
    back = draft_objects(rows, CONFIG)
    assert [o[0] for o in back] == [2, 4]
    for (label, cx, cy, half), (_, bx, by, bh) in zip(objects, back):
        assert abs(cx - bx) <= 0.5 / CONFIG.bins and abs(cy - by) <= 0.5 / CONFIG.bins
        assert abs(half - bh) <= 0.5 * (CONFIG.half_max - CONFIG.half_min) / CONFIG.sizes + 1e-9


def test_a_draft_never_drops_an_object_or_takes_an_unknown_label():
    with pytest.raises(ValueError, match="at most 3"):
        quantize_objects([(1, 0.2, 0.2, 0.1)] * 4, CONFIG)
    with pytest.raises(ValueError, match="outside"):
        quantize_objects([(5, 0.2, 0.2, 0.1)], CONFIG)


def test_coverage_puts_each_object_where_it_is_and_no_draft_covers_nothing():
    spec = CanvasSpec(1, 8, 8)
    drafts = torch.from_numpy(np.stack([quantize_objects([(3, 0.15, 0.15, 0.12)], CONFIG),
                                        no_drafts(1, CONFIG)[0].numpy()]))
    cover = draft_coverage(drafts, spec, CONFIG).reshape(2, 8, 8, CONFIG.labels)
    assert torch.allclose(cover[0].sum(-1), torch.ones(8, 8))  # objects + background cover every cell
    assert cover[0, 1, 1, 3] > 0.5 and cover[0, 6, 6, 3] == 0  # top-left object, nothing bottom-right
    assert cover[0, 6, 6, 0] == 1
    assert cover[1].abs().sum() == 0  # no draft: the canvas stays the plain one


def test_the_canvas_adds_the_drafts_label_embedding_per_cell():
    spec = CanvasSpec(1, 4, 4)
    tokens = CanvasTokens(spec, 8, draft_labels=CONFIG.labels)
    with torch.no_grad():
        tokens.draft_embedding.normal_()
    cover = torch.zeros(2, 16, CONFIG.labels)
    cover[0, 5, 2] = 1.0
    out = tokens(spec, draft=cover)
    plain = tokens(spec)
    assert torch.allclose(out[1], plain)
    assert torch.allclose(out[0, 5], plain[5] + tokens.draft_embedding[2])
    assert torch.allclose(out[0, 4], plain[4])
    with pytest.raises(ValueError, match="draft"):
        tokens(spec, draft=torch.zeros(1, 9, CONFIG.labels))


def _two_caption_task():
    """Caption A: always one object of label 1 on the left; caption B: two of label 2 on the right
    at random heights. Context states are fixed random vectors per caption."""
    gen = torch.Generator().manual_seed(0)
    ctx = torch.randn(2, 3, 16, generator=gen)
    rng = np.random.default_rng(0)

    def batch(n):
        which = torch.arange(n) % 2
        rows = []
        for w in which.tolist():
            if w == 0:
                rows.append(quantize_objects([(1, 0.2, 0.5, 0.1)], CONFIG))
            else:
                rows.append(quantize_objects([(2, 0.8, rng.uniform(0.1, 0.4), 0.1),
                                              (2, 0.8, rng.uniform(0.6, 0.9), 0.1)], CONFIG))
        return ctx[which], torch.ones(n, 3, dtype=torch.bool), torch.from_numpy(np.stack(rows))
    return ctx, batch


def test_the_drafter_learns_how_many_objects_a_caption_asks_for_and_where_and_the_seed_draws_the_sample():
    torch.manual_seed(0)
    drafter = LayoutDrafter(CONFIG, context_dim=16)
    ctx, batch = _two_caption_task()
    opt = torch.optim.AdamW(drafter.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss, stats = drafter.loss(*batch(16))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first and {"draft_label", "draft_place"} <= set(stats)
    mask = torch.ones(2, 3, dtype=torch.bool)
    counts = {0: [], 1: []}
    for seed in range(10):
        drafts = drafter.sample(ctx, mask, seeds=[seed, seed])
        for item in (0, 1):
            objects = draft_objects(drafts[item], CONFIG)
            counts[item].append(len(objects))
            assert all(label == item + 1 for label, *_ in objects)
            assert all((cx < 0.5) == (item == 0) for _, cx, _, _ in objects)
    assert counts[0].count(1) >= 9 and counts[1].count(2) >= 9
    again = drafter.sample(ctx, mask, seeds=[3, 3])
    assert torch.equal(again, drafter.sample(ctx, mask, seeds=[3, 3]))  # the same seed, the same draft
    heights = {tuple(np.round([o[2] for o in draft_objects(drafter.sample(ctx, mask, seeds=[0, s])[1], CONFIG)], 2))
               for s in range(10)}
    assert len(heights) > 1  # other seeds, other heights: a sample, not the average scene
    none = drafter.sample(ctx, mask, seeds=[1, 1], wanted=torch.tensor([False, True]))
    assert (none[0] == -1).all() and none[1, 0, 0] > 0


def test_items_without_a_draft_do_not_count_in_the_drafters_loss():
    drafter = LayoutDrafter(CONFIG, context_dim=16)
    ctx, batch = _two_caption_task()
    c, m, rows = batch(4)
    loss, _ = drafter.loss(c[:2], m[:2], rows[:2])
    padded = torch.cat([rows[:2], no_drafts(2, CONFIG)])
    loss_with_none, _ = drafter.loss(c, m, padded)
    assert torch.allclose(loss, loss_with_none)
    zero, stats = drafter.loss(c[:2], m[:2], no_drafts(2, CONFIG))
    assert zero.item() == 0 and stats == {}


def test_a_drafted_plan_shows_its_drafts_objects_and_moves_them_with_the_users_edit(tmp_path):
    from app.core.plan import Plan
    from app.core.request import PlanEdit

    spec = CanvasSpec(1, 8, 8)
    drafts = torch.stack([torch.from_numpy(quantize_objects([(3, 0.15, 0.15, 0.12)], CONFIG)), no_drafts(1, CONFIG)[0]])
    cover = draft_coverage(drafts, spec, CONFIG)[..., 1:].sum(-1).reshape(2, 1, 8, 8)
    canvas = torch.randn(2, 1, 8, 8, 16)
    strength = torch.rand(2, 1, 8, 8) + 1.0  # loudest where nothing is drafted: no guide to the objects
    plan = Plan(canvas=canvas, context=torch.zeros(2, 3, 16), context_mask=torch.ones(2, 3), words=[[], []],
                strength=strength, draft=drafts, draft_cover=cover)
    heat = plan.heatmap(0)
    assert heat[1, 1] == 1.0 and heat[6, 6] == 0.0  # the drafted object, top left
    assert np.allclose(plan.heatmap(1), (strength[1, 0] / strength[1].max()).numpy())  # undrafted: as before
    moved = plan.edited([PlanEdit("move", box=(0.0, 0.0, 0.5, 0.5), dx=0.5, dy=0.5)])
    assert moved.heatmap(0)[5, 5] == 1.0 and moved.heatmap(0)[1, 1] == 0.0
    plan.save(tmp_path / "p.plan")
    back = Plan.load(tmp_path / "p.plan")
    assert torch.equal(back.draft, drafts) and torch.equal(back.draft_cover, cover)
    assert np.allclose(back.select(0).heatmap(0), heat)


def _one_object_among_image_tokens(n: int, gen: torch.Generator):
    """A 4 x 4 "source image" of identical token states but one (the object's), at a random cell;
    its place is known only from where that token lies. The draft: one object of label 1 there."""
    from app.core.planner import image_token_places

    ids = torch.full((n, 17), 7)
    ids[:, 1:] = 9  # token 0 is the instruction, 1..16 the image's (merge 1, grid 1 x 4 x 4)
    where = image_token_places(ids, torch.tensor([[1, 4, 4]] * n), image_token_id=9, merge=1, bins=CONFIG.bins)
    context = torch.zeros(n, 17, 16)
    context[:, 0, 0] = 1.0
    cells = torch.randint(0, 16, (n,), generator=gen)
    context[torch.arange(n), 1 + cells, 1] = 1.0
    rows = [quantize_objects([(1, (c % 4 + 0.5) / 4, (c // 4 + 0.5) / 4, 0.1)], CONFIG) for c in cells.tolist()]
    return context, torch.ones(n, 17, dtype=torch.bool), torch.from_numpy(np.stack(rows)), where, cells


def test_image_tokens_are_placed_on_the_drafters_bins_row_by_row():
    from app.core.planner import image_token_places

    ids = torch.tensor([[5, 9, 9, 9, 9, 9, 9, 6], [9, 9, 9, 9, 9, 9, 6, 6]])
    where = image_token_places(ids, torch.tensor([[1, 4, 6], [1, 4, 6]]), image_token_id=9, merge=2, bins=12)
    # Merged grid 2 x 3: token k is at column k % 3, row k // 3, each cell 4 x 6 bins wide.
    assert where[0, 0].tolist() == [-1, -1] and where[0, 7].tolist() == [-1, -1]
    assert where[0, 1:7].tolist() == [[2, 3], [6, 3], [10, 3], [2, 9], [6, 9], [10, 9]]
    assert where[1, :6].tolist() == where[0, 1:7].tolist()
    assert (image_token_places(ids, None, 9, 2, 12) == -1).all()  # no image: nothing placed


def test_an_edit_drafter_finds_where_an_object_lies_from_the_image_tokens_places():
    """The source's layout reaches an edit drafter through where its image tokens lie: taught on
    "copy the one object", it drafts it in its own cell; a drafter that does not read images cannot."""
    from dataclasses import replace

    gen = torch.Generator().manual_seed(0)
    results = {}
    for reads in (True, False):
        torch.manual_seed(0)
        drafter = LayoutDrafter(replace(CONFIG, reads_images=reads), context_dim=16)
        opt = torch.optim.AdamW(drafter.parameters(), lr=3e-3)
        for _ in range(300):  # attention to the one token is found suddenly, near step 200
            context, mask, rows, where, _ = _one_object_among_image_tokens(32, gen)
            loss, _ = drafter.loss(context, mask, rows, where=where if reads else None)
            opt.zero_grad()
            loss.backward()
            opt.step()
        context, mask, rows, where, cells = _one_object_among_image_tokens(64, gen)
        drafts = drafter.sample(context, mask, seeds=list(range(64)), temperature=0, where=where if reads else None)
        results[reads] = float((drafts[:, 0, 1:3] == rows[:, 0, 1:3]).all(1).float().mean())
    assert results[True] >= 0.9 and results[False] <= 0.3
    with pytest.raises(ValueError, match="where"):
        LayoutDrafter(replace(CONFIG, reads_images=True), context_dim=16).sample(context, mask)
