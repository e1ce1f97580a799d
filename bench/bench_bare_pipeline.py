"""An assembly against the bare diffusers pipeline it is made from: same image, time per step.

A random SANA pipeline at a mid-size config (a stand-in for a user's SANA folder; nothing is downloaded)
and a tiny random Qwen2.5-VL are saved in their standard layouts, assembled with fresh connectors on the
native text path (`models assemble`), and both pipelines draw the same prompt with the same seed, steps
and guidance. Reported: the largest pixel difference (the images must be the same up to 8-bit rounding)
and the median time per denoising step of each, from step callbacks (the steps after the first), runs
interleaved so drift hits both. Our pipeline runs with the canvas off (the bare pipeline has none) and on
(fresh connectors: the canvas connector's per-step block runs, adding zeros).

    python bench/bench_bare_pipeline.py                 # CPU, mid-size SANA (8 layers, 512 wide, 32x32 tokens)
    python bench/bench_bare_pipeline.py --device cuda --layers 20 --width 2240   # SANA-1.6B width on a GPU
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_canvas_overhead import write_section  # noqa: E402
from bench.machine import others_cpu_seconds  # noqa: E402

PROMPT = "a red circle left of a blue star"


def make_folders(root: Path, layers: int, width: int, tokens: int) -> tuple[Path, Path]:
    """A Qwen2.5-VL folder and a SanaPipeline folder (transformer `layers` deep, `width` wide, tokens a side)."""
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    # The test suite's makers of standard-layout folders (a tiny Qwen2.5-VL as the hub ships one).
    from tests.core.checkpoint_folders import _bpe_tokenizer, qwen25vl_folder
    from tests.core.test_model_families import tiny_dc_ae

    qwen = qwen25vl_folder(root / "qwen")
    torch.manual_seed(0)
    tok = _bpe_tokenizer()
    heads = width // 32
    transformer = SanaTransformer2DModel(in_channels=4, out_channels=4, num_attention_heads=heads, attention_head_dim=32,
                                         num_layers=layers, num_cross_attention_heads=heads,
                                         cross_attention_head_dim=32, cross_attention_dim=width, caption_channels=64,
                                         mlp_ratio=2.5, sample_size=tokens, patch_size=1)
    vae = tiny_dc_ae()
    gemma = Gemma2Model(Gemma2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                     pad_token_id=tok.pad_token_id))
    sana = root / "sana"
    SanaPipeline(tokenizer=tok, text_encoder=gemma, vae=vae, transformer=transformer,
                 scheduler=DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True,
                                                       prediction_type="flow_prediction")
                 ).save_pretrained(str(sana), safe_serialization=True)
    return qwen, sana


def step_seconds(run) -> tuple[list[float], np.ndarray]:
    """Run `run(on_step)` and return the seconds between consecutive steps (the first step's warm-up
    left out) and the image it made."""
    stamps: list[float] = []
    image = run(lambda: stamps.append(time.perf_counter()))
    return list(np.diff(stamps)), image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=32, help="latent tokens a side (4x as many pixels)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from diffusers import SanaPipeline

    from app.core.assembly import assemble
    from app.core.checkpoints import load_model
    from app.core.request import GenerationRequest, Task

    torch.set_grad_enabled(False)
    busy_before = others_cpu_seconds()
    wall_before = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        qwen, sana = make_folders(Path(tmp), args.layers, args.width, args.tokens)
        ours = load_model(assemble(qwen, sana, Path(tmp) / "assembled"), device=args.device)
        bare = SanaPipeline.from_pretrained(str(sana), local_files_only=True).to(args.device)
        bare.set_progress_bar_config(disable=True)
        size = ours.defaults.width
        seed, guidance = 3, 4.5

        def run_bare(on_step):
            return bare(PROMPT, height=size, width=size, num_inference_steps=args.steps, guidance_scale=guidance,
                        generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                        use_resolution_binning=False,
                        callback_on_step_end=lambda *a: (on_step(), a[-1])[1]).images[0]

        def run_ours(on_step, use_canvas):
            request = GenerationRequest(Task.TEXT_TO_IMAGE, PROMPT, width=size, height=size, seed=seed,
                                        steps=args.steps, guidance=guidance, use_canvas=use_canvas)
            return ours(request, callback=lambda info: on_step(), preview=False).frames[0] / 255.0

        times = {"bare": [], "off": [], "on": []}
        images = {}
        runs = {"bare": run_bare, "off": lambda s: run_ours(s, False), "on": lambda s: run_ours(s, True)}
        for r in range(args.repeats):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                seconds, images[name] = step_seconds(runs[name])
                times[name] += seconds
    diff_off = float(np.abs(images["off"] - images["bare"]).max() * 255)
    diff_on = float(np.abs(images["on"] - images["bare"]).max() * 255)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    others = None if busy_before is None else (others_cpu_seconds() - busy_before) / (time.perf_counter() - wall_before)
    date = datetime.date.today().isoformat()
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {args.device}"
    md = (f"## An assembly against the bare diffusers pipeline ({args.device.upper()}, {date})\n\n"
          f"Random SANA pipeline, {args.layers} layers, {args.width} wide, {args.tokens}x{args.tokens} tokens "
          f"({size}x{size} px), {args.steps} steps, guidance {guidance}; assembled with fresh connectors, native text "
          f"path; {args.repeats} interleaved runs; {machine}; {date}"
          + (f"; other processes used {others:.2f} cores meanwhile" if others is not None else "") + ".\n\n"
          "| pipeline | ms per step (median) | ratio to bare | largest pixel difference (0-255) |\n|---|---|---|---|\n"
          f"| bare diffusers SanaPipeline | {med['bare']:.1f} | 1.000 | - |\n"
          f"| ours, canvas off | {med['off']:.1f} | {med['off'] / med['bare']:.3f} | {diff_off:.2f} |\n"
          f"| ours, fresh canvas on | {med['on']:.1f} | {med['on'] / med['bare']:.3f} | {diff_on:.2f} |\n\n"
          f"Reproduce: `{threads}python main.py bench bare_pipeline{' ' if sys.argv[1:] else ''}{' '.join(sys.argv[1:])}` "
          "(one thread: with two, a busy neighbour on the other core skewed the medians by 30 %).\n")
    print(md)
    if not args.no_write:
        label = f"Assembly against the bare diffusers pipeline ({args.device})"
        write_section(ROOT / "docs" / "BENCHMARKS.md", label, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
