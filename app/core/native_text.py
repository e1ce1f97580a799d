"""The backbone's own text path: its text encoder(s), run as its diffusers pipeline runs them.

MetaCanvas conditions the backbone on the MLLM's states through the context connector (the "mllm" text
path). An assembly of a user's checkpoints can instead keep the backbone's native text encoder and add
the canvas on top (the "native" text path):
- SANA: the paper's "text + canvas" configuration keeps Gemma-2; with fresh (zero-output) connectors an
  assembly then draws exactly what the bare SanaPipeline draws for the same seed, steps and guidance.
- FLUX.1-Kontext (CLIP + T5) and Wan2.2 (umT5): the method replaces T5 with the MLLM; the native path
  is offered so that an assembly makes good images from its first minute and gains the plan once its
  canvas connector is trained.

Why the diffusers pipeline's own `encode_prompt` rather than our copy of it: the prompt handling differs
per family and changes between diffusers releases (SANA's "complex human instruction" prefix and token
selection, FLUX's pooled CLIP vector, Wan's zero padding); calling the library keeps the embeddings the
bare pipeline would make. The pipeline object holds only the text parts (no transformer or VAE), and the
settings each family's `__call__` uses by default (max_sequence_length, SANA's instruction prefix) are read
from that `__call__`'s signature, so they follow the installed diffusers.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

# The diffusers pipeline class whose text path each family uses, and the text parts it needs.
FAMILY_PIPELINES = {"sana": "SanaPipeline", "flux": "FluxKontextPipeline", "wan": "WanPipeline"}
TEXT_PARTS = {"sana": ("text_encoder", "tokenizer"),
              "flux": ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
              "wan": ("text_encoder", "tokenizer")}
TEXT_PATHS = ("mllm", "native")


@dataclass
class TextConditioning:
    """What the denoiser is conditioned on: rows of states with their padding mask, and (FLUX's native
    path) the pooled vector. Rows follow the pipeline's order: conditional rows, then unconditional."""

    context: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L] bool
    pooled: torch.Tensor | None = None  # [B, P]

    def to(self, device=None, dtype=None) -> "TextConditioning":
        return TextConditioning(self.context.to(device=device, dtype=dtype), self.mask.to(device),
                                None if self.pooled is None else self.pooled.to(device=device, dtype=dtype))


def _call_default(pipeline_cls, name: str):
    return inspect.signature(pipeline_cls.__call__).parameters[name].default


