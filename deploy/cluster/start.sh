#!/usr/bin/env bash
# Starts a three-server nats-server cluster with JetStream on 127.0.0.1.
#
#   deploy/cluster/start.sh DIR [CLIENT_BASE_PORT [CLUSTER_BASE_PORT]]
#
# Servers listen for clients on CLIENT_BASE_PORT..+2 (default 4222) and for
# each other on CLUSTER_BASE_PORT..+2 (default 6222). Configs, stores, logs
# and pid files go to DIR; deploy/cluster/stop.sh DIR stops them by pid.
# Prints the client URL list for `conveyor node --nats` when all three
# servers accept connections. Run nodes with --replicas 3 so that their
# streams and bucket survive the loss of one server.
set -euo pipefail

dir=${1:?usage: start.sh DIR [CLIENT_BASE_PORT [CLUSTER_BASE_PORT]]}
client_base=${2:-4222}
cluster_base=${3:-6222}
here=$(cd "$(dirname "$0")" && pwd)
server=$(command -v nats-server || echo /usr/sbin/nats-server)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

routes=""
for i in 0 1 2; do
  routes+="nats-route://127.0.0.1:$((cluster_base + i))"$'\n    '
done

urls=()
for i in 0 1 2; do
  name="n$((i + 1))"
  sed -e "s|@NAME@|$name|" \
      -e "s|@CLIENT_PORT@|$((client_base + i))|" \
      -e "s|@CLUSTER_PORT@|$((cluster_base + i))|" \
      -e "s|@STORE_DIR@|$dir/$name|" \
      -e "s|@ROUTES@|${routes//$'\n'/\\n}|" \
      "$here/server.conf.in" > "$dir/$name.conf"
  "$server" -c "$dir/$name.conf" > "$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
  urls+=("nats://127.0.0.1:$((client_base + i))")
done

for i in 0 1 2; do
  port=$((client_base + i))
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "start.sh: server n$((i + 1)) is not listening on port $port; see $dir/n$((i + 1)).log" >&2
    exit 1
  fi
done

(IFS=,; echo "${urls[*]}")
