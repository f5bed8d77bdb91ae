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
# no GPU; give it the same HYPERMOD_BIN or PATH as the shards.)
#
# When a task fails or is cancelled, the merge job can never start (its `afterok` dependency is
# never met; squeue shows Reason=DependencyNeverSatisfied) and waits forever: cancel it, resubmit
# the failed tasks with the same N, then submit the merge again after them:
#
#   scancel MERGE_JOBID
#   RE=$(SHARD_COUNT=$N sbatch --parsable --export=ALL --array=3 tools/slurm_sweep.sh SWEEP_FILE OUT_ROOT)
#   sbatch --dependency=afterok:"${RE%%;*}" \
#     --wrap "hypermod sweep merge OUT_ROOT/merged OUT_ROOT/shard-*"
#
# A resubmitted task continues where its shard stopped (finished runs are kept). SHARD_COUNT is
# required for it: the array then covers only some of 0..N-1, and the script refuses an array
# that does not cover 0..N-1 exactly unless SHARD_COUNT says N. Only one process trains in a
# shard directory at a time (a second one, e.g. a requeued task whose first instance still
# runs, is refused), and `hypermod sweep merge` refuses shards cut with different N and lists
# the runs still missing.
#
# Arguments: SWEEP_FILE OUT_ROOT [extra `hypermod sweep` options, e.g. --device gpu]
# Environment: HYPERMOD_BIN (default: `hypermod` on PATH); SHARD_COUNT (default:
# SLURM_ARRAY_TASK_COUNT); the usual HYPERMOD_DEVICE / HYPERMOD_THREADS. Add #SBATCH lines
# (partition, --gres=gpu:1, time) for your cluster below, or pass them to sbatch.
#
#SBATCH --job-name=hypermod-sweep
#SBATCH --output=slurm-%A_%a.out

set -euo pipefail

# Under sbatch, $0 is Slurm's spool copy of this script: name the script itself in messages.
ME=slurm_sweep.sh

usage() {
  echo "usage: sbatch --array=0-\$((N-1)) $ME SWEEP_FILE OUT_ROOT [hypermod sweep options...]" >&2
  exit 2
}

[ "$#" -ge 2 ] || usage
SWEEP_FILE=$1
OUT_ROOT=$2
shift 2

[ -f "$SWEEP_FILE" ] || { echo "$ME: sweep file '$SWEEP_FILE' not found" >&2; exit 2; }

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  echo "$ME: SLURM_ARRAY_TASK_ID is not set: submit as a job array (sbatch --array=0-\$((N-1)))" >&2
  exit 2
fi
if [ -n "${SHARD_COUNT:-}" ]; then
  COUNT=$SHARD_COUNT
else
  # Without SHARD_COUNT the array itself must be the whole split 0..N-1: a partial
  # resubmission (--array=3) would otherwise run as shard 0/1, the whole sweep.
  COUNT=${SLURM_ARRAY_TASK_COUNT:-}
  if [ -z "$COUNT" ]; then
    echo "$ME: neither SHARD_COUNT nor SLURM_ARRAY_TASK_COUNT is set" >&2
    exit 2
  fi
  if [ "${SLURM_ARRAY_TASK_MIN:-0}" != 0 ] || [ "${SLURM_ARRAY_TASK_MAX:-}" != "$((COUNT - 1))" ]; then
    echo "$ME: this array (tasks ${SLURM_ARRAY_TASK_MIN:-?}..${SLURM_ARRAY_TASK_MAX:-?}, $COUNT of them) is not 0..N-1: to resubmit some tasks of an N-shard sweep, set SHARD_COUNT=N (sbatch --export=ALL with SHARD_COUNT in the environment)" >&2
    exit 2
  fi
fi
case "$SLURM_ARRAY_TASK_ID$COUNT" in
  *[!0-9]*)
    echo "$ME: shard '$SLURM_ARRAY_TASK_ID/$COUNT' is not two whole numbers" >&2
    exit 2
    ;;
esac
# hypermod checks 0 <= I < N itself; say so here too, before any work.
if [ "$SLURM_ARRAY_TASK_ID" -ge "$COUNT" ]; then
  echo "$ME: task $SLURM_ARRAY_TASK_ID is not below the shard count $COUNT (tasks are 0..$((COUNT - 1)))" >&2
  exit 2
fi

BIN=${HYPERMOD_BIN:-}
if [ -z "$BIN" ]; then
  BIN=$(command -v hypermod) || {
    echo "$ME: no hypermod binary: put it on PATH or set HYPERMOD_BIN" >&2
    exit 2
  }
fi
[ -x "$BIN" ] || { echo "$ME: HYPERMOD_BIN '$BIN' is not executable" >&2; exit 2; }

OUT="$OUT_ROOT/shard-$SLURM_ARRAY_TASK_ID"
mkdir -p "$OUT_ROOT"
echo "hypermod sweep shard $SLURM_ARRAY_TASK_ID/$COUNT on $(hostname) → $OUT"
exec "$BIN" sweep "$SWEEP_FILE" --out "$OUT" --shard "$SLURM_ARRAY_TASK_ID/$COUNT" "$@"
