#!/usr/bin/env bash
# Runs conveyor's benchmark suite and prints one table:
#   figure | conveyor | floor | ratio | target | met?
#
# The floor is measured in the same run on the same machine. It is
# bench-floor, an orchestrator with no state and no rules that chains the
# same module (bench-module) over plain NATS request/reply, with whichever
# nats.c flush policy is fastest at each W. The ratio is conveyor / floor, so it
# stays meaningful on a busy or slow machine.
#
# Builds a Release build in build-bench/, starts its own nats-server
# (JetStream on, temporary store, free port on 127.0.0.1), a three-server
# cluster with deploy/cluster/start.sh on random loopback ports from 30000
# (scenario 6), conveyor nodes and modules, and stops each by its pid when
# done. It is not part of
# ./tests/run.sh. Takes about five minutes on 2 cores.
#
# Each throughput figure is the best of BENCH_ROUNDS runs (default 3), and
# the floor and conveyor runs alternate within each round. Other work on
# the machine can only slow a run down, so the best round is the one least
# disturbed, for conveyor and the floor alike.
#
# Environment: BENCH_ROUNDS as above; BENCH_WARMUP and BENCH_DURATION set
# the warm-up and the measured window of each run in seconds (default 1
# and 3). BENCH_RESULTS names the file that keeps every program's raw
# output (default build-bench/bench-results.txt).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-bench"
bin="$build/tests/bench"
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP:-1}
duration=${BENCH_DURATION:-3}
results=${BENCH_RESULTS:-$build/bench-results.txt}
started_at=$(date +%s)

tmp=$(mktemp -d /tmp/conveyor-bench.XXXXXX)
pids=()

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    stop_pid "$pid"
  done
  if [ -f "$tmp/cluster/n1.pid" ]; then "$root/deploy/cluster/stop.sh" "$tmp/cluster" >/dev/null 2>&1; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

# ---- build ----------------------------------------------------------------
log "building (Release) in $build"
# -O3 finds warnings in src/ that -O2 does not; they must not stop a benchmark.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCONVEYOR_TESTS=OFF \
  -DCONVEYOR_WERROR=OFF -DCONVEYOR_BENCH=ON >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; exit 1; }
conveyor="$build/conveyor"
: >"$results"

