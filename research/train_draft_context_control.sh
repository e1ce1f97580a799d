#!/usr/bin/env bash
# The supervision-matched control (research/LOG.md, 2026-12-05): the text-only twin given the same
# layout and edit drafts through its text path (model.draft_context: each drafted object one extra
# context token), trained as the MetaCanvas model's drafted-edit legs 8 and 8b were: from the twin at
# 22,714 steps (commit dbe686b, the point those legs started from), 1,000 steps of
# shapes-64-p8-draft-context-cpu.json (edit share 0.6) then 1,200 of -b (0.8), the LR falling from 3e-4
# to zero over each; 24,914 steps in all, as both committed models have. The planner (MLLM, layout and
# edit drafters) is the committed MetaCanvas model's, so the control drafts exactly what it drafts.
# This is the equal-total-steps control (B); research/train_draft_context_control_3546.sh is the one with
# the canvas model's three drafted legs, equal drafted steps (A).
#
#   bash research/train_draft_context_control.sh        # runs, or resumes, whichever leg is unfinished
#
# One thread, niced. Each leg is resumable: kill it (SIGTERM saves a checkpoint and exports) and run
# this again. Results: runs/draftctx/leg8/model, runs/draftctx/leg8b/model (the control).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=60
RUN=runs/draftctx
TWIN=$RUN/twin-22714/models/metacanvas-shapes-text-only
mkdir -p "$RUN"
if [ ! -d "$TWIN" ]; then
  mkdir -p "$RUN/twin-22714" && git archive dbe686b models/metacanvas-shapes-text-only | tar -x -C "$RUN/twin-22714"
fi
done_steps() {  # the steps a leg's run folder has done (0 if none)
  python -c "import json,sys; print(json.load(open(sys.argv[1])).get('step', 0))" "$1/progress.json" 2>/dev/null || echo 0
}
if [ "$(done_steps $RUN/leg8)" -lt 1000 ]; then
  nice -n 19 python main.py train --recipe research/recipes/shapes-64-p8-draft-context-cpu.json --out $RUN/leg8 \
    --no-canvas --start "$TWIN" --planner models/metacanvas-shapes --cooldown-steps 1000
fi
[ "$(done_steps $RUN/leg8)" -ge 1000 ] || { echo "leg 8 stopped before its end: run this again to resume"; exit 1; }
if [ "$(done_steps $RUN/leg8b)" -lt 1200 ]; then
  nice -n 19 python main.py train --recipe research/recipes/shapes-64-p8-draft-context-b-cpu.json --out $RUN/leg8b \
    --no-canvas --start $RUN/leg8/model --cooldown-steps 1200
fi
