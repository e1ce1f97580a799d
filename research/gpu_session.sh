#!/usr/bin/env bash
# The exact runs that train the embedded default on one lent GPU, whose calls last at most 10 minutes
# each while the machine stays up between calls. The two flow-matching runs live in their own process
# sessions (setsid), so they go on training between calls; each call only starts, watches or ends them.
#
#   bash research/gpu_session.sh start SECONDS [RECIPE]
#       profile a training step, teach the planner (TEACH_MIN minutes, default 3), then start MetaCanvas
#       and its text-only baseline side by side from that same planner (a fair comparison); watch them
#       until SECONDS have passed since the call began. SKIP_TEACH=1 skips teaching; CANVAS_ARGS and
#       TEXT_ARGS replace each run's starting point, e.g. to go on from the committed models:
#         SKIP_TEACH=1 CANVAS_ARGS="--start models/metacanvas-shapes" \
#         TEXT_ARGS="--start models/metacanvas-shapes-text-only" bash research/gpu_session.sh start 560
#       A canvas run may also start from the text-only model (the paper's setup: MetaCanvas added to a
#       trained backbone, its connector starting at zero), so both variants go on from one backbone:
#         SKIP_TEACH=1 CANVAS_ARGS="--start models/metacanvas-shapes-text-only" \
#         TEXT_ARGS="--start models/metacanvas-shapes-text-only" bash research/gpu_session.sh start 560
#       RECIPE research/recipes/shapes-64-shift.json trains at high noise (timestep shift 4); why, and
#       what 801 such steps did on a CPU: research/LOG.md, "The scene is fixed in the first sampling step".
#       RECIPE research/recipes/shapes-64-p8.json: 8-pixel patches (64 tokens, about 4x cheaper a step)
#       with x-prediction, the label loss (research/LOG.md, "The planner knows the prompt, the DiT
#       learns slowly") and the source residual for edits ("Edits that keep their source"), teaching
#       from the committed planner (already 8 x 8 since 2026-11-26; a 16 x 16 one is averaged to 8 x 8):
#         TEACH_ARGS="--planner teach:models/metacanvas-shapes" \
#         bash research/gpu_session.sh start 560 research/recipes/shapes-64-p8.json
#       why, and what it did on a CPU: research/LOG.md, "8-pixel patches need x-prediction".
#   bash research/gpu_session.sh once SECONDS [RECIPE]
#       everything in one call, for a session lent one machine for about 15 minutes in all (one start,
#       one call of at most 10 minutes): start both runs as `start` does (SKIP_TEACH, CANVAS_ARGS and
#       TEXT_ARGS as there), let them train until SECONDS have passed since the call began, stop them
#       (checkpoint + export) and hand back model-canvas.tgz, model-text.tgz and logs.tgz (with each
#       run's progress.json and curves). No evaluation there: the full one runs on a CPU afterwards
#       (bench/bench_quality.py), which costs no device time. SECONDS + STOP_WAIT (default 120) + 30
#       must fit in the call's timeout: the stop runs a quick evaluation and the export. Going on from
#       two CPU runs' exported models:
#         SKIP_TEACH=1 CANVAS_ARGS="--start runs/residual/with/model" \
#         TEXT_ARGS="--start runs/residual/text/model" \
#         bash research/gpu_session.sh once 480 research/recipes/shapes-64-p8.json
#       A re-taught planner handed to both trained backbones (--start MODEL with --planner FOLDER): teach
#       from the committed planner, then both runs go on from their committed models with it. Recipe
#       research/recipes/shapes-64-p8-spatial.json gives the planner M-RoPE base 10 instead of 10000, with
#       which its canvas can tell columns apart and learns the layout (research/LOG.md, "The planner
#       could not tell canvas columns apart"), and weighs objects 3x in teaching:
#         SKIP_PROFILE=1 TEACH_MIN=2 TEACH_ARGS="--planner teach:models/metacanvas-shapes" \
#         CANVAS_ARGS="--start models/metacanvas-shapes --planner runs/gpu-session/teach/planner_taught" \
#         TEXT_ARGS="--start models/metacanvas-shapes-text-only --planner runs/gpu-session/teach/planner_taught" \
#         bash research/gpu_session.sh once 420 research/recipes/shapes-64-p8-spatial.json
#       (run with timeout_s 600: about 20 s install, 150 s teaching, 420 - 150 s training both, up to
#       120 s to stop, the rest to pack.)
#       Recipe research/recipes/shapes-64-p8-layout.json is the same but teaches 1,400 steps with 80 %
#       text-to-image batches, with which the canvas also lays out "left of" / "right of" (research/LOG.md,
#       "The text-to-image canvas learns left and right"). The committed pair has had such a layout planner
#       since 2026-11-26 (evening); to go on training both from it, all the minutes on the DiTs
#       (timeout_s 600; --start MODEL keeps each model's planner):
#         SKIP_PROFILE=1 SKIP_TEACH=1 CANVAS_ARGS="--start models/metacanvas-shapes" \
#         TEXT_ARGS="--start models/metacanvas-shapes-text-only" \
#         bash research/gpu_session.sh once 420 research/recipes/shapes-64-p8-layout.json
#   bash research/gpu_session.sh watch SECONDS
#       watch until SECONDS have passed, then hand back the latest EMA weights and progress (a fallback,
#       should the machine be lost before `finish`: there is no command for it; the EMA file's keys are
#       the adapter's with an "ema." prefix, and the planner they go with is in planner_taught.tgz)
#   bash research/gpu_session.sh finish SECONDS_MORE
#       let both runs train SECONDS_MORE, stop them (SIGTERM: checkpoint + export), evaluate both with
#       bench/bench_quality.py (EVAL_IMAGES per prompt, EVAL_EDITS edits), hand back models and reports
#
# Results go to $OUT (or ./runs/gpu-out): logs.tgz, planner_taught.tgz, checkpoint-*.tgz, model-*.tgz, reports.tgz.
set -uo pipefail
CMD=${1:?start, watch or finish}
SECS=${2:-60}
RECIPE=${3:-research/recipes/shapes-64.json}
OUT=${OUT:-runs/gpu-out}
RUN=runs/gpu-session
BEGIN=$(date +%s)
# The interpreter that holds torch: the device image has python3 inside a virtual environment and may
# have no `python`. (A symlink named python pointing at it loses the environment: every run died at
# `import numpy` on 2026-11-26 while the script slept its whole budget.)
PY=${PYTHON:-$(command -v python3 || command -v python)}
"$PY" -c "import numpy, torch" || { echo "$PY cannot import numpy and torch"; exit 1; }
mkdir -p "$OUT" "$RUN/reports"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30

