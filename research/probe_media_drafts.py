"""Would track drafts help the video tasks with media (image-to-video, video edits, reference video)?

    OMP_NUM_THREADS=2 python research/probe_media_drafts.py --model models/metacanvas-shapes-video --n 32

The embedded video model drafts tracks for text-to-video only (app/core/draft.py): its DiT and canvas were
trained with true tracks on text-to-video batches alone, and clips with media were planned undrafted. This
probe plans the benchmark's media items (app/eval/video_eval.py's sets, seed 7) three ways and scores them
as the benchmark does:
- "none": undrafted (as the model planned them before image-to-video clips were drafted);
- "true": the target clip's true tracks drawn onto the canvas (an oracle: what a perfect drafter gives);
- image-to-video, "drafted": the track drafter's own draft of the caption (the words alone), each
  drafted object moved to start where the given first frame has it (its end moved alike): what a drafter
  with a perfect first-frame detector would give;
- reference video and video edits, "drafted": the pipeline's own drafts (app/core/frame_detector.py).
If "true" lifts the scores, a drafter for those tasks is worth building; if not, the DiT does not read a
drafted canvas on those tasks without training on them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.checkpoints import load_model  # noqa: E402
from app.core.draft import no_drafts  # noqa: E402
from app.eval.video_eval import (_TASK_SEED_OFFSET, _mean, reference_video_set, sample_clips,  # noqa: E402
                                 score_image_to_video, score_reference_video, score_video_edit, video_edit_set)
from app.shapes.motion import render_clip  # noqa: E402
from app.shapes.video_prompts import make_video_metadata, scene_for_video_metadata  # noqa: E402
from app.train.video_data import track_rows  # noqa: E402


def i2v_items(n: int, seed: int, frames: int, size: int):
    """image_to_video_set's records, with the scene each clip was rendered from."""
    metas = make_video_metadata(n, seed=seed + _TASK_SEED_OFFSET["image_to_video"], frames=frames)
    rng = np.random.default_rng(seed + 100)
    scenes = [scene_for_video_metadata(m, rng) for m in metas]
    return [(m, s, render_clip(s, frames, size)) for m, s in zip(metas, scenes)]


