"""The method's ablations (the paper's Table 3 and Fig. 4), as switches a recipe names.

A recipe's `ablations` list (the shapes recipes' `model.ablations`, the connector recipes' `ablations`)
goes into the adapter's config (saved beside its weights, so a model trained with a switch loads with
it) and, for the two that change where the canvas tokens sit, into the canvas tokens' config. The
paper's GenEval figures (SANA-1.6B, 20k steps) are given for each; ours are measured in research/.
"""
from __future__ import annotations

ABLATIONS = {
    # The canvas connector (app/core/connectors.py).
    "no_timestep_adaln": "the connector's DiT block without timestep AdaLN (paper: 68.02 -> 67.42)",
    "no_dit_block": "no DiT block: the encoded plan is added to the patch tokens as it is (66.39)",
    "no_vanilla_block": "no vanilla block: the canvas states go straight to the zero Linear (66.19)",
    "canvas_before_patchify": "the plan added to the noisy latents before the patch embedding, not to the "
                              "patch tokens after it (65.34; SANA, as in the paper's study)",
    # The planner (app/core/planner.py, app/core/canvas.py).
    "no_multimodal_rope": "the canvas tokens get 1-D text positions instead of an image block's 3-axis "
                          "M-RoPE ids (0.86 -> 0.85 GenEval overall)",
    "queries_1d": "MetaQuery-style: the canvas tokens are a 1-D sequence of learnable queries whose states "
                  "join the text context (cross-attention), with no patch-wise addition",
    # What the DiT is given.
    "canvas_without_text": "the DiT gets the canvas and no text (Fig. 4: the plan alone still steers layout)",
}
PLANNER_ABLATIONS = ("no_multimodal_rope", "queries_1d")


def check_ablations(names) -> tuple[str, ...]:
    """The names as a sorted tuple; ValueError naming the known ones for an unknown name."""
    if isinstance(names, str):
        names = [names]
    names = tuple(sorted(set(names or ())))
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation {unknown[0]!r}; known: {', '.join(ABLATIONS)}")
    if "queries_1d" in names and ({"no_timestep_adaln", "no_dit_block", "no_vanilla_block",
                                   "canvas_before_patchify"} & set(names)):
        raise ValueError("queries_1d has no canvas connector: it does not combine with the connector's ablations")
    return names


def canvas_positions(names) -> str:
    """Where the canvas tokens sit in the planner's sequence: "grid" (an image block's M-RoPE ids, the
    method) or "sequence" (1-D running positions, as text)."""
    return "sequence" if set(check_ablations(names)) & set(PLANNER_ABLATIONS) else "grid"
