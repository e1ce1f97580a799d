"""The planner: a Qwen2.5-VL MLLM reads the prompt (text, images, video) and fills the canvas.

Why about 645 lines: the Planner also wires the two drafters (drafts onto the canvas, or into the
context for the supervision-matched control), and its processor writes an instruction as a word-level
planner's captions were written; moving the drafters' wiring beside app/core/draft.py is next.

One forward pass of the language model over [left-padded prompt | canvas tokens] gives the Plan:
the hidden states at the last N positions are the canvas plan, the ones before are the context.
The LM head is never used; the MLLM is a planner here, not a text generator.

transformers 5.x facts this file relies on (checked against the installed source):
- `get_rope_index(input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, second_per_grid_ts,
  attention_mask)` finds media spans from `mm_token_type_ids` (0 text, 1 image, 2 video), not from
  vision-start tokens; padded positions keep id 0.
- The language model called with `inputs_embeds` and no `position_ids` falls back to 1-D ids on all
  three axes silently, so ids are always passed.
- `Qwen2VLVideoProcessor` (and with it `Qwen2_5_VLProcessor`, whose __init__ type-checks the
  video processor through a mapping that is a dummy without torchvision) needs torchvision. Videos
  are therefore patchified here, in the exact layout of `Qwen2VLVideoProcessor.patchify`, for both
  processor kinds; images still go through the real image processor.
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .canvas import CanvasSpec, CanvasTokens, canvas_position_ids
from .draft import EDIT_TEMPERATURE, TRACK_TEMPERATURE, LayoutDrafter, draft_coverage
from .plan import Plan
from .words import CHAT_WORDS

SPECIAL_TOKENS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]
IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_PROCESSOR_FILE = "planner_processor.json"


def _world_marks_only(instruction: str) -> str:
    """An instruction as a word-level planner's training captions were written: words and commas (a caption
    of three objects lists them with commas), no other marks. The embedded planners never saw a full stop:
    "a red circle moves right." drew two circles."""
    return " ".join(re.findall(r"\w+|,", instruction)).replace(" ,", ",")


# ---- tokenizer and config factories ---------------------------------------------------------------
def build_word_level_tokenizer(words: list[str]):
    """A lower-casing word-level tokenizer with Qwen's special tokens: small, exact, and saveable as tokenizer.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS + CHAT_WORDS + [w.lower() for w in words]:
        vocab.setdefault(token, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    # Punctuation becomes its own token so "left." and "left" are the same word.
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                   additional_special_tokens=SPECIAL_TOKENS[2:])


def tiny_qwen25vl_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                         vision_hidden: int = 32, vision_depth: int = 1, vision_heads: int = 2, patch_size: int = 4,
                         tokenizer: Any = None, image_token_id: int | None = None, video_token_id: int | None = None,
                         vision_start_token_id: int | None = None, vision_end_token_id: int | None = None,
                         pad_token_id: int | None = None, bos_token_id: int | None = None,
                         eos_token_id: int | None = None, tokens_per_second: int = 2, rope_theta: float = 10000.0):
    """A Qwen2_5_VLConfig small enough for CPU tests; token ids default to `tokenizer`'s (or the word-level layout).

    `rope_theta`: Qwen2.5-VL's M-RoPE gives the temporal axis the highest of the head's head_dim / 2
    frequencies, then rows, then columns the lowest. With Qwen's theta 10000 and a small head (32 wide
    here: frequencies 10000^(-i/16)), the column frequencies are at most 0.003 rad per position, so
    attention cannot tell the columns of an 8-wide canvas or image apart: a planner that must put "left
    of" on the left, or copy a source's layout onto its canvas, needs a far smaller theta (10 gives the
    columns 0.12-0.24 rad per position). Real checkpoints keep their own."""
    from transformers import Qwen2_5_VLConfig

    def tid(explicit: int | None, token: str) -> int:
        if explicit is not None:
            return explicit
        if tokenizer is not None:
            return int(tokenizer.convert_tokens_to_ids(token))
        return SPECIAL_TOKENS.index(token)

    if not rope_theta > 1:
        raise ValueError(f"rope_theta must be above 1 (each rotary frequency a power of 1 / theta), got {rope_theta}")
    head_dim = hidden // heads
    if head_dim % 2:
        raise ValueError(f"head_dim {head_dim} must be even for rotary embeddings")
    half = head_dim // 2
    # Qwen's real split is [16, 24, 24] for head_dim 128: temporal takes what the two spatial axes leave.
    spatial = 3 * half // 8
    mrope_section = [half - 2 * spatial, spatial, spatial]
    pad = tid(pad_token_id, "<pad>")
    text_config = dict(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta), "mrope_section": mrope_section},
        pad_token_id=pad, bos_token_id=tid(bos_token_id, "<|im_start|>"), eos_token_id=tid(eos_token_id, "<|im_end|>"),
    )
    vision_config = dict(
        depth=vision_depth, hidden_size=vision_hidden, intermediate_size=vision_hidden * 2, num_heads=vision_heads,
        patch_size=patch_size, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=hidden,
        # One merge window per attention window keeps windowed attention valid on tiny images.
        window_size=patch_size * 2 * 2, fullatt_block_indexes=[vision_depth - 1], tokens_per_second=tokens_per_second,
    )
    return Qwen2_5_VLConfig(
        text_config=text_config, vision_config=vision_config,
        image_token_id=tid(image_token_id, IMAGE_TOKEN), video_token_id=tid(video_token_id, VIDEO_TOKEN),
        vision_start_token_id=tid(vision_start_token_id, "<|vision_start|>"),
        vision_end_token_id=tid(vision_end_token_id, "<|vision_end|>"),
    )


