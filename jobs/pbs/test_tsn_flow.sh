#!/bin/bash
# Evaluate the trained flow stream on the split's test videos: 25 snippets x 10 crops, from FLOW_DIR
# (flow of the training's extraction settings; resumable). Scale like train_tsn.sh.
#PBS -N ucf-test-flow
#PBS -S /bin/bash
#PBS -l select=1:ncpus=16:ngpus=1:mem=96gb
#PBS -l walltime=02:00:00
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
init_job pbs test_tsn_flow
stage_test_tsn_flow
