"""Time per denoising step with the canvas branch on versus off, same backbone, one run.

One "step" is one adapter forward (what a sampler calls per step); the plan is prepared ONCE outside
the loop (as the pipeline does), so "on" adds only the connector's per-step DiT block and the resize.
Repetitions interleave on/off (alternating which goes first) so drift hits both; we report medians
and the median of the paired on/off ratios.

    python bench/bench_canvas_overhead.py                          # tiny random configs, CPU (default)
    python bench/bench_canvas_overhead.py --full                   # SANA-1.6B / Wan2.2-TI2V-5B sizes, bf16, CUDA
    python bench/bench_canvas_overhead.py --full --frames 8        # shorter Wan clip (latent frames)
    python bench/bench_canvas_overhead.py --device cpu --full --layers 1 --frames 2 --no-write   # shape smoke test

Random weights only: nothing is downloaded. Results go to stdout as a markdown table and into a
section of docs/BENCHMARKS.md keyed by the run's label (updated in place on a re-run).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import diffusers  # noqa: E402
from diffusers import FluxTransformer2DModel, SanaTransformer2DModel, WanTransformer3DModel  # noqa: E402

from app.core.backbones.flux import FluxAdapter, tiny_flux_config  # noqa: E402
from app.core.backbones.sana import SanaAdapter, tiny_sana_config  # noqa: E402
from app.core.backbones.wan import WanAdapter, tiny_wan_config  # noqa: E402

MLLM_DIM_FULL = 3584  # Qwen2.5-VL-7B hidden size (the paper's MLLM)


# ----------------------------------------------------------------------------- cases
# Each case returns (description, adapter builder, latents shape, canvas shape [K, H, W], mllm dim).

def sana_case(args):
    full, layers, frames = args.full, args.layers, args.frames
    if full:
        # SANA-1.6B at 512px: AutoencoderDC f32 -> 32 latent channels, 16x16 latents, patch 1 -> 256 tokens;
        # canvas 16x16 (1:1 with the token grid, as in the paper).
        cfg = dict(in_channels=32, out_channels=32, num_attention_heads=70, attention_head_dim=32,
                   num_layers=layers or 20, num_cross_attention_heads=20, cross_attention_head_dim=112,
                   cross_attention_dim=2240, caption_channels=2304, mlp_ratio=2.5, sample_size=16, patch_size=1,
                   interpolation_scale=1)
        desc = f"SANA-1.6B size ({cfg['num_layers']} layers, 2240 wide), 512px: 16x16 tokens"
        return desc, lambda: SanaAdapter(SanaTransformer2DModel(**cfg), MLLM_DIM_FULL), (1, 32, 16, 16), (1, 16, 16), MLLM_DIM_FULL
    cfg = tiny_sana_config(num_layers=layers or 2)
    return (f"tiny SANA ({cfg['num_layers']} layers, 32 wide): 16x16 tokens",
            lambda: SanaAdapter(SanaTransformer2DModel(**cfg), 16), (1, 4, 16, 16), (1, 8, 8), 16)


def flux_case(args):
    full, layers, frames = args.full, args.layers, args.frames
    if full:
        # FLUX.1-Kontext-dev at 1024px: 16 latent channels, 128x128 latents -> 64x64 = 4096 packed target
        # tokens + 4096 source tokens; canvas 32x32 (the paper's size).
        cfg = dict(patch_size=1, in_channels=64, num_layers=layers or 19, num_single_layers=layers or 38,
                   attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                   pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))
        desc = (f"FLUX.1-Kontext size ({cfg['num_layers']}+{cfg['num_single_layers']} blocks, 3072 wide), "
                f"1024px edit: 4096+4096 tokens")
        side = args.flux_latent
        desc = desc.replace("1024px edit: 4096+4096", f"{side * 8}px edit: {(side // 2) ** 2}+{(side // 2) ** 2}")
        return desc, lambda: FluxAdapter(FluxTransformer2DModel(**cfg), MLLM_DIM_FULL), (1, 16, side, side), (1, 32, 32), MLLM_DIM_FULL
    cfg = tiny_flux_config(num_layers=layers or 1, num_single_layers=layers or 1)
    return (f"tiny FLUX-Kontext ({cfg['num_layers']}+{cfg['num_single_layers']} blocks, 32 wide), edit: 64+64 tokens",
            lambda: FluxAdapter(FluxTransformer2DModel(**cfg), 16), (1, 4, 16, 16), (1, 8, 8), 16)


def wan_case(args):
    full, layers, frames = args.full, args.layers, args.frames
    if full:
        # Wan2.2-TI2V-5B at 704x1280: VAE 16x spatial, 4x temporal, z=48 -> 44x80 latents, patch (1,2,2)
        # -> 22x40 tokens per latent frame; 121 frames -> 31 latent frames (--frames to shorten);
        # canvas 3 keyframes of 11x20.
        cfg = dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                   out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=layers or 30,
                   cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
        desc = (f"Wan2.2-TI2V-5B size ({cfg['num_layers']} layers, 3072 wide), 704x1280, "
                f"{frames} latent frames: {frames}x22x40 tokens")
        return (desc, lambda: WanAdapter(WanTransformer3DModel(**cfg), MLLM_DIM_FULL, context_dropout=0.0),
                (1, 48, frames, 44, 80), (3, 11, 20), MLLM_DIM_FULL)
    cfg = tiny_wan_config(num_layers=layers or 2)
    return (f"tiny Wan ({cfg['num_layers']} layers, 32 wide), {frames} latent frames of 8x8 tokens",
            lambda: WanAdapter(WanTransformer3DModel(**cfg), 16, context_dropout=0.0), (1, 4, frames, 16, 16),
            (3, 4, 4), 16)


CASES = {"sana": sana_case, "flux": flux_case, "wan": wan_case}


# ----------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def bench_case(name, case, args, device, dtype):
    desc, build, lat_shape, canvas_shape, mllm_dim = case(args)
    torch.manual_seed(0)
    # Build directly on the target device and dtype: a 5B model initialised on CPU in fp32 would take minutes.
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            adapter = build()
    finally:
        torch.set_default_dtype(default_dtype)
    adapter = adapter.to(device=device, dtype=dtype).eval()
    # A fresh canvas connector is an exact no-op (zero-init) but costs the same: give it weights anyway
    # so "on" does real arithmetic.
    with torch.no_grad():
        for layer in (adapter.canvas_connector.plan_out, adapter.canvas_connector.step_out):
            layer.weight.normal_(0, 0.02)

    b = 1
    latents = torch.randn(lat_shape, device=device, dtype=dtype)
    reference = None
    if name == "flux":  # Kontext is an editing model: a source image in sequence
        reference = torch.randn(lat_shape, device=device, dtype=dtype)
    context = torch.randn(b, args.context_len, mllm_dim, device=device, dtype=dtype)
    mask = torch.ones(b, args.context_len, dtype=torch.bool, device=device)
    canvas = torch.randn(b, *canvas_shape, mllm_dim, device=device, dtype=dtype)
    t = torch.full((b,), 0.5, device=device)

    with torch.inference_mode():
        prep = []
        for _ in range(3):
            prep.append(time_call(lambda: adapter.prepare_plan(canvas), device))
        plan = adapter.prepare_plan(canvas)
        on = lambda: adapter(latents, t, context, mask, plan, reference)  # noqa: E731
        off = lambda: adapter(latents, t, context, mask, None, reference)  # noqa: E731
        out = on()
        assert out.shape == latents.shape, (out.shape, latents.shape)
        for _ in range(args.warmup):
            on(), off()
        times_on, times_off, ratios = [], [], []
        for i in range(args.reps):
            if i % 2 == 0:
                a, c = time_call(on, device), time_call(off, device)
            else:
                c, a = time_call(off, device), time_call(on, device)
            times_on.append(a)
            times_off.append(c)
            ratios.append(a / c)

    connector_params = sum(p.numel() for p in adapter.canvas_connector.parameters())
    step_params = sum(p.numel() for n_, p in adapter.canvas_connector.named_parameters() if not n_.startswith("plan_"))
    backbone_params = sum(p.numel() for p in adapter.transformer.parameters())
    row = dict(name=name, desc=desc, canvas="x".join(map(str, canvas_shape)),
               off=statistics.median(times_off) * 1e3, on=statistics.median(times_on) * 1e3,
               ratio=statistics.median(times_on) / statistics.median(times_off), paired=statistics.median(ratios),
               prep=statistics.median(prep) * 1e3, backbone_m=backbone_params / 1e6,
               step_m=step_params / 1e6, connector_m=connector_params / 1e6)
    del adapter
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def count(millions: float) -> str:
    return f"{millions:.1f} M" if millions >= 1 else f"{millions * 1e3:.0f} k"


def table(rows) -> str:
    lines = ["| backbone | canvas (K x H x W) | off ms/step | on ms/step | on/off (medians) | on/off (paired median) "
             "| prepare_plan ms (once) | backbone params | connector params (per-step part) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['desc']} | {r['canvas']} | {r['off']:.2f} | {r['on']:.2f} | {r['ratio']:.3f} | "
                     f"{r['paired']:.3f} | {r['prep']:.2f} | {count(r['backbone_m'])} | "
                     f"{count(r['connector_m'])} ({count(r['step_m'])}) |")
    return "\n".join(lines)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {torch.get_num_threads()} threads"


def write_section(path: Path, label: str, body: str) -> None:
    """Replace this label's section in BENCHMARKS.md, or append it (other benches' sections stay)."""
    start, end = f"<!-- bench_canvas_overhead:{label} -->", f"<!-- /bench_canvas_overhead:{label} -->"
    block = f"{start}\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nWritten by the scripts in bench/; they are not tests.\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="paper-size backbones (random weights)")
    ap.add_argument("--device", default=None, help="default: cuda with --full, else cpu")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                    help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--families", default=None, help="comma list of sana,flux,wan (default: sana,wan with --full, "
                                                       "all three otherwise)")
    ap.add_argument("--layers", type=int, default=None, help="override the number of layers (smoke tests)")
    ap.add_argument("--frames", type=int, default=None, help="Wan latent frames (default 31 full = 121 video frames, 5 tiny)")
    ap.add_argument("--flux-latent", type=int, default=128,
                    help="FLUX latent side with --full (128 = 1024px; smaller for a CPU smoke test)")
    ap.add_argument("--context-len", type=int, default=None, help="MLLM context tokens (default 128 full, 8 tiny)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per mode (default 10 full, 30 tiny)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = ap.parse_args(argv)

    device = torch.device(args.device or ("cuda" if args.full else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("no CUDA device here: pass --device cpu (with --layers 1 for a shape smoke test)")
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    args.frames = args.frames or (31 if args.full else 5)
    args.context_len = args.context_len or (128 if args.full else 8)
    args.reps = args.reps or (10 if args.full else 30)
    families = (args.families or ("sana,wan" if args.full else "sana,flux,wan")).split(",")

    rows = []
    for name in families:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_case(name, CASES[name], args, device, dtype))
    md = table(rows)
    mode = "full" if args.full else "tiny"
    label = f"{mode}-{device.type}" + (f"-L{args.layers}" if args.layers else "")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (f"## Canvas overhead per denoising step ({label})\n\n"
            f"`python bench/bench_canvas_overhead.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
            f"- machine: {machine(device)}; {dtype} on {device.type}; {when}\n"
            f"- torch {torch.__version__}, diffusers {diffusers.__version__}\n"
            f"- one step = one adapter forward (batch 1, {args.context_len} context tokens); plan prepared once "
            f"outside the loop; {args.reps} interleaved repetitions per mode after {args.warmup} warm-up pairs; "
            f"random weights\n")
    if not args.full:
        head += ("- at tiny sizes the connector's per-step block is about as big as a whole backbone layer and per-call "
                 "overheads dominate, so these ratios say little about real models: see the full-size section\n")
    print(head)
    print(md)
    if not args.no_write:
        write_section(ROOT / "docs" / "BENCHMARKS.md", label, head + "\n" + md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
