"""GUI responsiveness of the studio: launch-to-window, event-loop stalls while loading a model, importing a
56-megapixel image, generating and exporting, live-plan latency (last keystroke -> heatmap drawn), and
clips: loading the video model, generating a clip, playing it with its plan following the playhead, and
generating while a clip plays (the issue's goal: <= 30 ms).

    python bench/bench_gui.py [--model models/metacanvas-shapes] [--steps 20] [--repeats 5]
                              [--only launch|import|video|all] [--import-formats jpeg,png]
                              [--video-model models/metacanvas-shapes-video] [--video-steps N]

Without a video model folder the video part runs on an untrained tiny one of the same format (built in a
temporary folder; its clips take milliseconds, so say so beside its figures).

Runs offscreen. A QTimer on the GUI thread fires every 5 ms; the longest gap between two ticks is the longest
the UI was frozen. Prints a table (the lead copies it into docs/BENCHMARKS.md).

The launch scenario runs in fresh processes, each one as `python main.py` opens the studio (app.ui.studio.
open_studio: the same imports before the window, the same engine start after it), and measures in one run:
process start -> window shown, the longest stall from the window shown until the model is ready, and
process start -> model ready. "Process start" is the parent's clock just before it spawns the child
(perf_counter is CLOCK_MONOTONIC, shared by the two processes), so the interpreter's own start is in.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import others_cpu_seconds  # noqa: E402

# One launch, as `python main.py` runs it (main.py imports app.cli, which calls run_studio -> open_studio),
# with a bench project folder instead of the user's. Prints one JSON line.
LAUNCH_SNIPPET = r"""
import time
t_child = time.perf_counter()
import os, sys, json
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, {root!r})
import app.cli  # noqa: F401  (main.py's first import)
from app.settings import Settings
from app.ui.studio import open_studio

app, w = open_studio(["main.py"], model_path={model!r}, settings=Settings(autosave_minutes=0),
                     data_root={tmp!r}, recovery_root={tmp!r}, offer_recovery=False)
t_shown = time.perf_counter()
from PySide6.QtCore import Qt, QTimer

gaps, last, out = [], [t_shown], {{}}

def tick():
    now = time.perf_counter()
    gaps.append(now - last[0])
    last[0] = now
    if w.model_ready or w.messages.errors() or now - t_shown > {timeout}:
        heartbeat.stop()
        out.update(ready=now if w.model_ready else None, errors=w.messages.errors())
        app.quit()

heartbeat = QTimer()
heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
heartbeat.setInterval(5)
heartbeat.timeout.connect(tick)
heartbeat.start()
app.exec()
w.shutdown()
gaps.sort()
print("RESULT " + json.dumps({{"t_child": t_child, "t_shown": t_shown, "t_ready": out.get("ready"),
                              "errors": out.get("errors"), "gaps_ms": [g * 1000 for g in gaps[-5:]]}}))
"""


def launch_runs(model: str, tmp: str, repeats: int, cached: bool, timeout: float = 60.0) -> list[dict]:
    """`repeats` fresh launches; each gives launch (spawn -> window), stall (window -> model ready), ready
    (spawn -> model ready), in seconds / milliseconds. With `cached`, bytecode is written (to a folder in
    tmp, keeping the repo clean) and one extra first run writes it, as an installed app has it."""
    env = dict(os.environ)
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = LAUNCH_SNIPPET.format(root=str(ROOT), model=model, tmp=tmp, timeout=timeout)
    runs = []
    for i in range(repeats + (1 if cached else 0)):
        t_spawn = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout + 60, env=env)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(out.stderr[-2000:], file=sys.stderr)
            continue
        r = json.loads(line[len("RESULT "):])
        if cached and i == 0:
            continue  # this one wrote the bytecode
        runs.append({"launch_s": r["t_shown"] - t_spawn,
                     "stall_ms": r["gaps_ms"][-1] if r["gaps_ms"] else float("nan"),
                     "ready_s": (r["t_ready"] - t_spawn) if r["t_ready"] else None,
                     "errors": r["errors"]})
    return runs


def launch_rows(runs: list[dict], label: str) -> list[tuple[str, str]]:
    if not runs:
        return [(f"launch, {label}", "failed")]
    failed = [r for r in runs if r["ready_s"] is None]
    ok = [r for r in runs if r["ready_s"] is not None]

    def med_max(values: list[float], unit: str, scale: float = 1.0, fmt: str = ".0f") -> str:
        return (f"{statistics.median(values) * scale:{fmt}} / {max(values) * scale:{fmt}} {unit} "
                f"(each run: {', '.join(f'{v * scale:{fmt}}' for v in values)})")

    rows = [(f"launch to visible window, fresh process, {label} (median / max of {len(runs)})",
             med_max([r["launch_s"] for r in runs], "ms", 1000)),
            (f"longest GUI stall, window shown -> model ready, same runs (median / max)",
             med_max([r["stall_ms"] for r in ok], "ms", 1.0, ".1f") if ok else "model never ready"),
            (f"model ready after launch, same runs (median / max)",
             med_max([r["ready_s"] for r in ok], "s", 1.0, ".2f") if ok else "model never ready")]
    if failed:
        rows.append(("runs whose model did not load", "; ".join(str(r["errors"]) for r in failed)))
    return rows


def make_large_image(folder: str, width: int = 8660, height: int = 6500, fmt: str = "jpeg") -> Path:
    """A 56-megapixel photo-sized picture (a blue circle on a light ground, some noise so it does not
    compress to nothing), written once into `folder`."""
    import numpy as np
    from PIL import Image

    path = Path(folder) / f"large-{width}x{height}.{'jpg' if fmt == 'jpeg' else 'png'}"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = (235, 232, 226)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    inside = (yy - height * 0.5) ** 2 + (xx - width * 0.35) ** 2 < (height * 0.3) ** 2
    img[inside] = (40, 70, 200)
    del inside
    img += rng.integers(0, 8, size=(height, 1, 1), dtype=np.uint8)  # row-wise grain, cheap to make
    Image.fromarray(img).save(path, **({"quality": 90} if fmt == "jpeg" else {"compress_level": 1}))
    return path


class StallMonitor:
    """Records the longest gap between 5 ms ticks of a GUI-thread timer."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []

    def start(self) -> None:
        self.gaps = []
        self.last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def stop(self) -> float:
        self.timer.stop()
        self._tick()
        return max(self.gaps) * 1000 if self.gaps else float("nan")


