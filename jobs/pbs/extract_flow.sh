#!/bin/bash
# Optical flow of every video (CPU only, resumable), as a job array: each task extracts one shard
# (every 16th video); `qsub -J 0-63 -v SHARDS=64 jobs/pbs/extract_flow.sh` spreads it wider.
#PBS -N ucf-flow
#PBS -J 0-15
#PBS -S /bin/bash
#PBS -l select=1:ncpus=16:mem=16gb
#PBS -l walltime=04:00:00
#PBS -j oe
#PBS -r y
# PBS has no warning-signal directive: jobs/common.sh sends USR1 to this shell WARN_SECONDS
# (300) before the walltime, then stops and resubmits (see jobs/README.md).
set -euo pipefail
export SHARDS=${SHARDS:-16}  # the number of tasks of the -J range above: PBS does not tell a task
# PBS starts the job in $HOME from a copy of this file: find the repository from the qsub
# directory (submit from the repository root, or pass -v REPO_DIR=...).
REPO_DIR=${REPO_DIR:-${PBS_O_WORKDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
[[ -f $REPO_DIR/jobs/common.sh ]] || { echo "error: $REPO_DIR/jobs/common.sh not found; submit from the repository root or set REPO_DIR" >&2; exit 2; }
# shellcheck source=/dev/null  # common.sh is linted on its own; following it here costs ~1 s a script
source "$REPO_DIR/jobs/common.sh"
init_job pbs extract_flow
stage_extract_flow
