#!/bin/bash
# Train TSN's flow stream (5 stacked flow fields, 3 segments, ImageNet ResNet-50 with cross-modality
# initialisation, tsn-pytorch's flow recipe: 340 epochs) on one split, from FLOW_DIR (the extract_flow
# array's output); --batch-size per GPU = 128 / GPUs where it divides evenly, else 32 (jobs/README.md).
# Scale by editing these lines only, as train_tsn.sh. Resumes over as many slots as it needs.
#SBATCH --job-name=ucf-train-flow
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
init_job slurm train_tsn_flow
stage_train_tsn_flow
