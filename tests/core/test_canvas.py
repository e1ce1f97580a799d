import pytest
import torch
from transformers import Qwen2_5_VLModel

from app.core.canvas import CanvasSpec, CanvasTokens, canvas_position_ids
from app.core.planner import tiny_qwen25vl_config


@pytest.fixture(scope="module")
def qwen():
    torch.manual_seed(0)
    return Qwen2_5_VLModel(tiny_qwen25vl_config(vocab_size=32)).eval()


def test_spec_counts_and_rejects_bad_sizes():
    spec = CanvasSpec(keyframes=2, rows=3, cols=5)
    assert spec == CanvasSpec(2, 3, 5) and spec.num_tokens == 30 and spec.shape == (2, 3, 5)
    with pytest.raises(ValueError):
        CanvasSpec(1, 0, 4)


def test_canvas_tokens_native_grid_is_the_parameter():
    torch.manual_seed(0)
    tokens = CanvasTokens(CanvasSpec(1, 16, 16), dim=64)
    out = tokens(CanvasSpec(1, 16, 16))
    assert out.shape == (256, 64)
    assert torch.equal(out, tokens.tokens.reshape(256, 64))
    assert 0.015 < tokens.tokens.std().item() < 0.025
    out.sum().backward()
    assert tokens.tokens.grad is not None and torch.all(tokens.tokens.grad == 1)


def test_canvas_tokens_interpolate_to_other_grids():
    tokens = CanvasTokens(CanvasSpec(1, 2, 2), dim=3)
    with torch.no_grad():
        # Left column 0, right column 1: a horizontal ramp must stay a ramp when resized.
        tokens.tokens.zero_()
        tokens.tokens[0, :, 1] = 1.0
    out = tokens(CanvasSpec(1, 4, 8)).reshape(1, 4, 8, 3)
    assert out.shape == (1, 4, 8, 3)
    row = out[0, 0, :, 0]
    assert torch.all(row[1:] >= row[:-1]) and row[0] == 0 and row[-1] == 1
    assert torch.allclose(out[0, 0], out[0, 3])
    video = tokens(CanvasSpec(3, 4, 8)).reshape(3, 4, 8, 3)
    assert torch.allclose(video[0], out[0]) and torch.allclose(video[2], out[0])


def test_position_ids_simple_layout():
    prefix = torch.arange(5).view(1, 1, 5).expand(3, 1, 5)
    ids = canvas_position_ids(prefix, torch.ones(1, 5), CanvasSpec(2, 2, 3))
    block = ids[:, 0, 5:]
    assert block.shape == (3, 12)
    assert block[0].tolist() == [5] * 6 + [6] * 6
    assert block[1].tolist() == [5, 5, 5, 6, 6, 6] * 2
    assert block[2].tolist() == [5, 6, 7] * 4
    stride = canvas_position_ids(prefix, None, CanvasSpec(2, 2, 3), temporal_stride=4)[:, 0, 5:]
    assert stride[0].tolist() == [5] * 6 + [9] * 6


def _with_canvas_as_media(qwen, prefix_ids, prefix_mask, prefix_types, grids, spec, canvas_type):
    """Ask the model itself: the prefix followed by an image/video block of the canvas's size."""
    b = prefix_ids.shape[0]
    n = spec.num_tokens
    media_id = qwen.config.image_token_id if canvas_type == 1 else qwen.config.video_token_id
    ids = torch.cat([prefix_ids, torch.full((b, n), media_id)], 1)
    mask = torch.cat([prefix_mask, torch.ones(b, n, dtype=prefix_mask.dtype)], 1)
    types = torch.cat([prefix_types, torch.full((b, n), canvas_type)], 1)
    canvas_grid = [spec.keyframes, 2 * spec.rows, 2 * spec.cols]
    # The model consumes grids in sequence order across the batch: each item's media, then its canvas.
    video_grids = None
    second = None
    if canvas_type == 1:
        image_grids = [g for item in grids for g in item + [canvas_grid]]
    else:
        image_grids = [g for item in grids for g in item]
        video_grids = torch.tensor([canvas_grid] * b)
        # time_interval = tokens_per_second * seconds_per_grid = 1 id per keyframe, our stride s = 1
        second = torch.full((b,), 1.0 / qwen.config.vision_config.tokens_per_second)
    pos, _ = qwen.get_rope_index(ids, mm_token_type_ids=types, attention_mask=mask,
                                 image_grid_thw=torch.tensor(image_grids) if image_grids else None,
                                 video_grid_thw=video_grids, second_per_grid_ts=second)
    return pos, mask


@pytest.mark.parametrize("spec,canvas_type", [(CanvasSpec(1, 3, 4), 1), (CanvasSpec(3, 2, 2), 2)])
def test_position_ids_match_qwen_rope_index(qwen, spec, canvas_type):
    img = qwen.config.image_token_id
    # Item 0: left-padded text only. Item 1: text, a 2x3 (merged) image, text.
    prefix_ids = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 9, 10, 11, 12],
                               [9, 10, img, img, img, img, img, img, 11, 12, 13, 3]])
    prefix_mask = (prefix_ids != 0).long()
    prefix_types = (prefix_ids == img).long()
    grids = [[], [[1, 4, 6]]]
    own_prefix, _ = qwen.get_rope_index(prefix_ids, mm_token_type_ids=prefix_types, attention_mask=prefix_mask,
                                        image_grid_thw=torch.tensor([[1, 4, 6]]))
    ours = canvas_position_ids(own_prefix, prefix_mask, spec)
    reference, mask = _with_canvas_as_media(qwen, prefix_ids, prefix_mask, prefix_types, grids, spec, canvas_type)
    assert ours.shape == reference.shape == (3, 2, 12 + spec.num_tokens)
    valid = mask.bool()
    for b in range(2):
        assert torch.equal(ours[:, b, valid[b]], reference[:, b, valid[b]])
    # The text part really is 1-D text positions (t = h = w) after left padding.
    assert own_prefix[:, 0, 8:].tolist() == [[0, 1, 2, 3]] * 3
