#!/bin/sh
# Processes one job every INTERVAL seconds (default 5) until stopped.
set -e
. /app/lib.sh
echo "worker: $(cat /app/BUILD_INFO) started"
n=0
while true; do
    n=$((n + 1))
    process_job "$n"
    sleep "${INTERVAL:-5}"
done
