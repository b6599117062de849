#!/bin/bash
# Combine the single-frame and 3D predictions of one split into the report (CPU, seconds).
#PBS -N ucf-combine
#PBS -S /bin/bash
#PBS -l select=1:ncpus=2:mem=8gb
#PBS -l walltime=00:30:00
#PBS -j oe
#PBS -r y
set -euo pipefail
# PBS starts the job in $HOME from a copy of this file: find the repository from the qsub
# directory (submit from the repository root, or pass -v REPO_DIR=...).
REPO_DIR=${REPO_DIR:-${PBS_O_WORKDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
if [[ ! -f $REPO_DIR/jobs/common.sh ]]; then
    echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2
    exit 2
fi
# shellcheck source=../common.sh
source "$REPO_DIR/jobs/common.sh"
init_job pbs combine

single_frame_predictions=$(stage_dir single_frame)/predictions
predictions_3d=$(stage_dir 3d)/predictions
if [[ $DRY_RUN != 1 ]]; then
    check_python
    require_file "$single_frame_predictions" "Run test_single_frame first."
    require_file "$predictions_3d" "Run test_3d first."
fi
read_extra_args COMBINE_ARGS
run_stage "$(stage_dir report)" "" local "$PYTHON" "$REPO_DIR/combine_results.py" \
    --data-dir "$DATA_DIR" --split "$SPLIT" --single-frame "$single_frame_predictions" \
    --3d "$predictions_3d" --output-dir "$(stage_dir report)" "${EXTRA_ARGS[@]}"
