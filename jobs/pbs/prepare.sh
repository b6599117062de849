#!/bin/bash
# Decode UCF-101 or HMDB-51 videos into HDF5 (CPU only, resumable). Resources: one node, many cores.
#PBS -N ucf-prepare
#PBS -S /bin/bash
#PBS -l select=1:ncpus=32:mem=64gb
#PBS -l walltime=08:00:00
#PBS -j oe
#PBS -r y
# PBS has no warning-signal directive: jobs/common.sh sends USR1 to this shell WARN_SECONDS
# (300) before the walltime, then checkpoints and resubmits (see jobs/README.md).
set -euo pipefail
# PBS starts the job in $HOME from a copy of this file: find the repository from the qsub
# directory (submit from the repository root, or pass -v REPO_DIR=...).
REPO_DIR=${REPO_DIR:-${PBS_O_WORKDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
[[ -f $REPO_DIR/jobs/common.sh ]] || { echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2; exit 2; }
# shellcheck source=/dev/null  # common.sh is linted on its own; following it here costs ~1 s a script
source "$REPO_DIR/jobs/common.sh"
init_job pbs prepare
stage_prepare