def wait_until(app, cond, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.001)
    return False


def import_large_image(app, w, mon: "StallMonitor", path: Path, seconds: float = 10.0) -> list[tuple[str, str]]:
    """Import `path`, wait for its clip, select it, type an edit instruction, and watch the GUI for `seconds`."""
    size = f"{path.stat().st_size / 1e6:.0f} MB {path.suffix[1:].upper()}"
    before = {c.id for c in w.document.project.tracks["image"]}
    mon.start()
    t = time.perf_counter()
    w.import_files([str(path)])
    ok = wait_until(app, lambda: ({c.id for c in w.document.project.tracks["image"]} - before)
                    or w.messages.errors(), 120)
    import_s = time.perf_counter() - t
    import_stall = mon.stop()
    new = sorted({c.id for c in w.document.project.tracks["image"]} - before)
    label = f"importing a 56 MP image (8660 x 6500, {size})"
    if not (ok and new):
        return [(f"longest GUI stall while {label}", "failed: " + "; ".join(w.messages.errors()))]
    rows = [(f"longest GUI stall while {label}, until its clip exists",
             f"{import_stall:.1f} ms (import took {import_s:.2f} s)")]
    mon.start()
    w.timeline.view.select([new[0]])
    w.instruction.set_text("make the circle red")
    wait_until(app, lambda: False, seconds)
    rows.append((f"longest GUI stall in the {seconds:.0f} s after selecting that clip ({path.suffix[1:].upper()}) "
                 f"and typing 'make the circle red'", f"{mon.stop():.1f} ms"))
    return rows


