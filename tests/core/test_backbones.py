"""The three backbone families at tiny random configs (real diffusers classes, no mocks).

For each family: a fresh (zero-init) MetaCanvas adapter equals the bare diffusers transformer called
the stock way; training reaches the canvas and both connectors; the canvas touches only noisy target
tokens (never source / reference / condition tokens); the transformer keeps its stock state dict and
round-trips through save_pretrained / from_pretrained with the hook installed.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from diffusers import FluxKontextPipeline, FluxTransformer2DModel, SanaTransformer2DModel, WanTransformer3DModel
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.embeddings import get_2d_sincos_pos_embed

from app.core.backbones import build_adapter
from app.core.backbones.flux import tiny_flux_config, FluxAdapter
from app.core.backbones.sana import tiny_sana_config, SanaAdapter
from app.core.backbones.wan import tiny_wan_config, WanAdapter, WanReference

D_MLLM = 16
B = 2


def _context(seed=0):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randn(B, 6, D_MLLM, generator=g)
    mask = torch.ones(B, 6, dtype=torch.bool)
    mask[0, :2] = False  # left padding, as the planner produces
    return ctx, mask


# ---------------------------------------------------------------- per-family cases
# Each case: build() -> (adapter, bare transformer copy), inputs(mode) -> (latents, reference, canvas shape),
# bare(transformer, adapter, latents, t, ctx, mask, reference) -> velocity the stock diffusers way,
# split(patch_embed_output, reference) -> (target part, condition part) of the hooked output.

def _sana_build(**kw):
    torch.manual_seed(0)
    tr = SanaTransformer2DModel(**tiny_sana_config())
    bare = copy.deepcopy(tr)
    return SanaAdapter(tr, D_MLLM, **kw), bare


def _sana_inputs(edit):
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(B, 4, 8, 8, generator=g)
    ref = torch.randn(1, 4, 8, 8, generator=g) if edit else None
    return lat, ref, (1, 4, 4)


def _sana_bare(tr, a, lat, t, ctx, mask, ref):
    x = lat if ref is None else torch.cat([lat, ref.expand(B, -1, -1, -1)], dim=2)
    hook = None
    if ref is not None:  # Kontext-style positions: both halves of the stack carry one image's positions
        pe = tr.patch_embed
        h, w = lat.shape[2] // pe.patch_size, lat.shape[3] // pe.patch_size
        one = get_2d_sincos_pos_embed(pe.pos_embed.shape[-1], (h, w), base_size=pe.base_size,
                                      interpolation_scale=pe.interpolation_scale, output_type="pt").float()
        two = get_2d_sincos_pos_embed(pe.pos_embed.shape[-1], (2 * h, w), base_size=pe.base_size,
                                      interpolation_scale=pe.interpolation_scale, output_type="pt").float()
        hook = pe.register_forward_hook(lambda m, i, o: o + (torch.cat([one, one]) - two))
    out = tr(x, encoder_hidden_states=a.context_connector(ctx), timestep=t * 1000,
             encoder_attention_mask=mask, return_dict=False)[0]
    if hook is not None:
        hook.remove()
    return out[:, :, : lat.shape[2]]


def _sana_split(out, ref):
    return out[:, :64], out[:, 64:]


def _flux_build(**kw):
    torch.manual_seed(0)
    tr = FluxTransformer2DModel(**tiny_flux_config())
    bare = copy.deepcopy(tr)
    return FluxAdapter(tr, D_MLLM, **kw), bare


def _flux_inputs(edit):
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(B, 4, 8, 8, generator=g)
    ref = torch.randn(1, 4, 6, 8, generator=g) if edit else None  # Kontext allows another source size
    return lat, ref, (1, 4, 4)


def _flux_bare(tr, a, lat, t, ctx, mask, ref):
    # Exactly FluxKontextPipeline's packing and ids (its static methods), then its transformer call.
    pack, ids = FluxKontextPipeline._pack_latents, FluxKontextPipeline._prepare_latent_image_ids
    b, c, h, w = lat.shape
    x = pack(lat, b, c, h, w)
    img_ids = ids(b, h // 2, w // 2, lat.device, lat.dtype)
    if ref is not None:
        r = ref.expand(b, -1, -1, -1)
        x = torch.cat([x, pack(r, b, c, r.shape[2], r.shape[3])], dim=1)
        ref_ids = ids(b, r.shape[2] // 2, r.shape[3] // 2, lat.device, lat.dtype)
        ref_ids[..., 0] = 1
        img_ids = torch.cat([img_ids, ref_ids], dim=0)
    ctx_e = a.context_connector(ctx)
    keep = torch.cat([mask, mask.new_ones(b, x.shape[1])], dim=1)[:, None, None, :]
    out = tr(hidden_states=x, encoder_hidden_states=ctx_e, pooled_projections=a.pooled(ctx, mask), timestep=t,
             img_ids=img_ids, txt_ids=torch.zeros(ctx.shape[1], 3), joint_attention_kwargs={"attention_mask": keep},
             return_dict=False)[0]
    return FluxKontextPipeline._unpack_latents(out[:, : (h // 2) * (w // 2)], h * 8, w * 8, 8)


def _flux_split(out, ref):
    return out[:, :16], out[:, 16:]


def _wan_build(**kw):
    torch.manual_seed(0)
    tr = WanTransformer3DModel(**tiny_wan_config())
    bare = copy.deepcopy(tr)
    kw.setdefault("context_dropout", 0.0)
    return WanAdapter(tr, D_MLLM, **kw), bare


def _wan_inputs(edit):
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(B, 4, 3, 8, 8, generator=g)
    ref = None
    if edit:  # I2V first frame + two in-context reference frames
        ref = WanReference(first_frame=torch.randn(1, 4, 1, 8, 8, generator=g),
                           frames=torch.randn(1, 4, 2, 8, 8, generator=g))
    return lat, ref, (2, 4, 4)


def _wan_bare(tr, a, lat, t, ctx, mask, ref):
    ctx_e = a.context_connector(ctx) * mask[..., None]
    if ref is None:
        return tr(hidden_states=lat, timestep=t * 1000, encoder_hidden_states=ctx_e, return_dict=False)[0]
    # Wan2.2-TI2V (expand_timesteps): condition frames clean at timestep 0, per-token timesteps.
    x = torch.cat([ref.first_frame.expand(B, -1, -1, -1, -1), lat[:, :, 1:], ref.frames.expand(B, -1, -1, -1, -1)], 2)
    mask_f = torch.zeros(B, x.shape[2])
    mask_f[:, 1:lat.shape[2]] = 1
    ts = (mask_f[:, :, None] * (t[:, None, None] * 1000)).expand(B, x.shape[2], 16).reshape(B, -1)
    out = tr(hidden_states=x, timestep=ts, encoder_hidden_states=ctx_e, return_dict=False)[0][:, :, : lat.shape[2]]
    out[:, :, 0] = 0
    return out


def _wan_split(out, ref):  # [B, D, F, h, w]: noisy frames 1..2 vs first frame + reference frames
    if ref is None:
        return out, out[:, :, :0]
    return out[:, :, 1:3], torch.cat([out[:, :, :1], out[:, :, 3:]], dim=2)


CASES = {
    "sana": (_sana_build, _sana_inputs, _sana_bare, _sana_split, "patch_embed"),
    "flux": (_flux_build, _flux_inputs, _flux_bare, _flux_split, "x_embedder"),
    "wan": (_wan_build, _wan_inputs, _wan_bare, _wan_split, "patch_embedding"),
}
FAMILIES = list(CASES)


def _wake(adapter, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = adapter.canvas_connector
    with torch.no_grad():
        for layer in (c.plan_out, c.step_out):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.2)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("edit", [False, True], ids=["generate", "condition"])
@pytest.mark.parametrize("family", FAMILIES)
def test_fresh_adapter_equals_bare_backbone(family, edit):
    build, inputs, bare_call, _, _ = CASES[family]
    adapter, bare = build()
    adapter.eval()
    lat, ref, (k, h, w) = inputs(edit)
    ctx, mask = _context()
    t = torch.tensor([0.25, 0.8])
    canvas = torch.randn(1, k, h, w, D_MLLM)
    with torch.no_grad():
        plan = adapter.prepare_plan(canvas)
        got = adapter(lat, t, ctx, mask, plan, ref)
        want = bare_call(bare, adapter, lat, t, ctx, mask, ref)
    assert got.shape == lat.shape
    assert torch.equal(got, want)


@pytest.mark.parametrize("family", FAMILIES)
def test_flow_matching_training_reaches_canvas_and_connectors(family):
    build, inputs, _, _, _ = CASES[family]
    adapter, _ = build()
    adapter.train()
    lat, ref, (k, h, w) = inputs(True)
    ctx, mask = _context()
    torch.manual_seed(3)
    canvas = torch.nn.Parameter(torch.randn(k, h, w, D_MLLM))  # stands in for the planner's canvas states
    opt = torch.optim.AdamW([canvas, *adapter.parameters()], lr=1e-2, weight_decay=0.0)
    t = torch.tensor([0.3, 0.6])
    noise = torch.randn_like(lat)
    z_t = (1 - t.view(-1, *[1] * (lat.ndim - 1))) * lat + t.view(-1, *[1] * (lat.ndim - 1)) * noise
    target = noise - lat
    if family == "wan":
        target[:, :, 0] = 0  # frame 0 is the given I2V frame: no velocity to learn there

    with torch.no_grad():
        before = adapter(z_t, t, ctx, mask, adapter.prepare_plan(canvas[None]), ref)

    cc, xc = adapter.canvas_connector, adapter.context_connector
    grads = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.mse_loss(adapter(z_t, t, ctx, mask, adapter.prepare_plan(canvas[None]), ref), target)
        loss.backward()
        norm = lambda m: sum(p.grad.abs().sum().item() for p in m.parameters() if p.grad is not None)  # noqa: E731
        grads.append(dict(canvas=canvas.grad.abs().sum().item(), context=norm(xc), step_out=norm(cc.step_out),
                          step_block=norm(cc.step_block), plan_out=norm(cc.plan_out), plan_block=norm(cc.plan_block)))
        opt.step()

    # Two zero-init Linears in series: the gradient walks back one Linear per optimiser step.
    g1, g2, g3 = grads
    assert g1["context"] > 0 and g1["step_out"] > 0
    assert g1["step_block"] == 0 and g1["plan_out"] == 0 and g1["canvas"] == 0
    assert g2["step_block"] > 0 and g2["plan_out"] > 0  # after one optimiser step
    assert g2["canvas"] == 0 and g2["plan_block"] == 0
    assert all(v > 0 for v in g3.values()), g3  # after two: everything, the canvas tokens included

    with torch.no_grad():
        after = adapter(z_t, t, ctx, mask, adapter.prepare_plan(canvas[None]), ref)
        without = adapter(z_t, t, ctx, mask, None, ref)
    assert not torch.allclose(before, after)
    assert not torch.allclose(after, without)  # the trained canvas branch now matters


@pytest.mark.parametrize("family", FAMILIES)
def test_canvas_touches_only_noisy_target_tokens(family):
    build, inputs, _, split, embed_name = CASES[family]
    adapter, _ = build()
    adapter.eval()
    _wake(adapter)
    lat, ref, (k, h, w) = inputs(True)
    ctx, mask = _context()
    t = torch.tensor([0.5, 0.5])
    seen = []
    # Registered after the adapter's hook, so it sees the hooked (canvas-added) output.
    getattr(adapter.transformer, embed_name).register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    plan = adapter.prepare_plan(torch.randn(1, k, h, w, D_MLLM))
    with torch.no_grad():
        with_canvas = adapter(lat, t, ctx, mask, plan, ref)
        without = adapter(lat, t, ctx, mask, None, ref)
    (tgt_on, cond_on), (tgt_off, cond_off) = split(seen[0], ref), split(seen[1], ref)
    assert cond_on.numel() > 0 and torch.equal(cond_on, cond_off)
    assert not torch.allclose(tgt_on, tgt_off)
    assert not torch.allclose(with_canvas, without)


@pytest.mark.parametrize("family", FAMILIES)
def test_padded_context_positions_are_ignored(family):
    build, inputs, _, _, _ = CASES[family]
    adapter, _ = build()
    adapter.eval()
    lat, ref, _ = inputs(False)
    ctx, mask = _context()
    other = ctx.clone()
    other[0, :2] = 100.0  # only padded positions change
    t = torch.tensor([0.4, 0.4])
    with torch.no_grad():
        assert torch.allclose(adapter(lat, t, ctx, mask), adapter(lat, t, other, mask), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_state_dict_keeps_stock_keys_and_round_trips(family, tmp_path):
    build, inputs, _, _, _ = CASES[family]
    adapter, bare = build()
    adapter.eval()
    _wake(adapter)
    assert set(adapter.transformer.state_dict()) == set(bare.state_dict())
    adapter.transformer.save_pretrained(tmp_path / "transformer")
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    cls = type(adapter.transformer)
    reloaded = cls.from_pretrained(tmp_path / "transformer")
    rebuilt = build_adapter(adapter.config, reloaded).eval()
    missing, unexpected = rebuilt.load_state_dict(
        {k: v for k, v in adapter.state_dict().items() if not k.startswith("transformer.")}, strict=False)
    assert not unexpected and all(k.startswith("transformer.") for k in missing)
    lat, ref, (k, h, w) = inputs(True)
    ctx, mask = _context()
    canvas = torch.randn(1, k, h, w, D_MLLM)
    t = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        a = adapter(lat, t, ctx, mask, adapter.prepare_plan(canvas), ref)
        b = rebuilt(lat, t, ctx, mask, rebuilt.prepare_plan(canvas), ref)
    assert torch.equal(a, b)


def test_sana_softmax_self_attention_runs_and_is_recorded():
    adapter, _ = _sana_build(self_attention="softmax")
    adapter.eval()
    assert adapter.config["self_attention"] == "softmax"
    assert all(isinstance(b.attn1.processor, AttnProcessor2_0) for b in adapter.transformer.transformer_blocks)
    lat, ref, (k, h, w) = _sana_inputs(True)
    ctx, mask = _context()
    t = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        soft = adapter(lat, t, ctx, mask, adapter.prepare_plan(torch.randn(1, k, h, w, D_MLLM)), ref)
        adapter.set_self_attention("linear")
        lin = adapter(lat, t, ctx, mask, None, ref)
    assert soft.shape == lat.shape and torch.isfinite(soft).all()
    assert not torch.allclose(soft, lin)


def test_text_only_adapter_has_no_canvas_branch():
    adapter, _ = _sana_build(canvas=False)
    assert adapter.canvas_connector is None
    assert adapter.prepare_plan(torch.randn(1, 1, 4, 4, D_MLLM)) is None
    lat, _, _ = _sana_inputs(False)
    ctx, mask = _context()
    with pytest.raises(ValueError, match="text-only"):
        adapter(lat, 0.5, ctx, mask, torch.zeros(1, 1, 4, 4, 32))


def test_strength_recording_and_plan_batch_broadcast():
    adapter, _ = _wan_build()
    adapter.eval()
    _wake(adapter)
    adapter.record_strength = True
    lat, ref, (k, h, w) = _wan_inputs(False)
    ctx, mask = _context()
    with torch.no_grad():
        adapter(lat, 0.5, ctx, mask, adapter.prepare_plan(torch.randn(1, k, h, w, D_MLLM)))
    assert adapter.last_strength.shape == (B, 3, 4, 4)
    assert (adapter.last_strength > 0).all()


def test_sana_edit_target_and_source_rows_carry_the_positions_of_one_image():
    """An edit's target tokens must sit where a generation's do, and each source token at the position
    of the target token it shows; else copying the source means learning an offset (and squashed rows)."""
    adapter, _ = _sana_build()
    adapter.eval()
    seen = []
    adapter.transformer.transformer_blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    g = torch.Generator().manual_seed(3)
    lat = torch.randn(1, 4, 8, 8, generator=g)
    ctx, mask = _context()
    with torch.no_grad():
        adapter(lat, torch.tensor([0.5]), ctx[:1], mask[:1], None, None)
        adapter(lat, torch.tensor([0.5]), ctx[:1], mask[:1], None, lat)  # the source equals the target
    generate, edit = seen
    n = generate.shape[1]
    assert torch.allclose(edit[:, :n], generate, atol=1e-5)
    assert torch.allclose(edit[:, n:], generate, atol=1e-5)  # same pixels, same positions (marker is 0)


def test_sana_without_absolute_positions_edits_too():
    """SANA's own configs have no sin-cos positions (interpolation_scale None): nothing to share, and an
    edit still runs and keeps the target's shape."""
    torch.manual_seed(0)
    adapter = SanaAdapter(SanaTransformer2DModel(**tiny_sana_config(interpolation_scale=None)), D_MLLM)
    assert adapter.transformer.patch_embed.pos_embed is None
    lat, ref, (k, h, w) = _sana_inputs(True)
    ctx, mask = _context()
    with torch.no_grad():
        out = adapter(lat, torch.tensor([0.3, 0.7]), ctx, mask, adapter.prepare_plan(torch.randn(1, k, h, w, D_MLLM)), ref)
    assert out.shape == lat.shape and torch.isfinite(out).all()