show() {  # the last lines that matter from each log
  for f in "$RUN"/*.log; do
    [ -f "$f" ] || continue
    echo "== $f"
    tr '\r' '\n' < "$f" | grep -i "step\|eval\|steps/s\|ms\|error\|Traceback" | grep -v -i "warn" | tail -n ${1:-4}
  done
}

sleep_until() {  # sleep until $1 seconds after this call began
  local left=$(( $1 - ($(date +%s) - BEGIN) ))
  [ "$left" -gt 0 ] && sleep "$left"
}

stop_runs() {  # SIGTERM: each run finishes its step, saves a checkpoint, evaluates briefly and exports
  for v in canvas text; do kill -TERM "$(cat "$RUN/$v.pid")" 2>/dev/null; done
  local deadline=$(( $(date +%s) + ${STOP_WAIT:-120} ))  # one deadline for both, not one each
  for v in canvas text; do
    pid=$(cat "$RUN/$v.pid")
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
  done
}

alive_or_quit() {  # a run that died at start must not leave the script sleeping out the lease
  sleep 20
  local n=0
  for v in canvas text; do kill -0 "$(cat "$RUN/$v.pid")" 2>/dev/null && n=$((n + 1)) || { echo "$v run died:"; tail -5 "$RUN/$v.log"; }; done
  if [ "$n" = 0 ]; then tar -C "$RUN" -czf "$OUT/logs.tgz" $(cd "$RUN" && ls *.log); exit 1; fi
}

case "$CMD" in
start|once)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
  if [ "${SKIP_PROFILE:-0}" != 1 ]; then
    "$PY" research/profile_train_step.py --recipe "$RECIPE" --steps 30 --workers 7 > "$RUN/profile.log" 2>&1
    grep -A3 "steps/s" "$RUN/profile.log" || tail -20 "$RUN/profile.log"
  fi
  if [ "${SKIP_TEACH:-0}" != 1 ]; then
    "$PY" main.py train --recipe "$RECIPE" --out "$RUN/teach" --teach-only --teach-minutes "${TEACH_MIN:-3}" \
      --workers 12 ${TEACH_ARGS:-} > "$RUN/teach.log" 2>&1 || { echo "teaching failed"; tail -40 "$RUN/teach.log"; exit 1; }
    show 6
  fi
  # Both runs are given the planner taught in $RUN/teach (without teaching, the baseline is given the
  # canvas run's: a run keeps the planner it trains with in its planner_taught folder).
  TAUGHT="$RUN/teach/planner_taught"
  [ "${SKIP_TEACH:-0}" = 1 ] && TAUGHT="$RUN/canvas/planner_taught"
  DEFAULT_CANVAS=""
  [ "${SKIP_TEACH:-0}" != 1 ] && DEFAULT_CANVAS="--planner $TAUGHT"
  setsid "$PY" main.py train --recipe "$RECIPE" --out "$RUN/canvas" --workers ${WORKERS:-7} ${CANVAS_ARGS:-$DEFAULT_CANVAS} \
    > "$RUN/canvas.log" 2>&1 < /dev/null &
  echo $! > "$RUN/canvas.pid"
  setsid "$PY" main.py train --recipe "$RECIPE" --out "$RUN/text" --no-canvas --workers ${WORKERS:-7} \
    ${TEXT_ARGS:---planner $TAUGHT} > "$RUN/text.log" 2>&1 < /dev/null &
  echo $! > "$RUN/text.pid"
  alive_or_quit
  sleep 40  # both have built their models and saved the planner they train with
  tar -C "$RUN/canvas" -czf "$OUT/planner_taught.tgz" planner_taught 2>/dev/null
  sleep_until "$SECS"
  show
  if [ "$CMD" = once ]; then
    stop_runs
    show 3
    for v in canvas text; do
      cp "$RUN/$v/progress.json" "$RUN/progress-$v.json" 2>/dev/null
      cp "$RUN/$v/curves.png" "$RUN/curves-$v.png" 2>/dev/null
      tar -C "$RUN/$v" -czf "$OUT/model-$v.tgz" model || echo "$v: no exported model"
    done
    tar -C "$RUN" -czf "$OUT/logs.tgz" $(cd "$RUN" && ls *.log progress-*.json curves-*.png 2>/dev/null)
    exit 0
  fi
  ;;
watch)
  sleep_until "$SECS"
  show
  for v in canvas text; do
    kill -0 "$(cat "$RUN/$v.pid")" 2>/dev/null && echo "$v run alive" || echo "$v run NOT running"
    tar -C "$RUN/$v" -czf "$OUT/checkpoint-$v.tgz" checkpoint/ema.safetensors progress.json 2>/dev/null
  done
  ;;
finish)
  sleep_until "$SECS"
  stop_runs
  show 3
  "$PY" bench/bench_quality.py "$RUN/canvas/model" "$RUN/text/model" --prompts "${EVAL_PROMPTS:-408}" --images "${EVAL_IMAGES:-4}" \
    --edits "${EVAL_EDITS:-200}" ${GUIDANCE:+--guidance $GUIDANCE} --out "$RUN/reports" > "$RUN/eval.log" 2>&1 \
    || { echo "evaluation failed"; tail -20 "$RUN/eval.log"; }
  "$PY" -c "import json;[print({k:(round(v,3) if isinstance(v,float) else v) for k,v in r.items() if not isinstance(v,(dict,list))}) for r in json.load(open('$RUN/reports/eval.json'))]"
  for v in canvas text; do
    cp "$RUN/$v/progress.json" "$RUN/reports/progress-$v.json" 2>/dev/null
    cp "$RUN/$v/curves.png" "$RUN/reports/curves-$v.png" 2>/dev/null
    tar -C "$RUN/$v" -czf "$OUT/model-$v.tgz" model
  done
  cp "$RUN"/*.log "$RUN/reports/"
  tar -C "$RUN" -czf "$OUT/reports.tgz" reports
  ;;
esac
tar -C "$RUN" -czf "$OUT/logs.tgz" $(cd "$RUN" && ls *.log) 2>/dev/null  # $OUT takes at most 8 files
true
