#!/bin/bash
# Queue the whole study in one command. Each job starts only after the jobs it needs have
# ended successfully:
#
#   prepare (optional) -+-> train_single_frame -> test_single_frame -+-> combine
#                       +-> train_3d           -> test_3d           -+
#
# A job that runs out of time requeues itself under the same id, so the chain waits for its
# real end (jobs/README.md).
#
# usage: jobs/slurm/submit_all.sh [--split N | --splits LIST] [--prepare] [-- SBATCH_OPTIONS...]
#   --split N        one split, 1-3 (default: $SPLIT, else 1)
#   --splits LIST    each stage as one job array over LIST (e.g. 1-3); task N of a stage
#                    waits for task N of the stage before it (aftercorr)
#   --prepare        queue prepare.sh first (also PREPARE=1); leave it out when
#                    $DATA_DIR/UCF-101-hdf5 is already complete
#   SBATCH_OPTIONS   given to every sbatch, e.g. --account=proj --partition=gpu
#
# The jobs inherit this shell's environment (REPO_DIR, DATA_DIR, RUNS_DIR, PYTHON, *_ARGS...,
# see jobs/README.md). Prints one "stage job_id" line per queued job.
set -euo pipefail

REPO_DIR=${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# From next to this script rather than REPO_DIR, which is checked below.
# shellcheck source=../common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"  # die, parse_submit_args

split=${SPLIT:-1}
array=
prepare=${PREPARE:-0}
parse_submit_args sbatch split array "$@"

if [[ -n $array ]]; then
    [[ $array =~ ^[1-3]([-,][1-3])*$ ]] || die "--splits takes an array range of splits 1-3 such as 1-3 or 1,3, got '$array'"
    unset SPLIT  # each task takes its split from SLURM_ARRAY_TASK_ID
else
    [[ $split =~ ^[123]$ ]] || die "--split must be 1, 2 or 3, got '$split'"
    export SPLIT=$split
fi
[[ -f $REPO_DIR/jobs/slurm/train_single_frame.sh ]] || die "REPO_DIR=$REPO_DIR is not this repository"
export REPO_DIR DATA_DIR=${DATA_DIR:-$REPO_DIR/data} RUNS_DIR=${RUNS_DIR:-$REPO_DIR/runs}
mkdir -p "$RUNS_DIR/logs"  # Slurm fails a job whose log directory is missing

queued=()

# submit DEPENDENCY STAGE: queue jobs/slurm/STAGE.sh; its id goes to JOB_ID and stdout.
submit() {
    local dependency=$1 stage=$2 out
    local -a args=(--parsable --chdir="$REPO_DIR")
    if [[ -n $array && $stage != prepare ]]; then
        args+=(--array="$array" --output="$RUNS_DIR/logs/%x-%A_%a.log")
    else
        args+=(--output="$RUNS_DIR/logs/%x-%j.log")
    fi
    [[ -z $dependency ]] || args+=(--dependency="$dependency")
    if ! out=$(sbatch "${args[@]}" "${scheduler_args[@]}" "$REPO_DIR/jobs/slurm/$stage.sh"); then
        die "sbatch failed for $stage; already queued: ${queued[*]:-none} (scancel them, or queue the rest by hand)"
    fi
    JOB_ID=${out%%;*}  # --parsable prints "id" or "id;cluster"
    queued+=("$JOB_ID")
    printf '%s %s\n' "$stage" "$JOB_ID"
}

# Between the per-split stages: task by task for arrays, whole job otherwise.
after=afterok
[[ -z $array ]] || after=aftercorr

prepare_dependency=
if [[ $prepare == 1 ]]; then
    submit "" prepare
    prepare_dependency=afterok:$JOB_ID
fi
submit "$prepare_dependency" train_single_frame
submit "$after:$JOB_ID" test_single_frame
test_sf=$JOB_ID
submit "$prepare_dependency" train_3d
submit "$after:$JOB_ID" test_3d
submit "$after:$test_sf:$JOB_ID" combine
echo "queued ${#queued[@]} jobs; cancel them all with: scancel ${queued[*]}" >&2