def test_a_sana_edit_trains_after_sampling_under_inference_mode():
    """The edit-position correction is cached; made first inside inference_mode (a quick evaluation in
    training), it must still serve a training step's backward afterwards."""
    adapter, _ = _sana_build()
    lat, ref, (k, h, w) = _sana_inputs(True)
    ctx, mask = _context()
    t = torch.tensor([0.3, 0.7])
    with torch.inference_mode():
        adapter(lat, t, ctx, mask, None, ref)
    loss = adapter(lat, t, ctx, mask, None, ref).square().mean()
    loss.backward()
    assert adapter.transformer.patch_embed.proj.weight.grad is not None


def test_the_wan_source_residual_starts_as_a_no_op_acts_on_a_source_clip_alone_and_lets_a_dit_copy_it():
    """WanAdapter(source_residual=True): a video edit's source clip also enters each target token of the same
    frame and cell. Fresh it changes nothing (a trained video model gains it and starts out as it was);
    reference stills and an image-to-video first frame never go through it (they are not the target's
    pixels); trained on a copy task (the clean clip is its source), a DiT with it fits far better in the same
    steps than the same DiT without it, which has to find the source by attention."""
    from app.core.request import Task
    g = torch.Generator().manual_seed(1)
    lat, src = torch.randn(B, 4, 3, 8, 8, generator=g), torch.randn(B, 4, 3, 8, 8, generator=g)
    ctx, mask = _context()
    t = torch.tensor([0.9, 0.6])

    def adapter(flag):
        torch.manual_seed(0)
        return WanAdapter(WanTransformer3DModel(**tiny_wan_config()), D_MLLM, context_dropout=0.0,
                          source_residual=flag)

    with_it, without = adapter(True), adapter(False)
    source, _ = with_it.condition(src, Task.VIDEO_EDIT)
    stills, _ = with_it.condition(src[:, :, :2], Task.REFERENCE_TO_VIDEO)
    assert source.source_clip and not stills.source_clip
    with torch.no_grad():
        assert torch.equal(with_it(lat, t, ctx, mask, None, source), without(lat, t, ctx, mask, None, source))
        torch.nn.init.normal_(with_it.source_residual.weight, std=0.2)
        assert not torch.allclose(with_it(lat, t, ctx, mask, None, source), without(lat, t, ctx, mask, None, source))
        assert torch.equal(with_it(lat, t, ctx, mask, None, stills), without(lat, t, ctx, mask, None, stills))
        shorter = WanReference(frames=src[:, :, :2], source_clip=True)
        assert with_it(lat, t, ctx, mask, None, shorter).shape == lat.shape
        # Frame by frame, cell by cell: with an identity Linear, target frame i gains source frame i's tokens;
        # a shorter source gives its frames to the first target frames, the later ones get none.
        with_it.source_residual.weight.copy_(torch.eye(with_it.source_residual.in_features))
        with_it.source_residual.bias.zero_()
        tokens = torch.randn(1, with_it.source_residual.in_features, 5, 3, 4, generator=g)  # 3 target + 2 source
        added = with_it._add_source(tokens, 3, 3, 5)
        assert torch.allclose(added[:, :, :2], tokens[:, :, :2] + tokens[:, :, 3:5])
        assert torch.equal(added[:, :, 2:], tokens[:, :, 2:])
    torch.nn.init.zeros_(with_it.source_residual.weight)

    def copy_loss_after_training(model):
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(2)

        def loss():
            noise = torch.randn(src.shape, generator=gen)
            tt = 0.2 + 0.8 * torch.rand(B, generator=gen)
            noisy = (1 - tt.view(-1, 1, 1, 1, 1)) * src + tt.view(-1, 1, 1, 1, 1) * noise
            target = noise - src  # velocity toward the clean clip, which is the source
            return F.mse_loss(model(noisy, tt, ctx, mask, None, WanReference(frames=src, source_clip=True)), target)

        for _ in range(60):
            value = loss()
            opt.zero_grad()
            value.backward()
            opt.step()
        with torch.no_grad():
            return sum(loss().item() for _ in range(8)) / 8

    assert copy_loss_after_training(with_it) < 0.5 * copy_loss_after_training(without)
