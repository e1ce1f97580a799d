"""Reference video: classifier-free guidance whose unconditional row also drops the reference stills (the
product's keeps them: only the words are guided). Rejected (research/LOG.md, 2026-12-06 late): no gain.

    OMP_NUM_THREADS=2 python research/probe_reference_guidance.py base|drop SEED N [GUIDANCE]
"""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from app.core.backbones.wan import WanAdapter, WanReference  # noqa: E402
from app.core.checkpoints import load_model  # noqa: E402
from app.eval.video_eval import evaluate_reference_video  # noqa: E402

MODE = sys.argv[1]; SEED = int(sys.argv[2]); N = int(sys.argv[3]); G = float(sys.argv[4]) if len(sys.argv) > 4 else None
torch.set_num_threads(2)
pipe = load_model(str(ROOT / 'models/metacanvas-shapes-video'))
orig = WanAdapter.forward

def forward(self, latents, timestep, context, context_mask=None, plan_tokens=None, reference=None, pooled=None):
    b2 = latents.shape[0]
    ref = reference
    if MODE == 'drop' and isinstance(ref, WanReference) and ref.frames is not None and not ref.source_clip and b2 % 2 == 0 and b2 >= 2:
        b = b2 // 2
        t = torch.as_tensor(timestep).reshape(-1)
        t = t.expand(b2) if t.numel() == 1 else t
        sl = lambda x, s: None if x is None else x[s]
        cond = orig(self, latents[:b], t[:b], context[:b], sl(context_mask, slice(0, b)), sl(plan_tokens, slice(0, b)),
                    WanReference(frames=ref.frames[:b]), sl(pooled, slice(0, b)))
        unc = orig(self, latents[b:], t[b:], context[b:], sl(context_mask, slice(b, b2)), sl(plan_tokens, slice(b, b2)),
                   None, sl(pooled, slice(b, b2)))
        return torch.cat([cond, unc])
    return orig(self, latents, timestep, context, context_mask, plan_tokens, reference, pooled)

WanAdapter.forward = forward
kw = {} if G is None else {'guidance': G}
t0 = time.time()
r = evaluate_reference_video(pipe, N, seed=SEED, **kw)
print(MODE, SEED, G, json.dumps({k: v for k, v in r.items()}), f"{time.time()-t0:.0f}s", flush=True)
