#!/bin/bash
# Optical flow of every video (CPU only, resumable), as a job array: each task extracts one shard
# (every 16th video); `sbatch --array=0-63 jobs/slurm/extract_flow.sh` spreads it wider.
#SBATCH --job-name=ucf-flow
#SBATCH --array=0-15
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=16G
#SBATCH --time=04:00:00
# USR1 to the batch shell 5 min before the time limit -> stop, then requeue (B: = the batch shell
# only; see jobs/common.sh). Finished videos are kept and skipped by the requeued task.
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=runs/logs/%x-%j.log
set -euo pipefail
# Slurm runs a copy of this file from its spool directory, so find the repository from the
# submit directory (submit from the repository root, or set REPO_DIR).
REPO_DIR=${REPO_DIR:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
[[ -f $REPO_DIR/jobs/common.sh ]] || { echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2; exit 2; }
# shellcheck source=/dev/null  # common.sh is linted on its own; following it here costs ~1 s a script
source "$REPO_DIR/jobs/common.sh"
init_job slurm extract_flow
stage_extract_flow
