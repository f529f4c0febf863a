# Job handling for the worker, sourced by run.sh.
process_job() {
    echo "worker: job $1 done at $(date -u +%H:%M:%S)"
}
