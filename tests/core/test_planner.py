import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLModel, Qwen2_5_VLProcessor

from app.core.canvas import CanvasSpec, CanvasTokens
from app.core.planner import (Planner, PlannerProcessor, build_word_level_tokenizer, tiny_image_processor,
                              tiny_qwen25vl_config)

WORDS = "a red blue green circle square triangle on the left right of top bottom".split()
SPEC = CanvasSpec(1, 4, 4)
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
)


def rand_image(seed, h=24, w=24):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def word_planner():
    torch.manual_seed(0)
    proc = PlannerProcessor.word_level(WORDS)
    model = Qwen2_5_VLForConditionalGeneration(tiny_qwen25vl_config(len(proc.tokenizer), tokenizer=proc.tokenizer))
    return Planner(model.eval(), proc, CanvasTokens(SPEC, 64)).eval()


def real_qwen_processor():
    tokenizer = build_word_level_tokenizer(WORDS)
    image_processor = tiny_image_processor()
    try:
        return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                                   chat_template=QWEN_TEMPLATE)
    except (AttributeError, ImportError, TypeError):
        # Without torchvision, ProcessorMixin.__init__ looks the video processor's base class
        # (VideoProcessorMixin) up in VIDEO_PROCESSOR_MAPPING, which is then a dummy object with no
        # `_extra_content`: AttributeError even for video_processor=None. The class's own methods
        # (apply_chat_template, __call__ with images, placeholder expansion, mm_token_type_ids) do not
        # need that check, so set the attributes its __init__ would set and use the real methods.
        proc = Qwen2_5_VLProcessor.__new__(Qwen2_5_VLProcessor)
        proc.chat_template = QWEN_TEMPLATE
        proc.tokenizer, proc.image_processor, proc.video_processor = tokenizer, image_processor, None
        proc.image_token, proc.video_token = "<|image_pad|>", "<|video_pad|>"
        proc.image_token_id = tokenizer.convert_tokens_to_ids(proc.image_token)
        proc.video_token_id = tokenizer.convert_tokens_to_ids(proc.video_token)
        return proc


@pytest.fixture(scope="module")
def qwen_planner(word_planner):
    proc = PlannerProcessor.from_qwen_processor(real_qwen_processor())
    # Same weights as the word-level planner: both tokenizers share one vocabulary.
    return Planner(word_planner.model.model, proc, word_planner.canvas_tokens).eval()


def test_word_level_tokenizer_lowercases_and_splits_punctuation():
    tok = build_word_level_tokenizer(WORDS)
    tokens = tok.convert_ids_to_tokens(tok("<|im_start|> user A Red circle, left.<|im_end|>")["input_ids"])
    assert tokens == ["<|im_start|>", "user", "a", "red", "circle", ",", "left", ".", "<|im_end|>"]
    assert tok.convert_ids_to_tokens(tok("purple")["input_ids"]) == ["<unk>"]


def test_a_word_level_planner_reads_an_instruction_as_its_captions_were_written(word_planner):
    """The embedded planners' captions hold words and commas, never a full stop (one drew a second circle):
    other marks are dropped, commas kept, and each word still maps to its own tokens."""
    proc = word_planner.processor
    plain = proc(["a red circle left"])
    for text in ("A red circle left.", "a red circle left!", "  a red  circle left ."):
        inputs = proc([text])
        assert torch.equal(inputs.input_ids, plain.input_ids), text
        assert [[(w.lower(), span) for w, span in item] for item in inputs.words] == plain.words, text
    listed = proc(["a red circle, a blue square."])
    assert torch.equal(listed.input_ids, proc(["a red circle , a blue square"]).input_ids)
    tokens = proc.tokenizer.convert_ids_to_tokens(listed.input_ids[0])
    assert "," in tokens and "." not in tokens
    ids = listed.input_ids[0].tolist()
    assert [w for w, _ in listed.words[0]] == ["a", "red", "circle", "a", "blue", "square"]
    assert [proc.tokenizer.convert_ids_to_tokens([ids[i] for i in span]) for _, span in listed.words[0]][-1] == ["square"]


