#!/bin/bash
# Fine-tune C3D (Sports-1M weights, $DATA_DIR/c3d-pretrained.pth or C3D_CHECKPOINT) on one
# split with pytorch-video-recognition's recipe (100 epochs, batch 20 per GPU).
# Scale by editing the resource lines only, e.g. 4 nodes x 4 GPUs:
#   select=4:ncpus=64:ngpus=4:mem=256gb and GPUS_PER_NODE=4 (ncpus = CPUs per node).
#PBS -N ucf-train-c3d
#PBS -S /bin/bash
#PBS -l select=1:ncpus=16:ngpus=1:mem=96gb
#PBS -l walltime=04:00:00
#PBS -l place=scatter
#PBS -j oe
#PBS -r y
# PBS has no warning-signal directive: jobs/common.sh sends USR1 to this shell WARN_SECONDS
# (300) before the walltime, then checkpoints and resubmits (see jobs/README.md).
# GPUs per node: keep equal to ngpus in the select line (PBS exports no such variable).
GPUS_PER_NODE=${GPUS_PER_NODE:-1}
set -euo pipefail
# PBS starts the job in $HOME from a copy of this file: find the repository from the qsub
# directory (submit from the repository root, or pass -v REPO_DIR=...).
REPO_DIR=${REPO_DIR:-${PBS_O_WORKDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
[[ -f $REPO_DIR/jobs/common.sh ]] || { echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2; exit 2; }
# shellcheck source=/dev/null  # common.sh is linted on its own; following it here costs ~1 s a script
source "$REPO_DIR/jobs/common.sh"
init_job pbs train_c3d
stage_train_c3d
