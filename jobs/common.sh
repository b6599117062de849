# shellcheck shell=bash
# Shared logic of the batch jobs in jobs/slurm/ and jobs/pbs/: paths and defaults, node and
# GPU discovery, the torchrun command, relaying the "time is nearly up" signal to the Python
# workers, the requeue/resubmit decision, and the body of every stage (stage_*, at the end).
# Sourced by the job scripts and submit_all.sh, never executed.
#
# DRY_RUN=1 prints the command(s) a job would launch, one per line on stdout, and runs nothing.
#
# Stop protocol (see jobs/README.md):
#   1. The scheduler warns the batch shell: Slurm through `#SBATCH --signal=B:USR1@300`, PBS
#      through a timer started here from the walltime (PBS has no such directive). A user can
#      do the same by hand: `scancel --batch --signal=USR1 JOBID` or `qsig -s USR1 JOBID`.
#   2. The batch shell waits on its launchers with `wait` (which a trapped signal interrupts;
#      a foreground command would delay the trap until it returned), so the trap runs at once:
#      it touches a stop file on the shared file system and sends SIGTERM to what it started
#      on this node.
#   3. jobs/launch_node.sh, one per node, relays the request as $STOP_SIGNAL to the Python
#      workers, which finish the step, write the checkpoint and exit 75.
#   4. The batch shell then requeues (Slurm) or resubmits (PBS) the job unless the stage's
#      marker file says it is complete, or MAX_RESTARTS is used up.

EX_STOPPED=75  # the Python scripts' status for "checkpoint written, run me again"

log() { printf '[%s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }

die() {
    printf 'error: %s\n' "$*" >&2
    exit 2
}

# Print a command as one shell-quoted line.
print_cmd() {
    local line
    printf -v line '%q ' "$@"
    printf '%s\n' "${line% }"
}

# init_job SCHEDULER STAGE: set every path and default, cd to the repository, install the
# stop trap. SCHEDULER is the family the script was written for (slurm|pbs); it falls back to
# "local" when that scheduler's variables are absent, so a job script also runs by hand.
init_job() {
    JOB_SCHEDULER=$1
    STAGE=$2
    if [[ $JOB_SCHEDULER == slurm && -n ${SLURM_JOB_ID:-} ]]; then
        SCHEDULER=slurm
        JOB_ID=$SLURM_JOB_ID
    elif [[ $JOB_SCHEDULER == pbs && -n ${PBS_JOBID:-} ]]; then
        SCHEDULER=pbs
        JOB_ID=$PBS_JOBID
    else
        SCHEDULER=local
        JOB_ID=local-$$
    fi

    REPO_DIR=$(cd "$REPO_DIR" && pwd) || die "REPO_DIR=$REPO_DIR is not a directory"
    cd "$REPO_DIR" || die "cannot cd to $REPO_DIR"  # a relative DATA_DIR is the repository's, as for the scripts
    dataset_defaults  # DATA_DIR, DATASET and its folders, RUNS_DIR
    PYTHON=${PYTHON:-$REPO_DIR/.venv/bin/python}
    # An array task's index wins over an inherited SPLIT: `sbatch --array=1-3` / `qsub -J 1-3`;
    # extract_flow's array spreads the videos instead (its index is a shard: flow_shard).
    if [[ $STAGE == extract_flow ]]; then
        SPLIT=${SPLIT:-1}
    else
        SPLIT=${SLURM_ARRAY_TASK_ID:-${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-${SPLIT:-1}}}}
    fi
    [[ $SPLIT =~ ^[123]$ ]] || die "SPLIT must be 1, 2 or 3 (the official $DATASET_NAME splits), got '$SPLIT'"
    MAX_RESTARTS=${MAX_RESTARTS:-50}
    [[ $MAX_RESTARTS =~ ^[0-9]+$ ]] || die "MAX_RESTARTS must be a number, got '$MAX_RESTARTS'"
    STOP_SIGNAL=${STOP_SIGNAL:-TERM}
    STOP_POLL_SECONDS=${STOP_POLL_SECONDS:-5}
    WARN_SECONDS=${WARN_SECONDS:-300}
    DRY_RUN=${DRY_RUN:-0}
    export STOP_SIGNAL STOP_POLL_SECONDS

    STOP_REQUESTED=0
    NNODES=
    NPROC_PER_NODE=
    LAUNCHER_PIDS=()
    LOCAL_PIDS=()
    TIMER_PID=
    STOP_FILE=
    trap 'request_stop USR1' USR1
    trap 'request_stop TERM' TERM
    trap 'request_stop INT' INT

    if [[ $DRY_RUN != 1 ]]; then
        mkdir -p "$RUNS_DIR/logs" || die "cannot create $RUNS_DIR/logs"
        if [[ $SCHEDULER == pbs ]]; then
            # PBS copies its own output file back only at the end and cannot name it per job
            # id; write a live log next to the Slurm ones instead.
            local log_file="$RUNS_DIR/logs/$STAGE-${JOB_ID%%.*}.log"
            echo "logging to $log_file"
            exec >>"$log_file" 2>&1
        fi
        log "stage=$STAGE dataset=$JOB_DATASET scheduler=$SCHEDULER job=$JOB_ID split=$SPLIT restart=$(restart_count)/$MAX_RESTARTS host=$(hostname)"
    fi
}

# dataset_defaults: DATA_DIR's default (the Python scripts' --data-dir default), then the dataset of
# every stage: DATASET=ucf101 or hmdb51, or auto (the default): the one whose split folder DATA_DIR
# holds, as the scripts' --dataset auto decides (ucf101 when neither; both is one line and exit 2).
# Sets JOB_DATASET (never auto), DATASET_NAME and the dataset's folders under DATA_DIR (SPLIT_FOLDER,
# VIDEO_FOLDER, HDF5_FOLDER, FLOW_FOLDER), DATASET_ARGS (`--dataset DATASET` for every Python command
# unless auto) and RUNS_DIR's default: HMDB-51's runs go to runs/hmdb51/, so a job never resumes or
# tests a UCF-101 checkpoint on HMDB-51 (nor combines or summarizes the two).
dataset_defaults() {
    DATA_DIR=${DATA_DIR:-$REPO_DIR/data}
    DATASET=${DATASET:-auto}
    case $DATASET in
        ucf101 | hmdb51) JOB_DATASET=$DATASET ;;
        auto)
            JOB_DATASET=ucf101
            if [[ -d $DATA_DIR/testTrainMulti_7030_splits ]]; then
                [[ ! -d $DATA_DIR/ucfTrainTestlist ]] ||
                    die "$DATA_DIR holds both ucfTrainTestlist/ and testTrainMulti_7030_splits/: set DATASET=ucf101 or DATASET=hmdb51"
                JOB_DATASET=hmdb51
            fi
            ;;
        *) die "DATASET must be ucf101, hmdb51 or auto, got '$DATASET'" ;;
    esac
    if [[ $JOB_DATASET == hmdb51 ]]; then
        DATASET_NAME=HMDB-51 SPLIT_FOLDER=testTrainMulti_7030_splits VIDEO_FOLDER=hmdb51
        HDF5_FOLDER=hmdb51-hdf5 FLOW_FOLDER=hmdb51-flow
        RUNS_DIR=${RUNS_DIR:-$REPO_DIR/runs/hmdb51}
    else
        DATASET_NAME=UCF-101 SPLIT_FOLDER=ucfTrainTestlist VIDEO_FOLDER=UCF-101
        HDF5_FOLDER=UCF-101-hdf5 FLOW_FOLDER=UCF-101-flow
        RUNS_DIR=${RUNS_DIR:-$REPO_DIR/runs}
    fi
    DATASET_ARGS=()
    [[ $DATASET == auto ]] || DATASET_ARGS=(--dataset "$DATASET")
}

