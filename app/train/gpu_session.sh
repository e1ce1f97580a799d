#!/usr/bin/env bash
# The exact run that trains the embedded default on one GPU inside a 10-minute window:
# teach the planner once, then train MetaCanvas and its text-only baseline side by side from that
# same planner (a fair comparison), then evaluate both. Results go to $OUT (or ./runs/gpu).
#   bash app/train/gpu_session.sh [DIFFUSION_MINUTES] [RECIPE]
set -uo pipefail
MIN=${1:-5}
RECIPE=${2:-app/train/recipes/shapes-64.json}
OUT=${OUT:-runs/gpu}
RUN=runs/gpu-session
mkdir -p "$OUT" "$RUN"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=20
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
python main.py train --recipe app/train/recipes/tiny-test.json --out "$RUN/smoke" --workers 2 > "$OUT/smoke.log" 2>&1 \
  || { echo "smoke run failed"; tail -40 "$OUT/smoke.log"; exit 1; }
echo "smoke ok"
python main.py train --recipe "$RECIPE" --out "$RUN/canvas" --teach-only --workers 6 > "$OUT/teach.log" 2>&1 \
  || { echo "teaching failed"; tail -40 "$OUT/teach.log"; exit 1; }
echo "planner taught: $(python -c "import json;p=json.load(open('$RUN/canvas/progress.json'));print(round(p['teach_seconds']), 's', p['teach_losses'][-1])")"
python main.py train --recipe "$RECIPE" --out "$RUN/canvas" --workers 7 --max-minutes "$MIN" > "$OUT/canvas.log" 2>&1 &
A=$!
python main.py train --recipe "$RECIPE" --out "$RUN/text" --no-canvas --planner-from "$RUN/canvas/planner_taught" \
  --workers 7 --max-minutes "$MIN" > "$OUT/text.log" 2>&1 &
B=$!
wait $A; echo "canvas run exit $?"; wait $B; echo "text-only run exit $?"
mkdir -p "$RUN/reports"
for v in canvas text; do
  cp "$RUN/$v/progress.json" "$RUN/reports/progress-$v.json" 2>/dev/null
  cp "$RUN/$v/curves.png" "$RUN/reports/curves-$v.png" 2>/dev/null
  tar -C "$RUN/$v" -czf "$OUT/model-$v.tgz" model 2>/dev/null
done
mv "$OUT"/*.log "$RUN/reports/"
tar -C "$RUN" -czf "$OUT/reports.tgz" reports
for f in "$RUN"/reports/*.log; do echo "== $f"; tr '\r' '\n' < "$f" | grep -v -i "warn\|torchvision" | tail -n 4; done
