"""How often does the clip edit drafter draft a video edit's target tracks right, per edit kind?

Drafts the benchmark's video edits (app/eval/video_eval.video_edit_set, seed 7 by default) as the product
does (app/core/frame_detector.edit_drafts: the source clip's found tracks, the instruction's words, greedy)
and compares each draft with the target's true tracks: right when every target object has a drafted track of
its label starting and ending within one bin of its own (an added object, whose place the words leave open:
its label and heading), and nothing more is drafted. Also reports how often
the found source tracks alone were right (the same rule against the source), which bounds the drafter.

    python research/eval_clip_edit_drafter.py models/metacanvas-shapes-video --n 200
    python research/eval_clip_edit_drafter.py models/metacanvas-shapes-video --planner runs/video-edits/planner_taught
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from app.core.checkpoints import load_model, load_state  # noqa: E402
from app.core.frame_detector import edit_drafts, source_tracks  # noqa: E402
from app.eval.video_eval import video_edit_set  # noqa: E402
from app.shapes.motion import render_clip  # noqa: E402
from app.shapes.palette import label_index  # noqa: E402
from app.shapes.video_edits import video_edit_kind  # noqa: E402
from app.train.clip_edit_drafter import clip_edit_drafter  # noqa: E402
from app.train.video_data import track_rows  # noqa: E402


def _heading(row) -> tuple[int, int]:
    """A track's motion as signs of (dx, dy), a move under two bins counting as none."""
    dx, dy = row[4] - row[1], row[5] - row[2]
    return (int(np.sign(dx)) if abs(dx) >= 2 else 0, int(np.sign(dy)) if abs(dy) >= 2 else 0)


def tracks_right(drafted, true, added: int | None = None) -> bool:
    """Every true track drafted (label, start and end within a bin); `added`: the label of an object the
    edit adds, whose place the words leave open: its track needs only the label and the heading."""
    d = [r for r in drafted if r[0] > 0]
    t = [r for r in true if r[0] > 0]
    if len(d) != len(t):
        return False
    free = list(range(len(d)))
    for row in t:
        if row[0] == added:
            match = next((k for k in free if d[k][0] == row[0] and _heading(d[k]) == _heading(row)), None)
        else:
            match = next((k for k in free if d[k][0] == row[0]
                          and max(abs(d[k][c] - row[c]) for c in (1, 2, 4, 5)) <= 1), None)
        if match is None:
            return False
        free.remove(match)
    return True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--planner", help="a run's planner_taught folder whose edit drafter to use")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = load_model(args.model)
    planner = pipe.planner
    if args.planner:
        planner.edit_drafter = clip_edit_drafter(planner)
        planner.edit_drafter.load_state_dict(load_state(Path(args.planner) / "edit_drafter"))
        planner.edit_drafter.eval()
    config = planner.drafter.config
    triples = video_edit_set(args.n, args.seed)
    right, found_right = collections.defaultdict(list), []
    for start in range(0, args.n, 16):
        chunk = triples[start:start + 16]
        clips = [render_clip(t.source, 17, 48) for t in chunk]
        drafts = edit_drafts(planner, [t.instruction for t in chunk], clips, [args.seed + start + i for i in range(len(chunk))])
        found = source_tracks(planner, clips, config)
        for t, d, f in zip(chunk, drafts.tolist(), found.tolist()):
            kind = video_edit_kind(t.instruction)
            added = None
            if kind == "add":
                new = [m for m in t.target.objects if m not in t.source.objects][0]
                added = label_index(new.obj.cls, new.obj.color)
            right[kind].append(tracks_right(d, track_rows(t.target, config).tolist(), added))
            found_right.append(tracks_right(f, track_rows(t.source, config).tolist()))
    every = [v for values in right.values() for v in values]
    print(f"drafts right {np.mean(every):.3f} of {len(every)}; source tracks found right {np.mean(found_right):.3f}")
    for kind, values in right.items():
        print(f"  {kind}: {np.mean(values):.3f} of {len(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