# Where the released videos are, and what to do when they are not.
videos_hint() {
    if [[ $JOB_DATASET == hmdb51 ]]; then
        echo "Unpack hmdb51_org.rar and its per-action .rar files there, or set VIDEOS_DIR."
    else
        echo "Download and unpack UCF-101 there, or set VIDEOS_DIR."
    fi
}

stage_dir() { printf '%s/split%s/%s\n' "$RUNS_DIR" "$SPLIT" "$1"; }

# Word-split an env var of extra flags (e.g. TRAIN_SF_ARGS="--epochs 30 --batch-size 64")
# into the array EXTRA_ARGS. Flags with spaces inside one value are not supported.
read_extra_args() {
    EXTRA_ARGS=()
    read -ra EXTRA_ARGS <<<"${!1:-}"
}

restart_count() {
    case $SCHEDULER in
        slurm) echo "${SLURM_RESTART_COUNT:-0}" ;;
        pbs) echo "${RESTART_COUNT:-0}" ;;  # passed on by pbs_resubmit
        *) echo 0 ;;
    esac
}

# Unique host names of the allocation, in scheduler order, one per line.
node_hosts() {
    case $SCHEDULER in
        slurm) scontrol show hostnames "$SLURM_JOB_NODELIST" ;;
        pbs) awk 'NF && !seen[$1]++ { print $1 }' "$PBS_NODEFILE" ;;
        *) echo localhost ;;
    esac
}

gpus_per_node() {
    local n=${GPUS_PER_NODE:-}
    if [[ -z $n && $SCHEDULER == slurm ]]; then
        n=${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}
        n=${n##*:}  # SLURM_GPUS_PER_NODE may be "a100:4"
    fi
    if [[ -z $n && -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
        local -a devices
        IFS=, read -ra devices <<<"$CUDA_VISIBLE_DEVICES"
        n=${#devices[@]}
    fi
    if [[ -z $n ]] && command -v nvidia-smi >/dev/null; then
        n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU') || n=
    fi
    n=${n:-1}
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "cannot tell GPUs per node (got '$n'); set GPUS_PER_NODE"
    echo "$n"
}

cpus_per_node() {
    local n
    case $SCHEDULER in
        slurm) n=${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-}} ;;
        pbs) n=${NCPUS:-${PBS_NUM_PPN:-}} ;;
    esac
    echo "${n:-$(nproc)}"
}

# A rendezvous port derived from the job id, so two jobs sharing a node do not collide.
# Range 10000-30002 stays below Linux's ephemeral ports (32768+).
master_port() {
    if [[ -n ${MASTER_PORT:-} ]]; then
        echo "$MASTER_PORT"
        return
    fi
    [[ $SCHEDULER != local ]] || { echo 29500; return; }
    local digits=${JOB_ID%%[!0-9]*}
    local index=${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-0}}
    echo $((10000 + 10#${digits:-0} % 20000 + 10#$index))
}

# Discover the allocation: HOSTS (array), NNODES, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT,
# WORKERS (DataLoader processes per rank: the node's CPUs shared by its ranks, one core left
# for each rank's main process).
discover_nodes() {
    local hosts cpus
    hosts=$(node_hosts) || die "cannot list the nodes of job $JOB_ID"
    mapfile -t HOSTS <<<"$hosts"
    [[ -n ${HOSTS[0]:-} ]] || die "the node list of job $JOB_ID is empty"
    NNODES=${#HOSTS[@]}
    NPROC_PER_NODE=$(gpus_per_node) || exit
    MASTER_ADDR=${HOSTS[0]}
    MASTER_PORT=$(master_port)
    cpus=$(cpus_per_node)
    WORKERS=${WORKERS:-$((cpus / NPROC_PER_NODE > 1 ? cpus / NPROC_PER_NODE - 1 : 1))}
}

# Fill the array TORCHRUN_CMD: torchrun over all nodes for SCRIPT (relative to the repo) ARGS.
build_torchrun() {
    local script=$1
    shift
    local -a base
    if [[ -n ${TORCHRUN:-} ]]; then
        read -ra base <<<"$TORCHRUN"
    else
        base=("$PYTHON" -m torch.distributed.run)  # = torchrun, but from $PYTHON's environment
    fi
    TORCHRUN_CMD=("${base[@]}"
        --nnodes "$NNODES" --nproc_per_node "$NPROC_PER_NODE"
        --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv_id "$JOB_ID"
        "$REPO_DIR/$script" "$@")
}

# Variables a remote node needs that pbsdsh/ssh do not carry: `NAME=value` words.
forwarded_env() {
    local name
    for name in PATH LD_LIBRARY_PATH PYTHONPATH VIRTUAL_ENV CONDA_PREFIX TORCH_HOME \
        XDG_CACHE_HOME HF_HOME OMP_NUM_THREADS STOP_SIGNAL STOP_POLL_SECONDS \
        $(compgen -e | grep -E '^(NCCL|TORCH|GLOO)_' || true); do
        [[ -n ${!name+set} ]] && printf '%s=%s\n' "$name" "${!name}"
    done | sort -u
}

# start_launcher KIND CMD...: run CMD in the background (KIND=local: on this node, so the stop
# trap signals it directly; remote: on other nodes, reached through the stop file only).
# With DRY_RUN=1 it only prints CMD.
start_launcher() {
    local kind=$1
    shift
    if [[ $DRY_RUN == 1 ]]; then
        print_cmd "$@"
        return
    fi
    log "launch: $(print_cmd "$@")"
    "$@" &
    LAUNCHER_PIDS+=($!)
    [[ $kind == local ]] && LOCAL_PIDS+=($!)
    return 0
}

# Start one torchrun per node for SCRIPT ARGS (after discover_nodes and build_torchrun).
launch_torchrun() {
    local launcher=("$BASH" "$REPO_DIR/jobs/launch_node.sh" "$STOP_FILE")
    if ((NNODES == 1)); then
        start_launcher local "${launcher[@]}" "${TORCHRUN_CMD[@]}"
    elif [[ $SCHEDULER == slurm ]]; then
        # One task per node; the step gets the job's GPUs (srun's default for GRES). Slurm no
        # longer passes --cpus-per-task on to srun by itself (22.05+), so say it.
        local srun_cmd=(srun --nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1)
        [[ -n ${SLURM_CPUS_PER_TASK:-} ]] && srun_cmd+=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
        local -a srun_extra
        read -ra srun_extra <<<"${SRUN_ARGS:-}"
        start_launcher remote "${srun_cmd[@]}" "${srun_extra[@]}" "${launcher[@]}" "${TORCHRUN_CMD[@]}"
    else
        launch_pbs_nodes "${launcher[@]}" "${TORCHRUN_CMD[@]}"
    fi
}

# PBS: torchrun on this (first) node locally, on every other node through pbsdsh (default) or
# ssh (PBS_LAUNCHER=ssh). pbsdsh starts the process through the MoM (TM interface), so PBS
# tracks, accounts and kills it with the job and no ssh keys are needed; `-n INDEX` addresses
# a line of $PBS_NODEFILE and works on OpenPBS/PBS Pro and Torque alike. Neither carries our
# environment, so it is passed explicitly with env(1); launch_node.sh cds to the repo itself.
launch_pbs_nodes() {
    local -a env_words remote
    mapfile -t env_words < <(forwarded_env)
    start_launcher local "$@"
    local i host index
    for ((i = 1; i < NNODES; i++)); do
        host=${HOSTS[i]}
        remote=(/usr/bin/env "${env_words[@]}" "NODE_LOG=$RUNS_DIR/logs/$STAGE-${JOB_ID%%.*}.$host.log" "$@")
        case ${PBS_LAUNCHER:-pbsdsh} in
            pbsdsh)
                index=$(awk -v h="$host" '$1 == h { print NR - 1; exit }' "$PBS_NODEFILE")
                start_launcher remote pbsdsh -n "$index" -- "${remote[@]}"
                ;;
            ssh)
                start_launcher remote ssh -o BatchMode=yes "$host" "$(print_cmd "${remote[@]}")"
                ;;
            *) die "PBS_LAUNCHER must be pbsdsh or ssh, got '$PBS_LAUNCHER'" ;;
        esac
    done
}

