#!/bin/bash
# Fine-tune the 3D ResNet-50 (Kinetics-initialised) on one split.
# Scale by editing these lines only, e.g. 4 nodes x 4 GPUs: --nodes=4 --gpus-per-node=4
# --cpus-per-task=64 (CPUs per node, shared by its 4 ranks' loaders) --mem=256G.
#SBATCH --job-name=ucf-train-3d
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=96G
#SBATCH --time=04:00:00
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
init_job slurm train_3d
stage_train_3d