def video_rows(app, w, mon: "StallMonitor", args, label: str) -> list[tuple[str, str]]:
    """The video model loaded on first asking, a clip generated from words, the clip played with its plan
    following the playhead, and a video edit of it generated while it plays."""
    from PySide6.QtCore import QTimer

    from app.core.request import Task

    rows: list[tuple[str, str]] = []
    studio = w.studio
    errors = len(w.messages.errors())

    def failed() -> str:
        return "failed: " + "; ".join(w.messages.errors()[errors:])

    w.timeline.view.select([])
    mon.start()
    t = time.perf_counter()
    studio.set_task(Task.TEXT_TO_VIDEO)  # asks for the video model
    ok = wait_until(app, lambda: studio.model_ready or len(w.messages.errors()) > errors, 300)
    rows.append((f"longest GUI stall while loading the video model ({label})",
                 f"{mon.stop():.1f} ms (load took {time.perf_counter() - t:.2f} s)" if ok and studio.model_ready
                 else failed()))
    if not studio.model_ready:
        return rows
    if args.video_steps:
        w.generation.steps.setValue(args.video_steps)
    w.instruction.set_text("a red circle moves to the right")
    studio.set_instruction("a red circle moves to the right")
    stored: list[str] = []
    w.result_stored.connect(stored.append)
    mon.start()
    t = time.perf_counter()
    w.generate()
    wait_until(app, lambda: bool(stored) or len(w.messages.errors()) > errors, 600)
    gen_s = time.perf_counter() - t
    frames, steps = studio.params.frames, studio.params.steps
    rows.append((f"longest GUI stall while generating a clip (text to video, {frames} frames, {steps} steps)",
                 f"{mon.stop():.1f} ms (job took {gen_s:.2f} s)" if stored else failed()))
    if not stored:
        return rows
    clip_id = stored[-1]
    w.timeline.view.select([clip_id])
    wait_until(app, lambda: w.viewer.plan is not None, 10)

    def play(seconds: float, until=None) -> tuple[float, int]:
        """Play the clip (looping) for `seconds` (and until `until()`), counting the plan overlays drawn."""
        drawn: list[float] = []
        conn = w.viewer.canvas.plan_drawn.connect(drawn.append)
        w.timeline.view.set_playhead(studio.primary_clip().start, emit=True)
        mon.start()
        w.viewer.play_button.setChecked(True)
        end = time.perf_counter() + seconds
        wait_until(app, lambda: time.perf_counter() > end and (until is None or until()), 600)
        stall = mon.stop()
        w.viewer.play_button.setChecked(False)
        w.viewer.canvas.plan_drawn.disconnect(conn)
        return stall, len(drawn)

    stall, overlays = play(args.play_seconds)
    rows.append((f"longest GUI stall while playing the clip for {args.play_seconds:g} s, its plan following the "
                 f"playhead", f"{stall:.1f} ms ({overlays} plan overlays drawn)"))
    w.instruction.set_text("make the circle blue")
    studio.set_instruction("make the circle blue")
    before = len(stored)
    t = time.perf_counter()
    QTimer.singleShot(200, w.generate)  # pressed while the clip plays
    stall, overlays = play(args.play_seconds, until=lambda: len(stored) > before or len(w.messages.errors()) > errors)
    rows.append((f"longest GUI stall while a video edit is generated as the clip plays (until stored, at least "
                 f"{args.play_seconds:g} s)", f"{stall:.1f} ms (edit stored {time.perf_counter() - t:.2f} s after "
                 f"the press; {overlays} plan overlays drawn)" if len(stored) > before else failed()))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models" / "metacanvas-shapes"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--plan-trials", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="fresh-process launches per bytecode setting")
    ap.add_argument("--only", choices=("all", "launch", "import", "video"), default="all",
                    help="launch: the fresh-process launches only; import: the 56 MP import only; video: clips only")
    ap.add_argument("--video-model", default=str(ROOT / "models" / "metacanvas-shapes-video"))
    ap.add_argument("--video-steps", type=int, default=0, help="denoising steps of a clip (0: the model's own)")
    ap.add_argument("--play-seconds", type=float, default=3.0, help="how long a clip plays in each video measure")
    ap.add_argument("--import-formats", default="jpeg,png", help="the 56 MP picture's formats, in turn")
    args = ap.parse_args()
    have_model = (Path(args.model) / "model_index.json").is_file()
    rows: list[tuple[str, str]] = []
    tmp = tempfile.mkdtemp(prefix="mc-bench-")
    os.environ["METACANVAS_CONFIG_DIR"] = tmp
    os.environ["METACANVAS_RECOVERY_DIR"] = tmp
    others0, wall0 = others_cpu_seconds(), time.perf_counter()

    # 1. launch to visible window, the stall until the model is ready and the time it is ready: one run
    # measures all three, in a fresh process (imports included). An installed app runs from cached
    # bytecode; this sandbox sets PYTHONDONTWRITEBYTECODE, so measure both.
    if args.only in ("all", "launch"):
        for cached in (True, False):
            label = "bytecode cached (installed)" if cached else "no bytecode cache"
            rows += launch_rows(launch_runs(args.model, tmp, args.repeats, cached), label)

    if args.only in ("all", "import", "video"):
        from app.settings import Settings
        from app.ui.studio import open_studio
        from PySide6.QtTest import QTest

        video_model, video_label = args.video_model, args.video_model
        if args.only in ("all", "video") and not (Path(video_model) / "model_index.json").is_file():
            from app.train.video import save_untrained_video_model
            video_model = str(save_untrained_video_model(Path(tmp) / "tiny-video"))
            video_label = f"an untrained tiny video model ({args.video_model} is not there)"
        # The same launcher as the studio (torch imported before the window), the engine started by hand.
        app, w = open_studio([], model_path=args.model, settings=Settings(autosave_minutes=0, video_model=video_model),
                             data_root=tmp, recovery_root=tmp, start_engine=False, offer_recovery=False)
        app.processEvents()
        mon = StallMonitor()

        # 2. loading the model
        if have_model:
            mon.start()
            t = time.perf_counter()
            w.start_engine()
            ok = wait_until(app, lambda: w.model_ready or w.messages.errors(), 300)
            load_s = time.perf_counter() - t
            rows.append(("longest GUI stall while loading the model (bench process, after its window)",
                         f"{mon.stop():.1f} ms (load took {load_s:.2f} s)"
                         if ok and w.model_ready else "model failed: " + "; ".join(w.messages.errors())))
        else:
            rows.append(("longest GUI stall while loading the model", "n/a (no model folder)"))

    if args.only == "all":
        # 3. live plan latency: last keystroke -> heatmap painted
        if have_model and w.model_ready:
            before = {c.id for c in w.document.project.tracks["image"]}
            w.import_files([str(ROOT / "resources" / "samples" / "red_circle_64.png")])
            wait_until(app, lambda: {c.id for c in w.document.project.tracks["image"]} - before, 30)
            words = ["make the circle green", "make the circle blue", "move the circle to the left",
                     "add a yellow star to the right of the circle", "make the circle red"]
            lat = []
            for i in range(args.plan_trials):
                w.instruction.edit.clear()
                wait_until(app, lambda: False, 0.1)
                drawn: list[float] = []
                conn = w.plan_shown.connect(drawn.append)
                QTest.keyClicks(w.instruction.edit, words[i % len(words)])
                t_last = time.perf_counter()
                wait_until(app, lambda: bool(drawn) and drawn[-1] > t_last, 10)
                w.plan_shown.disconnect(conn)
                if drawn and drawn[-1] > t_last:
                    lat.append((drawn[-1] - t_last) * 1000)
            rows.append(("live plan: last keystroke -> heatmap drawn (median / max)",
                         f"{statistics.median(lat):.0f} / {max(lat):.0f} ms over {len(lat)} trials" if lat else "no plan drawn"))

            # 4. generating (image edit of the sample, `steps` steps)
            w.generation.steps.setValue(args.steps)
            stored: list[str] = []
            w.result_stored.connect(stored.append)
            mon.start()
            t = time.perf_counter()
            w.generate()
            wait_until(app, lambda: bool(stored) or bool(w.messages.errors()), 600)
            gen_s = time.perf_counter() - t
            rows.append((f"longest GUI stall while generating ({args.steps} steps)",
                         f"{mon.stop():.1f} ms (job took {gen_s:.2f} s)" if stored else "failed: " + "; ".join(w.messages.errors())))
        else:
            rows.append(("live plan: last keystroke -> heatmap drawn", "n/a (no model)"))
            rows.append(("longest GUI stall while generating", "n/a (no model)"))

        # 5. exporting: the sample clip, upscaled through the track renderer to 512x512, as H.264
        vid = ROOT / "resources" / "samples" / "ball_rolls_right.mp4"
        before = {c.id for c in w.document.project.tracks["video"]}
        w.import_files([str(vid)])
        wait_until(app, lambda: {c.id for c in w.document.project.tracks["video"]} - before, 30)
        w.document.project.settings.width = w.document.project.settings.height = 512  # bench-only: more work per frame
        done: list[str] = []
        w.export_done.connect(done.append)
        out = Path(tmp) / "bench-export.mp4"
        mon.start()
        t = time.perf_counter()
        w.exports.export_track(str(out))
        wait_until(app, lambda: bool(done) or not w.exports.exporting, 300)
        exp_s = time.perf_counter() - t
        rows.append(("longest GUI stall while exporting (video track, 512x512 H.264)",
                     f"{mon.stop():.1f} ms (export took {exp_s:.2f} s)" if done else "failed"))

    if args.only in ("all", "video") and have_model and w.model_ready:
        # 6. clips: the video model loading, a clip generated, played, and generated again while playing.
        rows += video_rows(app, w, mon, args, video_label)
    elif args.only == "video":
        rows.append(("video measures", "n/a (no image model: the studio starts with it)"))

    if args.only in ("all", "import"):
        # 7. a 56-megapixel image: import it, select it, type an edit instruction (the live plan of a huge
        # source), last so that it disturbs nothing above.
        for fmt in args.import_formats.split(","):
            rows += import_large_image(app, w, mon, make_large_image(tmp, fmt=fmt.strip()))
    if args.only in ("all", "import", "video"):
        w.shutdown()

    others1, wall1 = others_cpu_seconds(), time.perf_counter()
    print(f"\nMetaCanvas Studio GUI benchmark — {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print(f"model: {args.model if have_model else '(none)'}")
    if others0 is not None and others1 is not None:
        print(f"other processes used {(others1 - others0) / (wall1 - wall0):.2f} of the {os.cpu_count()} cores on "
              f"average during the bench ({wall1 - wall0:.0f} s); on an idle machine that is about 0.0")
    print()
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
