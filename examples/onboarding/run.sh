#!/usr/bin/env bash
# Runs the customer-onboarding example (rules/onboarding/) end to end, with
# a module on each of conveyor's four transports:
#   normalise, reject, manual-review  lua    inside the node
#   find-customer                     nats   examples/crm (crm-module)
#   credit-check                      http   examples/onboarding/credit_bureau.py
#   open-account                      queue  examples/onboarding (billing-worker)
#
# It starts a nats-server with JetStream on a free loopback port and a
# temporary store, crm-module, the credit bureau on 127.0.0.1:18080 (the
# port the rules name) and one conveyor node, then submits the requests in
# rules/onboarding/requests/ with `conveyor submit --wait`. The bureau
# responds to its first request with HTTP 503, so the first credit check is
# retried. The billing worker starts only after the first request has
# reached open-account: until then that step waits in the stream
# ORCH_TASKS, and the instance completes once the worker comes.
#
# It uses the binaries of an existing build: $CONVEYOR_BUILD_DIR, else
# build/ (deploy/quickstart.sh), else build-test-plain/ (tests/run.sh).
# Every process it starts is stopped by its pid on exit, also on Ctrl-C or
# failure, and its temporary folder is removed. Exits non-zero when a
# request does not end as the example expects.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

script_name=onboarding
process_name=customer-onboarding
requests_dir=rules/onboarding/requests
bureau_port=18080
# Seconds to wait for a process to come up, for a step to be reached, and
# for a submitted request to finish.
start_timeout=15
step_timeout=30
submit_timeout=60
# Seconds the first request is left waiting for a billing worker, to show that it waits.
worker_delay=3

# shellcheck source=deploy/example-helpers.sh
source deploy/example-helpers.sh
examples_init onboarding

find_build examples/crm/crm-module examples/onboarding/billing-worker
conveyor=$build_dir/conveyor
require_free_port "$bureau_port" "the credit bureau of rules/onboarding"

start_nats

cp examples/crm/data/crm.json "$work/crm.json"
start_background "$work/crm-module.log" \
  "$build_dir/examples/crm/crm-module" --nats "$nats_url" --data "$work/crm.json"
wait_for_line crm-module "$last_pid" "$work/crm-module.log" "crm-module ready"

start_background "$work/credit-bureau.log" \
  python3 examples/onboarding/credit_bureau.py --port "$bureau_port" --unavailable 1
wait_for_line credit-bureau "$last_pid" "$work/credit-bureau.log" "credit-bureau listening"

start_background "$work/node.log" "$conveyor" node --nats "$nats_url" --rules rules \
  --name onboarding --state kv --storage memory --log-level info
wait_for_line node "$last_pid" "$work/node.log" "node ready"

echo "onboarding: nats-server, crm-module, the credit bureau and a node run on $nats_url"
echo "onboarding: no billing worker runs yet"

show_logs() {
  show_log node "$work/node.log"
  show_log crm-module "$work/crm-module.log"
  show_log credit-bureau "$work/credit-bureau.log"
  [ -n "${worker_log:-}" ] && show_log billing-worker "$worker_log"
  return 0
}

# Waits at most step_timeout s until instance id has dispatched step, as
# `conveyor instances history` shows it.
wait_for_dispatch() {
  local id=$1 step=$2
  for _ in $(seq $((step_timeout * 2))); do
    if "$conveyor" instances history "$id" --nats "$nats_url" 2>/dev/null |
        awk -v step="$step" '$2 == "step.dispatched" && $3 == step { found = 1 } END { exit !found }'; then
      return 0
    fi
    sleep 0.5
  done
  show_logs
  fail "instance $id did not reach $step within $step_timeout s"
}

# Starts `conveyor submit --wait` for a request file in the background, with
# its output in $work/NAME.out and $work/NAME.err, and sets submit_pid.
# Extra arguments go to `conveyor submit`.
start_submit() {
  local request=$1 name
  shift
  name=$(basename "$request" .json)
  "$conveyor" submit "$process_name" "@$request" --nats "$nats_url" --wait="$submit_timeout" \
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
  submit_pid=$!
  started_pids+=("$submit_pid")
}

# Waits for the submit of a request file and prints its result; fails when
# the instance did not complete. A signal ends `wait` at once, so Ctrl-C
# does not have to outlast the submit's own timeout.
finish_submit() {
  local request=$1 name status=0
  name=$(basename "$request" .json)
  wait "$submit_pid" || status=$?
  forget_pid "$submit_pid"
  print_result last <"$work/$name.out"
  if [ "$status" -ne 0 ]; then
    cat "$work/$name.err" >&2
    show_logs
    fail "$name did not complete (submit exit code $status)"
  fi
}

requests=("$requests_dir"/*.json)

# The first request, submitted while no billing worker runs.
first=${requests[0]}
first_id=onboarding-first
echo
echo "== $(basename "$first") (submitted with --id $first_id)"
start_submit "$first" --id "$first_id"

wait_for_dispatch "$first_id" open-account
echo "onboarding: open-account waits in ORCH_TASKS; the billing worker starts in $worker_delay s"
sleep "$worker_delay"
kill -0 "$submit_pid" 2>/dev/null || fail "the first request ended while no billing worker ran"

worker_log=$work/billing-worker.log
start_background "$worker_log" "$build_dir/examples/onboarding/billing-worker" --nats "$nats_url"
wait_for_line billing-worker "$last_pid" "$worker_log" "billing-worker ready"
echo "onboarding: billing worker started"

finish_submit "$first"
echo
echo "events of $first_id (conveyor instances history $first_id):"
"$conveyor" instances history "$first_id" --nats "$nats_url"

for request in "${requests[@]:1}"; do
  echo
  echo "== $(basename "$request")"
  start_submit "$request"
  finish_submit "$request"
done

echo
echo "onboarding: every request completed"
