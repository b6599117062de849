#!/bin/bash
# Combine the single-frame and 3D predictions of one split into the report (CPU, seconds).
#SBATCH --job-name=ucf-combine
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=00:30:00
#SBATCH --open-mode=append
#SBATCH --output=runs/logs/%x-%j.log
set -euo pipefail
# Slurm runs a copy of this file from its spool directory, so find the repository from the
# submit directory (submit from the repository root, or set REPO_DIR).
REPO_DIR=${REPO_DIR:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
if [[ ! -f $REPO_DIR/jobs/common.sh ]]; then
    echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2
    exit 2
fi
# shellcheck source=../common.sh
source "$REPO_DIR/jobs/common.sh"
init_job slurm combine

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
