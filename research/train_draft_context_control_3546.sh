#!/usr/bin/env bash
# The supervision-matched control at equal drafted steps (research/LOG.md, 2026-12-05): the text-only
# twin given the same drafts through its text path (model.draft_context), trained with the very legs
# of the MetaCanvas model's drafted fine-tune, in order: leg 7 (1,346 steps, text-to-image scenes with
# their drafts, edit share 0.5, edits undrafted), leg 8 (1,000, drafted edits, edit share 0.6) and leg 8b
# (1,200, edit share 0.8), the LR falling from 3e-4 to zero over each. It starts from the twin at 22,714
# steps (commit dbe686b: the pair's step-matched leg 6), so it ends at 26,260 steps (the MetaCanvas
# model: 24,914, of which the same 3,546 drafted). The planner is the committed MetaCanvas model's (MLLM
# and drafters, bit for bit); after leg 7, whose recipe has no edit drafts, the committed edit drafter
# is put into its model folder (as the MetaCanvas model's was) so that legs 8 and 8b, and the
# evaluation, draft edits with it. (research/train_draft_context_control.sh is the equal-total-steps
# version: legs 8 and 8b only, 24,914 steps.)
#
#   bash research/train_draft_context_control_3546.sh    # runs, or resumes, whichever leg is unfinished
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=60
RUN=runs/draftctx/b
TWIN=runs/draftctx/twin-22714/models/metacanvas-shapes-text-only
mkdir -p "$RUN"
if [ ! -d "$TWIN" ]; then
  mkdir -p runs/draftctx/twin-22714 && git archive dbe686b models/metacanvas-shapes-text-only | tar -x -C runs/draftctx/twin-22714
fi
done_steps() {  # the steps a leg's run folder has done (0 if none)
  python -c "import json,sys; print(json.load(open(sys.argv[1])).get('step', 0))" "$1/progress.json" 2>/dev/null || echo 0
}
leg() {  # NAME STEPS RECIPE START [PLANNER]: run or resume one leg, then check it ended
  local name=$1 steps=$2 recipe=$3 start=$4 planner=${5:-}
  if [ "$(done_steps $RUN/$name)" -lt "$steps" ]; then
    nice -n 19 python main.py train --recipe "$recipe" --out "$RUN/$name" --no-canvas --start "$start" \
      ${planner:+--planner "$planner"} --cooldown-steps "$steps"
  fi
  [ "$(done_steps $RUN/$name)" -ge "$steps" ] || { echo "$name stopped before its end: run this again to resume"; exit 1; }
}
leg leg7 1346 research/recipes/shapes-64-p8-draft-context-t2i-cpu.json "$TWIN" models/metacanvas-shapes
if [ ! -d "$RUN/leg7-edit" ]; then  # leg 7's model with the committed edit drafter put in
  cp -r "$RUN/leg7/model" "$RUN/leg7-edit.tmp"
  cp -r models/metacanvas-shapes/edit_drafter "$RUN/leg7-edit.tmp/"
  python - "$RUN/leg7-edit.tmp/model_index.json" <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
index["edit_drafter"] = "edit_drafter"
open(sys.argv[1], "w").write(json.dumps(index, indent=2))
PY
  mv "$RUN/leg7-edit.tmp" "$RUN/leg7-edit"
fi
leg leg8 1000 research/recipes/shapes-64-p8-draft-context-cpu.json "$RUN/leg7-edit"
leg leg8b 1200 research/recipes/shapes-64-p8-draft-context-b-cpu.json "$RUN/leg8/model"
