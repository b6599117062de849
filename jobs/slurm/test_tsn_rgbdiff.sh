#!/bin/bash
# Evaluate the trained RGB-difference stream on the split's test videos: 25 snippets x 10 crops
# (resumable; videos are shared out over all ranks). Scale like train_tsn.sh.
#SBATCH --job-name=ucf-test-rgbdiff
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=96G
#SBATCH --time=02:00:00
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
[[ -f $REPO_DIR/jobs/common.sh ]] || { echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2; exit 2; }
# shellcheck source=/dev/null  # common.sh is linted on its own; following it here costs ~1 s a script
source "$REPO_DIR/jobs/common.sh"
init_job slurm test_tsn_rgbdiff
stage_test_tsn_rgbdiff
