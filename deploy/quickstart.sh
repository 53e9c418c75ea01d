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

script_name=quickstart
process_name=deal-routing
requests_dir=rules/crm/requests
# Seconds to wait for a process to come up, and for a submitted request to finish.
start_timeout=15
submit_timeout=30

# shellcheck source=deploy/example-helpers.sh
source deploy/example-helpers.sh
examples_init quickstart

echo "quickstart: installing dependencies"
bash deploy/install-deps.sh

echo "quickstart: building into build/"
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2; } \
    >"$work/build.log" 2>&1; then
  show_log build "$work/build.log"
  fail "the build failed"
fi

start_nats

cp examples/crm/data/crm.json "$work/crm.json"
start_background "$work/crm-module.log" \
  build/examples/crm/crm-module --nats "$nats_url" --data "$work/crm.json"
wait_for_line crm-module "$last_pid" "$work/crm-module.log" "crm-module ready"

start_background "$work/node.log" build/conveyor node --nats "$nats_url" --rules rules \
  --name quickstart --state memory --log-level info
wait_for_line node "$last_pid" "$work/node.log" "node ready"

echo "quickstart: nats-server, crm-module and a node run on $nats_url"

failed=0
for request in "$requests_dir"/*.json; do
  echo
  echo "== $(basename "$request")"
  status=0
  output=$(build/conveyor submit "$process_name" "@$request" --nats "$nats_url" \
    --wait="$submit_timeout") || status=$?
  if [ -n "$output" ]; then
    printf '%s\n' "$output" | print_result all
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