# Trap handler: ask everything this job started to checkpoint and stop.
request_stop() {
    STOP_REQUESTED=1
    log "received SIG$1: asking the workers to checkpoint and stop"
    if [[ -n $STOP_FILE ]]; then : >"$STOP_FILE" || true; fi
    local pid
    for pid in "${LOCAL_PIDS[@]}"; do
        kill -s TERM "$pid" 2>/dev/null || true
    done
}

# PBS only: warn ourselves WARN_SECONDS before the walltime ends.
start_warning_timer() {
    [[ $SCHEDULER == pbs ]] || return 0
    local left
    if ! left=$(pbs_seconds_left) || [[ -z $left ]]; then
        log "warning: walltime unknown (set WALLTIME_SECONDS); no checkpoint before the kill"
        return 0
    fi
    local delay=$((left - WARN_SECONDS > 1 ? left - WARN_SECONDS : 1))
    log "will ask for a checkpoint in ${delay}s (walltime left ${left}s, WARN_SECONDS=$WARN_SECONDS)"
    local shell_pid=$$
    (
        sleep "$delay" &
        sleep_pid=$!
        trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
        wait "$sleep_pid" && kill -s USR1 "$shell_pid"
    ) &
    TIMER_PID=$!
}

hms_to_seconds() {
    local total=0 part
    local -a parts
    IFS=: read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        total=$((total * 60 + 10#$part))
    done
    echo "$total"
}

# Seconds of walltime left: WALLTIME_SECONDS, else Torque's PBS_WALLTIME, else from qstat.
pbs_seconds_left() {
    if [[ -n ${WALLTIME_SECONDS:-} ]]; then
        echo "$WALLTIME_SECONDS"
    elif [[ -n ${PBS_WALLTIME:-} ]]; then
        echo "$PBS_WALLTIME"
    else
        local limit used
        limit=$(pbs_job_attr "$PBS_JOBID" Resource_List.walltime) && [[ -n $limit ]] || return 1
        used=$(pbs_job_attr "$PBS_JOBID" resources_used.walltime) || used=
        echo $(($(hms_to_seconds "$limit") - $(hms_to_seconds "${used:-0}")))
    fi
}

# Wait for every launcher; the first non-zero status wins. A launcher that fails makes the
# others stop too (through the stop file) instead of hanging in a collective until NCCL's
# timeout, without counting as a scheduler warning.
wait_launchers() {
    local status=0 rc pid
    local -a running=("${LAUNCHER_PIDS[@]}")
    while ((${#running[@]})); do
        local -a still=()
        for pid in "${running[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then
                still+=("$pid")
                continue
            fi
            rc=0
            wait "$pid" || rc=$?
            if ((rc != 0)); then
                ((status != 0)) || status=$rc
                [[ -z $STOP_FILE ]] || : >"$STOP_FILE" || true
            fi
        done
        running=("${still[@]}")
        if ((${#running[@]})); then
            sleep "$STOP_POLL_SECONDS" &
            wait $! || true  # returns early when a trapped signal arrives
        fi
    done
    return "$status"
}

# run_stage OUTPUT_DIR MARKER KIND CMD...: run the stage and decide what happens next.
# KIND=torchrun: CMD is SCRIPT ARGS, run by torchrun on every node (call discover_nodes first:
# it sets the WORKERS that ARGS usually contain).
# KIND=local: CMD runs as is on this node (CPU stages).
# MARKER is the file that proves the stage complete ("" = exit status 0 is enough).
# A stage of several commands (a test and then its validation run) calls begin_stage, run_step
# for each command while the previous one succeeded, then end_stage.
run_stage() {
    local output_dir=$1 marker=$2 kind=$3 status=0
    shift 3
    begin_stage "$output_dir" "$marker"
    run_step "$kind" "$@" || status=$?
    end_stage "$status" "$marker"
}

# begin_stage OUTPUT_DIR MARKER: the stop file, the output folder and (PBS) the warning timer.
begin_stage() {
    local output_dir=$1 marker=$2
    # On the shared file system (every node polls it), away from the outputs.
    STOP_FILE="$RUNS_DIR/logs/.stop-$STAGE-${JOB_ID//[^A-Za-z0-9_.-]/_}"
    [[ $DRY_RUN != 1 ]] || return 0
    mkdir -p "$output_dir" || die "cannot create $output_dir"
    rm -f "$STOP_FILE"
    if [[ -n $marker && -e $marker ]]; then
        log "$marker exists; running anyway (the script decides whether work is left)"
    fi
    start_warning_timer
}

# run_step KIND CMD...: launch CMD (see run_stage) and wait; returns its status, EX_STOPPED
# without starting it when a stop was already requested. DRY_RUN=1: print it, return 0.
run_step() {
    local kind=$1
    shift
    if [[ $kind == torchrun ]]; then
        [[ -n ${NPROC_PER_NODE:-} ]] || die "run_step torchrun needs discover_nodes first"
        build_torchrun "$@"
    fi
    if [[ $DRY_RUN == 1 ]]; then
        if [[ $kind == torchrun ]]; then launch_torchrun; else start_launcher local "$@"; fi
        return 0
    fi
    ((STOP_REQUESTED == 0)) || return "$EX_STOPPED"  # warned before this step started
    LAUNCHER_PIDS=()
    LOCAL_PIDS=()
    if [[ $kind == torchrun ]]; then
        log "nodes=${HOSTS[*]} nproc_per_node=$NPROC_PER_NODE rendezvous=$MASTER_ADDR:$MASTER_PORT workers=$WORKERS"
        launch_torchrun
    else
        start_launcher local "$@"
    fi
    wait_launchers
}

# end_stage STATUS MARKER: stop the timer, remove the stop file, then finish_stage (exits).
end_stage() {
    [[ $DRY_RUN != 1 ]] || return 0
    [[ -z $TIMER_PID ]] || kill "$TIMER_PID" 2>/dev/null || true
    rm -f "$STOP_FILE"
    finish_stage "$1" "$2"
}

# finish_stage STATUS MARKER: exit 0 when done, requeue when stopped, fail otherwise.
finish_stage() {
    local status=$1 marker=$2
    # Decided; a requeue makes the scheduler signal us again, which must not re-enter the trap.
    trap '' USR1 TERM INT
    if [[ -n $marker && -e $marker ]] || [[ -z $marker && $status == 0 ]]; then
        log "stage $STAGE complete"
        exit 0
    fi
    if ((STOP_REQUESTED || status == EX_STOPPED)); then
        requeue_job
    fi
    if [[ $status == 0 ]]; then
        log "error: the run exited 0 but $marker is missing; not requeued"
        exit 1
    fi
    log "error: the run failed with status $status; not requeued (see the log above)"
    exit "$status"
}

# Put the job back in the queue to resume from its checkpoint, at most MAX_RESTARTS times.
requeue_job() {
    local count
    count=$(restart_count)
    if ((count >= MAX_RESTARTS)); then
        log "error: stopped after $count restarts (MAX_RESTARTS=$MAX_RESTARTS); not requeued. Submit the job again to resume from the checkpoint."
        exit "$EX_STOPPED"
    fi
    case $SCHEDULER in
        slurm)
            # Same job id, so --dependency=afterok chains keep waiting for the real end.
            if scontrol requeue "$SLURM_JOB_ID"; then
                log "requeued job $SLURM_JOB_ID (restart $((count + 1))/$MAX_RESTARTS)"
                exit 0
            fi
            log "error: 'scontrol requeue $SLURM_JOB_ID' failed (was the job submitted with --no-requeue?). Submit it again to resume."
            ;;
        pbs)
            if pbs_resubmit "$count"; then
                exit 0  # non-zero would make PBS delete our afterok dependents
            fi
            log "error: resubmission failed. Submit the job again to resume."
            ;;
        *)
            log "stopped before the end; run the same command again to resume from the checkpoint"
            ;;
    esac
    exit "$EX_STOPPED"
}

# Value of attribute NAME in `qstat -f JOB` (long values wrap onto tab-indented lines).
pbs_job_attr() {
    qstat -f "$1" | awk -v key="$2" '
        /^\t/ { if (found) { line = $0; sub(/^\t/, "", line); value = value line }; next }
        found { exit }
        $1 == key && $2 == "=" { found = 1; value = $0; sub(/^[^=]*= /, "", value) }
        END { if (found) print value }'
}

# Jobs that wait for JOB with afterok (PBS records them on JOB as "beforeok:ID@server:...").
pbs_dependents() {
    pbs_job_attr "$1" depend | tr ',' '\n' | awk -F: '$1 == "beforeok" {
        for (i = 2; i <= NF; i++) { split($i, id, "@"); print id[1] } }'
}

# DEPEND with NEW_ID added to its afterok list; every other entry is kept as it is (a
# dependency dropped from the list would be unregistered on the other job as well).
pbs_add_afterok() {
    local depend=$1 new_id=$2 entry found=0
    local -a entries out=()
    IFS=, read -ra entries <<<"$depend"
    for entry in "${entries[@]}"; do
        if [[ $entry == afterok:* ]]; then
            entry+=":$new_id"
            found=1
        fi
        out+=("$entry")
    done
    ((found)) || out=("afterok:$new_id" "${out[@]}")
    local IFS=,
    echo "${out[*]}"
}

# The variables a resubmitted PBS job needs, as one qsub -v list.
pbs_job_vars() {
    local name value
    local -a vars=()
    for name in REPO_DIR DATA_DIR DATASET RUNS_DIR SPLIT PYTHON MAX_RESTARTS GPUS_PER_NODE WORKERS \
        VIDEOS_DIR STORAGE KINETICS_CHECKPOINT C3D_CHECKPOINT FEATURES_DIR VAL_GROUPS \
        FLOW_DIR FLOW_METHOD FLOW_ARGS SHARDS SHARD TRAIN_TSN_FLOW_ARGS TEST_TSN_FLOW_ARGS \
        TRAIN_TSN_RGBDIFF_ARGS TEST_TSN_RGBDIFF_ARGS TWO_STREAM_WEIGHTS \
        TEST_3D_MODE PREPARE_ARGS TRAIN_SF_ARGS TEST_SF_ARGS TRAIN_TSN_ARGS TEST_TSN_ARGS \
        TRAIN_3D_ARGS TEST_3D_ARGS TRAIN_C3D_ARGS TEST_C3D_ARGS EXTRACT_ARGS TRAIN_RNN_ARGS \
        TEST_RNN_ARGS COMBINE_ARGS SUMMARY_ARGS WARN_SECONDS STOP_SIGNAL STOP_POLL_SECONDS \
        PBS_LAUNCHER MASTER_PORT TORCHRUN TORCH_HOME QSUB_ARGS; do
        [[ -n ${!name:-} ]] || continue
        value=${!name}
        [[ $value != *,* ]] || die "$name contains a comma, which qsub -v cannot carry: '$value'"
        vars+=("$name=$value")
    done
    vars+=("$@")
    local IFS=,
    echo "${vars[*]}"
}

# parse_submit_args SCHEDULER_CMD SPLIT_VAR SPLITS_VAR ARGS...: the options of submit_all.sh,
# into the caller's variables (which hold the defaults): --split N into SPLIT_VAR, --splits LIST
# into SPLITS_VAR (PBS names the same variable twice: the last one given wins), --prepare sets
# prepare=1, --models LIST into models, and the options after -- go to the array
# scheduler_args, for every SCHEDULER_CMD.
# shellcheck disable=SC2034  # prepare, models and scheduler_args are read by submit_all.sh
parse_submit_args() {
    local command=$1 split_var=$2 splits_var=$3
    shift 3
    while (($#)); do
        case $1 in
            --split)
                printf -v "$split_var" %s "${2:-}"
                shift 2 || die "$1 needs a value"
                ;;
            --splits)
                printf -v "$splits_var" %s "${2:-}"
                shift 2 || die "$1 needs a value"
                ;;
            --prepare)
                prepare=1
                shift
                ;;
            --models)
                models=${2:-}
                shift 2 || die "$1 needs a value"
                ;;
            -h | --help)
                sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
                exit 0
                ;;
            --)
                shift
                break
                ;;
            *) die "unknown option '$1' (options go before --, $command options after it; see --help)" ;;
        esac
    done
    scheduler_args=("$@")
}

