#!/bin/bash
# Queue the whole study in one command. Each job starts only after the jobs it needs have
# ended successfully (qsub -W depend=afterok):
#
#   prepare (optional) -+-> train_single_frame -> test_single_frame -+-> combine -> summarize
#                       +-> train_tsn          -> test_tsn          -+   (per     (2+ splits,
#                       +-> train_3d           -> test_3d           -+   split)    after every
#                       +-> train_c3d          -> test_c3d          -+             combine)
#                       +-> extract_features -> train_rnn -> test_rnn+
#                       +-> extract_flow (array) -> train_tsn_flow -> test_tsn_flow -+  (--models ...,tsn_flow)
#                       +-> train_tsn_rgbdiff -> test_tsn_rgbdiff -+                     (--models ...,tsn_rgbdiff)
#
# A job that runs out of walltime submits its continuation and hands it the jobs waiting for
# it, so the chain waits for the real end (jobs/README.md); `qstat -u $USER` shows the new ids.
#
# usage: jobs/pbs/submit_all.sh [--split N | --splits LIST] [--models LIST] [--prepare]
#                               [-- QSUB_OPTIONS...]
#   --split N        one split, 1-3 (default: $SPLIT, else 1)
#   --splits LIST    several splits, e.g. 1,2,3 or 1-3: one chain each (one shared prepare),
#                    then summarize
#   --models LIST    comma list of single_frame,tsn,3d,c3d,rnn,tsn_flow,tsn_rgbdiff; all = the
#                    first five (default: $MODELS, else all); single_frame,3d is the assignment's
#                    study, all,tsn_flow adds TSN's flow stream (after the extract_flow array,
#                    queued once for every split), all,tsn_flow,tsn_rgbdiff TSN's three modalities
#   --prepare        queue prepare.sh first (also PREPARE=1); leave it out when
#                    $DATA_DIR/UCF-101-hdf5 (HMDB-51: hmdb51-hdf5) is already complete
#   QSUB_OPTIONS     given to every qsub and to resubmissions, e.g. -A proj -q gpu
#
# Before queueing anything it checks what the chosen models need (the split lists, the videos,
# the Kinetics and C3D files) and stops with one line if something is missing. DATASET=hmdb51
# runs the study on HMDB-51 (DATA_DIR/testTrainMulti_7030_splits, hmdb51/ or hmdb51-hdf5/; runs in
# runs/hmdb51/ unless RUNS_DIR is set); the default, auto, takes the dataset DATA_DIR holds. PBS jobs do not
# inherit the environment: the variables of jobs/README.md that are set here are passed with
# qsub -v (values must not contain commas). Prints one "stage split job_id" line per queued job.
set -euo pipefail

REPO_DIR=${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../common.sh
source "$REPO_DIR/jobs/common.sh"  # die, parse_submit_args, preflight_study, pbs_job_vars

splits=${SPLIT:-1}
prepare=${PREPARE:-0}
models=${MODELS:-all}
parse_submit_args qsub splits splits "$@"
split_list=$(expand_splits "$splits") ||
    die "--split/--splits take 1, 2 or 3, or a list such as 1,2,3 or 1-3, got '$splits'"
mapfile -t split_list <<<"$split_list"
parse_models "$models"
[[ -f $REPO_DIR/jobs/pbs/train_single_frame.sh ]] || die "REPO_DIR=$REPO_DIR is not this repository"
dataset_defaults  # DATA_DIR, DATASET (auto: from DATA_DIR), RUNS_DIR (runs/hmdb51 for HMDB-51)
export REPO_DIR DATA_DIR DATASET RUNS_DIR
preflight_study "$prepare" "${MODELS_CHOSEN[@]}"
# Resubmissions reuse the same qsub options.
[[ ${#scheduler_args[@]} -eq 0 ]] || export QSUB_ARGS="${scheduler_args[*]}"
mkdir -p "$RUNS_DIR/logs"
cd "$REPO_DIR"  # PBS_O_WORKDIR of the jobs

queued=()

# submit DEPENDENCY STAGE [LABEL]: queue jobs/pbs/STAGE.sh for $SPLIT; its id goes to JOB_ID and
# stdout, as "STAGE LABEL ID" (LABEL: default $SPLIT).
submit() {
    local dependency=$1 stage=$2 label=${3:-$SPLIT} vars
    local -a args
    vars=$(pbs_job_vars) || exit
    args=(-v "$vars")
    [[ -z $dependency ]] || args+=(-W "depend=$dependency")
    if ! JOB_ID=$(qsub "${args[@]}" "${scheduler_args[@]}" "$REPO_DIR/jobs/pbs/$stage.sh"); then
        die "qsub failed for $stage; already queued: ${queued[*]:-none} (qdel them, or queue the rest by hand)"
    fi
    queued+=("$JOB_ID")
    printf '%s %s %s\n' "$stage" "$label" "$JOB_ID"
}

prepare_dependency=
if [[ $prepare == 1 ]]; then
    SPLIT=${split_list[0]} submit "" prepare
    prepare_dependency=afterok:$JOB_ID
fi
flow_dependency=
if [[ " ${MODELS_CHOSEN[*]} " == *" tsn_flow "* ]]; then
    # Once for every split (a video's flow is the same in all): an array of shards (its -J range).
    SPLIT=${split_list[0]} submit "$prepare_dependency" extract_flow all
    flow_dependency=afterok:$JOB_ID
fi
combines=()
for SPLIT in "${split_list[@]}"; do
    export SPLIT
    tests=()
    for model in "${MODELS_CHOSEN[@]}"; do
        if [[ $model == rnn ]]; then
            submit "$prepare_dependency" extract_features
            submit "afterok:$JOB_ID" train_rnn
        elif [[ $model == tsn_flow ]]; then
            submit "$flow_dependency" train_tsn_flow
        else
            submit "$prepare_dependency" "train_$model"
        fi
        submit "afterok:$JOB_ID" "test_$model"
        tests+=("$JOB_ID")
    done
    submit "afterok:$(IFS=:; echo "${tests[*]}")" combine
    combines+=("$JOB_ID")
done
if ((${#split_list[@]} > 1)); then
    submit "afterok:$(IFS=:; echo "${combines[*]}")" summarize "$(IFS=,; echo "${split_list[*]}")"
fi
echo "queued ${#queued[@]} jobs; delete them all with: qdel ${queued[*]}" >&2
