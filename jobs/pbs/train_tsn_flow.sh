#!/bin/bash
# Train TSN's flow stream (5 stacked flow fields, 3 segments, ImageNet ResNet-50 with cross-modality
# initialisation, tsn-pytorch's flow recipe: 340 epochs) on one split, from FLOW_DIR (the extract_flow
# array's output); --batch-size per GPU = 128 / GPUs where it divides evenly, else 32 (jobs/README.md).
# Scale by editing the resource lines only, as train_tsn.sh. Resumes over as many slots as it needs.
#PBS -N ucf-train-flow
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
init_job pbs train_tsn_flow
stage_train_tsn_flow