# PBS: users may not qrerun (OpenPBS/PBS Pro and Torque reserve it for operators), so submit a
# continuation that starts after this job ends, and hand it our afterok dependents: each now
# waits for the continuation as well, and we exit 0, which releases them from us only.
pbs_resubmit() {
    local count=$1 new_id child depend vars
    local -a qsub_extra
    read -ra qsub_extra <<<"${QSUB_ARGS:-}"
    vars=$(pbs_job_vars "RESTART_COUNT=$((count + 1))") || return 1
    new_id=$(qsub -W "depend=afterany:$PBS_JOBID" -v "$vars" "${qsub_extra[@]}" \
        "$REPO_DIR/jobs/pbs/$STAGE.sh") || return 1
    log "resubmitted as $new_id (restart $((count + 1))/$MAX_RESTARTS)"
    for child in $(pbs_dependents "$PBS_JOBID"); do
        depend=$(pbs_job_attr "$child" depend) || return 1
        qalter -W "depend=$(pbs_add_afterok "$depend" "$new_id")" "$child" || return 1
        log "job $child now also waits for $new_id"
    done
}

# --- the study ---------------------------------------------------------------------------------

# The models of the study ("all"), in the order submit_all.sh queues them and combine lists them;
# then the motion stream (issue 22), queued only when named: tsn_flow needs the extract_flow array
# first (hours of CPU for TV-L1), tsn_rgbdiff reads the videos.
STUDY_MODELS=(single_frame tsn 3d c3d rnn)
MOTION_MODELS=(tsn_flow tsn_rgbdiff)
ALL_MODELS=("${STUDY_MODELS[@]}" "${MOTION_MODELS[@]}")

