#!/bin/bash
# Queue the whole study in one command. Each job starts only after the jobs it needs have
# ended successfully:
#
#   prepare (optional) -+-> train_single_frame -> test_single_frame -+-> combine -> summarize
#                       +-> train_tsn          -> test_tsn          -+   (per     (--splits with
#                       +-> train_3d           -> test_3d           -+   split)    2+ splits)
#                       +-> train_c3d          -> test_c3d          -+
#                       +-> extract_features -> train_rnn -> test_rnn+
#                       +-> extract_flow (array) -> train_tsn_flow -> test_tsn_flow -+  (--models ...,tsn_flow)
#                       +-> train_tsn_rgbdiff -> test_tsn_rgbdiff -+                     (--models ...,tsn_rgbdiff)
#
# A job that runs out of time requeues itself under the same id, so the chain waits for its
# real end (jobs/README.md).
#
# usage: jobs/slurm/submit_all.sh [--split N | --splits LIST] [--models LIST] [--prepare]
#                                 [-- SBATCH_OPTIONS...]
#   --split N        one split, 1-3 (default: $SPLIT, else 1)
#   --splits LIST    each stage as one job array over LIST (e.g. 1-3); task N of a stage
#                    waits for task N of the stage before it (aftercorr); with two splits or
#                    more, summarize (one job) follows every split's combine
#   --models LIST    comma list of single_frame,tsn,3d,c3d,rnn,tsn_flow,tsn_rgbdiff; all = the
#                    first five (default: $MODELS, else all); single_frame,3d is the assignment's
#                    study, all,tsn_flow adds TSN's flow stream (after the extract_flow array,
#                    queued once for every split), all,tsn_flow,tsn_rgbdiff TSN's three modalities
#   --prepare        queue prepare.sh first (also PREPARE=1); leave it out when
#                    $DATA_DIR/UCF-101-hdf5 (HMDB-51: hmdb51-hdf5) is already complete
#   SBATCH_OPTIONS   given to every sbatch, e.g. --account=proj --partition=gpu
#
# Before queueing anything it checks what the chosen models need (the split lists, the videos,
# the Kinetics and C3D files) and stops with one line if something is missing. DATASET=hmdb51
# runs the study on HMDB-51 (DATA_DIR/testTrainMulti_7030_splits, hmdb51/ or hmdb51-hdf5/; runs in
# runs/hmdb51/ unless RUNS_DIR is set); the default, auto, takes the dataset DATA_DIR holds. The jobs
# inherit this shell's environment (REPO_DIR, DATA_DIR, RUNS_DIR, PYTHON, VAL_GROUPS,
# *_ARGS..., see jobs/README.md). Prints one "stage job_id" line per queued job.
set -euo pipefail

REPO_DIR=${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# From next to this script rather than REPO_DIR, which is checked below.
# shellcheck source=../common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"  # die, parse_submit_args, preflight_study

split=${SPLIT:-1}
array=
prepare=${PREPARE:-0}
models=${MODELS:-all}
parse_submit_args sbatch split array "$@"

if [[ -n $array ]]; then
    array_splits=$(expand_splits "$array") ||
        die "--splits takes an array range of splits 1-3 such as 1-3 or 1,3, got '$array'"
    mapfile -t array_splits <<<"$array_splits"
    unset SPLIT  # each task takes its split from SLURM_ARRAY_TASK_ID
else
    [[ $split =~ ^[123]$ ]] || die "--split must be 1, 2 or 3, got '$split'"
    array_splits=("$split")
    export SPLIT=$split
fi
parse_models "$models"
[[ -f $REPO_DIR/jobs/slurm/train_single_frame.sh ]] || die "REPO_DIR=$REPO_DIR is not this repository"
dataset_defaults  # DATA_DIR, DATASET (auto: from DATA_DIR), RUNS_DIR (runs/hmdb51 for HMDB-51)
export REPO_DIR DATA_DIR DATASET RUNS_DIR
preflight_study "$prepare" "${MODELS_CHOSEN[@]}"
mkdir -p "$RUNS_DIR/logs"  # Slurm fails a job whose log directory is missing

queued=()

# submit DEPENDENCY STAGE: queue jobs/slurm/STAGE.sh; its id goes to JOB_ID and stdout.
submit() {
    local dependency=$1 stage=$2 out
    local -a args=(--parsable --chdir="$REPO_DIR")
    if [[ $stage == extract_flow ]]; then  # an array of shards (the script's --array), not of splits
        args+=(--output="$RUNS_DIR/logs/%x-%A_%a.log")
    elif [[ -n $array && $stage != prepare && $stage != summarize ]]; then
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
tests=()
for model in "${MODELS_CHOSEN[@]}"; do
    if [[ $model == rnn ]]; then
        submit "$prepare_dependency" extract_features
        submit "$after:$JOB_ID" train_rnn
    elif [[ $model == tsn_flow ]]; then
        submit "$prepare_dependency" extract_flow  # once: the flow of a video is every split's
        submit "afterok:$JOB_ID" train_tsn_flow    # after every shard of the array
    else
        submit "$prepare_dependency" "train_$model"
    fi
    submit "$after:$JOB_ID" "test_$model"
    tests+=("$JOB_ID")
done
submit "$after:$(IFS=:; echo "${tests[*]}")" combine
if ((${#array_splits[@]} > 1)); then
    submit "afterok:$JOB_ID" summarize  # after every task of the combine array
fi
echo "queued ${#queued[@]} jobs; cancel them all with: scancel ${queued[*]}" >&2
