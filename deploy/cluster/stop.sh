#!/usr/bin/env bash
# Stops the servers that deploy/cluster/start.sh started in DIR, by the
# pids it recorded: SIGTERM, then SIGKILL after five seconds.
set -uo pipefail
dir=${1:?usage: stop.sh DIR}
for pidfile in "$dir"/n*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