# ---- processes --------------------------------------------------------------
# wait_for FILE PATTERN [PID [TENTHS]]: waits up to TENTHS tenths of a second (default 100,
# 10 s) for FILE to contain PATTERN; returns 1 when it does not or PID exits first.
wait_for() {
  local file=$1 pattern=$2 pid=${3:-} i
  for i in $(seq 1 "${4:-100}"); do
    if [ -f "$file" ] && grep -q -- "$pattern" "$file"; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

start_nats() {
  nats-server -a 127.0.0.1 -p -1 -js -sd "$tmp/js" --ports_file_dir "$tmp" \
    -l "$tmp/nats.log" &
  nats_pid=$!
  pids+=("$nats_pid")
  wait_for "$tmp/nats-server_$nats_pid.ports" nats "$nats_pid" ||
    { echo "nats-server did not start; see $tmp/nats.log" >&2; exit 1; }
  url=$(sed 's/.*\["\([^"]*\)".*/\1/' "$tmp/nats-server_$nats_pid.ports")
}

# start_node NAME STATE PREFIX RULES: sets node_pid; returns 1 when the node does not get ready.
start_node() {
  local name=$1 state=$2 prefix=$3 rules=$4
  "$conveyor" node --nats "$url" --rules "$rules" --state "$state" --prefix "$prefix" \
    --name "$name" --log-level info 2>"$tmp/$name.log" &
  node_pid=$!
  pids+=("$node_pid")
  if ! wait_for "$tmp/$name.log" "node ready" "$node_pid"; then
    sed 's/^/    /' "$tmp/$name.log" | tail -5 >&2
    stop_pid "$node_pid"
    return 1
  fi
}

# start_module PREFIX SUBSYSTEM CONTROL [--silent]
start_module() {
  local prefix=$1 subsystem=$2 control=$3
  shift 3
  "$bin/bench-module" --nats "$url" --prefix "$prefix" --subsystem "$subsystem" \
    --control "$control" "$@" >"$tmp/module-$prefix-$subsystem.out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_for "$tmp/module-$prefix-$subsystem.out" ready "$pid" ||
    { echo "bench-module did not start" >&2; exit 1; }
}

# ---- results ----------------------------------------------------------------
declare -A R

# field KEY LINE: prints the value of KEY=value in LINE.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }

# record NAME LINE: keeps the raw line and each of its key=value pairs as R[NAME.key].
record() {
  local name=$1 line=$2 pair
  printf '%s: %s\n' "$name" "$line" >>"$results"
  for pair in $line; do
    case $pair in *=*) R["$name.${pair%%=*}"]=${pair#*=} ;; esac
  done
}

# run_step NAME COMMAND...: runs one benchmark program and records its last output line.
run_step() {
  local name=$1 out
  shift
  if out=$("$@" 2>>"$tmp/errors.log" | tail -1) && [ -n "$out" ]; then
    record "$name" "$out"
  else
    printf '%s: failed (see stderr below)\n' "$name" >>"$results"
    tail -5 "$tmp/errors.log" >>"$results" || true
    log "$name failed"
  fi
}

# best NAME KEY: copies the round of NAME.r1 ... NAME.rN with the highest KEY to NAME.
best() {
  local name=$1 key=$2 r top="" value field_name
  for r in $(seq 1 "$rounds"); do
    value=${R[$name.r$r.$key]:-}
    [ -n "$value" ] || continue
    if [ -z "$top" ] || awk -v a="$value" -v b="${R[$name.r$top.$key]}" 'BEGIN { exit !(a > b) }'; then
      top=$r
    fi
  done
  [ -n "$top" ] || return 0
  for field_name in steps_per_s instances_per_s step_p50_ns step_p99_ns inst_p50_us inst_p99_us \
    nodes_per_s decisions_per_s; do
    R["$name.$field_name"]=${R[$name.r$top.$field_name]:-}
  done
}

drive() { # drive NAME PREFIX PROCESS W CONTROL
  run_step "$1" "$bin/bench-driver" --mode run --nats "$url" --prefix "$2" --process "$3" \
    --inflight "$4" --steps 3 --warmup "$warmup" --duration "$duration" --control "$5"
}

floor_run() { # floor_run NAME W ASAP
  run_step "$1" "$bin/bench-floor" --mode run --nats "$url" --prefix bf --subsystem bench-echo \
    --inflight "$2" --steps 3 --asap "$3" --warmup "$warmup" --duration "$duration" \
    --control bench.control.bf
}

# ---- set-up -------------------------------------------------------------------
start_nats
log "nats-server on $url"
rules="$tmp/rules"
mkdir -p "$rules"
cp "$root"/tests/bench/rules/*.lua "$rules/"

start_module bf bench-echo bench.control.bf
start_module bm bench-echo bench.control.bm
have_kv=1
start_node bench-memory memory bm "$rules" || { echo "the memory node did not start" >&2; exit 1; }
memory_pid=$node_pid
if start_node bench-kv kv bk "$rules"; then
  kv_pid=$node_pid
  start_module bk bench-echo bench.control.bk
else
  have_kv=0
  log "conveyor node --state kv did not start: kv rows are not available in this build"
fi

# ---- scenarios 1 and 2: throughput and latency, floor interleaved -------------
for w in 1 16 256; do
  log "W=$w, $rounds rounds: floor (SendAsap on, off), conveyor memory, kv, seed rules"
  for r in $(seq 1 "$rounds"); do
    floor_run "floor.on.$w.r$r" "$w" on
    floor_run "floor.off.$w.r$r" "$w" off
    drive "memory.$w.r$r" bm bench-linear "$w" bench.control.bm
    if [ "$have_kv" = 1 ]; then drive "kv.$w.r$r" bk bench-linear "$w" bench.control.bk; fi
    drive "seed.$w.r$r" bm bench-seed "$w" bench.control.bm
  done
  for name in floor.on floor.off memory kv seed; do best "$name.$w" steps_per_s; done
  # The best flush policy at this W is the floor.
  on=${R[floor.on.$w.steps_per_s]:-0}
  off=${R[floor.off.$w.steps_per_s]:-0}
  best=on
  if awk -v a="$off" -v b="$on" 'BEGIN { exit !(a > b) }'; then best=off; fi
  for key in steps_per_s instances_per_s step_p50_ns step_p99_ns; do
    R["floor.$w.$key"]=${R[floor.$best.$w.$key]:-}
  done
  R["floor.$w.asap"]=$best
done
stop_pid "$memory_pid"
if [ "$have_kv" = 1 ]; then stop_pid "$kv_pid"; fi

# ---- scenario 3: memory of parked instances ---------------------------------
log "parked instances: 10,000 then 100,000 on a fresh node, and on the floor"
if start_node bench-park memory bp "$rules"; then
  park_pid=$node_pid
  "$bin/bench-driver" --mode park --nats "$url" --prefix bp --process bench-park \
    --subsystem bench-park --node-pid "$park_pid" --counts 10000,100000 \
    >"$tmp/park.out" 2>>"$tmp/errors.log" || log "park run failed"
  stop_pid "$park_pid"
  while read -r line; do record "park.$(field parked "$line")" "$line"; done <"$tmp/park.out"
fi
start_module bfp bench-park bench.control.bfp --silent
"$bin/bench-floor" --mode park --nats "$url" --prefix bfp --subsystem bench-park \
  --counts 10000,100000 >"$tmp/floor-park.out" 2>>"$tmp/errors.log" || log "floor park run failed"
while read -r line; do record "floorpark.$(field parked "$line")" "$line"; done <"$tmp/floor-park.out"

# ---- scenario 4: rule evaluation alone --------------------------------------
log "rule evaluation micro-benchmark"
for r in $(seq 1 "$rounds"); do
  run_step "rules.r$r" "$bin/bench-rules" --rules "$rules" --process bench-seed --duration "$duration"
done
best rules nodes_per_s

# ---- scenario 5: http transport -----------------------------------------------
log "http transport"
"$bin/bench-http" --mode serve >"$tmp/http.out" 2>&1 &
http_pid=$!
pids+=("$http_pid")
have_http=0
http_reason="not available in this build"
if wait_for "$tmp/http.out" port= "$http_pid"; then
  http_port=$(field port "$(cat "$tmp/http.out")")
  mkdir -p "$tmp/rules-http"
  cat >"$tmp/rules-http/http.lua" <<EOF
-- bench-http: bench-linear with its module served over HTTP by bench-http.
module "bench-http" { transport = "http", url = "http://127.0.0.1:$http_port/step/{step}", timeout = "5s" }
process "bench-http" {
  start = "s1",
  steps = {
    s1 = { subsystem = "bench-http", next = { "s2" } },
    s2 = { subsystem = "bench-http", prev = { "s1" }, next = { "s3" } },
    s3 = { subsystem = "bench-http", prev = { "s2" } },
  },
}
EOF
  if start_node bench-http memory bh "$tmp/rules-http"; then
    http_node=$node_pid
    if "$conveyor" submit bench-http '{}' --wait=10 --nats "$url" --prefix bh \
      >"$tmp/http-probe.out" 2>&1; then
      have_http=1
    else
      cause=$(grep -o '"error": *"[^"]*"' "$tmp/http-probe.out" | head -1 | sed 's/"error": *"\(.*\)"/\1/' || true)
      http_reason="not available in this build${cause:+ (a probe instance failed: $cause)}"
    fi
  fi
  # The floor is the same server driven directly by libcurl, measured whether or not conveyor can.
  for w in 1 16 256; do
    for r in $(seq 1 "$rounds"); do
      run_step "httpfloor.$w.r$r" "$bin/bench-http" --mode floor \
        --url "http://127.0.0.1:$http_port/step/s1" --inflight "$w" --steps 3 \
        --warmup "$warmup" --duration "$duration"
      if [ "$have_http" = 1 ]; then drive "http.$w.r$r" bh bench-http "$w" ""; fi
    done
    best "httpfloor.$w" steps_per_s
    best "http.$w" steps_per_s
  done
  if [ -n "${http_node:-}" ]; then stop_pid "$http_node"; fi
fi
printf 'http: %s\n' "$http_reason" >>"$results"

# ---- scenario 6: kv on a three-server cluster -----------------------------------
# The bucket and streams have three replicas, so every write is replicated
# before it is acknowledged, and a replicated bucket's writes are claimed
# first (src/store/kv_claims.h). The driver and the floor's client use
# server n1, the modules n2, so requests and steps also cross a route.
log "three-server cluster: floor and conveyor kv --replicas 3 at W=1 and W=256"
have_cluster=0
cluster_base=$(( (RANDOM % 2000) * 3 + 30000 ))
if cluster_urls=$("$root/deploy/cluster/start.sh" "$tmp/cluster" "$cluster_base" \
  "$((cluster_base + 3))" 2>"$tmp/cluster.err"); then
  node_url=$url
  url="nats://127.0.0.1:$cluster_base"
  module_url="nats://127.0.0.1:$((cluster_base + 1))"
  for prefix in cf ck; do
    "$bin/bench-module" --nats "$module_url" --prefix "$prefix" --subsystem bench-echo \
      --control "bench.control.$prefix" >"$tmp/module-$prefix.out" 2>&1 &
    pids+=("$!")
    wait_for "$tmp/module-$prefix.out" ready "$!" 300 || log "cluster bench-module did not start"
  done
  "$conveyor" node --nats "$cluster_urls" --rules "$rules" --state kv --prefix ck --replicas 3 \
    --name bench-cluster --log-level info 2>"$tmp/bench-cluster.log" &
  cluster_node=$!
  pids+=("$cluster_node")
  # A cluster just started elects its JetStream leaders first.
  if wait_for "$tmp/bench-cluster.log" "node ready" "$cluster_node" 600; then
    have_cluster=1
    for w in 1 256; do
      for r in $(seq 1 "$rounds"); do
        run_step "cfloor.$w.r$r" "$bin/bench-floor" --mode run --nats "$url" --prefix cf \
          --subsystem bench-echo --inflight "$w" --steps 3 --asap on --warmup "$warmup" \
          --duration "$duration" --control bench.control.cf
        drive "ckv.$w.r$r" ck bench-linear "$w" bench.control.ck
      done
      best "cfloor.$w" steps_per_s
      best "ckv.$w" steps_per_s
    done
  fi
  [ "$have_cluster" = 1 ] || log "the cluster node did not get ready: $(tail -1 "$tmp/bench-cluster.log")"
  stop_pid "$cluster_node"
  url=$node_url
else
  log "the cluster did not start: $(tail -1 "$tmp/cluster.err")"
fi

# ---- the table -----------------------------------------------------------------
rows="$tmp/rows"
: >"$rows"
# row FIGURE CONVEYOR FLOOR KIND TARGET: KIND is "min" (conveyor/floor must reach TARGET),
# "max" (conveyor/floor must stay at or below TARGET), "abs-min"/"abs-max" (conveyor itself),
# or "-" (no target). Empty values print as "n/a".
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "${2:-n/a}" "${3:-n/a}" "$4" "$5" >>"$rows"; }
us() { [ -n "${1:-}" ] && awk -v v="$1" 'BEGIN { printf "%.0f", v / 1000 }'; }

for w in 1 16 256; do
  f=floor.$w
  row "S1 memory W=$w steps/s" "${R[memory.$w.steps_per_s]:-}" "${R[$f.steps_per_s]:-}" \
    "$([ "$w" = 256 ] && echo min || echo -)" "0.30"
  row "S1 memory W=$w instances/s" "${R[memory.$w.instances_per_s]:-}" "${R[$f.instances_per_s]:-}" - ""
  row "S1 memory W=$w step p50 us" "$(us "${R[memory.$w.step_p50_ns]:-}")" \
    "$(us "${R[$f.step_p50_ns]:-}")" "$([ "$w" = 1 ] && echo max || echo -)" "2.0"
  row "S1 memory W=$w step p99 us" "$(us "${R[memory.$w.step_p99_ns]:-}")" \
    "$(us "${R[$f.step_p99_ns]:-}")" - ""
done
for w in 1 16 256; do
  f=floor.$w
  if [ "$have_kv" = 1 ]; then
    row "S1 kv W=$w steps/s" "${R[kv.$w.steps_per_s]:-}" "${R[$f.steps_per_s]:-}" \
      "$([ "$w" = 256 ] && echo min || echo -)" "0.10"
    row "S1 kv W=$w instances/s" "${R[kv.$w.instances_per_s]:-}" "${R[$f.instances_per_s]:-}" - ""
    row "S1 kv W=$w step p50 us" "$(us "${R[kv.$w.step_p50_ns]:-}")" "$(us "${R[$f.step_p50_ns]:-}")" - ""
    row "S1 kv W=$w step p99 us" "$(us "${R[kv.$w.step_p99_ns]:-}")" "$(us "${R[$f.step_p99_ns]:-}")" - ""
  else
    row "S1 kv W=$w steps/s" "" "${R[$f.steps_per_s]:-}" "$([ "$w" = 256 ] && echo min || echo -)" "0.10"
  fi
done
for w in 1 16 256; do
  f=floor.$w
  row "S2 seed rules W=$w steps/s" "${R[seed.$w.steps_per_s]:-}" "${R[$f.steps_per_s]:-}" - ""
  row "S2 seed rules W=$w step p50 us" "$(us "${R[seed.$w.step_p50_ns]:-}")" "$(us "${R[$f.step_p50_ns]:-}")" - ""
  row "S2 seed rules W=$w step p99 us" "$(us "${R[seed.$w.step_p99_ns]:-}")" "$(us "${R[$f.step_p99_ns]:-}")" - ""
done
kib() { [ -n "${1:-}" ] && awk -v v="$1" 'BEGIN { printf "%.0f", v / 1024 }'; }
for n in 10000 100000; do
  row "S3 RSS KiB, $n parked" "$(kib "${R[park.$n.rss]:-}")" "$(kib "${R[floorpark.$n.rss]:-}")" - ""
  row "S3 bytes/instance beyond 1 KB request, $n parked" "${R[park.$n.beyond_request]:-}" \
    "${R[floorpark.$n.beyond_request]:-}" "$([ "$n" = 100000 ] && echo abs-max || echo -)" "4096"
done
row "S4 condition nodes/s (1 core)" "${R[rules.nodes_per_s]:-}" "" abs-min "1000000"
row "S4 decisions/s (1 core)" "${R[rules.decisions_per_s]:-}" "" - ""
for w in 1 16 256; do
  row "S5 http W=$w steps/s" "${R[http.$w.steps_per_s]:-}" "${R[httpfloor.$w.steps_per_s]:-}" - ""
done
for w in 1 256; do
  row "S6 kv cluster, replicas 3, W=$w steps/s" "${R[ckv.$w.steps_per_s]:-}" \
    "${R[cfloor.$w.steps_per_s]:-}" - ""
  row "S6 kv cluster, replicas 3, W=$w step p50 us" "$(us "${R[ckv.$w.step_p50_ns]:-}")" \
    "$(us "${R[cfloor.$w.step_p50_ns]:-}")" - ""
done

awk -F '\t' '
function num(v) { return v != "n/a" && v != "" }
function show(v) { if (!num(v)) return v; if (v + 0 >= 100) return sprintf("%.0f", v); return sprintf("%.1f", v) }
BEGIN {
  printf "%-58s | %10s | %10s | %6s | %-16s | %s\n", "figure", "conveyor", "floor", "ratio", "target", "met?"
  printf "%s\n", "-----------------------------------------------------------+------------+------------+--------+------------------+-----"
}
{
  ratio = "-"; target = "-"; met = "-"
  if (num($2) && num($3) && $3 + 0 > 0) ratio = sprintf("%.2f", $2 / $3)
  if ($4 == "min") { target = ">= " $5 " x floor"; if (ratio != "-") met = (ratio + 0 >= $5 + 0) ? "yes" : "NO"; else met = "n/a" }
  if ($4 == "max") { target = "<= " $5 " x floor"; if (ratio != "-") met = (ratio + 0 <= $5 + 0) ? "yes" : "NO"; else met = "n/a" }
  if ($4 == "abs-min") { target = ">= " $5; if (num($2)) met = ($2 + 0 >= $5 + 0) ? "yes" : "NO"; else met = "n/a" }
  if ($4 == "abs-max") { target = "<= " $5 " B"; if (num($2)) met = ($2 + 0 <= $5 + 0) ? "yes" : "NO"; else met = "n/a" }
  printf "%-58s | %10s | %10s | %6s | %-16s | %s\n", $1, show($2), show($3), ratio, target, met
}' "$rows"

echo
[ "$have_kv" = 1 ] || echo "S1 kv: not available in this build (conveyor node --state kv did not start)"
[ "$have_cluster" = 1 ] || echo "S6 kv cluster: not measured (the cluster or its node did not start)"
[ "$have_http" = 1 ] || echo "S5 http: conveyor $http_reason; the floor column is the same server driven by libcurl"
printf 'floor flush policy per W (SendAsap): W=1 %s, W=16 %s, W=256 %s\n' \
  "${R[floor.1.asap]:-?}" "${R[floor.16.asap]:-?}" "${R[floor.256.asap]:-?}"
echo "per-step latency: bench-module's receipt of step k to its receipt of step k+1 of the same instance"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "raw output: $results; took $(($(date +%s) - started_at)) s"
if [ -s "$tmp/errors.log" ]; then
  echo "errors from the benchmark programs:"
  sed 's/^/  /' "$tmp/errors.log" | tail -20
fi