class NativeTextEncoder:
    """The text encoder(s) and tokenizer(s) of a SANA, FLUX.1-Kontext or Wan pipeline folder."""

    def __init__(self, family: str, parts: dict):
        import diffusers

        if family not in FAMILY_PIPELINES:
            raise ValueError(f"no native text path for the {family!r} family")
        self.family = family
        cls = getattr(diffusers, FAMILY_PIPELINES[family])
        # Only the text parts: the pipelines accept None for the others (their __init__ falls back to
        # default scale factors), and nothing here calls the transformer or the VAE.
        components = {name: None for name in inspect.signature(cls.__init__).parameters
                      if name not in ("self", "kwargs") and not name.startswith(("boundary", "expand"))}
        components.update(parts)
        self.pipeline = cls(**components)
        self.max_sequence_length = int(_call_default(cls, "max_sequence_length"))
        self.instruction_prefix = _call_default(cls, "complex_human_instruction") if family == "sana" else None

    @classmethod
    def load(cls, family: str, parts: dict[str, tuple[Path, str]], dtype: torch.dtype) -> "NativeTextEncoder":
        """Load the text parts, {part: (folder, transformers class name)} as the backbone's model_index.json
        names them; safetensors only, local files only, no remote code."""
        import transformers

        loaded = {}
        for name, (folder, class_name) in parts.items():
            if name.startswith("tokenizer"):
                # The folder's tokenizer_config.json names its class; transformers 5 renamed several fast
                # tokenizer classes, so the class a pipeline's index recorded may not exist any more.
                loaded[name] = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                                         trust_remote_code=False)
                continue
            part_cls = getattr(transformers, str(class_name), None)
            if part_cls is None or not hasattr(part_cls, "from_pretrained"):
                raise ValueError(f"{folder}: {class_name!r} is not a transformers model class")
            model, info = part_cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                                   dtype=dtype, output_loading_info=True)
            if info.get("missing_keys"):  # a config that does not fit its weights: never run half-random
                missing = sorted(info["missing_keys"])
                raise ValueError(f"{folder} lacks weights for {len(missing)} parameters of its {class_name} "
                                 f"(e.g. {missing[0]})")
            loaded[name] = model.eval()
        return cls(family, loaded)

    def modules(self) -> list[torch.nn.Module]:
        return [m for name in TEXT_PARTS[self.family] if name.startswith("text_encoder")
                for m in [getattr(self.pipeline, name)] if m is not None]

    def to(self, device=None, dtype=None) -> "NativeTextEncoder":
        """Moves the encoders; their precision stays as loaded (`load`'s dtype): transformers keeps some layers in
        float32 on purpose (T5's feed-forward output overflows in float16), and a later cast would undo that.
        The states they give are cast to the pipeline's precision (TextConditioning.to)."""
        for module in self.modules():
            module.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.modules()[0].parameters()).device

    @torch.no_grad()
    def encode(self, prompts: list[str], negatives: list[str] | None = None) -> TextConditioning:
        """Rows for `prompts`, then for `negatives` (the unconditional rows, "" for the usual guidance),
        exactly as the family's pipeline encodes its prompt and negative prompt."""
        pipe, device = self.pipeline, self.device
        guided = negatives is not None
        if self.family == "sana":
            embeds, mask, neg_embeds, neg_mask = pipe.encode_prompt(
                list(prompts), do_classifier_free_guidance=guided, negative_prompt=list(negatives or []),
                device=device, max_sequence_length=self.max_sequence_length,
                complex_human_instruction=self.instruction_prefix)
            if guided:
                embeds, mask = torch.cat([embeds, neg_embeds]), torch.cat([mask, neg_mask])
            return TextConditioning(embeds, mask.bool())
        if self.family == "flux":
            texts = list(prompts) + list(negatives or [])
            embeds, pooled, _ = pipe.encode_prompt(texts, prompt_2=None, device=device,
                                                   max_sequence_length=self.max_sequence_length)
            # Stock FLUX attends to T5's padding: no mask, as its pipeline passes none.
            return TextConditioning(embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=device), pooled)
        embeds, neg_embeds = pipe.encode_prompt(list(prompts), negative_prompt=list(negatives or []) or None,
                                                do_classifier_free_guidance=guided, device=device,
                                                max_sequence_length=self.max_sequence_length)
        if guided:
            embeds = torch.cat([embeds, neg_embeds])
        # Wan has no text mask: its pipeline zero-pads the T5 states, and the transformer attends to all.
        return TextConditioning(embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=device))


def load_native_text(folder: Path, index: dict, family: str, dtype):
    """The backbone's text encoder(s) and tokenizer(s) a model folder's index names (checkpoints.load_model)."""
    from .checkpoints import INDEX, ModelFolderError, _entry_class, _why, component_path

    parts = {}
    for name in TEXT_PARTS[family]:
        path = component_path(folder, index, name)
        if path is None:
            raise ModelFolderError(f"{folder / INDEX}: the native text path needs the backbone's {name.replace('_', ' ')}, "
                                   f"and the index names none (assemble again with the backbone folder).")
        parts[name] = (path, _entry_class(index, name) or "AutoModel")
    try:
        return NativeTextEncoder.load(family, parts, dtype)
    except Exception as exc:  # noqa: BLE001 - any failure here is the folder's
        raise ModelFolderError(f"Cannot load the backbone's text encoder for {folder}: {_why(exc)}") from None
