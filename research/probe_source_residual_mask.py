"""Video edits: the source residual withheld from the cells the draft changes (our probe, 2026-12-07).

The source residual (app/core/backbones/wan.py) copies each source token into the same cell of the target;
recolours the DiT misses are drawn in the source's colour. Here, during sampling, the residual is scaled by
`SCALE` in the latent cells that the drafted edit region (MetaCanvasPipeline.drafted_edit_region) touches, and
left whole elsewhere. SCALE 1 is the product as it is.

    OMP_NUM_THREADS=2 python research/probe_source_residual_mask.py SCALE SEED N [MODEL]
"""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import app.eval.video_eval as ve  # noqa: E402
from app.core.backbones.wan import WanAdapter  # noqa: E402
from app.core.checkpoints import load_model  # noqa: E402

SCALE = float(sys.argv[1]); SEED = int(sys.argv[2]); N = int(sys.argv[3])
MODEL = sys.argv[4] if len(sys.argv) > 4 else str(ROOT / 'models/metacanvas-shapes-video')
torch.set_num_threads(2)
pipe = load_model(MODEL)
state = {"videos": None, "mask": None}
orig_sample, orig_tokens, orig_add = ve.sample_clips, pipe._plan_tokens, WanAdapter._add_source


def sample_clips(p, task, instructions, seeds, **kw):
    state["videos"] = kw.get("videos") if task == "video_edit" else None
    state["frames"] = kw.get("frames") or p.defaults.frames
    try:
        return orig_sample(p, task, instructions, seeds, **kw)
    finally:
        state["videos"] = state["mask"] = None


def plan_tokens(plan, n, use_canvas):
    videos = state["videos"]
    if videos is not None and plan.draft is not None:
        b, fr = len(videos), state["frames"]
        d = pipe.defaults
        masks = []
        for k, v in enumerate(videos):
            region = pipe.drafted_edit_region(np.asarray(v)[:fr], plan.draft[k].cpu(), (fr, d.height, d.width))
            masks.append(torch.zeros(fr, d.height, d.width) if region is None else torch.as_tensor(region).float())
        m = torch.stack(masks)  # [B, F, H, W] pixel frames
        lat = [m[:, :1]] + [m[:, 1 + 4 * j: 5 + 4 * j] for j in range((fr - 1) // 4)]
        m = torch.stack([x.amax(dim=1) for x in lat], dim=1)  # [B, Fl, H, W]
        state["mask"] = m.repeat(n // b, 1, 1, 1)
    return orig_tokens(plan, n, use_canvas)


def add_source(self, output, target_frames, start, stop):
    m = state["mask"]
    if m is None:
        return orig_add(self, output, target_frames, start, stop)
    n = min(target_frames, stop - start)
    source = output[:, :, start:start + n].permute(0, 2, 3, 4, 1)
    added = self.source_residual(source).permute(0, 4, 1, 2, 3).to(output.dtype)
    gh, gw = added.shape[-2:]
    cells = F.adaptive_max_pool2d(m[:added.shape[0], :n], (gh, gw))  # guidance off: conditional rows only  # [B, n, gh, gw]: 1 where the draft changes the cell
    keep = (1 - cells * (1 - SCALE)).to(added)[:, None]
    return torch.cat([output[:, :, :n] + added * keep, output[:, :, n:]], dim=2)


ve.sample_clips = sample_clips
pipe._plan_tokens = plan_tokens
WanAdapter._add_source = add_source
t0 = time.time()
out = ve.evaluate_video_edits(pipe, N, seed=SEED)
out["seconds"] = round(time.time() - t0)
print(json.dumps({"scale": SCALE, "seed": SEED, "n": N, **{k: (round(v, 3) if isinstance(v, float) else v)
                                                         for k, v in out.items()}}))
