#!/bin/bash
# Decode UCF-101 videos into HDF5 (CPU only, resumable). Resources: one node, many cores.
#SBATCH --job-name=ucf-prepare
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=32
#SBATCH --mem=64G
#SBATCH --time=08:00:00
# USR1 to the batch shell 5 min before the time limit -> checkpoint, then requeue (B: = the
# batch shell only; it relays the request to every node, see jobs/common.sh).
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
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
init_job slurm prepare

videos_dir=${VIDEOS_DIR:-$DATA_DIR/UCF-101}
if [[ $DRY_RUN != 1 ]]; then
    check_python
    require_file "$videos_dir" "Download and unpack UCF-101 there, or set VIDEOS_DIR."
fi
read_extra_args PREPARE_ARGS
cmd=("$PYTHON" "$REPO_DIR/prepare_ucf101.py" --videos "$videos_dir" --out "$DATA_DIR/UCF-101-hdf5"
    --workers "${WORKERS:-$(cpus_per_node)}")
[[ -z ${STORAGE:-} ]] || cmd+=(--storage "$STORAGE")
run_stage "$DATA_DIR/UCF-101-hdf5" "" local "${cmd[@]}" "${EXTRA_ARGS[@]}"
