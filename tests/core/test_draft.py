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


def _one_square_per_image(n: int, gen: torch.Generator):
    """32 px images, each with one 6 px square in one of four colours (labels 1-4) centred on a
    4 px cell; the context says nothing (zeros). The draft: that square."""
    colours = torch.tensor([[1.0, -1, -1], [-1, 1.0, -1], [-1, -1, 1.0], [1.0, 1.0, -1]])
    cells = torch.randint(0, 64, (n,), generator=gen)
    labels = torch.randint(1, 5, (n,), generator=gen)
    images = torch.full((n, 3, 32, 32), 0.5)
    rows = []
    for i, (c, label) in enumerate(zip(cells.tolist(), labels.tolist())):
        x0, y0 = (c % 8) * 4 - 1, (c // 8) * 4 - 1
        images[i, :, max(y0, 0):y0 + 6, max(x0, 0):x0 + 6] = colours[label - 1][:, None, None]
        rows.append(quantize_objects([(label, ((c % 8) * 4 + 2) / 32, ((c // 8) * 4 + 2) / 32, 0.1)], CONFIG))
    context = torch.zeros(n, 2, 16)
    where = torch.full((n, 2, 2), -1, dtype=torch.long)
    return context, torch.ones(n, 2, dtype=torch.bool), where, list(images), torch.from_numpy(np.stack(rows))


def test_an_edit_drafter_with_a_pixel_stem_reads_objects_off_the_source_pixels():
    """With nothing but the source's pixels to go on, a pixel-stem drafter learns which object is
    there and where (its centre loss names the object in its cell); without the sources it refuses."""
    from dataclasses import replace

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    drafter = LayoutDrafter(replace(CONFIG, reads_images=True, pixel_width=16), context_dim=16)
    opt = torch.optim.AdamW(drafter.parameters(), lr=3e-3)
    for _ in range(500):
        context, mask, where, sources, rows = _one_square_per_image(32, gen)
        loss, stats = drafter.loss(context, mask, rows, where=where, sources=sources, source_drafts=rows,
                                   named=torch.zeros(len(rows), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert stats["draft_centre_acc"] >= 0.9 and stats["draft_refer_acc"] == 1.0  # one object: it is the named one
    context, mask, where, sources, rows = _one_square_per_image(64, gen)
    drafts = drafter.sample(context, mask, temperature=0, where=where, sources=sources)
    right = (drafts[:, 0, :3] == rows[:, 0, :3]).all(1) & (drafts[:, 1, 0] == 0)
    assert right.float().mean() >= 0.9
    with pytest.raises(ValueError, match="sources"):
        drafter.sample(context, mask, temperature=0, where=where)
    with pytest.raises(ValueError, match="reads_images"):
        LayoutDrafter(replace(CONFIG, pixel_width=16), context_dim=16)


def test_each_items_source_image_is_rebuilt_exactly_from_the_prompts_patches():
    """What an edit drafter's pixel stem sees is the image the vision tower got, for sources of any
    size in one batch; an item without an image gets a blank one."""
    from app.core.planner import IMAGE_TOKEN, PlannerProcessor, source_images_from_patches, tiny_qwen25vl_config

    processor = PlannerProcessor.word_level(["make", "it", "red"], patch_size=4, max_pixels=64 * 64)
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    second = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    inputs = processor(["make it red", "make it red", "red"], images=[[first], [second, first], []])
    vision = tiny_qwen25vl_config(len(processor.tokenizer)).vision_config
    image_token = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    images = source_images_from_patches(inputs.input_ids, inputs.pixel_values, inputs.image_grid_thw,
                                        image_token, vision)
    ip = processor.image_processor
    mean, std = np.array(ip.image_mean)[:, None, None], np.array(ip.image_std)[:, None, None]
    for image, raw in zip(images, (first, second)):
        want = (raw.transpose(2, 0, 1) / 255.0 - mean) / std
        assert image.shape == want.shape
        assert np.abs(image.numpy() - want).max() < 1e-5
    assert images[2].shape == images[0].shape and not images[2].any()


def test_the_pixel_stems_detections_are_peaks_so_an_object_is_found_once():
    """Two neighbouring cells that both name an object are one object (the surer one); cells two
    apart are two. Detections come left to right, on the draft's bins."""
    from dataclasses import replace

    drafter = LayoutDrafter(replace(CONFIG, reads_images=True, pixel_width=16), context_dim=16)
    with torch.no_grad():
        drafter.centre_head.weight.zero_()
        drafter.centre_head.bias.zero_()
        drafter.centre_head.weight[1, 0] = 1.0  # label 1's logit is a token's first state
    tokens = torch.zeros(1, 64, CONFIG.dim)  # an 8 x 8 grid of stem tokens
    tokens[0, 6 * 8 + 6, 0] = 9.0
    tokens[0, 2 * 8 + 2, 0] = 10.0
    tokens[0, 2 * 8 + 3, 0] = 8.0  # beside the (2, 2) peak: the same object
    found = drafter.detect(tokens, [(8, 8)])
    assert found[0, :2, :3].tolist() == [[1, 5, 5], [1, 13, 13]]  # cell c -> bin 2c + 1 on 16 bins
    assert (found[0, 2:] == -1).all()


def _fixed_preferences(drafter: LayoutDrafter, x_rank: list[int], y: int, size: int) -> None:
    """Make every step draft label 1 (until the forced stop) and prefer x bins in `x_rank`'s order,
    one y bin and one size, whatever the prompt."""
    def prefer(linear: torch.nn.Linear, ranked: list[int]) -> None:
        linear.weight.data.zero_()
        linear.bias.data.fill_(-10.0)
        for i, b in enumerate(ranked):
            linear.bias.data[b] = 5.0 - i
    prefer(drafter.label_head, [1])
    prefer(drafter.x_head[-1], x_rank)
    prefer(drafter.y_head[-1], [y])
    prefer(drafter.size_head[-1], [size])


def test_a_greedy_draft_puts_an_object_that_would_overlap_in_the_likeliest_place_that_fits():
    # A greedy draft (how edits are drafted) has no second draw: an object whose likeliest place meets
    # an earlier one would be drawn on top of it, a scene the DiT never saw. It goes to the likeliest
    # free place instead: here the next x bins in the drafter's order that clear the earlier objects.
    drafter = LayoutDrafter(CONFIG, context_dim=16)
    _fixed_preferences(drafter, x_rank=[5, 6, 10, 2], y=8, size=0)
    ctx, mask = torch.randn(1, 3, 16), torch.ones(1, 3, dtype=torch.bool)
    objects = draft_objects(drafter.sample(ctx, mask, temperature=0)[0], CONFIG)
    # Bin 6 is as near bin 5 as an object's width: it overlaps and is passed over; 10 and 2 are clear.
    assert [round(cx * CONFIG.bins - 0.5) for _, cx, _, _ in objects] == [5, 10, 2]
    assert all(round(cy * CONFIG.bins - 0.5) == 8 for _, _, cy, _ in objects)
    # Where nothing fits (only bin 5 ever in reach), the greedy place is kept: a draft is never lost.
    crowded = LayoutDrafter(CONFIG, context_dim=16)
    _fixed_preferences(crowded, x_rank=[5], y=8, size=3)
    import app.core.draft as draft_module
    old, draft_module.PLACE_BEAM = draft_module.PLACE_BEAM, 1
    try:
        objects = draft_objects(crowded.sample(ctx, mask, temperature=0)[0], CONFIG)
    finally:
        draft_module.PLACE_BEAM = old
    assert len(objects) == 3 and {round(cx * CONFIG.bins - 0.5) for _, cx, _, _ in objects} == {5}


# ---- track drafts (clips) ---------------------------------------------------------------------------

def _track_config(**kw):
    from app.core.draft import DraftConfig

    return DraftConfig(**{"labels": 25, "max_objects": 3, "dim": 32, "track": True, **kw})


def test_a_track_draft_moves_its_object_across_the_keyframes():
    from app.core.canvas import CanvasSpec
    from app.core.draft import draft_coverage, quantize_objects

    config = _track_config()
    rows = quantize_objects([(3, 0.2, 0.5, 0.1, 0.7, 0.5)], config)  # moves right across the middle
    cover = draft_coverage(torch.from_numpy(rows)[None], CanvasSpec(3, 8, 8), config)
    assert cover.shape == (1, 3 * 64, 25)
    per_key = cover[0, :, 3].reshape(3, 8, 8)
    centres = [(m * torch.arange(8.0)).sum() / m.sum() for m in per_key.sum(1)]  # x centre of mass, cells
    assert centres[0] < centres[1] < centres[2]
    assert abs(centres[0] - 0.2 * 8 + 0.5) < 0.6 and abs(centres[2] - 0.7 * 8 + 0.5) < 0.6
    assert torch.allclose(cover[0].sum(-1), torch.ones(3 * 64))  # labels share each cell


def test_a_still_draft_is_the_same_on_every_keyframe():
    from app.core.canvas import CanvasSpec
    from app.core.draft import DraftConfig, draft_coverage, quantize_objects

    config = DraftConfig(labels=25)
    rows = quantize_objects([(3, 0.2, 0.5, 0.1)], config)
    cover = draft_coverage(torch.from_numpy(rows)[None], CanvasSpec(3, 8, 8), config).reshape(3, 64, 25)
    assert torch.equal(cover[0], cover[1]) and torch.equal(cover[0], cover[2])


def test_track_rows_must_say_where_each_object_ends():
    from app.core.draft import quantize_objects

    with pytest.raises(ValueError, match="6 numbers"):
        quantize_objects([(3, 0.2, 0.5, 0.1)], _track_config())
    with pytest.raises(ValueError, match="no reads_images"):
        _track_config(reads_images=True)
    with pytest.raises(ValueError, match="not both"):
        DraftConfig(labels=25, reads_sources=True, reads_images=True)


def test_a_clip_edit_drafter_copies_each_items_own_source_tracks():
    """The clip edit drafter reads the source's tracks as rows: taught on two edits with the very same words
    ("recolour the second track") and different sources, each draft is its own source with its second track
    recoloured, so what it copies comes from the rows, not from the words; without rows it says what it needs."""
    from app.core.draft import LayoutDrafter

    torch.manual_seed(0)
    config = _track_config(reads_sources=True)
    drafter = LayoutDrafter(config, 16)
    context = torch.randn(1, 5, 16).expand(2, -1, -1)
    mask = torch.ones(2, 5, dtype=torch.bool)
    stop, pad = [0, -1, -1, -1, -1, -1], [-1] * 6
    source = torch.tensor([[[3, 2, 4, 1, 6, 4], [9, 10, 10, 2, 10, 3], stop, pad],
                           [[7, 1, 12, 0, 1, 5], [15, 12, 6, 3, 5, 6], stop, pad]])
    target = source.clone()
    target[:, 1, 0] = torch.tensor([11, 17])  # the second track of each turns another colour
    opt = torch.optim.Adam(drafter.parameters(), lr=3e-3)
    for _ in range(200):
        loss, stats = drafter.loss(context, mask, target, source_drafts=source, named=torch.tensor([1, 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    drafter.eval()
    drafted = drafter.sample(context, mask, temperature=0.0, source_drafts=source)
    assert drafted[:, :3].tolist() == target[:, :3].tolist()
    assert stats["draft_refer_acc"] == 1.0
    with pytest.raises(ValueError, match="source_drafts"):
        drafter.sample(context, mask, temperature=0.0)


def test_a_track_drafter_learns_tracks_and_draws_valid_ones_by_seed():
    """Teacher-forced: a drafter taught one track draws it back greedily; sampled tracks stay in the frame
    and apart from each other (the shapes world's clips never overlap), and a seed repeats its draft."""
    from app.core.draft import LayoutDrafter, draft_objects, quantize_objects

    config = _track_config()
    torch.manual_seed(0)
    drafter = LayoutDrafter(config, 16)
    context, mask = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    rows = torch.from_numpy(np.stack([quantize_objects([(4, 0.25, 0.3, 0.1, 0.7, 0.3)], config),
                                      quantize_objects([(9, 0.5, 0.8, 0.1, 0.5, 0.4), (2, 0.2, 0.2, 0.1, 0.2, 0.2)],
                                                       config)]))
    opt = torch.optim.Adam(drafter.parameters(), lr=3e-3)
    for _ in range(150):
        loss, _ = drafter.loss(context, mask, rows)
        opt.zero_grad()
        loss.backward()
        opt.step()
    greedy = drafter.sample(context, mask, temperature=0.0)
    assert torch.equal(greedy, rows)
    sampled = drafter.sample(context.repeat(4, 1, 1), mask.repeat(4, 1), seeds=list(range(8)))
    assert torch.equal(sampled, drafter.sample(context.repeat(4, 1, 1), mask.repeat(4, 1), seeds=list(range(8))))


def test_a_drafted_track_is_redrawn_where_it_leaves_the_frame_or_crosses_an_earlier_one():
    from app.core.draft import LayoutDrafter, quantize_objects

    config = _track_config()
    drafter = LayoutDrafter(config, 16)
    earlier = torch.from_numpy(quantize_objects([(4, 0.2, 0.5, 0.09, 0.8, 0.5)], config))[None, :1]  # across the middle

    def misplaced(cx, cy, ex, ey, half=0.09):
        row = quantize_objects([(5, cx, cy, half, ex, ey)], config)[0]
        return bool(drafter._track_misplaced(earlier, tuple(torch.tensor([int(v)]) for v in row[1:]))[0])

    assert not misplaced(0.2, 0.15, 0.8, 0.15)  # a parallel path above it
    assert misplaced(0.5, 0.15, 0.5, 0.85)  # crosses it
    assert misplaced(0.2, 0.62, 0.8, 0.62)  # too close alongside
    assert misplaced(0.5, 0.15, 0.99, 0.15)  # ends out of the frame


def test_a_clips_drafted_tracks_refuse_object_edits_clearly():
    from app.core.draft import quantize_objects
    from app.core.plan import Plan
    from app.core.request import PlanEdit

    config = _track_config()
    rows = torch.from_numpy(quantize_objects([(4, 0.25, 0.3, 0.1, 0.7, 0.3)], config))[None]
    plan = Plan(canvas=torch.zeros(1, 3, 6, 6, 8), context=torch.zeros(1, 2, 8),
                context_mask=torch.ones(1, 2, dtype=torch.bool), words=[[]], draft=rows,
                draft_cover=torch.zeros(1, 3, 6, 6), draft_config=config)
    assert plan.objects(0)[0][1] == pytest.approx(0.28125)  # where the track starts
    with pytest.raises(ValueError, match="drafted tracks"):
        plan.objects_after([PlanEdit("delete_object", number=1)])
