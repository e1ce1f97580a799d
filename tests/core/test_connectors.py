"""CanvasConnector / ContextConnector: zero-init no-op, shapes, resizing, timestep modulation."""
import pytest
import torch

from app.core.connectors import CanvasConnector, ContextConnector, pick_heads


def _wake(connector: CanvasConnector, seed: int = 1) -> None:
    """Give both zero-init Linears random weights, as training would."""
    g = torch.Generator().manual_seed(seed)
    for layer in (connector.plan_out, connector.step_out):
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.1)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("adaln", [True, False])
def test_fresh_connector_is_exact_noop(adaln):
    torch.manual_seed(0)
    c = CanvasConnector(24, 32, 2, adaln=adaln)
    canvas = torch.randn(2, 1, 4, 4, 24)
    plan = c.encode(canvas)
    assert plan.shape == (2, 1, 4, 4, 32)
    assert torch.equal(plan, torch.zeros_like(plan))
    tokens = torch.randn(2, 16, 32)
    out = c(tokens, torch.randn(2, 16, 32), torch.tensor([0.2, 0.9]))
    assert torch.equal(out, tokens)


def test_timestep_modulates_only_with_adaln():
    torch.manual_seed(0)
    tokens, plan = torch.randn(1, 16, 32), torch.randn(1, 16, 32)
    with_ada = CanvasConnector(24, 32, 2, adaln=True)
    without = CanvasConnector(24, 32, 2, adaln=False)
    for c in (with_ada, without):
        _wake(c)
    assert not torch.allclose(with_ada(tokens, plan, torch.tensor([0.1])), with_ada(tokens, plan, torch.tensor([0.9])))
    assert torch.equal(without(tokens, plan, torch.tensor([0.1])), without(tokens, plan, torch.tensor([0.9])))
    assert without.time_embed is None and with_ada.config["adaln"] is True


def test_encode_attends_within_keyframes_only():
    torch.manual_seed(0)
    c = CanvasConnector(24, 32, 2)
    _wake(c)
    canvas = torch.randn(1, 3, 2, 2, 24)
    changed = canvas.clone()
    changed[:, 2] += 1.0
    a, b = c.encode(canvas), c.encode(changed)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-6)
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_resize_identity_broadcast_and_keyframe_interpolation():
    x = torch.randn(2, 3, 4, 5, 8)
    assert CanvasConnector.resize(x, 3, 4, 5) is x
    one = torch.randn(2, 1, 4, 5, 8)
    r = CanvasConnector.resize(one, 7, 4, 5)
    assert r.shape == (2, 7, 4, 5, 8) and torch.equal(r[:, 6], one[:, 0])
    r = CanvasConnector.resize(x, 5, 4, 5)  # keyframes at latent frames 0, 2, 4
    assert torch.allclose(r[:, 0], x[:, 0]) and torch.allclose(r[:, 2], x[:, 1]) and torch.allclose(r[:, 4], x[:, 2])
    assert torch.allclose(r[:, 1], (x[:, 0] + x[:, 1]) / 2, atol=1e-6)


def test_resize_space_bilinear_keeps_constants_and_averages_when_shrinking():
    const = torch.full((1, 1, 4, 4, 3), 2.5)
    up = CanvasConnector.resize(const, 1, 8, 6)
    assert up.shape == (1, 1, 8, 6, 3) and torch.allclose(up, torch.full_like(up, 2.5))
    checker = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2
    x = checker.float()[None, None, :, :, None]
    down = CanvasConnector.resize(x, 1, 2, 2)  # plain bilinear would pick single cells here: 0s and 1s
    assert (down - 0.5).abs().max() < 0.15  # antialiased: close to the average


def test_resize_is_differentiable():
    x = torch.randn(1, 2, 3, 3, 4, requires_grad=True)
    CanvasConnector.resize(x, 5, 6, 6).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_context_connector_shapes_and_dropout():
    torch.manual_seed(0)
    c = ContextConnector(24, 40, hidden_mult=4, dropout=0.5)
    x = torch.randn(2, 7, 24)
    assert c(x).shape == (2, 7, 40)
    assert c.fc1.out_features == 96
    c.eval()
    assert torch.equal(c(x), c(x))
    c.train()
    assert not torch.equal(c(x), c(x))


def test_pick_heads():
    assert pick_heads(3584, 24) == 28  # Qwen2.5-VL-7B width with Wan's 24 heads: head dim 128 instead
    assert pick_heads(2240, 32) == 32
    c = CanvasConnector(48, 64, heads=4)
    assert c.config["heads"] == 4 and c.config["mllm_heads"] == 4


@pytest.mark.parametrize("size", [(22, 40), (5, 7), (16, 10), (11, 20)])
def test_resize_matches_f_interpolate(size):
    # resize uses matmuls (fast on CUDA); they must equal F.interpolate's bilinear / linear results.
    x = torch.randn(2, 3, 11, 20, 8)
    gh, gw = size
    ref = x.permute(0, 1, 4, 2, 3).reshape(6, 8, 11, 20)
    ref = torch.nn.functional.interpolate(ref, size=size, mode="bilinear", align_corners=False,
                                          antialias=gh < 11 or gw < 20)
    ref = ref.reshape(2, 3, 8, gh, gw).permute(0, 1, 3, 4, 2)
    assert torch.allclose(CanvasConnector.resize(x, 3, gh, gw), ref, atol=1e-5)
    ref_t = torch.nn.functional.interpolate(ref.permute(0, 2, 3, 4, 1).reshape(2, -1, 3), size=31, mode="linear",
                                            align_corners=True)
    ref_t = ref_t.reshape(2, gh, gw, 8, 31).permute(0, 4, 1, 2, 3)
    assert torch.allclose(CanvasConnector.resize(x, 31, gh, gw), ref_t, atol=1e-5)
