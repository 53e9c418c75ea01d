#!/usr/bin/env bash
# Runs the CRM example end to end on this machine. It installs the build
# dependencies and builds conveyor and crm-module into build/. Then it
# starts a nats-server, crm-module and one conveyor node on a free loopback
# port and submits every request in rules/crm/requests/ to the deal-routing
# process. For each request it prints the route taken and the final data.
#
# Everything runs in a temporary folder that is removed on exit; the
# processes started here are stopped by their pids, also on Ctrl-C or
# failure. Exits non-zero when any request did not complete.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

process_name=deal-routing
requests_dir=rules/crm/requests
# Seconds to wait for a process to come up, and for a submitted request to finish.
start_timeout=15
submit_timeout=30

work=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-quickstart.XXXXXX")
started_pids=()

# Stops one process: SIGTERM, up to 5 s for it to exit, then SIGKILL.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "quickstart: pid $pid did not stop in 5 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local i
  # Newest first: the node and the module before the server they use.
  for ((i = ${#started_pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${started_pids[i]}"
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "quickstart: $*" >&2
  exit 1
}

# Prints the last 40 lines of a log file under a header.
show_log() {
  local name=$1 file=$2
  [ -s "$file" ] || return 0
  echo "---- last 40 lines of the $name log ----" >&2
  tail -n 40 "$file" >&2
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until a NATS server on 127.0.0.1:port sends its INFO line, at most start_timeout s.
wait_for_nats() {
  local port=$1
  python3 - "$port" "$start_timeout" <<'EOF'
import socket, sys, time
port, timeout = int(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if s.recv(4).startswith(b"INFO"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

# Waits at most start_timeout s until log contains text. Fails if pid exits first.
wait_for_line() {
  local name=$1 pid=$2 log=$3 text=$4
  local tries=$((start_timeout * 10))
  for _ in $(seq "$tries"); do
    grep -qF -- "$text" "$log" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log "$name" "$log"
      fail "$name exited before it was ready"
    fi
    sleep 0.1
  done
  show_log "$name" "$log"
  fail "$name did not print \"$text\" within $start_timeout s"
}

# Prints the route, the status and the final data of one `submit --wait` output.
print_result() {
  python3 -c '
import json, sys
text = sys.stdin.read()
try:
    result = json.loads(text)
except ValueError:
    print(text.strip())
    sys.exit(0)
print("route:  " + " -> ".join(result.get("steps", [])))
print("status: " + str(result.get("status")))
if "error" in result:
    print("error:  " + str(result["error"]))
print(json.dumps(result.get("data"), indent=2, ensure_ascii=False))
'
}

echo "quickstart: installing dependencies"
bash deploy/install-deps.sh

echo "quickstart: building into build/"
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2; } \
    >"$work/build.log" 2>&1; then
  show_log build "$work/build.log"
  fail "the build failed"
fi

nats_port=$(free_port)
nats_url="nats://127.0.0.1:$nats_port"
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/js" >"$work/nats.log" 2>&1 &
started_pids+=("$!")
if ! wait_for_nats "$nats_port"; then
  show_log nats-server "$work/nats.log"
  fail "nats-server did not accept connections on port $nats_port within $start_timeout s"
fi

cp examples/crm/data/crm.json "$work/crm.json"
build/examples/crm/crm-module --nats "$nats_url" --data "$work/crm.json" >"$work/crm-module.log" 2>&1 &
started_pids+=("$!")
wait_for_line crm-module "$!" "$work/crm-module.log" "crm-module ready"

build/conveyor node --nats "$nats_url" --rules rules --name quickstart --state memory \
  --log-level info >"$work/node.log" 2>&1 &
started_pids+=("$!")
wait_for_line node "$!" "$work/node.log" "node ready"

echo "quickstart: nats-server, crm-module and a node run on $nats_url"

failed=0
for request in "$requests_dir"/*.json; do
  echo
  echo "== $(basename "$request")"
  status=0
  output=$(build/conveyor submit "$process_name" "@$request" --nats "$nats_url" \
    --wait="$submit_timeout") || status=$?
  if [ -n "$output" ]; then
    printf '%s\n' "$output" | print_result
  fi
  if [ "$status" -ne 0 ]; then
    echo "quickstart: $(basename "$request") did not complete (submit exit code $status)" >&2
    failed=$((failed + 1))
  fi
done

echo
if [ "$failed" -ne 0 ]; then
  show_log node "$work/node.log"
  show_log crm-module "$work/crm-module.log"
  fail "$failed request(s) did not complete"
fi
echo "quickstart: every request completed"
