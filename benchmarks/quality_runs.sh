#!/usr/bin/env bash
# The quality runs of issue 12 on Qwen2.5-Coder-1.5B (target and optimizer), in chunks of users.
#
# Each chunk reruns the same command with a larger --max-users: finished users are kept (one
# file per user under benchmarks/results/<run>/users/), planted users are re-planted from the
# score cache at the cost of cache reads, and report.json / README figures are rewritten after
# every chunk. Stop it at any time (kill the process) and start it again to resume.
#
#   benchmarks/quality_runs.sh planted      # planted personas, >= 20 users, K=4 L=5 T=3, guard on/off
#   benchmarks/quality_runs.sh planted-full # the paper's prompt form (--prompt-form full)
#   benchmarks/quality_runs.sh planted-contrast # the contrast meta-prompt (--meta-prompt-style contrast)
#   benchmarks/quality_runs.sh planted-contrast-t5 # the same with T = 5 iterations (Fermi and OPRO)
#   benchmarks/quality_runs.sh planted-contrast-ties # the contrast run, ties ranked by likelihood
#   DRAW=1 benchmarks/quality_runs.sh planted-contrast-ties-draw # another optimizer draw (pool_planted)
#   benchmarks/quality_runs.sh planted-contrast-ties-restarts # 3 restarts per user (seeds 3, 4, 5)
#   benchmarks/quality_runs.sh opinionqa    # W92 respondents, calibrated, references
#   benchmarks/quality_runs.sh global       # GlobalOpinionQA countries, same setup
#
# Env: FERMI_LLAMA_THREADS (2 when nothing else runs), CHUNKS (default "4 8 12 16 20").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CHUNKS=${CHUNKS:-"4 8 12 16 20"}
MODEL=qwen2.5-coder-1.5b
ITERATIONS=3

case "${1:-}" in
  planted)
    # fermi_rop_paper: Fermi with the guard off (the paper's loop), on the same users
    ARGS=(--dataset planted --run-name planted-qwen15 --n-test 20
          --methods random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,fermi_rop_paper,hidden_prompt) ;;
  planted-full)  # the paper's prompt form (the optimizer rewrites the whole prompt)
    ARGS=(--dataset planted --run-name planted-qwen15-full --n-test 20 --prompt-form full
          --methods random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,hidden_prompt) ;;
  planted-contrast)  # the best description's mis-aligned answers first (FERMI_CONTRAST_META_PROMPT)
    ARGS=(--dataset planted --run-name planted-qwen15-contrast --n-test 20 --meta-prompt-style contrast
          --methods ${METHODS:-random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,hidden_prompt}) ;;
  planted-contrast-t5)  # the same, five iterations for Fermi and OPRO (the paper runs T = 10)
    ITERATIONS=5
    ARGS=(--dataset planted --run-name planted-qwen15-contrast-t5 --n-test 20 --meta-prompt-style contrast
          --methods ${METHODS:-random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,hidden_prompt}) ;;
  planted-contrast-ties)  # the contrast run, Fermi's equal scores ranked by likelihood (--tie-break)
    ARGS=(--dataset planted --run-name planted-qwen15-contrast-ties --n-test 20 --meta-prompt-style contrast
          --tie-break likelihood
          --methods ${METHODS:-random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,hidden_prompt}) ;;
  planted-contrast-ties-draw)  # another draw of the same: --optimizer-seed $DRAW (default 1), Fermi only
    DRAW=${DRAW:-1}
    ARGS=(--dataset planted --run-name "planted-qwen15-contrast-ties-s$DRAW" --n-test 20
          --meta-prompt-style contrast --tie-break likelihood --optimizer-seed "$DRAW"
          --methods ${METHODS:-random,zero_shot,profile,few_shot_bm25,fermi_best,fermi_rop,hidden_prompt}) ;;
  planted-contrast-ties-restarts)  # --restarts 3 on fresh draws (seeds 3, 4, 5);
    # fermi_rop_first_search serves restart 0 alone: one search, paired in the same run. OPRO is in
    # this run too, with the same 3 restarts (equal optimizer budget): its planted answers differ a
    # little from the earlier runs' (a fresh planting), so only a row of the same run pairs; users
    # finished without it get it added.
    ARGS=(--dataset planted --run-name planted-qwen15-contrast-ties-r3 --n-test 20
          --meta-prompt-style contrast --tie-break likelihood --optimizer-seed 3 --restarts 3
          --methods ${METHODS:-random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,fermi_rop_first_search,hidden_prompt}) ;;
  opinionqa)
    ARGS=(--dataset opinionqa --run-name opinionqa-qwen15-calibrated --n-test 30 --calibration neutral
          --methods random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,ref_majority,ref_group_majority,ref_knn) ;;
  global)
    ARGS=(--dataset globalopinionqa --run-name globalopinionqa-qwen15 --n-test 30 --calibration neutral
          --methods random,zero_shot,profile,few_shot_bm25,opro,fermi_best,fermi_rop,ref_majority,ref_knn) ;;
  *) echo "usage: $0 planted|planted-full|planted-contrast|planted-contrast-t5|planted-contrast-ties|planted-contrast-ties-draw|planted-contrast-ties-restarts|opinionqa|global" >&2; exit 2 ;;
esac

COMMON=(--target-model "$MODEL" --optimizer-model "$MODEL" -K 4 -L 5 -T "$ITERATIONS" --n-optimize 20
        --optimizer-max-tokens 256 --bracket-fallback reply --naive-probe 0 --no-progress -v)

for n in $CHUNKS; do
  echo "=== $1: --max-users $n ($(date -u +%H:%M:%S))"
  "$PY" -m langchain_fermi bench "${COMMON[@]}" "${ARGS[@]}" --max-users "$n" || {
    echo "chunk $n failed (exit $?); rerun this script to resume" >&2; exit 1; }
done