def test_config_factory_is_consistent(word_planner):
    cfg = word_planner.mllm.config
    tok = word_planner.processor.tokenizer
    head_dim = cfg.text_config.hidden_size // cfg.text_config.num_attention_heads
    assert sum(cfg.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert max(cfg.text_config.pad_token_id, cfg.text_config.eos_token_id) < cfg.text_config.vocab_size
    assert word_planner.hidden_size == 64
    assert sum(p.numel() for p in word_planner.parameters()) < 500_000


def _check_plan(plan, batch, spec, planner, instructions):
    assert plan.canvas.shape == (batch, spec.keyframes, spec.rows, spec.cols, planner.hidden_size)
    assert plan.context.shape[0] == batch and plan.context_mask.dtype == torch.bool
    assert torch.isfinite(plan.canvas).all() and torch.isfinite(plan.context).all()
    for b, instruction in enumerate(instructions):
        assert [w for w, _ in plan.words[b]] == [w for w in instruction.replace(".", " ").split()]
        for word, idx in plan.words[b]:
            assert len(idx) == 1 and plan.context_mask[b, idx[0]]
        assert plan.heatmap(b).shape == spec.shape[1:]


@pytest.mark.parametrize("kind", ["word", "qwen"])
def test_planner_text_image_and_video(word_planner, qwen_planner, kind):
    planner = word_planner if kind == "word" else qwen_planner
    tok = planner.processor.tokenizer
    instructions = ["a red circle on the left.", "blue square", "green triangle top"]
    video = np.stack([rand_image(10 + i, 20, 28) for i in range(3)])  # odd frame count: padded to 4
    with torch.no_grad():
        plan = planner(instructions, SPEC, images=[[rand_image(1)], [], [rand_image(2), rand_image(3, 16, 32)]],
                       videos=[None, video, None])
    _check_plan(plan, 3, SPEC, planner, instructions)
    inputs = planner.processor(instructions, images=[[rand_image(1)], [], [rand_image(2), rand_image(3, 16, 32)]],
                               videos=[None, video, None])
    assert inputs.image_grid_thw.tolist() == [[1, 6, 6], [1, 6, 6], [1, 4, 8]]
    assert inputs.video_grid_thw.tolist() == [[2, 4, 8]]  # 20x28 -> smart_resize 16x32
    assert (inputs.mm_token_type_ids == 1).sum() == 9 + 9 + 8 and (inputs.mm_token_type_ids == 2).sum() == 16
    for b, instruction in enumerate(instructions):
        for word, idx in plan.words[b]:
            assert tok.convert_ids_to_tokens(int(inputs.input_ids[b, idx[0]])) == word
    # Left padding: every row ends with the end-of-turn token, right before the canvas.
    assert tok.convert_ids_to_tokens(inputs.input_ids[:, -1].tolist()) == ["<|im_end|>"] * 3


def test_context_matches_the_models_own_forward(word_planner):
    """Image features, mm position ids and the prompt embeddings are exactly what Qwen2.5-VL computes itself."""
    planner = word_planner
    mllm = planner.mllm
    for images, videos in ([[rand_image(5)]], None), (None, [np.stack([rand_image(i) for i in range(4)])]):
        inputs = planner.processor(["a red circle"], images=images, videos=videos)
        with torch.no_grad():
            plan = planner(["a red circle"], SPEC, images=images, videos=videos)
            mllm.rope_deltas = None
            ref = mllm(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                       mm_token_type_ids=inputs.mm_token_type_ids, pixel_values=inputs.pixel_values,
                       image_grid_thw=inputs.image_grid_thw, pixel_values_videos=inputs.pixel_values_videos,
                       video_grid_thw=inputs.video_grid_thw, second_per_grid_ts=inputs.second_per_grid_ts,
                       use_cache=False).last_hidden_state
            mllm.rope_deltas = None
        # Causal attention: the prompt's states cannot see the canvas appended after it.
        assert torch.allclose(plan.context, ref, atol=1e-5)


def test_canvas_follows_instruction_and_image(word_planner):
    with torch.no_grad():
        a, b = word_planner(["a red circle on the left", "a blue circle on the left"], SPEC).canvas
        assert (a - b).abs().max() > 1e-3
        c = word_planner(["a red circle"], SPEC, images=[[rand_image(1)]]).canvas
        d = word_planner(["a red circle"], SPEC, images=[[rand_image(2)]]).canvas
        assert (c - d).abs().max() > 1e-3
        # Deterministic: same request, same plan.
        assert torch.equal(c, word_planner(["a red circle"], SPEC, images=[[rand_image(1)]]).canvas)


def test_left_padding_does_not_change_an_items_plan(word_planner):
    with torch.no_grad():
        alone = word_planner(["red"], SPEC, images=[[rand_image(4)]])
        batched = word_planner(["red", "a blue square on the right of the green triangle"], SPEC,
                               images=[[rand_image(4)], [rand_image(6)]])
    assert batched.context_mask[0].sum() < batched.context_mask.shape[1]  # item 0 really was padded
    assert torch.allclose(alone.canvas[0], batched.canvas[0], atol=1e-5)


def test_video_keyframes_and_resized_grid(word_planner):
    spec = CanvasSpec(3, 3, 5)  # differs from the stored 1x4x4 grid: interpolated canvas tokens
    video = np.stack([rand_image(i) for i in range(4)])
    with torch.no_grad():
        plan = word_planner(["the ball on the right"], spec, videos=[video])
    assert plan.canvas.shape == (1, 3, 3, 5, 64)
    assert (plan.canvas[0, 0] - plan.canvas[0, 2]).abs().max() > 1e-4  # keyframes get distinct positions


def test_qwen_processor_expands_like_the_planner_and_uses_chat_template(qwen_planner):
    proc = qwen_planner.processor
    text = proc.prompt_text("a red circle", 1, False)
    assert text == "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>a red circle<|im_end|>\n"
    inputs = proc(["a red circle", "blue"], images=[[rand_image(1)], []])
    assert (inputs.input_ids == proc.image_token_id).sum() == 9
    assert inputs.attention_mask[1, 0] == 0 and inputs.attention_mask[0].all()


def test_processor_save_load_round_trip(tmp_path, word_planner, qwen_planner):
    for planner, name in ((word_planner, "word"), (qwen_planner, "qwen")):
        planner.processor.save_pretrained(tmp_path / name)
        back = PlannerProcessor.from_pretrained(tmp_path / name)
        args = (["a red circle, top"], [[rand_image(3)]], [np.stack([rand_image(1)] * 2)])
        a, b = planner.processor(*args), back(*args)
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.pixel_values, b.pixel_values)
        assert torch.equal(a.pixel_values_videos, b.pixel_values_videos) and a.words == b.words


