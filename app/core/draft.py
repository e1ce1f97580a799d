"""Layout drafts: the planner drafts a scene object by object, and the draft seeds its canvas tokens.

Our addition to METHOD.md (whose canvas is one learnable grid, filled in one forward pass). A plan
made in one pass is a deterministic function of the instruction, so for "three stars", which a
caption allows anywhere, it can only be the average of every three-star scene: a haze, not three
places (research/LOG.md, "Where counts and edits fail"). Counting and placing need a plan that
*commits* to one scene, which needs sampling. So the planner drafts the scene autoregressively, as
layout-planning LLMs do: a small decoder reads the MLLM's context states and emits objects one at a
time, each as (label, x, y, size) on coarse bins, until it emits "stop"; the request's seed draws
the sample (the same seed, the same draft). The draft is drawn onto the canvas grid as soft label
coverage, and a learned embedding per label adds it to the canvas tokens before the MLLM reads
them, so the plan the MLLM fills in is now the plan of one concrete scene, which the connector
hands to the DiT as before.

Text-to-image requests are drafted from the caption. Image edits are drafted by a second drafter
(`reads_images`), which reads the source image's states too: each image token's state is placed in
the frame by a learned embedding of its cell, because the MLLM's states carry position only through
rotary attention, and a drafter reading them without it could not copy the source's layout (a first
try drafted 0.02 of edit targets right; research/probe_edit_drafter.py). The MLLM's image tokens are 8 px
cells of a small vision tower taught for the canvas, and a drafter reading them misread the
source's objects (greedy targets right 0.41 after 4,343 steps, mostly a wrong class); so an edit
drafter can also look at the source itself (`pixel_width`): a small convolutional stem of its own
turns the source's pixels into 4 px tokens. The stem is a detector: its own centre loss alone
teaches each token to name the source object centred in it (CenterNet's target, Zhou et al. 2019),
and the objects it finds join the decoder's memory as objects, embedded as the decoder embeds the
objects it drafts (teaching gives it the source's true objects). Read as raw stem states instead,
the decoder learned no faster than from the image tokens. An edit's target draft lists
the target scene's objects left to right (app/train/data.edit_draft_rows): the drafter copies
every object but the edited one off the source, in the order its memory lays them out.

Clips are drafted as tracks (`DraftConfig.track`, the embedded video model's text-to-video drafts):
each object's row also holds where it is at the clip's end, (label, x, y, size, x end, y end), so a
row commits to one path (a caption's "moves to the right" allows any start). Each canvas keyframe
gets the coverage of the objects where their tracks put them at that keyframe's time (`track_times`:
the keyframes evenly over the clip, as the connector spreads them over the latent frames). Events
(an object appearing, vanishing or turning a colour) are not drafted: the label is the object's
first one, its disc is drawn on every keyframe, and the words say the rest. A clip from an image or
from reference stills is drafted from its words, each track moved to start where the image or a still
has that object; a video edit by the clip edit drafter (`reads_sources`), which reads the words and the
source clip's tracks as the frame detector finds them and drafts the target's (app/core/frame_detector.py).

An empty instruction (the unconditional half of guidance) gets no draft. Models without a drafter
(real checkpoints, older shapes models) plan exactly as before.

The rows' format, and how rows are drawn onto the canvas grid, are in app/core/draft_rows.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# The row format lives in draft_rows.py; its names are imported from here too, where the drafters are.
from .draft_rows import (SUPERSAMPLE, DraftConfig, segment_distance, draft_coverage, draft_objects,  # noqa: F401
                         no_drafts, objects_at, quantize_objects, track_times)

PIXEL_CELL = 4  # pixels per side of one pixel-stem token: 16 x 16 tokens on a 64 px source, the bins' grid
CENTRE_WEIGHT = 10.0  # the centre loss's weight on cells that hold an object's centre (~2 of 256 do)
PLACE_TRIES = 8  # how often a drafted object that overlaps an earlier one is placed again
PLACE_BEAM = 4  # greedy drafts: the x and y bins searched for the likeliest place that overlaps nothing
# A greedy draft is re-placed only where an object goes more than this far (a fraction of the frame)
# into an earlier one: the bins put true scenes' objects up to 0.0325 into each other (3,000 random
# edit targets, drawn as drafts), and a right object must not be moved.
GREEDY_OVERLAP_SLACK = 0.035
# An edit has one target (the source with the named change), so edits are drafted greedily: on the
# 200 benchmark edits a first edit drafter's targets were right 0.155 of the time sampled at
# temperature 1, 0.32 at 0.5 and 0.33 greedy (research/LOG.md, "Drafting edits").
EDIT_TEMPERATURE = 0.0
# Clips' tracks are sampled a little cooler than stills' layouts: on 128 held-out text-to-video prompts the
# embedded video model's drafts moved every named object the named way 0.96 of the time at temperature 1
# and 0.99 at 0.7 (a wrong end bin is a wrong direction); starts still vary with the seed.
TRACK_TEMPERATURE = 0.7


class DraftContextTokens(nn.Module):
    """Drafts as context tokens, as GLIGEN feeds boxes to a text path (Li et al. 2023, "GLIGEN"): each
    drafted object's box (centre x, y and size, at its bins' centres) in Fourier features, with a
    learned embedding of its label and of its place in the draft's order, goes through a small MLP to
    the planner's width: one token per object; rows past "stop" and undrafted items are masked out. The
    DiT reads them as it reads the prompt's states (context connector, cross-attention): where an
    object goes is in the token's content, in the sin-cos form the DiT's own positions have."""

    FREQUENCIES = 8  # sin and cos of 2^k * pi * coordinate, k < 8, for each of x, y and size

    def __init__(self, config: DraftConfig, context_dim: int) -> None:
        super().__init__()
        d = config.dim
        self.config = config
        self.label = nn.Embedding(config.labels, d)
        self.slot = nn.Embedding(config.length, d)
        self.box = nn.Linear(3 * 2 * self.FREQUENCIES, d)
        self.mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, context_dim))
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(self.FREQUENCIES), persistent=False)

    def forward(self, drafts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, length, 4] drafts -> tokens [B, length, context_dim] and their mask [B, length] (True = a
        drafted object)."""
        c = self.config
        rows = drafts.long().to(self.label.weight.device)
        real = rows[..., 0] > 0
        label, x, y, s = (rows[..., i].clamp(min=0) for i in range(4))
        box = torch.stack([(x + 0.5) / c.bins, (y + 0.5) / c.bins, (s + 0.5) / c.sizes], -1).to(self.box.weight.dtype)
        angles = box.unsqueeze(-1) * self.frequencies.to(box.dtype)  # [B, T, 3, F]
        fourier = torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)
        h = self.label(label) + self.box(fourier) + self.slot.weight[: rows.shape[1]]
        return self.mlp(h) * real.unsqueeze(-1).to(h.dtype), real


