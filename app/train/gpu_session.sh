#!/usr/bin/env bash
# The exact runs that train the embedded default on one GPU, each inside a 10-minute window.
#   bash app/train/gpu_session.sh MINUTES [RECIPE]
#       teach the planner once, then train MetaCanvas and its text-only baseline side by side from
#       that same planner (a fair comparison)
#   INIT=DIR bash app/train/gpu_session.sh MINUTES [RECIPE]
#       go on training both from the exported models DIR/canvas/model and DIR/text/model (fresh
#       optimizer), then evaluate both (bench/eval_embedded.py) when EVAL=1
# Results go to $OUT (or ./runs/gpu): model-canvas.tgz, model-text.tgz, reports.tgz.
set -uo pipefail
MIN=${1:-5}
RECIPE=${2:-app/train/recipes/shapes-64.json}
OUT=${OUT:-runs/gpu}
INIT=${INIT:-}
RUN=runs/gpu-session
mkdir -p "$OUT" "$RUN/reports"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=20
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
if [ -z "$INIT" ]; then
  if [ "${SMOKE:-1}" = 1 ]; then
    python main.py train --recipe app/train/recipes/tiny-test.json --out "$RUN/smoke" --workers 2 > "$OUT/smoke.log" 2>&1 \
      || { echo "smoke run failed"; tail -40 "$OUT/smoke.log"; exit 1; }
    echo "smoke ok"
  fi
  python main.py train --recipe "$RECIPE" --out "$RUN/canvas" --teach-only --teach-minutes ${TEACH_MIN:-1.5} --workers 6 > "$OUT/teach.log" 2>&1 \
    || { echo "teaching failed"; tail -40 "$OUT/teach.log"; exit 1; }
  CANVAS_ARGS=""; TEXT_ARGS="--planner-from $RUN/canvas/planner_taught"
else
  CANVAS_ARGS="--init-from $INIT/canvas/model"; TEXT_ARGS="--init-from $INIT/text/model"
fi
python main.py train --recipe "$RECIPE" --out "$RUN/canvas" $CANVAS_ARGS --workers 7 --max-minutes "$MIN" > "$OUT/canvas.log" 2>&1 &
A=$!
python main.py train --recipe "$RECIPE" --out "$RUN/text" --no-canvas $TEXT_ARGS --workers 7 --max-minutes "$MIN" > "$OUT/text.log" 2>&1 &
B=$!
wait $A; echo "canvas run exit $?"; wait $B; echo "text-only run exit $?"
for v in canvas text; do
  cp "$RUN/$v/progress.json" "$RUN/reports/progress-$v.json" 2>/dev/null
  cp "$RUN/$v/curves.png" "$RUN/reports/curves-$v.png" 2>/dev/null
  tar -C "$RUN/$v" -czf "$OUT/model-$v.tgz" model 2>/dev/null
done
if [ "${EVAL:-0}" = 1 ]; then
  python bench/eval_embedded.py "$RUN/canvas/model" "$RUN/text/model" --guidance ${GUIDANCE:-3.0} \
    --out "$RUN/reports" > "$OUT/eval.log" 2>&1 || echo "evaluation failed"
  cat "$RUN/reports/eval.json" 2>/dev/null | python -c "import json,sys;[print({k:(round(v,3) if isinstance(v,float) else v) for k,v in r.items()}) for r in json.load(sys.stdin)]"
fi
mv "$OUT"/*.log "$RUN/reports/"
tar -C "$RUN" -czf "$OUT/reports.tgz" reports
for f in "$RUN"/reports/*.log; do echo "== $f"; tr '\r' '\n' < "$f" | grep -v -i "warn\|torchvision\|rationality" | grep -v "^\s*$" | tail -n 4; done