def test_planner_accepts_bare_qwen_model(word_planner):
    bare = Planner(word_planner.mllm, word_planner.processor, word_planner.canvas_tokens)
    assert isinstance(bare.mllm, Qwen2_5_VLModel)
    with torch.no_grad():
        assert torch.equal(bare(["red"], SPEC).canvas, word_planner(["red"], SPEC).canvas)


def test_canvas_states_use_the_image_block_positions(word_planner):
    """The canvas equals a language-model run where the model itself placed the canvas as a (1, 2H, 2W) image."""
    planner, mllm = word_planner, word_planner.mllm
    instructions = ["red", "a blue square on the left"]
    inputs = planner.processor(instructions)
    b, n = 2, SPEC.num_tokens
    ids = torch.cat([inputs.input_ids, torch.full((b, n), mllm.config.image_token_id)], 1)
    mask = torch.cat([inputs.attention_mask, torch.ones(b, n, dtype=torch.long)], 1)
    pos, _ = mllm.get_rope_index(ids, mm_token_type_ids=(ids == mllm.config.image_token_id).long(),
                                 image_grid_thw=torch.tensor([[1, 2 * SPEC.rows, 2 * SPEC.cols]] * b),
                                 attention_mask=mask)
    embeds = torch.cat([mllm.get_input_embeddings()(inputs.input_ids),
                        planner.canvas_tokens(SPEC).expand(b, -1, -1)], 1)
    with torch.no_grad():
        ref = mllm.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                                  use_cache=False).last_hidden_state[:, -n:]
        flat = mllm.language_model(inputs_embeds=embeds, attention_mask=mask,
                                   use_cache=False).last_hidden_state[:, -n:]
        plan = planner(instructions, SPEC)
    assert torch.allclose(plan.canvas.reshape(b, n, -1), ref, atol=1e-5)
    assert (flat - ref).abs().max() > 1e-3  # 1-D fallback positions would give a different plan


@pytest.mark.parametrize("theta, can_tell", [(10000.0, False), (10.0, True)])
def test_the_planners_rotary_positions_tell_canvas_columns_apart_only_with_a_small_theta(theta, can_tell):
    """M-RoPE gives columns the lowest of a head's frequencies. In a 32-wide head with Qwen's theta
    10000, columns 0 and 7 of an 8-wide canvas get rotations within 0.03 rad of each other, so no
    attention pattern can prefer one over the other; the shapes recipes' theta 10 turns them apart."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLRotaryEmbedding

    config = tiny_qwen25vl_config(40, hidden=128, heads=4, kv_heads=4, rope_theta=theta)
    rotary = Qwen2_5_VLRotaryEmbedding(config=config.text_config)
    column_0_and_7 = torch.tensor([[[20, 20]], [[23, 23]], [[20, 27]]])  # (t, h, w) ids of two cells of a row
    cos, sin = rotary(torch.zeros(1), column_0_and_7)
    angles = torch.atan2(sin, cos)[0]  # [2 cells, head_dim]
    turn = torch.remainder(angles[1] - angles[0] + torch.pi, 2 * torch.pi) - torch.pi
    assert bool(turn.abs().max() > 0.5) is can_tell
    assert turn.abs().max() > 0.01  # not zero: it is the columns' frequencies that are too low


def test_a_rotary_base_that_cannot_order_positions_is_refused():
    with pytest.raises(ValueError, match="rope_theta must be above 1"):
        tiny_qwen25vl_config(40, hidden=128, heads=4, kv_heads=4, rope_theta=0.5)
