#!/bin/bash
# Fine-tune the 3D ResNet-50 (Kinetics-initialised) on one split.
# Scale by editing the resource lines only, e.g. 4 nodes x 4 GPUs:
#   select=4:ncpus=64:ngpus=4:mem=256gb and GPUS_PER_NODE=4 (ncpus = CPUs per node).
#PBS -N ucf-train-3d
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
if [[ ! -f $REPO_DIR/jobs/common.sh ]]; then
    echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2
    exit 2
fi
# shellcheck source=../common.sh
source "$REPO_DIR/jobs/common.sh"
init_job pbs train_3d

output_dir=$(stage_dir 3d)
kinetics_checkpoint=${KINETICS_CHECKPOINT:-$DATA_DIR/resnet-50-kinetics.pth}
check_dataset
if [[ $DRY_RUN != 1 && $kinetics_checkpoint != none ]]; then  # "none": train from scratch
    require_file "$kinetics_checkpoint" "Put resnet-50-kinetics.pth in DATA_DIR or set KINETICS_CHECKPOINT."
fi
discover_nodes
read_extra_args TRAIN_3D_ARGS
run_stage "$output_dir" "$output_dir/COMPLETE" torchrun train_3d.py \
    --data-dir "$DATA_DIR" --split "$SPLIT" --output-dir "$output_dir" --workers "$WORKERS" \
    --kinetics-checkpoint "$kinetics_checkpoint" "${EXTRA_ARGS[@]}"
