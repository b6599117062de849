#!/bin/bash
# Queue the whole study in one command. Each job starts only after the jobs it needs have
# ended successfully (qsub -W depend=afterok):
#
#   prepare (optional) -+-> train_single_frame -> test_single_frame -+-> combine
#                       +-> train_3d           -> test_3d           -+
#
# A job that runs out of walltime submits its continuation and hands it the jobs waiting for
# it, so the chain waits for the real end (jobs/README.md); `qstat -u $USER` shows the new ids.
#
# usage: jobs/pbs/submit_all.sh [--split N | --splits LIST] [--prepare] [-- QSUB_OPTIONS...]
#   --split N        one split, 1-3 (default: $SPLIT, else 1)
#   --splits LIST    several splits, e.g. 1,2,3: one chain each (one shared prepare)
#   --prepare        queue prepare.sh first (also PREPARE=1); leave it out when
#                    $DATA_DIR/UCF-101-hdf5 is already complete
#   QSUB_OPTIONS     given to every qsub and to resubmissions, e.g. -A proj -q gpu
#
# PBS jobs do not inherit the environment: the variables of jobs/README.md that are set here
# are passed with qsub -v (values must not contain commas). Prints one "stage split job_id"
# line per queued job.
set -euo pipefail

REPO_DIR=${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../common.sh
source "$REPO_DIR/jobs/common.sh"  # die, parse_submit_args, pbs_job_vars

splits=${SPLIT:-1}
prepare=${PREPARE:-0}
parse_submit_args qsub splits splits "$@"
[[ $splits =~ ^[123](,[123])*$ ]] || die "--split/--splits take 1, 2 or 3, or a list such as 1,2,3, got '$splits'"
[[ -f $REPO_DIR/jobs/pbs/train_single_frame.sh ]] || die "REPO_DIR=$REPO_DIR is not this repository"
export REPO_DIR DATA_DIR=${DATA_DIR:-$REPO_DIR/data} RUNS_DIR=${RUNS_DIR:-$REPO_DIR/runs}
# Resubmissions reuse the same qsub options.
[[ ${#scheduler_args[@]} -eq 0 ]] || export QSUB_ARGS="${scheduler_args[*]}"
mkdir -p "$RUNS_DIR/logs"
cd "$REPO_DIR"  # PBS_O_WORKDIR of the jobs

queued=()

# submit DEPENDENCY STAGE: queue jobs/pbs/STAGE.sh for $SPLIT; its id goes to JOB_ID and stdout.
submit() {
    local dependency=$1 stage=$2 vars
    local -a args
    vars=$(pbs_job_vars) || exit
    args=(-v "$vars")
    [[ -z $dependency ]] || args+=(-W "depend=$dependency")
    if ! JOB_ID=$(qsub "${args[@]}" "${scheduler_args[@]}" "$REPO_DIR/jobs/pbs/$stage.sh"); then
        die "qsub failed for $stage; already queued: ${queued[*]:-none} (qdel them, or queue the rest by hand)"
    fi
    queued+=("$JOB_ID")
    printf '%s %s %s\n' "$stage" "$SPLIT" "$JOB_ID"
}

prepare_dependency=
if [[ $prepare == 1 ]]; then
    SPLIT=${splits%%,*} submit "" prepare
    prepare_dependency=afterok:$JOB_ID
fi
IFS=, read -ra split_list <<<"$splits"
for SPLIT in "${split_list[@]}"; do
    export SPLIT
    submit "$prepare_dependency" train_single_frame
    submit "afterok:$JOB_ID" test_single_frame
    test_sf=$JOB_ID
    submit "$prepare_dependency" train_3d
    submit "afterok:$JOB_ID" test_3d
    submit "afterok:$test_sf:$JOB_ID" combine
done
echo "queued ${#queued[@]} jobs; delete them all with: qdel ${queued[*]}" >&2