is_study_model() {
    local known
    for known in "${ALL_MODELS[@]}"; do
        [[ $1 == "$known" ]] && return 0
    done
    return 1
}

# parse_models LIST: a comma list of ALL_MODELS, where "all" stands for the five STUDY_MODELS
# (e.g. all,tsn_flow), into the array MODELS_CHOSEN, in ALL_MODELS order, each once; an unknown
# name is one line and exit 2.
parse_models() {
    local list=$1 name
    local -a given
    local IFS=,
    list=",$list,"
    list=${list//,all,/,${STUDY_MODELS[*]},}
    list=${list#,}
    list=${list%,}
    read -ra given <<<"$list"
    ((${#given[@]})) || die "--models needs a comma list of ${ALL_MODELS[*]}, or all"
    for name in "${given[@]}"; do
        is_study_model "$name" || die "--models: unknown model '$name' (choose from ${ALL_MODELS[*]}, or all)"
    done
    MODELS_CHOSEN=()
    for name in "${ALL_MODELS[@]}"; do
        [[ ",$list," != *",$name,"* ]] || MODELS_CHOSEN+=("$name")
    done
}

# expand_splits SPEC: the splits of "2", "1,3", "1-3", "1-2,3"..., one per line, each once, in
# order; status 1 for anything else.
expand_splits() {
    local spec=$1 item low high split
    local -a items marked=()
    [[ $spec =~ ^[1-3](-[1-3])?(,[1-3](-[1-3])?)*$ ]] || return 1
    IFS=, read -ra items <<<"$spec"
    for item in "${items[@]}"; do
        low=${item%-*}
        high=${item#*-}
        ((low <= high)) || return 1
        for ((split = low; split <= high; split++)); do marked[split]=1; done
    done
    for split in 1 2 3; do
        [[ -z ${marked[split]:-} ]] || echo "$split"
    done
}

features_dir() { printf '%s\n' "${FEATURES_DIR:-$(stage_dir features)}"; }
kinetics_checkpoint() { printf '%s\n' "${KINETICS_CHECKPOINT:-$DATA_DIR/resnet-50-kinetics.pth}"; }
c3d_checkpoint() { printf '%s\n' "${C3D_CHECKPOINT:-$DATA_DIR/c3d-pretrained.pth}"; }

# Pre-flight checks: one clear line instead of a traceback an hour into the queue. Each is a
# no-op with DRY_RUN=1, except where said.
require_file() { [[ -e $1 ]] || die "$1 not found. $2"; }

check_python() {
    [[ $DRY_RUN == 1 ]] && return 0
    [[ -x $PYTHON ]] || die "PYTHON=$PYTHON is not executable; create the venv (python -m venv .venv && .venv/bin/pip install -r requirements.txt) or set PYTHON"
}

# The split lists: enough for the stages that read features or predictions, not videos.
check_lists() {
    [[ $DRY_RUN == 1 ]] && return 0
    check_python
    require_lists
}

# The dataset's split folder. Also at submit time.
require_lists() {
    local hint=
    [[ $JOB_DATASET == hmdb51 || $DATASET != auto ]] || hint=" For HMDB-51, set DATASET=hmdb51."
    require_file "$DATA_DIR/$SPLIT_FOLDER" "Set DATA_DIR to the folder holding $SPLIT_FOLDER/ and $HDF5_FOLDER/.$hint"
}

# The videos: the HDF5 files (prepare.sh) or the original .avi release. Also at submit time.
require_videos() {
    [[ -e $DATA_DIR/$HDF5_FOLDER || -e $DATA_DIR/$VIDEO_FOLDER ]] ||
        die "$DATA_DIR/$HDF5_FOLDER not found (nor the original videos, $DATA_DIR/$VIDEO_FOLDER). Run the prepare job first (jobs/*/prepare.sh) or set DATA_DIR."
}

check_dataset() {
    [[ $DRY_RUN == 1 ]] && return 0
    check_lists
    require_videos
}

# require_pretrained PATH VARIABLE FILE: the released weights a training stage starts from,
# unless PATH is "none" (from scratch). Also at submit time.
require_pretrained() {
    [[ $1 == none || -e $1 ]] || die "$1 not found. Put $3 in DATA_DIR or set $2 (none: train from scratch)."
}

# Whether the flags in the variable ARGS_VAR leave the run loading torchvision's ImageNet weights
# (they do unless --pretrained none, --weights FILE, or extract_features' --checkpoint FILE).
uses_imagenet_weights() {
    local own=' --(pretrained[= ]none|weights|checkpoint)[= ]'
    [[ ! " ${!1:-} " =~ $own ]]
}

# warn_imagenet_weights OUTPUT_DIR ARGS_VAR: compute nodes are often offline, so the ImageNet
# weights must already be in torchvision's cache, unless OUTPUT_DIR holds a checkpoint (a
# resumed run does not load them) or ARGS_VAR's flags say other weights. Also at submit time
# (OUTPUT_DIR empty).
warn_imagenet_weights() {
    [[ ${DRY_RUN:-0} == 1 || ( -n $1 && -e $1/checkpoint.pth ) ]] && return 0
    uses_imagenet_weights "$2" || return 0
    local cache=${TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/torch}/hub/checkpoints
    if ! compgen -G "$cache/resnet50-*.pth" >/dev/null; then
        log "warning: no ResNet-50 ImageNet weights in $cache; if the compute nodes are offline, fetch them on a login node first:"
        log "  ${PYTHON:-$REPO_DIR/.venv/bin/python} -c 'from torchvision.models import resnet50, ResNet50_Weights; resnet50(weights=ResNet50_Weights.IMAGENET1K_V1)'"
    fi
}

# check_trained DIR CHECK: the checkpoint a test stage evaluates, after CHECK (check_dataset or
# check_lists); a missing COMPLETE only warrants a warning.
check_trained() {
    [[ $DRY_RUN == 1 ]] && return 0
    "$2"
    require_file "$1/checkpoint.pth" "Train first (jobs/*/train_*.sh) with the same RUNS_DIR and SPLIT."
    [[ -e $1/COMPLETE ]] || log "warning: $1/COMPLETE is missing: testing a model whose training has not finished"
}

# preflight_study PREPARE MODEL...: submit_all.sh, on the login node, before anything is queued:
# what the chosen models will need, so a missing file is one line and exit 2 now rather than a
# failed job later. Warnings (ImageNet weights not in this node's cache) come after every check.
preflight_study() {
    local prepare=$1 model python=${PYTHON:-$REPO_DIR/.venv/bin/python}
    shift
    [[ -x $python ]] || die "PYTHON=$python is not executable; create the venv (python -m venv .venv && .venv/bin/pip install -r requirements.txt) or set PYTHON"
    require_lists
    if [[ $prepare == 1 ]]; then
        require_file "${VIDEOS_DIR:-$DATA_DIR/$VIDEO_FOLDER}" "$(videos_hint)"
    else
        require_videos
    fi
    for model; do
        case $model in
            3d) require_pretrained "$(kinetics_checkpoint)" KINETICS_CHECKPOINT resnet-50-kinetics.pth ;;
            c3d) require_pretrained "$(c3d_checkpoint)" C3D_CHECKPOINT c3d-pretrained.pth ;;
        esac
    done
    local -A imagenet_args=([single_frame]=TRAIN_SF_ARGS [tsn]=TRAIN_TSN_ARGS [rnn]=EXTRACT_ARGS
        [tsn_flow]=TRAIN_TSN_FLOW_ARGS [tsn_rgbdiff]=TRAIN_TSN_RGBDIFF_ARGS)
    for model; do
        if [[ -n ${imagenet_args[$model]:-} ]] && uses_imagenet_weights "${imagenet_args[$model]}"; then
            warn_imagenet_weights "" "${imagenet_args[$model]}"
            break
        fi
    done
}

# --- the stages --------------------------------------------------------------------------------
# One function per stage, the same for every scheduler: each job script is its scheduler's
# resource lines, `init_job SCHEDULER STAGE`, then `stage_STAGE`. Each function checks its
# inputs, reads its *_ARGS, and ends in run_stage (or end_stage), which exits (except with
# DRY_RUN=1).
#
# The published recipes are the stages' default flags; a stage's *_ARGS come after them and win
# (argparse keeps the last value of a flag).

# TSN, RGB (tsn-pytorch's README, there on BN-Inception; here on ImageNet ResNet-50): 3 segments,
# dropout 0.8 before fc, partial BN, every layer trained, SGD lr 1e-3 momentum 0.9 weight decay
# 5e-4, /10 at epochs 30 and 60 of 80, gradient norm clipped at 20, batch 128.
TSN_TRAIN_RECIPE=(--segments 3 --dropout 0.8 --partial-bn --trainable all --optimizer sgd --lr 1e-3
    --momentum 0.9 --weight-decay 5e-4 --lr-schedule step --lr-steps "30,60" --epochs 80
    --clip-grad-norm 20)
TSN_GLOBAL_BATCH=128  # over all GPUs, where it divides evenly; else TSN_FALLBACK_BATCH per GPU
TSN_FALLBACK_BATCH=32
TSN_TEST_RECIPE=(--frames 25 --crops 10)  # 25 frames at the segment centres x 10 crops
# The motion stream (TSN's temporal stream, on ImageNet ResNet-50 with TSN's cross-modality
# initialisation; FACTS.md, "Optical flow and RGB difference"). Flow, tsn-pytorch's flow recipe: 5
# stacked flow fields per snippet (new_length 5), 3 segments, dropout 0.7, partial BN, SGD lr 1e-3,
# /10 at epochs 190 and 300 of 340, gradient norm clipped at 20, batch 128 (momentum 0.9 and weight
# decay 5e-4: tsn-pytorch's defaults, as for RGB). RGB difference: 5 differences of 6 frames per
# snippet and 7 segments (TSN's README), the RGB recipe otherwise. Both tested as TSN: 25 x 10 crops.
TSN_FLOW_TRAIN_RECIPE=(--modality flow --new-length 5 --segments 3 --dropout 0.7 --partial-bn --trainable all
    --optimizer sgd --lr 1e-3 --momentum 0.9 --weight-decay 5e-4 --lr-schedule step --lr-steps "190,300"
    --epochs 340 --clip-grad-norm 20)
TSN_RGBDIFF_TRAIN_RECIPE=(--modality rgbdiff --new-length 5 --segments 7 --dropout 0.8 --partial-bn
    --trainable all --optimizer sgd --lr 1e-3 --momentum 0.9 --weight-decay 5e-4 --lr-schedule step
    --lr-steps "30,60" --epochs 80 --clip-grad-norm 20)
TSN_TWO_STREAM_WEIGHTS=1,1.5  # TSN's fusion of RGB and flow scores, RGB : flow (TWO_STREAM_WEIGHTS=tsn)
# C3D (pytorch-video-recognition's training): SGD lr 1e-3 (1e-2 for the new fc8) momentum 0.9
# weight decay 5e-4, /10 every 10 epochs, 100 epochs, batch 20 per GPU; tested on every
# 16-frame window (stride 8).
C3D_TRAIN_RECIPE=(--optimizer sgd --lr 1e-3 --momentum 0.9 --weight-decay 5e-4 --head-lr-mult 10
    --lr-schedule step --lr-steps every:10 --epochs 100 --batch-size 20)
C3D_TEST_RECIPE=(--mode sliding)
# The recurrent model's features: every video of the split (training list, validation groups
# included, and test list), from the frozen ImageNet ResNet-50 (extract_features.py's defaults).
EXTRACT_SUBSETS=train,test

# TSN's --batch-size per GPU: the recipe's global batch shared out when it divides evenly over
# the job's GPUs (1, 2, 4, 8, 16, ...), else TSN_FALLBACK_BATCH per GPU.
tsn_batch_size() {
    local world=$((NNODES * NPROC_PER_NODE))
    if ((TSN_GLOBAL_BATCH % world == 0)); then
        echo $((TSN_GLOBAL_BATCH / world))
    else
        echo "$TSN_FALLBACK_BATCH"
    fi
}

stage_prepare() {
    local videos_dir=${VIDEOS_DIR:-$DATA_DIR/$VIDEO_FOLDER}
    local -a cmd
    if [[ $DRY_RUN != 1 ]]; then
        check_python
        require_file "$videos_dir" "$(videos_hint)"
    fi
    read_extra_args PREPARE_ARGS
    cmd=("$PYTHON" "$REPO_DIR/prepare_ucf101.py" "${DATASET_ARGS[@]}" --videos "$videos_dir"
        --out "$DATA_DIR/$HDF5_FOLDER" --workers "${WORKERS:-$(cpus_per_node)}")
    [[ -z ${STORAGE:-} ]] || cmd+=(--storage "$STORAGE")
    run_stage "$DATA_DIR/$HDF5_FOLDER" "" local "${cmd[@]}" "${EXTRA_ARGS[@]}"
}

# The --shard I/N of this extract_flow task: I = the array index from the first (a contiguous range,
# `sbatch --array=0-15`, `qsub -J 0-15`), N = SHARDS, else Slurm's task count; SHARD (default 0/1,
# every video) outside an array. Prints it; dies (in its subshell) when it cannot be one.
flow_shard() {
    local index count
    if [[ -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
        index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
        count=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-}}
    elif [[ -n ${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-}} ]]; then
        index=${PBS_ARRAY_INDEX:-$PBS_ARRAYID}
        count=${SHARDS:-}
    else
        printf '%s\n' "${SHARD:-0/1}"
        return 0
    fi
    [[ $count =~ ^[0-9]+$ ]] || die "an extract_flow array task needs SHARDS, the number of tasks of the array (got '$count')"
    ((index >= 0 && index < count)) || die "array index $index is not in 0..$((count - 1)): the array must be 0-$((count - 1)) (SHARDS=$count)"
    printf '%s/%s\n' "$index" "$count"
}

# Where extract_flow writes and the flow stages read: FLOW_DIR, else the scripts' default.
flow_dir() { printf '%s\n' "${FLOW_DIR:-$DATA_DIR/$FLOW_FOLDER}"; }

stage_extract_flow() {
    local shard flow_dir
    flow_dir=$(flow_dir)
    local -a cmd
    shard=$(flow_shard) || exit 2
    check_python
    read_extra_args FLOW_ARGS
    cmd=("$PYTHON" "$REPO_DIR/extract_flow.py" --data-dir "$DATA_DIR" "${DATASET_ARGS[@]}" --out "$flow_dir"
        --workers "${WORKERS:-$(cpus_per_node)}" --shard "$shard")
    [[ -z ${FLOW_METHOD:-} ]] || cmd+=(--method "$FLOW_METHOD")
    [[ -z ${STORAGE:-} ]] || cmd+=(--storage "$STORAGE")
    run_stage "$flow_dir" "" local "${cmd[@]}" "${EXTRA_ARGS[@]}"
}

# run_train_stage MODEL SCRIPT ARGS_VAR [FLAGS...]: train into stage_dir MODEL with FLAGS (the
# model and its recipe), --val-groups VAL_GROUPS when set, then the flags in the variable
# ARGS_VAR; complete when MODEL/COMPLETE exists. Call discover_nodes first.
run_train_stage() {
    local output_dir script=$2 args_var=$3
    local -a val_args=()
    output_dir=$(stage_dir "$1")
    shift 3
    [[ -z ${VAL_GROUPS:-} ]] || val_args=(--val-groups "$VAL_GROUPS")
    read_extra_args "$args_var"
    run_stage "$output_dir" "$output_dir/COMPLETE" torchrun "$script" \
        --data-dir "$DATA_DIR" "${DATASET_ARGS[@]}" --split "$SPLIT" --output-dir "$output_dir" \
        --workers "$WORKERS" "$@" "${val_args[@]}" "${EXTRA_ARGS[@]}"
}

stage_train_single_frame() {
    check_dataset
    warn_imagenet_weights "$(stage_dir single_frame)" TRAIN_SF_ARGS
    discover_nodes
    run_train_stage single_frame train_single_frame.py TRAIN_SF_ARGS
}

# run_tsn_train_stage MODEL ARGS_VAR RECIPE...: a TSN training stage (RGB, flow, RGB difference):
# RECIPE and TSN's batch shared out over the job's GPUs.
run_tsn_train_stage() {
    local batch model=$1 args_var=$2
    shift 2
    warn_imagenet_weights "$(stage_dir "$model")" "$args_var"
    discover_nodes
    batch=$(tsn_batch_size)
    [[ $DRY_RUN == 1 ]] || log "TSN batch: $batch per GPU x $((NNODES * NPROC_PER_NODE)) GPUs (recipe: $TSN_GLOBAL_BATCH in all)"
    run_train_stage "$model" train_single_frame.py "$args_var" "$@" --batch-size "$batch"
}

stage_train_tsn() {
    check_dataset
    run_tsn_train_stage tsn TRAIN_TSN_ARGS "${TSN_TRAIN_RECIPE[@]}"
}

# The flow folder of the flow stages: extract_flow's output (also the test's: its files must have
# the extraction settings of the training flow, which the checkpoint records).
require_flow() {
    [[ $DRY_RUN == 1 ]] || require_file "$1" "Run the extract_flow job first (jobs/*/extract_flow.sh) with the same DATA_DIR and DATASET, or set FLOW_DIR."
}

stage_train_tsn_flow() {
    local flow_dir
    flow_dir=$(flow_dir)
    check_dataset
    require_flow "$flow_dir"
    run_tsn_train_stage tsn_flow TRAIN_TSN_FLOW_ARGS "${TSN_FLOW_TRAIN_RECIPE[@]}" --flow-dir "$flow_dir"
}

stage_train_tsn_rgbdiff() {
    check_dataset
    run_tsn_train_stage tsn_rgbdiff TRAIN_TSN_RGBDIFF_ARGS "${TSN_RGBDIFF_TRAIN_RECIPE[@]}"
}

stage_train_3d() {
    local kinetics
    kinetics=$(kinetics_checkpoint)
    check_dataset
    [[ $DRY_RUN == 1 ]] || require_pretrained "$kinetics" KINETICS_CHECKPOINT resnet-50-kinetics.pth
    discover_nodes
    run_train_stage 3d train_3d.py TRAIN_3D_ARGS --kinetics-checkpoint "$kinetics"
}

stage_train_c3d() {
    local weights
    weights=$(c3d_checkpoint)
    check_dataset
    [[ $DRY_RUN == 1 ]] || require_pretrained "$weights" C3D_CHECKPOINT c3d-pretrained.pth
    discover_nodes
    run_train_stage c3d train_3d.py TRAIN_C3D_ARGS --arch c3d --c3d-checkpoint "$weights" \
        "${C3D_TRAIN_RECIPE[@]}"
}

stage_extract_features() {
    local features
    features=$(features_dir)
    check_dataset
    warn_imagenet_weights "" EXTRACT_ARGS
    discover_nodes
    read_extra_args EXTRACT_ARGS
    run_stage "$features" "" torchrun extract_features.py \
        --data-dir "$DATA_DIR" "${DATASET_ARGS[@]}" --split "$SPLIT" --output-dir "$features" \
        --workers "$WORKERS" --subsets "$EXTRACT_SUBSETS" "${EXTRA_ARGS[@]}"
}

stage_train_rnn() {
    local features
    features=$(features_dir)
    check_lists
    if [[ $DRY_RUN != 1 ]]; then
        require_file "$features/features.json" "Run the extract_features job first (jobs/*/extract_features.sh) with the same RUNS_DIR, SPLIT and FEATURES_DIR."
    fi
    discover_nodes
    run_train_stage rnn train_rnn.py TRAIN_RNN_ARGS --features "$features"
}

# run_test_stage MODEL SCRIPT ARGS_VAR [FLAGS...]: the test stages. SCRIPT evaluates the
# checkpoint in stage_dir MODEL with FLAGS, then the flags in the variable ARGS_VAR, on the test
# videos; with VAL_GROUPS set, then also on the groups its training held out (--subset val,
# into MODEL/val_predictions and MODEL/val), for combine's --weights auto.
run_test_stage() {
    local train_dir script=$2 args_var=$3 inputs=check_dataset status=0
    train_dir=$(stage_dir "$1")
    [[ $1 != rnn ]] || inputs=check_lists  # reads features, not videos
    shift 3
    check_trained "$train_dir" "$inputs"
    discover_nodes
    read_extra_args "$args_var"
    local -a common=(--data-dir "$DATA_DIR" "${DATASET_ARGS[@]}" --split "$SPLIT" --checkpoint "$train_dir/checkpoint.pth")
    begin_stage "$train_dir/test" ""
    run_step torchrun "$script" "${common[@]}" --predictions-dir "$train_dir/predictions" \
        --output-dir "$train_dir/test" --workers "$WORKERS" "$@" "${EXTRA_ARGS[@]}" || status=$?
    if [[ -n ${VAL_GROUPS:-} ]] && ((status == 0)); then
        run_step torchrun "$script" "${common[@]}" --predictions-dir "$train_dir/val_predictions" \
            --output-dir "$train_dir/val" --workers "$WORKERS" "$@" "${EXTRA_ARGS[@]}" \
            --subset val || status=$?
    fi
    end_stage "$status" ""
}

stage_test_single_frame() { run_test_stage single_frame test_single_frame.py TEST_SF_ARGS; }

stage_test_tsn() { run_test_stage tsn test_single_frame.py TEST_TSN_ARGS "${TSN_TEST_RECIPE[@]}"; }

stage_test_tsn_flow() {
    local flow_dir
    flow_dir=$(flow_dir)
    require_flow "$flow_dir"
    run_test_stage tsn_flow test_single_frame.py TEST_TSN_FLOW_ARGS "${TSN_TEST_RECIPE[@]}" --flow-dir "$flow_dir"
}

stage_test_tsn_rgbdiff() { run_test_stage tsn_rgbdiff test_single_frame.py TEST_TSN_RGBDIFF_ARGS "${TSN_TEST_RECIPE[@]}"; }

stage_test_3d() { run_test_stage 3d test_3d.py TEST_3D_ARGS --mode "${TEST_3D_MODE:-full}"; }

stage_test_c3d() { run_test_stage c3d test_3d.py TEST_C3D_ARGS "${C3D_TEST_RECIPE[@]}"; }

stage_test_rnn() { run_test_stage rnn test_rnn.py TEST_RNN_ARGS; }

# Every model whose test predictions are there (the study's, then the motion stream's); the
# assignment's fusion (single_frame,3d), TSN's two streams (tsn,tsn_flow) and TSN's RGB + RGB
# difference (tsn,tsn_rgbdiff) when both of their models are, and the fusion of all of them. With
# VAL_GROUPS the fusion weights are chosen on the validation predictions (--weights auto), otherwise
# they are equal: never tuned on the test set. TWO_STREAM_WEIGHTS=tsn gives the two-stream fusion
# TSN's fixed RGB : flow = 1 : 1.5 instead (the others keep theirs: one --weights per --fuse).
stage_combine() {
    local name report fusion all default
    local -a present=() cmd fusions=()
    report=$(stage_dir report)
    case ${TWO_STREAM_WEIGHTS:-} in
        "" | tsn) ;;
        *) die "TWO_STREAM_WEIGHTS must be tsn (TSN's RGB : flow = 1 : 1.5) or empty, got '$TWO_STREAM_WEIGHTS'" ;;
    esac
    for name in "${ALL_MODELS[@]}"; do
        [[ ! -d $(stage_dir "$name")/predictions ]] || present+=("$name")
    done
    if ((${#present[@]} == 0)); then
        [[ $DRY_RUN == 1 ]] || die "no test predictions in $RUNS_DIR/split$SPLIT/{$(IFS=,; echo "${ALL_MODELS[*]}")}/predictions; run the test jobs first"
        present=("${STUDY_MODELS[@]}")  # a dry run before any test: the whole study
    fi
    check_python
    cmd=("$PYTHON" "$REPO_DIR/combine_results.py" --data-dir "$DATA_DIR" "${DATASET_ARGS[@]}" --split "$SPLIT")
    for name in "${present[@]}"; do
        cmd+=(--model "$name=$(stage_dir "$name")/predictions")
    done
    if [[ -n ${VAL_GROUPS:-} ]]; then
        for name in "${present[@]}"; do
            if [[ $DRY_RUN != 1 ]]; then
                require_file "$(stage_dir "$name")/val_predictions" "Run test_$name with VAL_GROUPS set (it writes them after the test predictions), or unset VAL_GROUPS for equal fusion weights."
            fi
            cmd+=(--val "$name=$(stage_dir "$name")/val_predictions")
        done
    fi
    local present_text=" ${present[*]} "
    for fusion in single_frame,3d tsn,tsn_flow tsn,tsn_rgbdiff; do  # the assignment's question, TSN's two
        [[ $present_text != *" ${fusion%,*} "* || $present_text != *" ${fusion#*,} "* ]] || fusions+=("$fusion")
    done
    all=$(IFS=,; echo "${present[*]}")
    if ((${#present[@]} > 1)) && [[ " ${fusions[*]} " != *" $all "* ]]; then
        fusions+=(all)
    fi
    for fusion in "${fusions[@]}"; do
        cmd+=(--fuse "$fusion")
    done
    default=
    [[ -z ${VAL_GROUPS:-} ]] || ((${#present[@]} < 2)) || default=auto
    if [[ ${TWO_STREAM_WEIGHTS:-} == tsn && " ${fusions[*]} " == *" tsn,tsn_flow "* ]]; then
        for fusion in "${fusions[@]}"; do
            if [[ $fusion == tsn,tsn_flow ]]; then
                cmd+=(--weights "$TSN_TWO_STREAM_WEIGHTS")
            else
                cmd+=(--weights "${default:-equal}")
            fi
        done
    else
        [[ -z ${TWO_STREAM_WEIGHTS:-} || $DRY_RUN == 1 ]] || log "warning: TWO_STREAM_WEIGHTS=tsn, but tsn and tsn_flow do not both have predictions: no two-stream fusion to weigh"
        [[ -z $default ]] || cmd+=(--weights "$default")
    fi
    read_extra_args COMBINE_ARGS
    run_stage "$report" "" local "${cmd[@]}" --output-dir "$report" "${EXTRA_ARGS[@]}"
}

# The mean and spread over the splits whose report is there (two or more), into $RUNS_DIR/summary.
stage_summarize() {
    local split summary=$RUNS_DIR/summary
    local -a reports=()
    for split in 1 2 3; do
        [[ ! -e $RUNS_DIR/split$split/report/results.json ]] || reports+=("$RUNS_DIR/split$split/report")
    done
    if ((${#reports[@]} < 2)); then
        [[ $DRY_RUN == 1 ]] || die "the summary needs the reports of two splits or more, found ${#reports[@]} ($RUNS_DIR/split{1,2,3}/report/results.json); run the combine jobs first"
        reports=("$RUNS_DIR"/split{1,2,3}/report)  # a dry run before any report
    fi
    check_python
    read_extra_args SUMMARY_ARGS
    run_stage "$summary" "" local "$PYTHON" "$REPO_DIR/combine_results.py" \
        --summarize "${reports[@]}" --output-dir "$summary" "${EXTRA_ARGS[@]}"
}