def tiny_image_processor(patch_size: int = 4, min_pixels: int = 8 * 8, max_pixels: int = 32 * 32):
    """Qwen2VLImageProcessor with explicit small settings (the PIL backend: torchvision is not required)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(patch_size=patch_size, merge_size=2, temporal_patch_size=2,
                                    min_pixels=min_pixels, max_pixels=max_pixels)


# ---- processor ------------------------------------------------------------------------------------
@dataclass
class PlannerInputs:
    input_ids: torch.Tensor  # [B, L], left-padded
    attention_mask: torch.Tensor  # [B, L]
    mm_token_type_ids: torch.Tensor  # [B, L] 0 text, 1 image, 2 video
    words: list[list[tuple[str, list[int]]]]
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None
    second_per_grid_ts: torch.Tensor | None = None
    # The prompt's 3-axis M-RoPE ids [3, B, L], when made ahead (a training data worker runs the
    # model's own get_rope_index on the CPU: on a GPU its per-item Python loop stalls every step).
    prefix_position_ids: torch.Tensor | None = None
    # The vision tower's index tensors for the images (rotary ids, attention and window boundaries),
    # when made ahead: transformers computes them with a Python loop per image, ~30 ms for an edit
    # batch of 256 on every step. Made by `vision_index_tensors`, with transformers' own functions.
    image_vision_kwargs: dict[str, torch.Tensor] | None = None


def vision_index_tensors(vision_config, grid_thw: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the Qwen2.5-VL vision tower would compute from `grid_thw` at every call, computed once
    with transformers' `vision_utils` (the functions the tower itself calls; it accepts them back
    through its kwargs, which is what transformers made those functions for)."""
    from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids, get_vision_window_index

    window_index, cu_window_seqlens = get_vision_window_index(
        grid_thw, spatial_merge_size=vision_config.spatial_merge_size, window_size=vision_config.window_size,
        patch_size=vision_config.patch_size)
    return {"position_ids": get_vision_position_ids(grid_thw, vision_config.spatial_merge_size),
            "cu_seqlens": get_vision_cu_seqlens(grid_thw), "window_index": window_index,
            "cu_window_seqlens": cu_window_seqlens}


def prefix_position_ids(mllm, inputs: PlannerInputs) -> torch.Tensor:
    """The model's own M-RoPE ids for the prompt part, on the inputs' device."""
    ids, _ = mllm.get_rope_index(
        inputs.input_ids, mm_token_type_ids=inputs.mm_token_type_ids, image_grid_thw=inputs.image_grid_thw,
        video_grid_thw=inputs.video_grid_thw, attention_mask=inputs.attention_mask,
        second_per_grid_ts=inputs.second_per_grid_ts)
    return ids


