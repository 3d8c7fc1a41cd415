#!/usr/bin/env bash
# Entrypoint of the landscope worker image: start Celery worker(s) from the environment.
#
#   WORKER_QUEUES       cpu (default) or gpu
#   WORKER_NAME         node-name prefix (default: the queue); nodes are <name>@<hostname>,
#                       gpu nodes <name><gpu index>@<hostname>
#   WORKER_POOL         cpu: prefork (default) | threads | solo. gpu: solo only (CUDA is not
#                       fork-safe, and a GPU runs one job at a time)
#   WORKER_CONCURRENCY  cpu: processes of the prefork pool (default 1)
#   WORKER_LOGLEVEL     INFO (default)
#   GPU_IDS             gpu: comma-separated device indices as seen inside the container
#                       (default: every visible GPU, counted by torch)
#   WORKER_NAMES_FILE   where the started node names are written for the health check
#                       (default /tmp/landscope-worker-names)
# Extra arguments are passed on to `landscope-service worker`.
#
# A cpu worker is one process, exec'd so that it receives signals itself. A gpu worker is
# one process per GPU, each pinned with CUDA_VISIBLE_DEVICES=<index> and --pool solo; this
# script forwards SIGTERM/SIGINT to all of them (Celery's warm shutdown lets the running
# job finish) and, if one of them exits on its own, stops the others and exits non-zero,
# so the container's restart policy brings the whole set back.
set -euo pipefail

queues="${WORKER_QUEUES:-cpu}"
name="${WORKER_NAME:-${queues//,/-}}"
loglevel="${WORKER_LOGLEVEL:-INFO}"
names_file="${WORKER_NAMES_FILE:-/tmp/landscope-worker-names}"
host="$(python -c 'import socket; print(socket.gethostname())')"

if [[ ",${queues}," != *",gpu,"* ]]; then
    pool="${WORKER_POOL:-prefork}"
    concurrency="${WORKER_CONCURRENCY:-1}"
    printf '%s@%s\n' "$name" "$host" > "$names_file"
    exec landscope-service worker --queues "$queues" --pool "$pool" \
        --concurrency "$concurrency" --name "$name" --loglevel "$loglevel" "$@"
fi

if [[ -n "${WORKER_POOL:-}" && "${WORKER_POOL}" != "solo" ]]; then
    echo "landscope-worker: WORKER_POOL=${WORKER_POOL} with the gpu queue: GPU workers run" \
         "--pool solo, one process per GPU (unset WORKER_POOL or set it to solo)." >&2
    exit 2
fi

ids="${GPU_IDS:-}"
if [[ -z "$ids" ]]; then
    # Counted in a throwaway process: the workers themselves touch CUDA only after start.
    count="$(python -c 'import torch; print(torch.cuda.device_count())')"
    if [[ "$count" -lt 1 ]]; then
        echo "landscope-worker: WORKER_QUEUES=${queues} but no GPU is visible in this" \
             "container: check the NVIDIA Container Toolkit on the host and the device" \
             "reservation (compose: deploy.resources.reservations.devices;" \
             "Kubernetes: nvidia.com/gpu limits)." >&2
        exit 1
    fi
    ids="$(seq -s, 0 $((count - 1)))"
fi

pids=()
: > "$names_file"
for gpu in ${ids//,/ }; do
    CUDA_VISIBLE_DEVICES="$gpu" landscope-service worker --queues "$queues" --pool solo \
        --concurrency 1 --name "${name}${gpu}" --loglevel "$loglevel" "$@" &
    pids+=("$!")
    printf '%s%s@%s\n' "$name" "$gpu" "$host" >> "$names_file"
    echo "landscope-worker: started ${name}${gpu}@${host} on GPU ${gpu} (pid $!)" >&2
done

stopping=0
forward() {
    stopping=1
    kill -TERM "${pids[@]}" 2>/dev/null || true
}
trap forward TERM INT

set +e
wait -n "${pids[@]}"
first=$?
if [[ "$stopping" -eq 0 ]]; then
    echo "landscope-worker: a GPU worker exited with status ${first}; stopping the others." >&2
    forward
fi
# Wait for every child to finish its warm shutdown (a signal interrupts `wait`: loop).
for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
        wait "$pid"
    done
done
if [[ "$stopping" -eq 1 && "$first" -ge 128 ]]; then
    exit 0   # we were asked to stop
fi
exit $(( first == 0 ? 1 : first ))
