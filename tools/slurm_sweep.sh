#!/usr/bin/env bash
# One shard of a hypermod sweep per task of a Slurm job array.
#
# Submit N shards (task I runs shard I/N of the sweep's run list, a contiguous block, into
# OUT_ROOT/shard-I; run directories keep their global index, so shards never collide):
#
#   N=8
#   JOBID=$(sbatch --parsable --array=0-$((N-1)) tools/slurm_sweep.sh SWEEP_FILE OUT_ROOT)
#
# then merge them, once every task has succeeded, into one directory that reads as if the sweep
# had run unsharded (runs.csv, summary.md, every run directory):
#
#   sbatch --dependency=afterok:"${JOBID%%;*}" \
#     --wrap "hypermod sweep merge OUT_ROOT/merged OUT_ROOT/shard-*"
#
# (`--parsable` prints `JOBID` or `JOBID;CLUSTER`; `${JOBID%%;*}` keeps the id. The merge needs
# no GPU; give it the same HYPERMOD_BIN or PATH as the shards.) A task that failed or was
# preempted continues where it stopped when run again with the same arguments (finished runs
# are kept), e.g. `sbatch --array=3 tools/slurm_sweep.sh SWEEP_FILE OUT_ROOT` with the same N:
# set SHARD_COUNT=N for a partial resubmission, since SLURM_ARRAY_TASK_COUNT then counts only
# the resubmitted tasks. `hypermod sweep merge` lists the runs still missing.
#
# Arguments: SWEEP_FILE OUT_ROOT [extra `hypermod sweep` options, e.g. --device gpu]
# Environment: HYPERMOD_BIN (default: `hypermod` on PATH); SHARD_COUNT (default:
# SLURM_ARRAY_TASK_COUNT); the usual HYPERMOD_DEVICE / HYPERMOD_THREADS. Add #SBATCH lines
# (partition, --gres=gpu:1, time) for your cluster below, or pass them to sbatch.
#
#SBATCH --job-name=hypermod-sweep
#SBATCH --output=slurm-%A_%a.out

set -euo pipefail

usage() {
  echo "usage: sbatch --array=0-\$((N-1)) $0 SWEEP_FILE OUT_ROOT [hypermod sweep options...]" >&2
  exit 2
}

[ "$#" -ge 2 ] || usage
SWEEP_FILE=$1
OUT_ROOT=$2
shift 2

[ -f "$SWEEP_FILE" ] || { echo "$0: sweep file '$SWEEP_FILE' not found" >&2; exit 2; }

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  echo "$0: SLURM_ARRAY_TASK_ID is not set: submit as a job array (sbatch --array=0-\$((N-1)))" >&2
  exit 2
fi
COUNT=${SHARD_COUNT:-${SLURM_ARRAY_TASK_COUNT:-}}
if [ -z "$COUNT" ]; then
  echo "$0: neither SHARD_COUNT nor SLURM_ARRAY_TASK_COUNT is set" >&2
  exit 2
fi
case "$SLURM_ARRAY_TASK_ID$COUNT" in
  *[!0-9]*)
    echo "$0: shard '$SLURM_ARRAY_TASK_ID/$COUNT' is not two whole numbers" >&2
    exit 2
    ;;
esac
# hypermod checks 0 <= I < N itself; say so here too, before any work.
if [ "$SLURM_ARRAY_TASK_ID" -ge "$COUNT" ]; then
  echo "$0: task $SLURM_ARRAY_TASK_ID is not below the shard count $COUNT (use --array=0-$((COUNT - 1)))" >&2
  exit 2
fi

BIN=${HYPERMOD_BIN:-}
if [ -z "$BIN" ]; then
  BIN=$(command -v hypermod) || {
    echo "$0: no hypermod binary: put it on PATH or set HYPERMOD_BIN" >&2
    exit 2
  }
fi
[ -x "$BIN" ] || { echo "$0: HYPERMOD_BIN '$BIN' is not executable" >&2; exit 2; }

OUT="$OUT_ROOT/shard-$SLURM_ARRAY_TASK_ID"
mkdir -p "$OUT_ROOT"
echo "hypermod sweep shard $SLURM_ARRAY_TASK_ID/$COUNT on $(hostname) → $OUT"
exec "$BIN" sweep "$SWEEP_FILE" --out "$OUT" --shard "$SLURM_ARRAY_TASK_ID/$COUNT" "$@"
