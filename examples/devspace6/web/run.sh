#!/bin/sh
# Serves the static site under /app/html on :8000 with busybox httpd.
set -e
echo "web: $(cat /app/BUILD_INFO) listening on :8000"
exec httpd -f -p 8000 -h /app/html
