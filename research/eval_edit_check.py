"""How well the edit check (app/core/frame_detector.edit_shortfall) tells a half-made video edit apart.

    OMP_NUM_THREADS=2 python research/eval_edit_check.py models/metacanvas-shapes-video 64 7

Samples the benchmark's video edits (app/eval/video_eval.py's set for the seed) as the pipeline makes them
(drafted, the source's unchanged pixels kept), checks each clip against its own draft, and prints how the
check's verdict (flagged or not) stands against the benchmark's (`score_video_edit`: done, fully right).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.checkpoints import load_model  # noqa: E402
from app.core.frame_detector import edit_shortfall, source_tracks  # noqa: E402
from app.eval.video_eval import _chunks, sample_clips, score_video_edit, video_edit_set  # noqa: E402
from app.shapes.motion import render_clip  # noqa: E402


def main(folder: str, n: int = 64, seed: int = 7) -> dict:
    pipe = load_model(folder).eval()
    d = pipe.defaults
    triples = video_edit_set(n, seed)
    rows = []
    for idx in _chunks(n, 16):
        sources = [render_clip(triples[i].source, d.frames, d.width) for i in idx]
        drafts: list = []
        clips = sample_clips(pipe, "video_edit", [triples[i].instruction for i in idx], [seed + i for i in idx],
                             videos=sources, frames=d.frames, drafts_out=drafts)
        for k, (i, src, clip) in enumerate(zip(idx, sources, clips)):
            verdict = score_video_edit(src, clip, triples[i].source, triples[i].target)
            rows_read = source_tracks(pipe.planner, [src], pipe.planner.edit_drafter.config)[0]  # as the pipeline
            unseen, unplanned = edit_shortfall(pipe.planner, drafts[k], clip, source=src, source_rows=rows_read)
            rows.append({"right": verdict["fully_right"], "done": verdict["success"], "flagged": bool(unseen or unplanned)})
    passed, flagged = [r for r in rows if not r["flagged"]], [r for r in rows if r["flagged"]]
    not_done, done = [r for r in rows if not r["done"]], [r for r in rows if r["done"]]
    return {"edits": n, "flagged": len(flagged),
            "flagged_not_done": sum(not r["done"] for r in flagged),
            "share_of_not_done_flagged": float(np.mean([r["flagged"] for r in not_done])) if not_done else None,
            "share_of_done_flagged": float(np.mean([r["flagged"] for r in done])) if done else None,
            "done_when_passed": float(np.mean([r["done"] for r in passed])) if passed else None,
            "right_when_passed": float(np.mean([r["right"] for r in passed])) if passed else None}


if __name__ == "__main__":
    torch.set_num_threads(2)
    args = sys.argv[1:]
    print(json.dumps(main(args[0] if args else "models/metacanvas-shapes-video",
                          int(args[1]) if len(args) > 1 else 64, int(args[2]) if len(args) > 2 else 7), indent=1))