def pixel_stem(width: int, dim: int) -> nn.Module:
    """The convolutional stem that turns a source's pixels into PIXEL_CELL px tokens of width `dim`.
    Receptive field 30 px per token: a whole object (10-18 px across on a 64 px frame) and its surround."""
    w = width
    return nn.Sequential(
        nn.Conv2d(3, w // 2, 3, padding=1), nn.GELU(),
        nn.Conv2d(w // 2, w, PIXEL_CELL, stride=PIXEL_CELL), nn.GELU(),
        nn.Conv2d(w, w, 3, padding=1), nn.GELU(), nn.Conv2d(w, w, 3, padding=1), nn.GELU(),
        nn.Conv2d(w, w, 3, padding=1), nn.GELU(), nn.Conv2d(w, dim, 1))


class CentreDetection:
    """Finding a source's objects with a pixel stem and its centre heads (`pixel_stem`, `centre_head`,
    `centre_size_head`, `config`): an edit drafter's, and app/core/frame_detector.FrameDetector's."""

    def _pixel_tokens(self, sources: list[torch.Tensor], device) -> tuple[torch.Tensor, list]:
        """Sources -> [B, N, d] stem states and each item's token grid (rows, cols). Sources of several
        sizes are padded to the largest (tokens past an item's own grid are never read)."""
        rows = [int(s.shape[-2]) // PIXEL_CELL for s in sources]
        cols = [int(s.shape[-1]) // PIXEL_CELL for s in sources]
        R, C = max(rows), max(cols)
        dtype = self.pixel_stem[0].weight.dtype
        batch = torch.zeros(len(sources), 3, R * PIXEL_CELL, C * PIXEL_CELL, dtype=dtype, device=device)
        for i, s in enumerate(sources):
            batch[i, :, : rows[i] * PIXEL_CELL, : cols[i] * PIXEL_CELL] = s[:, : rows[i] * PIXEL_CELL, : cols[i] * PIXEL_CELL].to(device, dtype)
        return self.pixel_stem(batch).flatten(2).transpose(1, 2), list(zip(rows, cols))

    @torch.no_grad()
    def detect(self, tokens: torch.Tensor, grids: list, min_confidence: float = 0.0) -> torch.Tensor:
        """The stem's objects: [B, max_objects, 4] rows (label, x, y, size bins), left to right
        (then top to bottom) as app/train/data.edit_draft_rows orders a scene, -1 past the last.
        A cell holds an object where its centre head names one and no neighbour is surer of one
        (CenterNet's 3 x 3 peak test: two objects' centres are always more than a cell apart, and
        without it 0.2 of the benchmark's sources got a second object beside a true one); the most
        confident are kept, and only those surer than `min_confidence` (1 - the background's probability)."""
        c = self.config
        R, C = max(g[0] for g in grids), max(g[1] for g in grids)
        logits = self.centre_head(tokens).float()
        confidence = 1 - logits.softmax(-1)[..., 0]
        grid = confidence.reshape(-1, 1, R, C)
        peak = (grid >= F.max_pool2d(grid, 3, stride=1, padding=1)).reshape(confidence.shape)
        labels, sizes = logits.argmax(-1) * peak, self.centre_size_head(tokens).argmax(-1)
        out = torch.full((tokens.shape[0], c.max_objects, 4), -1, dtype=torch.long)
        for b, (nr, nc) in enumerate(grids):
            r, col = torch.arange(tokens.shape[1]) // C, torch.arange(tokens.shape[1]) % C
            found = ((labels[b].cpu() > 0) & (r < nr) & (col < nc) & (confidence[b].cpu() > min_confidence)).nonzero().flatten()
            found = found[confidence[b, found].cpu().argsort(descending=True)[: c.max_objects]]
            objects = sorted((int(((col[k] + 0.5) / nc * c.bins).clamp(max=c.bins - 1)),
                              int(((r[k] + 0.5) / nr * c.bins).clamp(max=c.bins - 1)),
                              int(labels[b, k]), int(sizes[b, k])) for k in found.tolist())
            for i, (x, y, label, size) in enumerate(objects):
                out[b, i] = torch.tensor([label, x, y, size])
        return out


class LayoutDrafter(CentreDetection, nn.Module):
    """A small transformer decoder over objects, cross-attending to the MLLM's context states.

    One decoder position per object; at each, the label (or stop) is predicted, then x given the
    label, y given both, size given all three, so one object's parts agree. nn.TransformerDecoder
    (torch's own) rather than a second Qwen: the drafter is a few hundred thousand parameters and
    needs cross-attention to the planner's states, which a decoder-only LM would not give it.
    """

    def __init__(self, config: DraftConfig, context_dim: int) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.context_proj = nn.Linear(context_dim, d)
        if config.reads_images:  # where each image token lies, on the drafter's own bins
            self.memory_x = nn.Embedding(config.bins, d)
            self.memory_y = nn.Embedding(config.bins, d)
        if config.pixel_width:
            if not config.reads_images:
                raise ValueError("a drafter that reads pixels is an edit drafter (reads_images)")
            self.pixel_stem = pixel_stem(config.pixel_width, d)
            self.centre_head = nn.Linear(d, config.labels)
            self.centre_size_head = nn.Linear(d, config.sizes)
        if config.pixel_width or config.reads_sources:  # the source's objects, as rows in the memory
            self.source_slot = nn.Embedding(config.max_objects, d)
            # Which source object the instruction names: a learned query pools the instruction's
            # states (not the image's), a head scores each label from that, and the source object
            # whose label scores highest is the one; it is flagged in the decoder's memory. Each
            # object attending to the prompt itself (a decoder layer) stayed at chance (0.5 picked
            # right after 600 steps): scoring labels from the instruction makes it a matching of names.
            self.refer_query = nn.Parameter(torch.zeros(1, 1, d))
            self.refer_pool = nn.MultiheadAttention(d, config.heads, batch_first=True)
            self.refer_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.labels))
            self.named = nn.Embedding(2, d)
        self.start = nn.Parameter(torch.zeros(d))
        self.position = nn.Embedding(config.length, d)
        self.label_emb = nn.Embedding(config.labels, d)
        self.x_emb = nn.Embedding(config.bins, d)
        self.y_emb = nn.Embedding(config.bins, d)
        self.size_emb = nn.Embedding(config.sizes, d)
        layer = nn.TransformerDecoderLayer(d, config.heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, config.layers)
        self.norm = nn.LayerNorm(d)
        self.label_head = nn.Linear(d, config.labels)

        def head(out: int) -> nn.Module:
            return nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, out))

        self.x_head, self.y_head, self.size_head = head(config.bins), head(config.bins), head(config.sizes)
        if config.track:  # where the object is at the clip's end, given where it starts and its size
            self.x_end_emb = nn.Embedding(config.bins, d)
            self.y_end_emb = nn.Embedding(config.bins, d)
            self.x_end_head, self.y_end_head = head(config.bins), head(config.bins)
        if config.context_tokens:  # the drafts' way to the DiT when they do not go onto a canvas
            self.context_encoder = DraftContextTokens(config, context_dim)

    def _embed(self, rows: torch.Tensor) -> torch.Tensor:
        """[B, T, 4] objects -> [B, T, d]; padding (-1) and stop embed as zeros past the label."""
        label, x, y, s = (rows[..., i].clamp(min=0) for i in range(4))
        # In the module's own precision: a float32 mask would promote a half-precision model's embeddings.
        real = (rows[..., 0] > 0).unsqueeze(-1).to(self.label_emb.weight.dtype)
        parts = self.x_emb(x) + self.y_emb(y) + self.size_emb(s)
        if self.config.track:
            parts = parts + self.x_end_emb(rows[..., 4].clamp(min=0)) + self.y_end_emb(rows[..., 5].clamp(min=0))
        return self.label_emb(label) + real * parts

    def _states(self, previous: torch.Tensor, memory: torch.Tensor, memory_pad: torch.Tensor) -> torch.Tensor:
        b, t = previous.shape[:2]
        inputs = torch.cat([self.start.expand(b, 1, -1), self._embed(previous)], dim=1)
        inputs = inputs + self.position.weight[: t + 1]
        causal = nn.Transformer.generate_square_subsequent_mask(t + 1, device=inputs.device, dtype=inputs.dtype)
        h = self.decoder(inputs, memory, tgt_mask=causal, memory_key_padding_mask=memory_pad)
        return self.norm(h)

    def _memory(self, context: torch.Tensor, mask: torch.Tensor, where: torch.Tensor | None = None,
                sources: list[torch.Tensor] | None = None, source_drafts: torch.Tensor | None = None,
                named: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
        """`where` ([B, L, 2] long, x and y bins; -1 for states that are not image tokens) places
        image tokens in the frame (an edit drafter's only); `sources` (each item's source image,
        [3, H, W] as the vision tower got it: Planner.source_images) feeds the pixel stem, whose
        detected objects join the memory; `source_drafts` (the sources' own drafts) stand in for the
        detected objects in teaching. Returns the memory, its padding mask (True = ignore) and, with a
        pixel stem, its tokens' states and their grids (for the centre loss) and the referring
        head's logits over the source's objects. `named` ([B] index, in the objects' order) flags the
        object the instruction names in teaching; drafting flags the one the referring head picks."""
        mask = mask.bool()
        # An item with no unmasked state would attend to nothing (NaN): let it attend to its zeros.
        mask = mask | ~mask.any(1, keepdim=True)
        memory = self.context_proj(context.to(self.context_proj.weight.dtype))
        if self.config.reads_images:
            if where is None:
                raise ValueError("an edit drafter needs to know where the image tokens lie (where=)")
            where = where.to(memory.device)
            placed = (where[..., :1] >= 0).to(memory.dtype)
            xy = where.clamp(min=0)
            memory = memory + placed * (self.memory_x(xy[..., 0]) + self.memory_y(xy[..., 1]))
        pad = ~mask
        pixels = None
        if self.config.pixel_width or self.config.reads_sources:
            tokens = grids = None
            if self.config.pixel_width:
                if sources is None or len(sources) != memory.shape[0]:
                    raise ValueError("this edit drafter reads the source's pixels: give each item's source (sources=)")
                tokens, grids = self._pixel_tokens(sources, memory.device)
                if source_drafts is None:
                    source_drafts = self.detect(tokens, grids)
            elif source_drafts is None or len(source_drafts) != memory.shape[0]:
                raise ValueError("this edit drafter reads the source's objects: give each item's rows (source_drafts=)")
            rows = torch.as_tensor(source_drafts)[:, : self.config.max_objects].long().to(memory.device)
            # The source's objects as the decoder's own object embeddings, left to right, each with
            # its place in that order: copying one is matching, not reading pixels.
            objects = self._embed(rows) + self.source_slot.weight[: rows.shape[1]]
            absent = rows[..., 0] <= 0
            words = pad | (placed[..., 0] > 0) if where is not None else pad  # the instruction's states
            words = words & ~words.all(1, keepdim=True)  # no instruction at all: pool what there is
            pooled, _ = self.refer_pool(self.refer_query.expand(memory.shape[0], -1, -1), memory, memory,
                                        key_padding_mask=words)
            scores = self.refer_head(pooled[:, 0])  # [B, labels]
            refer = scores.gather(1, rows[..., 0].clamp(min=0)).masked_fill(absent, float("-inf"))
            if named is None:
                named = refer.argmax(-1)
            # An add names no source object (-1 in teaching): it is taught with the flag where the referring
            # head puts it, as drafting always flags one (taught unflagged, a clip edit drafter drafted no add
            # right: it read drafting's flag as a change to that object).
            named = torch.as_tensor(named).long().to(memory.device)
            named = torch.where(named >= 0, named, refer.argmax(-1))
            flag = F.one_hot(named, rows.shape[1]).to(memory.dtype)
            objects = objects + self.named.weight[0] + flag.unsqueeze(-1) * (self.named.weight[1] - self.named.weight[0])
            memory = torch.cat([memory, objects], 1)
            pad = torch.cat([pad, absent], 1)
            pixels = (tokens, grids, refer)
        return memory, pad, pixels

    def _centre_loss(self, pixels: tuple, source_drafts: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Each stem token names the source object whose centre lies in its cell (0: none), from the
        source's own draft; returns the loss and the accuracy of the names on the centre cells.
        Nothing else reshapes the stem: the centre cells are 1 % of its tokens, and any other loss on
        it drowns theirs (a size loss at the centres, or the decoder's: 0.16-0.22 right after 400
        steps with either, 0.91 without: research/LOG.md, "Edit drafts from the source's pixels").
        The centre's size bin is read off the stem's states by a head of its own, without gradient into the stem."""
        tokens, grids = pixels[:2]
        R = max(g[0] for g in grids)
        C = max(g[1] for g in grids)
        target = torch.full((tokens.shape[0], R, C), -1, dtype=torch.long)
        size = torch.full((tokens.shape[0], R, C), -1, dtype=torch.long)
        for i, (nr, nc) in enumerate(grids):
            target[i, :nr, :nc] = 0
            for label, x, y, s in torch.as_tensor(source_drafts[i]).tolist():
                if label <= 0:
                    break
                cx, cy = (x + 0.5) / self.config.bins, (y + 0.5) / self.config.bins
                r, c = min(int(cy * nr), nr - 1), min(int(cx * nc), nc - 1)
                target[i, r, c], size[i, r, c] = label, s
        target, size = target.flatten(1).to(tokens.device), size.flatten(1).to(tokens.device)
        weight = torch.full((self.config.labels,), CENTRE_WEIGHT, device=tokens.device)
        weight[0] = 1.0
        logits = self.centre_head(tokens)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), weight=weight, ignore_index=-1)
        centres = target > 0
        if centres.any():
            loss = loss + F.cross_entropy(self.centre_size_head(tokens.detach()[centres]), size[centres])
        acc = (logits.argmax(-1)[centres] == target[centres]).float().mean().item() if centres.any() else 0.0
        return loss, acc

    def loss(self, context: torch.Tensor, mask: torch.Tensor, drafts: torch.Tensor,
             where: torch.Tensor | None = None, sources: list[torch.Tensor] | None = None,
             source_drafts: torch.Tensor | None = None, named: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Teacher-forced cross-entropy of [B, length, 4] drafts given [B, L, d] context states
        (`where`, `sources`: see _memory). Items without a draft (all -1) are left out. With a pixel
        stem and `source_drafts` (each source scene's own draft), the centre loss is added, and with
        `named` (the index of the object each instruction names) the referring head's loss."""
        drafts = drafts.to(self.start.device).long()
        keep = (drafts[:, :, 0] >= 0).any(1)
        if not keep.any():
            zero = self.start.sum() * 0
            return zero, {}
        kept = keep.nonzero().flatten().tolist()
        drafts, context, mask = drafts[keep], context[keep], mask[keep]
        if source_drafts is not None:
            source_drafts = torch.as_tensor(source_drafts)[keep.cpu()]
        if named is not None:
            named = torch.as_tensor(named)[keep.cpu()]
        # Taught on the sources' true objects and the named one (teacher forcing); drafting reads the
        # stem's detections and the referring head's pick.
        memory, pad, pixels = self._memory(context, mask, None if where is None else where[keep.to(where.device)],
                                           None if sources is None else [sources[i] for i in kept], source_drafts,
                                           named)
        h = self._states(drafts[:, :-1], memory, pad)  # [B, T, d]: position i predicts object i
        labels = drafts[..., 0]
        label_loss = F.cross_entropy(self.label_head(h).flatten(0, 1), labels.flatten(), ignore_index=-1)
        real = labels > 0
        if real.any():
            hr = h[real]
            obj = drafts[real]
            e_label = self.label_emb(obj[:, 0])
            e_x, e_y = self.x_emb(obj[:, 1]), self.y_emb(obj[:, 2])
            part_loss = (F.cross_entropy(self.x_head(hr + e_label), obj[:, 1])
                         + F.cross_entropy(self.y_head(hr + e_label + e_x), obj[:, 2])
                         + F.cross_entropy(self.size_head(hr + e_label + e_x + e_y), obj[:, 3]))
            if self.config.track:
                e_start = e_label + e_x + e_y + self.size_emb(obj[:, 3])
                part_loss = (part_loss + F.cross_entropy(self.x_end_head(hr + e_start), obj[:, 4])
                             + F.cross_entropy(self.y_end_head(hr + e_start + self.x_end_emb(obj[:, 4])), obj[:, 5]))
        else:
            part_loss = label_loss * 0
        stats = {"draft_label": label_loss.item(), "draft_place": part_loss.item() / (self.config.columns - 1)}
        loss = label_loss + part_loss
        if pixels is not None and pixels[0] is not None and source_drafts is not None:
            centre_loss, centre_acc = self._centre_loss(pixels, source_drafts)
            loss = loss + centre_loss
            stats.update(draft_centre=centre_loss.item(), draft_centre_acc=centre_acc)
        if pixels is not None and named is not None:
            refer = pixels[2]
            target = named.long().to(refer.device)
            if (target >= 0).any():  # an add (-1) names no source object
                loss = loss + F.cross_entropy(refer, target, ignore_index=-1)
                picked = target >= 0
                stats["draft_refer_acc"] = (refer.argmax(-1)[picked] == target[picked]).float().mean().item()
        return loss, stats

    @torch.no_grad()
    def sample(self, context: torch.Tensor, mask: torch.Tensor, seeds: list[int] | None = None,
               wanted: torch.Tensor | None = None, temperature: float = 1.0,
               where: torch.Tensor | None = None, sources: list[torch.Tensor] | None = None,
               source_drafts: torch.Tensor | None = None) -> torch.Tensor:
        """[B, length, 4] drafts drawn with each item's seed (seed 0 without seeds); items not
        `wanted` get no draft (`where`, `sources`, `source_drafts`: see _memory). Greedy at temperature 0."""
        b = context.shape[0]
        out = no_drafts(b, self.config)
        columns = self.config.columns
        wanted = torch.ones(b, dtype=torch.bool) if wanted is None else wanted.cpu().bool()
        if not wanted.any():
            return out
        idx = wanted.nonzero().flatten()
        memory, pad, _ = self._memory(context[idx.to(context.device)], mask[idx.to(mask.device)],
                                      None if where is None else where[idx.to(where.device)],
                                      None if sources is None else [sources[i] for i in idx.tolist()],
                                      None if source_drafts is None else torch.as_tensor(source_drafts)[idx])
        gens = [torch.Generator().manual_seed(int(seeds[i]) if seeds is not None else 0) for i in idx.tolist()]
        rows = torch.full((len(idx), 0, columns), -1, dtype=torch.long, device=memory.device)
        done = torch.zeros(len(idx), dtype=torch.bool)

        def draw(logits: torch.Tensor, forbid: torch.Tensor | None = None) -> torch.Tensor:
            logits = logits.float().cpu()
            if forbid is not None:
                logits = logits.masked_fill(forbid, float("-inf"))
            if temperature <= 0:
                return logits.argmax(-1)
            probs = (logits / temperature).softmax(-1)
            return torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, gens)])

        for step in range(self.config.length):
            h = self._states(rows, memory, pad)[:, -1]
            forbid = None
            if step == self.config.max_objects:  # the last position can only stop
                forbid = torch.ones(self.config.labels, dtype=torch.bool)
                forbid[0] = False
            elif step == 0:  # a caption names at least one object
                forbid = torch.zeros(self.config.labels, dtype=torch.bool)
                forbid[0] = True
            label = draw(self.label_head(h), forbid).to(memory.device)
            e_label = self.label_emb(label)

            def place() -> tuple[torch.Tensor, ...]:
                x = draw(self.x_head(h + e_label)).to(memory.device)
                e_x = self.x_emb(x)
                y = draw(self.y_head(h + e_label + e_x)).to(memory.device)
                e_xy = e_label + e_x + self.y_emb(y)
                s = draw(self.size_head(h + e_xy)).to(memory.device)
                if not self.config.track:
                    return x, y, s
                e_start = e_xy + self.size_emb(s)
                x_end = draw(self.x_end_head(h + e_start)).to(memory.device)
                y_end = draw(self.y_end_head(h + e_start + self.x_end_emb(x_end))).to(memory.device)
                return x, y, s, x_end, y_end

            if self.config.track:  # tracks are sampled (a clip's path is a choice); see _track_misplaced
                parts = place()
                for _ in range(PLACE_TRIES):
                    bad = self._track_misplaced(rows, parts) & (label > 0) & ~done.to(label.device)
                    if not bad.any():
                        break
                    again = place()
                    parts = tuple(torch.where(bad, b2, b1) for b1, b2 in zip(parts, again))
            else:
                x, y, s = place()
                # A drafted object that would overlap one drafted before it, or leave the frame, is
                # placed again (its label kept): training scenes never have such objects, so the DiT has
                # never learned to draw them. After PLACE_TRIES the last place is kept.
                # A greedy draft (an edit's) has no second draw: an object that goes into an earlier one
                # takes the likeliest place that does not instead. The frame is not checked there: an
                # edit keeps most objects where the source has them, and at its edge a right object's
                # bins can reach out of the frame (0.6 % of true targets' objects, by up to 0.009).
                for _ in range(PLACE_TRIES if temperature > 0 else 1):
                    rule = {"frame": False, "overlap_slack": GREEDY_OVERLAP_SLACK} if temperature <= 0 else {}
                    bad = self._misplaced(rows, x, y, s, **rule) & (label > 0) & ~done.to(label.device)
                    if not bad.any():
                        break
                    x2, y2, s2 = place() if temperature > 0 else self._likeliest_fitting_place(h, e_label, rows, (x, y, s))
                    x, y, s = torch.where(bad, x2, x), torch.where(bad, y2, y), torch.where(bad, s2, s)
                parts = (x, y, s)
            new = torch.stack([label, *parts], dim=-1)
            finished = done.to(memory.device)
            new = torch.where(finished[:, None], torch.full_like(new, -1), new)
            new[:, 1:] = torch.where((new[:, :1] <= 0), torch.full_like(new[:, 1:], -1), new[:, 1:])
            rows = torch.cat([rows, new[:, None]], dim=1)
            done = done | (label.cpu() == 0)
            if done.all():
                break
        out[idx, : rows.shape[1]] = rows.cpu()
        return out

    def _likeliest_fitting_place(self, h: torch.Tensor, e_label: torch.Tensor, rows: torch.Tensor,
                                 fallback: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B] x, y, size bins: of the places among the PLACE_BEAM likeliest x bins, their
        PLACE_BEAM likeliest y bins and every size, the likeliest (summed log-probabilities) that
        goes into no earlier object (beyond GREEDY_OVERLAP_SLACK); `fallback` where none fits."""
        b, k = h.shape[0], min(PLACE_BEAM, self.config.bins)
        best = torch.full((b,), float("-inf"))
        x_out, y_out, s_out = (t.clone() for t in fallback)
        x_lp = self.x_head(h + e_label).float().log_softmax(-1)
        x_lp, x_top = x_lp.topk(k, dim=-1)
        for i in range(k):
            x = x_top[:, i]
            e_x = self.x_emb(x)
            y_lp, y_top = self.y_head(h + e_label + e_x).float().log_softmax(-1).topk(k, dim=-1)
            for j in range(k):
                y = y_top[:, j]
                s_lp = self.size_head(h + e_label + e_x + self.y_emb(y)).float().log_softmax(-1)
                for size in range(self.config.sizes):
                    s = torch.full_like(x, size)
                    score = (x_lp[:, i] + y_lp[:, j] + s_lp[:, size]).cpu()
                    fits = ~self._misplaced(rows, x, y, s, frame=False, overlap_slack=GREEDY_OVERLAP_SLACK)
                    better = (score > best) & fits.cpu()
                    best = torch.where(better, score, best)
                    dev = x.device
                    x_out = torch.where(better.to(dev), x, x_out)
                    y_out = torch.where(better.to(dev), y, y_out)
                    s_out = torch.where(better.to(dev), s, s_out)
        return x_out, y_out, s_out

    def _track_misplaced(self, rows: torch.Tensor, parts: tuple) -> torch.Tensor:
        """[B] whether a drafted track (x, y, size, x end, y end bins) leaves the frame at either end or
        comes into an earlier track: the shapes world keeps the boxes two objects sweep apart, so the DiT
        has never seen such clips. Each track is checked as the segment its centre sweeps, widened by
        the object's half-size (two capsules meet where their segments come closer than the halves).
        Stricter than the world, which keeps paths apart only while both objects are on screen (events
        are not drafted) and whose bins can put a disc a little past the edge: about 3 % of true
        training tracks fail it (review, 3,000 clips); after PLACE_TRIES the last draw is kept."""
        c = self.config
        x, y, s, xe, ye = (p.float() for p in parts)
        half = c.half_min + (s + 0.5) / c.sizes * (c.half_max - c.half_min)
        a = torch.stack([(x + 0.5) / c.bins, (y + 0.5) / c.bins], -1)
        b = torch.stack([(xe + 0.5) / c.bins, (ye + 0.5) / c.bins], -1)
        out = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for p in (a, b):
            out = out | (p - half[:, None] < 0).any(-1) | (p + half[:, None] > 1).any(-1)
        for j in range(rows.shape[1]):
            prev = rows[:, j]
            real = prev[:, 0] > 0
            pa = torch.stack([(prev[:, 1].float() + 0.5) / c.bins, (prev[:, 2].float() + 0.5) / c.bins], -1)
            pb = torch.stack([(prev[:, 4].float() + 0.5) / c.bins, (prev[:, 5].float() + 0.5) / c.bins], -1)
            ph = c.half_min + (prev[:, 3].float() + 0.5) / c.sizes * (c.half_max - c.half_min)
            out = out | (real & (segment_distance(a, b, pa, pb) < half + ph))
        return out

    def _misplaced(self, rows: torch.Tensor, x: torch.Tensor, y: torch.Tensor, s: torch.Tensor,
                   frame: bool = True, overlap_slack: float = 0.0) -> torch.Tensor:
        """[B] whether the object (x, y, s bins) leaves the frame (if `frame`) or its disc goes
        further than `overlap_slack` (a fraction of the frame) into an earlier one's."""
        c = self.config
        cx, cy = (x.float() + 0.5) / c.bins, (y.float() + 0.5) / c.bins
        half = c.half_min + (s.float() + 0.5) / c.sizes * (c.half_max - c.half_min)
        out = (cx - half < 0) | (cx + half > 1) | (cy - half < 0) | (cy + half > 1)
        out = out if frame else torch.zeros_like(out)
        if rows.shape[1]:
            real = rows[..., 0] > 0
            px, py = (rows[..., 1].float() + 0.5) / c.bins, (rows[..., 2].float() + 0.5) / c.bins
            ph = c.half_min + (rows[..., 3].float() + 0.5) / c.sizes * (c.half_max - c.half_min)
            dist = ((px - cx[:, None]) ** 2 + (py - cy[:, None]) ** 2).sqrt()
            out = out | ((dist < ph + half[:, None] - overlap_slack) & real).any(1)
        return out
