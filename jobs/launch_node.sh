#!/usr/bin/env bash
# Run one command (a torchrun) on this node and relay a stop request to its workers.
#
# usage: launch_node.sh STOP_FILE COMMAND [ARGS...]
#
# Started by jobs/common.sh once per node: directly on the batch node, through srun, pbsdsh or
# ssh on the others. A stop request is SIGTERM/SIGINT/SIGUSR1 to this script (the batch shell
# can only signal processes on its own node) or STOP_FILE appearing on the shared file system
# (every node polls it every STOP_POLL_SECONDS). The request goes out as STOP_SIGNAL (default
# TERM) to the direct children of COMMAND -- torchrun's per-rank Python workers -- once to
# each; the poll goes on until COMMAND exits, so a worker started after the request gets it too.
#
# torchrun itself is never signalled: on SIGTERM it kills its workers after 30 s
# (torch.distributed.elastic's close timeout), which can be shorter than finishing a step and
# writing a checkpoint; and it starts each worker in a session of its own, so a process-group
# signal would not reach them either. When the workers exit (75 after a checkpoint) torchrun
# reports a failure and exits 1; the batch shell decides from the stop request and the
# COMPLETE marker, not from this status.
#
# Environment: STOP_SIGNAL, STOP_POLL_SECONDS, NODE_LOG (append this node's output there).
set -uo pipefail

if (($# < 2)); then
    echo "usage: $0 STOP_FILE COMMAND [ARGS...]" >&2
    exit 2
fi
stop_file=$1
shift
stop_signal=${STOP_SIGNAL:-TERM}
poll_seconds=${STOP_POLL_SECONDS:-5}
if [[ -n ${NODE_LOG:-} ]]; then
    exec >>"$NODE_LOG" 2>&1
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

"$@" &
child=$!
stopping=0

signalled=" "
relay_stop() {
    stopping=1
    local pid
    for pid in $(pgrep -P "$child"); do
        # Once per worker: after its checkpoint a worker restores the default handler on the way
        # out, and a second signal would turn its exit 75 into a kill.
        [[ $signalled == *" $pid "* ]] && continue
        kill -s "$stop_signal" "$pid" 2>/dev/null || true
        signalled+="$pid "
    done
}
trap relay_stop TERM INT USR1

while kill -0 "$child" 2>/dev/null; do
    if ((stopping)) || [[ -e $stop_file ]]; then
        relay_stop
    fi
    sleep "$poll_seconds" &
    wait $! || true  # returns early when a trapped signal arrives
done
status=0
wait "$child" || status=$?
exit "$status"
