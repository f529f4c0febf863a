#!/bin/sh
# Serves the CGI scripts under /app/cgi-bin on :8080 with busybox httpd.
set -e
echo "api: $(cat /app/BUILD_INFO) listening on :8080"
exec httpd -f -p 8080 -h /app