def shifted_drafts(drafted: torch.Tensor, scene, config) -> torch.Tensor:
    """The drafter's tracks moved to start where the scene's objects are (matched by label, else in order)."""
    true = track_rows(scene, config)
    out = np.array(drafted, copy=True)
    free = [k for k in range(len(true)) if true[k][0] > 0]
    for row in out:
        if row[0] <= 0 or not free:
            continue
        k = next((k for k in free if true[k][0] == row[0]), free[0])
        free.remove(k)
        dx, dy = int(row[4]) - int(row[1]), int(row[5]) - int(row[2])
        row[1], row[2], row[3] = true[k][1], true[k][2], true[k][3]
        row[4] = int(np.clip(true[k][1] + dx, 0, config.bins - 1))
        row[5] = int(np.clip(true[k][2] + dy, 0, config.bins - 1))
    return torch.as_tensor(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/metacanvas-shapes-video")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tasks", default="image_to_video,video_edit,reference_to_video")
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    args = ap.parse_args()
    pipe = load_model(args.model)
    config = pipe.planner.drafter.config
    d = pipe.defaults
    seeds = lambda idx: [args.seed + i for i in idx]  # noqa: E731
    chunks = [list(range(a, min(a + args.batch, args.n))) for a in range(0, args.n, args.batch)]
    results: dict = {"model": args.model, "n": args.n, "seed": args.seed}
    tasks = args.tasks.split(",")
    t0 = time.time()

    if "image_to_video" in tasks:
        items = i2v_items(args.n, args.seed, d.frames, d.width)
        for arm in ("none", "true", "drafted"):
            scores = []
            for idx in chunks:
                drafts = no_drafts(len(idx), config)  # "none": planned undrafted (not the pipeline's own drafts)
                if arm == "true":
                    drafts = torch.as_tensor(np.stack([track_rows(items[i][1], config) for i in idx]))
                elif arm == "drafted":  # the caption drafted as text-to-video, then moved onto the first frame
                    own: list = []
                    sample_clips(pipe, "text_to_video", [items[i][0]["prompt"] for i in idx], seeds(idx),
                                 frames=d.frames, steps=1, drafts_out=own)
                    drafts = torch.stack([shifted_drafts(own[k], items[i][1], config) for k, i in enumerate(idx)])
                clips = sample_clips(pipe, "image_to_video", [items[i][0]["prompt"] for i in idx], seeds(idx),
                                     images=[[items[i][2][0]] for i in idx], frames=d.frames, drafts=drafts)
                scores += [score_image_to_video(c, items[i][2][0], items[i][0]) for i, c in zip(idx, clips)]
            results[f"i2v_{arm}"] = {"motion_followed": _mean(s["motion_followed"] for s in scores),
                                     "correct": _mean(s["correct"] for s in scores),
                                     "first_frame_psnr": _mean(s["first_frame_psnr"] for s in scores)}
            print(f"[{time.time() - t0:.0f} s] i2v {arm}: {results[f'i2v_{arm}']}", flush=True)

    if "video_edit" in tasks:
        triples = video_edit_set(args.n, args.seed)
        for arm in ("none", "true", "drafted"):  # "drafted": the pipeline's own (frame_detector.edit_drafts)
            if arm == "drafted" and getattr(pipe.planner, "edit_drafter", None) is None:
                continue
            scores = []
            for idx in chunks:
                sources = [render_clip(triples[i].source, d.frames, d.width) for i in idx]
                drafts = torch.as_tensor(np.stack([track_rows(triples[i].target, config) for i in idx])) \
                    if arm == "true" else no_drafts(len(idx), config) if arm == "none" else None
                clips = sample_clips(pipe, "video_edit", [triples[i].instruction for i in idx], seeds(idx),
                                     videos=sources, frames=d.frames, drafts=drafts)
                scores += [score_video_edit(s, c, triples[i].source, triples[i].target)
                           for i, s, c in zip(idx, sources, clips)]
            results[f"edit_{arm}"] = {"fully_right": _mean(s["fully_right"] for s in scores),
                                      "done": _mean(s["success"] for s in scores),
                                      "kept": _mean(s["kept"] for s in scores),
                                      "kept_outside": _mean(s["kept_outside"] for s in scores),
                                      "psnr_outside": _mean(s["psnr_outside"] for s in scores)}
            print(f"[{time.time() - t0:.0f} s] edit {arm}: {results[f'edit_{arm}']}", flush=True)

    if "reference_to_video" in tasks:
        refs = reference_video_set(args.n, args.seed)
        for arm in ("none", "true", "drafted"):  # "drafted": the pipeline's own (reference_stills.reference_drafts)
            scores = []
            for n_images in (1, 2):  # one still count per batch, as the benchmark
                group = [i for i in range(args.n) if len(refs[i].references) == n_images]
                for a in range(0, len(group), args.batch):
                    idx = group[a:a + args.batch]
                    stills = [refs[i].images(d.width) for i in idx]
                    drafts = torch.as_tensor(np.stack([track_rows(refs[i].target, config) for i in idx])) \
                        if arm == "true" else no_drafts(len(idx), config) if arm == "none" else None
                    clips = sample_clips(pipe, "reference_to_video", [refs[i].instruction for i in idx], seeds(idx),
                                         images=stills, frames=d.frames, drafts=drafts)
                    scores += [score_reference_video(c, refs[i].instruction, s) for i, s, c in zip(idx, stills, clips)]
            results[f"ref_{arm}"] = {key: _mean(s[key] for s in scores) for key in scores[0] if
                                     isinstance(scores[0][key], (int, float, bool)) or scores[0][key] is None}
            print(f"[{time.time() - t0:.0f} s] reference {arm}: {results[f'ref_{arm}']}", flush=True)

    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
