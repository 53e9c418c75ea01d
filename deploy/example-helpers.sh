# Shell functions shared by the scripts that run an example end to end
# (deploy/quickstart.sh, examples/onboarding/run.sh). Source it; it runs
# nothing by itself.
#
# Before sourcing, set script_name (the prefix of messages) and
# start_timeout (seconds to wait for a process to come up). examples_init
# then creates the temporary folder $work and installs the traps that stop
# every process started with start_background, newest first, by its pid,
# also on Ctrl-C or failure, and remove $work.
#
# shellcheck shell=bash
# The sourcing script sets script_name and start_timeout and reads what
# these functions set (build_dir, nats_url, last_pid and others).
# shellcheck disable=SC2154,SC2034

started_pids=()

# Stops one process: SIGTERM, up to 5 s for it to exit, then SIGKILL.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "$script_name: pid $pid did not stop in 5 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

examples_cleanup() {
  local i
  # Newest first: nodes and modules before the server they use.
  for ((i = ${#started_pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${started_pids[i]}"
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# Creates $work and installs the traps. The argument names the folder.
examples_init() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-$1.XXXXXX")
  trap examples_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

fail() {
  echo "$script_name: $*" >&2
  exit 1
}

# Prints the last 40 lines of a log file under a header.
show_log() {
  local name=$1 file=$2
  [ -s "$file" ] || return 0
  echo "---- last 40 lines of the $name log ----" >&2
  tail -n 40 "$file" >&2
}

# Starts a command in the background with its output in a log file. Its pid
# goes on the cleanup list and into last_pid.
# Usage: start_background LOG COMMAND [ARG...]
start_background() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  last_pid=$!
  started_pids+=("$last_pid")
}

# Takes a pid that the caller has waited for off the cleanup list, so that
# the cleanup never signals a later process that reuses the number.
forget_pid() {
  local i
  for i in "${!started_pids[@]}"; do
    [ "${started_pids[i]}" = "$1" ] && unset 'started_pids[i]'
  done
  started_pids=("${started_pids[@]}")
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Fails when something already listens on 127.0.0.1:port.
require_free_port() {
  local port=$1 user=$2
  if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' \
      "$port" 2>/dev/null; then
    fail "port $port on 127.0.0.1 is in use, but $user needs it; stop what uses it and try again"
  fi
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

# Starts nats-server with JetStream on a free loopback port, its store in
# $work/js, and waits for it. Sets nats_port and nats_url.
start_nats() {
  nats_port=$(free_port)
  nats_url="nats://127.0.0.1:$nats_port"
  start_background "$work/nats.log" nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/js"
  if ! wait_for_nats "$nats_port"; then
    show_log nats-server "$work/nats.log"
    fail "nats-server did not accept connections on port $nats_port within $start_timeout s"
  fi
}

# Sets build_dir to the first build folder that contains conveyor and every
# program named as an argument (paths relative to the folder):
# $CONVEYOR_BUILD_DIR when set, else build/ (deploy/quickstart.sh), else
# build-test-plain/ (tests/run.sh).
find_build() {
  local candidates=() dir program missing
  if [ -n "${CONVEYOR_BUILD_DIR:-}" ]; then
    candidates=("$CONVEYOR_BUILD_DIR")
  else
    candidates=(build build-test-plain)
  fi
  for dir in "${candidates[@]}"; do
    missing=
    for program in conveyor "$@"; do
      [ -x "$dir/$program" ] || missing=$program
    done
    if [ -z "$missing" ]; then
      build_dir=$dir
      return 0
    fi
  done
  fail "no build with conveyor and $* in ${candidates[*]}; run ./deploy/quickstart.sh" \
    "or ./tests/run.sh first, or set CONVEYOR_BUILD_DIR to a build folder"
}

# Prints the route, the status and the final data of one `submit --wait`
# output. With "last", it prints the steps that failed for good and the
# output of the last step instead of all the data.
print_result() {
  python3 -c '
import json, sys
text = sys.stdin.read()
try:
    result = json.loads(text)
except ValueError:
    print(text.strip())
    sys.exit(0)
steps = result.get("steps", [])
print("route:  " + " -> ".join(steps))
print("status: " + str(result.get("status")))
if "error" in result:
    print("error:  " + str(result["error"]))
data = result.get("data")
if sys.argv[1] == "last" and steps and isinstance(data, dict):
    # A step that failed for good is not in the route; its output has the error.
    for step, output in data.items():
        if step not in steps and isinstance(output, dict) and "attempts" in output:
            print("failed: %s after %s attempt(s): %s" % (step, output["attempts"],
                                                          output.get("error")))
    print(steps[-1] + ":")
    data = data.get(steps[-1])
print(json.dumps(data, indent=2, ensure_ascii=False))
' "${1:-all}"
}