class PlannerProcessor:
    """Turns instructions + media into left-padded model inputs and an instruction-word -> token map.

    Two kinds: `processor` set (a real Qwen2_5_VLProcessor: its chat template and its placeholder
    expansion), or a tokenizer + Qwen2VLImageProcessor (the embedded default's word-level tokenizer,
    or a real model folder's tokenizer when Qwen2_5_VLProcessor cannot be built, i.e. no torchvision).
    """

    def __init__(self, tokenizer, image_processor, processor=None, chat_template: str | None = None,
                 video_fps: float = 2.0) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.processor = processor
        self.chat_template = chat_template
        # Frames are taken as given (no resampling); fps only sets the temporal spacing of video ids.
        self.video_fps = video_fps
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
        self.video_token_id = int(tokenizer.convert_tokens_to_ids(VIDEO_TOKEN))
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def word_level(cls, words: list[str], patch_size: int = 4, min_pixels: int = 8 * 8,
                   max_pixels: int = 32 * 32) -> "PlannerProcessor":
        return cls(build_word_level_tokenizer(words), tiny_image_processor(patch_size, min_pixels, max_pixels))

    @classmethod
    def from_qwen_processor(cls, processor, video_fps: float = 2.0) -> "PlannerProcessor":
        return cls(processor.tokenizer, processor.image_processor, processor=processor, video_fps=video_fps)

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)

    # ---- persistence ----
    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        self.image_processor.save_pretrained(str(folder))
        template = self._template()
        meta = {"kind": "word_level" if template is None else "chat_template", "video_fps": self.video_fps,
                "chat_template": template}
        (folder / _PROCESSOR_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "PlannerProcessor":
        """Load from a local folder only; a real Qwen2.5-VL folder uses Qwen2_5_VLProcessor when it can be built."""
        from transformers import AutoTokenizer

        folder = Path(folder)
        meta_path = folder / _PROCESSOR_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"kind": "qwen"}
        video_fps = float(meta.get("video_fps", 2.0))
        torchvision = importlib.util.find_spec("torchvision") is not None
        if meta.get("kind") == "qwen" and torchvision:  # without torchvision it cannot be built; its parts can
            try:
                from transformers import Qwen2_5_VLProcessor

                proc = Qwen2_5_VLProcessor.from_pretrained(str(folder), local_files_only=True)
                return cls.from_qwen_processor(proc, video_fps=video_fps)
            except (ImportError, AttributeError, TypeError, ValueError, OSError):
                pass
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        if torchvision:
            from transformers import Qwen2VLImageProcessor
        else:  # what transformers falls back to anyway, named directly: the same pictures, no warning each run
            from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
                Qwen2VLImageProcessorPil as Qwen2VLImageProcessor)
        image_processor = Qwen2VLImageProcessor.from_pretrained(str(folder), local_files_only=True)
        return cls(tokenizer, image_processor, chat_template=meta.get("chat_template"), video_fps=video_fps)

    # ---- text ----
    def _template(self) -> str | None:
        if self.processor is not None:
            return getattr(self.processor, "chat_template", None)
        return self.chat_template or getattr(self.tokenizer, "chat_template", None)

    @property
    def reads_words(self) -> bool:
        """Whether its tokenizer is word-level (the embedded planners'), not a real Qwen one."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        return backend is not None and type(backend.model).__name__ == "WordLevel"

    def prompt_text(self, instruction: str, num_images: int, has_video: bool) -> str:
        """The prompt before placeholder expansion: one image/video pad per medium, media before the words."""
        template = self._template()
        if template is None:
            media = " ".join([f"<|vision_start|> {IMAGE_TOKEN} <|vision_end|>"] * num_images
                             + ([f"<|vision_start|> {VIDEO_TOKEN} <|vision_end|>"] if has_video else []))
            return f"<|im_start|> user {media} {instruction} <|im_end|>".replace("  ", " ")
        content = [{"type": "image"}] * num_images + ([{"type": "video"}] if has_video else [])
        content = content + [{"type": "text", "text": instruction}]
        messages = [{"role": "user", "content": content}]
        owner = self.processor if self.processor is not None else self.tokenizer
        # No generation prompt: the canvas goes right after the end-of-turn token (METHOD.md).
        return owner.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=False)

    # ---- media ----
    def _video_patches(self, video: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Patchify (F, H, W, 3) uint8 frames exactly like Qwen2VLVideoProcessor (which needs torchvision)."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        ip = self.image_processor
        video = np.asarray(video)
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"a video must be (F, H, W, 3) uint8, got {video.shape}")
        patch, merge, tps = int(ip.patch_size), int(ip.merge_size), int(ip.temporal_patch_size)
        size = ip.size
        min_pixels = size["shortest_edge"] if "shortest_edge" in size else size["min_pixels"]
        max_pixels = size["longest_edge"] if "longest_edge" in size else size["max_pixels"]
        h, w = smart_resize(video.shape[1], video.shape[2], factor=patch * merge, min_pixels=min_pixels,
                            max_pixels=max_pixels)
        frames = [np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC), dtype=np.float32) for f in video]
        x = np.stack(frames) * float(ip.rescale_factor)
        x = (x - np.asarray(ip.image_mean, np.float32)) / np.asarray(ip.image_std, np.float32)
        x = x.transpose(0, 3, 1, 2)  # F, C, H, W
        if pad := -x.shape[0] % tps:
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)
        gt, gh, gw = x.shape[0] // tps, h // patch, w // patch
        c = x.shape[1]
        x = x.reshape(gt, tps, c, gh // merge, merge, patch, gw // merge, merge, patch)
        x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gt * gh * gw, c * tps * patch * patch), [gt, gh, gw]

    def __call__(self, instructions: list[str], images: list[list[np.ndarray]] | None = None,
                 videos: list[np.ndarray | None] | None = None) -> PlannerInputs:
        batch = len(instructions)
        images = images if images is not None else [[] for _ in range(batch)]
        videos = videos if videos is not None else [None] * batch
        if len(images) != batch or len(videos) != batch:
            raise ValueError("images and videos need one entry per instruction")
        flat_images = [np.asarray(im) for item in images for im in (item or [])]

        image_grids = None
        pixel_values = None
        if flat_images:
            # Our pictures are always (H, W, 3): said outright, so a tiny one (1 x 1 x 3, 3 x 1 x 3) is not
            # guessed channels-first (transformers warns on each such guess).
            out = self.image_processor(images=flat_images, return_tensors="pt", input_data_format="channels_last")
            pixel_values, image_grids = out["pixel_values"], out["image_grid_thw"]
        video_patches, video_grids = [], []
        for video in videos:
            if video is not None:
                patches, grid = self._video_patches(video)
                video_patches.append(patches)
                video_grids.append(grid)

        merge_len = self.merge_size ** 2
        texts, spans, expanded = [], [], []
        image_i, video_i = 0, 0
        if self.reads_words:
            instructions = [_world_marks_only(t) for t in instructions]
        for b, instruction in enumerate(instructions):
            n_img = len(images[b] or [])
            text = self.prompt_text(instruction, n_img, videos[b] is not None)
            spans.append(_instruction_span(text, instruction))
            texts.append(text)
            # Our own expansion mirrors the processor's (replace_image_token); it is needed for char offsets.
            full = text
            full, spans[b] = _expand(full, IMAGE_TOKEN, [int(image_grids[image_i + j].prod()) // merge_len
                                                         for j in range(n_img)], spans[b])
            image_i += n_img
            if videos[b] is not None:
                n = int(np.prod(video_grids[video_i])) // merge_len
                full, spans[b] = _expand(full, VIDEO_TOKEN, [n], spans[b])
                texts[b], _ = _expand(texts[b], VIDEO_TOKEN, [n], (0, 0))
                video_i += 1
            expanded.append(full)

        enc = self.tokenizer(expanded, padding=True, padding_side="left", return_tensors="pt",
                             return_offsets_mapping=True, add_special_tokens=False)
        input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
        # The real processor refuses video pads without its (torchvision) video processor, even
        # pre-expanded ones, so it tokenizes only video-free batches; its tokenizer and image
        # processor, used above, are the same objects either way.
        if self.processor is not None and not video_patches:
            out = self.processor(text=texts, images=flat_images or None, padding=True, padding_side="left",
                                 return_tensors="pt", add_special_tokens=False,
                                 **({"input_data_format": "channels_last"} if flat_images else {}))
            if not torch.equal(out["input_ids"], input_ids):
                raise RuntimeError("Qwen2_5_VLProcessor expanded the prompt differently from the planner's "
                                   "word map; the processor's placeholder rule has changed")
            input_ids, attention_mask = out["input_ids"], out["attention_mask"]
            if flat_images:
                pixel_values, image_grids = out["pixel_values"], out["image_grid_thw"]

        mm = torch.zeros_like(input_ids)
        mm[input_ids == self.image_token_id] = 1
        mm[input_ids == self.video_token_id] = 2
        words = [_word_tokens(instructions[b], spans[b], enc["offset_mapping"][b], attention_mask[b])
                 for b in range(batch)]
        inputs = PlannerInputs(input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=mm,
                               words=words, pixel_values=pixel_values, image_grid_thw=image_grids)
        if video_patches:
            inputs.pixel_values_videos = torch.from_numpy(np.concatenate(video_patches)).float()
            inputs.video_grid_thw = torch.tensor(video_grids, dtype=torch.long)
            tps = int(self.image_processor.temporal_patch_size)
            inputs.second_per_grid_ts = torch.full((len(video_grids),), tps / self.video_fps)
        return inputs


def _instruction_span(text: str, instruction: str) -> tuple[int, int]:
    # The instruction is the last thing the user says, so search from the end.
    start = text.rfind(instruction) if instruction else -1
    return (start, start + len(instruction)) if start >= 0 else (0, 0)


def _expand(text: str, token: str, counts: list[int], span: tuple[int, int]) -> tuple[str, tuple[int, int]]:
    """Replace the first len(counts) `token`s by counts[i] copies each, keeping `span` (char range) aligned."""
    start, end = span
    pos = 0
    for count in counts:
        at = text.index(token, pos)
        grow = len(token) * (count - 1)
        text = text[:at] + token * count + text[at + len(token):]
        if at < start:
            start, end = start + grow, end + grow
        pos = at + len(token) * count
    return text, (start, end)


def _word_tokens(instruction: str, span: tuple[int, int], offsets: torch.Tensor,
                 mask: torch.Tensor) -> list[tuple[str, list[int]]]:
    """Each instruction word with the indices of the (padded) tokens whose characters overlap it."""
    base = span[0]
    result = []
    valid = mask.bool().tolist()
    offs = offsets.tolist()
    for m in _WORD_RE.finditer(instruction):
        w0, w1 = base + m.start(), base + m.end()
        idx = [i for i, (a, b) in enumerate(offs) if valid[i] and b > a and a < w1 and b > w0]
        result.append((m.group(0), idx))
    return result


# ---- planner --------------------------------------------------------------------------------------
def image_token_places(ids: torch.Tensor, image_grid_thw: torch.Tensor | None, image_token_id: int,
                       merge: int, bins: int) -> torch.Tensor:
    """[B, L, 2] long: for each image token, the (x, y) bin of the frame it stands for (`bins` per
    axis); -1 for every other token. The vision tower hands an image's merged tokens over row by
    row ((t, h / merge, w / merge) raster order), and the prompt holds them in that order."""
    where = torch.full((*ids.shape, 2), -1, dtype=torch.long)
    if image_grid_thw is None:
        return where
    grids = image_grid_thw.tolist()
    g = 0
    for b in range(ids.shape[0]):
        pos = (ids[b] == image_token_id).nonzero().flatten().cpu()
        k = 0
        while k < len(pos):
            t, h, w = (int(v) for v in grids[g])
            g += 1
            gh, gw = h // merge, w // merge
            n = t * gh * gw
            idx = torch.arange(n)
            where[b, pos[k:k + n], 0] = ((idx % gw + 0.5) / gw * bins).long()
            where[b, pos[k:k + n], 1] = (((idx // gw) % gh + 0.5) / gh * bins).long()
            k += n
    return where


def source_images_from_patches(ids: torch.Tensor, pixel_values: torch.Tensor | None,
                               image_grid_thw: torch.Tensor | None, image_token_id: int,
                               vision) -> list[torch.Tensor]:
    """Undo the Qwen2-VL image processor's patch layout for each item's first image. The processor
    flattens an image's patches in (h / merge, w / merge, merge, merge) order, each patch as
    (channel, temporal, patch, patch) values (transformers' Qwen2VLImageProcessor._preprocess); a
    still image's temporal copies are equal, so the first is taken."""
    if pixel_values is None or image_grid_thw is None:
        raise ValueError("these inputs hold no image")
    m, p, t_patch = int(vision.spatial_merge_size), int(vision.patch_size), int(vision.temporal_patch_size)
    channels = pixel_values.shape[1] // (t_patch * p * p)
    images, offset, g = [], 0, 0
    grids = image_grid_thw.tolist()
    per_item = (ids == image_token_id).sum(1).tolist()
    for count in per_item:
        first = None
        while count > 0:
            t, h, w = (int(v) for v in grids[g])
            n = t * h * w
            if first is None:
                patches = pixel_values[offset: offset + h * w].reshape(h // m, w // m, m, m, channels, t_patch, p, p)
                first = patches[..., 0, :, :].permute(4, 0, 2, 5, 1, 3, 6).reshape(channels, h * p, w * p)
            count -= n // (m * m)
            offset += n
            g += 1
        images.append(first)
    blank = next((im for im in images if im is not None), None)
    if blank is None:
        raise ValueError("these inputs hold no image")
    return [im if im is not None else torch.zeros_like(blank) for im in images]


class Planner(nn.Module):
    """MLLM + canvas tokens -> Plan. `model` is a Qwen2_5_VLModel or Qwen2_5_VLForConditionalGeneration."""

    def __init__(self, model: nn.Module, processor: PlannerProcessor, canvas_tokens: CanvasTokens,
                 temporal_stride: int = 1, drafter: LayoutDrafter | None = None,
                 edit_drafter: LayoutDrafter | None = None, frame_detector: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.canvas_tokens = canvas_tokens
        self.temporal_stride = temporal_stride
        self.drafter = drafter  # layout drafts (app/core/draft.py); None plans as METHOD.md does
        # drafts edits' targets (image edits here; a video model's clip edits from the source's tracks, which
        # the pipeline finds: frame_detector.edit_drafts); None leaves edits undrafted
        self.edit_drafter = edit_drafter
        # finds an image's objects, to draft a clip from it (app/core/frame_detector.py); None: undrafted
        self.frame_detector = frame_detector
        if canvas_tokens.dim != self.hidden_size:
            raise ValueError(f"canvas tokens have width {canvas_tokens.dim}, the MLLM {self.hidden_size}")
        if drafter is not None and drafter.config.context_tokens:
            if canvas_tokens.draft_labels:  # drafts go one way: onto the canvas, or into the context
                raise ValueError("a drafter whose drafts go into the context (context_tokens) needs canvas "
                                 "tokens without a draft embedding")
        elif drafter is not None and drafter.config.labels != canvas_tokens.draft_labels:
            raise ValueError(f"the drafter drafts {drafter.config.labels} labels; the canvas tokens embed "
                             f"{canvas_tokens.draft_labels}")
        if edit_drafter is not None:
            if drafter is None:
                raise ValueError("an edit drafter needs the planner's layout drafter (drafts of one kind)")
            e, d = edit_drafter.config, drafter.config
            reads = e.reads_sources if d.track else e.reads_images  # a clip's edits read its tracks
            if not reads or (e.labels, e.length, e.bins, e.sizes, e.track) != (d.labels, d.length, d.bins, d.sizes, d.track):
                raise ValueError("the edit drafter must read its source (an image, or a clip's tracks) and draft as "
                                 "the layout drafter does (labels, objects, bins, sizes, tracks)")

    @property
    def drafts(self) -> bool:
        return self.drafter is not None and (bool(self.canvas_tokens.draft_labels) or self.drafts_to_context)

    @property
    def drafts_to_context(self) -> bool:
        """The drafts reach the DiT as extra context tokens, not through the canvas (DraftConfig.context_tokens)."""
        return self.drafter is not None and self.drafter.config.context_tokens

    def image_places(self, inputs: PlannerInputs) -> torch.Tensor:
        """[B, L, 2]: where each image token of the prompt lies, on the edit drafter's bins."""
        drafter = self.edit_drafter if self.edit_drafter is not None else self.drafter
        if drafter is None:
            raise ValueError("this planner has no drafter: image places are on a drafter's bins")
        vision = self.mllm.config.vision_config
        bins = drafter.config.bins
        return image_token_places(inputs.input_ids, inputs.image_grid_thw, self.mllm.config.image_token_id,
                                  int(vision.spatial_merge_size), bins)

    def source_images(self, inputs: PlannerInputs) -> list[torch.Tensor]:
        """Each item's first image ([3, H, W], normalised as the vision tower got it), rebuilt from the
        prompt's patches: what an edit drafter's pixel stem reads (app/core/draft.py). An item without
        an image gets a blank one of the first image's size."""
        return source_images_from_patches(inputs.input_ids, inputs.pixel_values, inputs.image_grid_thw,
                                          self.mllm.config.image_token_id, self.mllm.config.vision_config)

    @property
    def mllm(self) -> nn.Module:
        """The Qwen2_5_VLModel (vision tower + language model), never the LM head."""
        inner = getattr(self.model, "model", None)
        return inner if inner is not None and hasattr(inner, "get_rope_index") else self.model

    @property
    def hidden_size(self) -> int:
        return int(self.mllm.config.text_config.hidden_size)

    def _prompt(self, instructions: list[str], images=None, videos=None, inputs: PlannerInputs | None = None):
        """The prompt's inputs (made here when not given), input embeddings (media features scattered
        in), mask and 3-axis position ids."""
        # `inputs` lets a training data loader tokenise and patchify in its worker processes.
        if inputs is None:
            inputs = self.processor(instructions, images=images, videos=videos)
        mllm = self.mllm
        device = self.canvas_tokens.tokens.device
        dtype = mllm.get_input_embeddings().weight.dtype
        ids = inputs.input_ids.to(device)
        mask = inputs.attention_mask.to(device)
        embeds = mllm.get_input_embeddings()(ids)
        image_grid = inputs.image_grid_thw.to(device) if inputs.image_grid_thw is not None else None
        video_grid = inputs.video_grid_thw.to(device) if inputs.video_grid_thw is not None else None
        if inputs.pixel_values is not None:
            made = {k: v.to(device) for k, v in (inputs.image_vision_kwargs or {}).items()}
            feats = torch.cat(mllm.get_image_features(inputs.pixel_values.to(device), image_grid, **made).pooler_output)
            embeds = embeds.masked_scatter((ids == mllm.config.image_token_id).unsqueeze(-1), feats.to(dtype))
        if inputs.pixel_values_videos is not None:
            feats = torch.cat(mllm.get_video_features(inputs.pixel_values_videos.to(device), video_grid).pooler_output)
            embeds = embeds.masked_scatter((ids == mllm.config.video_token_id).unsqueeze(-1), feats.to(dtype))

        if inputs.prefix_position_ids is not None:
            prefix_pos = inputs.prefix_position_ids.to(device)
        else:
            prefix_pos, _ = mllm.get_rope_index(
                ids, mm_token_type_ids=inputs.mm_token_type_ids.to(device), image_grid_thw=image_grid,
                video_grid_thw=video_grid, attention_mask=mask,
                second_per_grid_ts=inputs.second_per_grid_ts.to(device) if inputs.second_per_grid_ts is not None else None,
            )
        return inputs, ids, embeds, mask, prefix_pos

    @torch.no_grad()
    def context_states(self, instructions: list[str], images=None, videos=None,
                       inputs: PlannerInputs | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt's states alone ([B, L, d], mask [B, L]), without gradients: what the context of a
        plan is (the canvas comes after the prompt in the causal sequence), without the canvas's cost."""
        inputs, ids, embeds, mask, prefix_pos = self._prompt(instructions, images, videos, inputs)
        states = self.mllm.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=prefix_pos,
                                          use_cache=False).last_hidden_state
        return states, mask

    def forward(self, instructions: list[str], spec: CanvasSpec, images: list[list[np.ndarray]] | None = None,
                videos: list[np.ndarray | None] | None = None, inputs: PlannerInputs | None = None,
                seeds: list[int] | None = None, drafts: torch.Tensor | None = None) -> Plan:
        """With a drafter, `drafts` ([B, length, 4], app/core/draft.py) gives each item's layout draft (a
        training scene's own); without it, each text-only item with an instruction is drafted with its
        seed in `seeds`, so is each image edit when the planner has an edit drafter, and other items with
        media or an empty instruction get none."""
        inputs, ids, embeds, mask, prefix_pos = self._prompt(instructions, images, videos, inputs)
        mllm = self.mllm
        device = self.canvas_tokens.tokens.device
        dtype = mllm.get_input_embeddings().weight.dtype
        batch = ids.shape[0]
        if self.drafts and drafts is None:
            # The instruction alone first: its states draw the draft (the canvas comes after it in the
            # causal sequence, so these are the very context states of the plan).
            prefix = mllm.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=prefix_pos,
                                         use_cache=False).last_hidden_state
            media = torch.isin(ids, torch.tensor([mllm.config.image_token_id, mllm.config.video_token_id],
                                                 device=ids.device)).any(1)
            worded = torch.tensor([bool(t.strip()) for t in instructions], dtype=torch.bool)
            drafts = self.drafter.sample(prefix, mask, seeds, wanted=~media.cpu() & worded,
                                         temperature=TRACK_TEMPERATURE if self.drafter.config.track else 1.0)
            if self.edit_drafter is not None and not self.edit_drafter.config.reads_sources:
                # Edits (a still image, no clip) are drafted from the source's states as well. A clip's
                # edits are drafted from its tracks, which the pipeline finds (frame_detector.edit_drafts).
                imaged = (ids == mllm.config.image_token_id).any(1) & ~(ids == mllm.config.video_token_id).any(1)
                edited = imaged.cpu() & worded
                if edited.any():
                    sources = self.source_images(inputs) if self.edit_drafter.config.pixel_width else None
                    target = self.edit_drafter.sample(prefix, mask, seeds, wanted=edited, where=self.image_places(inputs),
                                                      temperature=EDIT_TEMPERATURE, sources=sources)
                    drafts = torch.where(edited[:, None, None], target, drafts)
        onto_canvas = self.drafts and not self.drafts_to_context
        coverage = draft_coverage(drafts, spec, self.drafter.config).to(device) if onto_canvas else None
        canvas = self.canvas_tokens(spec, coverage).to(dtype)
        if canvas.dim() == 2:
            canvas = canvas.unsqueeze(0).expand(batch, -1, -1)
        position_ids = canvas_position_ids(prefix_pos, mask, spec, self.temporal_stride, self.canvas_tokens.positions)
        full_mask = torch.cat([mask, mask.new_ones(batch, spec.num_tokens)], dim=1)
        out = mllm.language_model(inputs_embeds=torch.cat([embeds, canvas], dim=1), attention_mask=full_mask,
                                  position_ids=position_ids, use_cache=False)
        hidden = out.last_hidden_state
        n = spec.num_tokens
        context = hidden[:, :-n]
        # Padded rows attend to nothing and can come out as NaN; zero them so masks downstream are safe.
        context = torch.where(mask.bool().unsqueeze(-1), context, torch.zeros_like(context))
        plan_canvas = hidden[:, -n:].reshape(batch, spec.keyframes, spec.rows, spec.cols, -1)
        if self.drafts_to_context:  # one token per drafted object after the prompt's states
            tokens, drafted = self.drafter.context_encoder(drafts.to(device))
            context = torch.cat([context, tokens.to(context.dtype)], dim=1)
            mask = torch.cat([mask, drafted.to(mask.dtype)], dim=1)
        cover = None
        if coverage is not None:  # objects' share of each cell; an undrafted item's coverage is all zero
            cover = (coverage[..., 1:].sum(-1)).reshape(batch, spec.keyframes, spec.rows, spec.cols).float().cpu()
        plan = Plan(canvas=plan_canvas, context=context, context_mask=mask.bool(), words=inputs.words,
                    draft=drafts.cpu() if drafts is not None else None, draft_cover=cover,
                    draft_config=self.drafter.config if onto_canvas else None)
        if onto_canvas:  # the user's object edits (Plan.edited) are planned as this layout would be
            plan.replan = lambda rows: self(instructions, spec, images, videos, inputs=inputs, drafts=rows)
        return plan
