#!/usr/bin/env bash
# Installs the Debian packages conveyor needs to build, test and run.
# Idempotent: packages already present are left alone and nothing is
# downloaded when everything is installed. Works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libnats-dev liblua5.4-dev libjansson-dev libcurl4-openssl-dev libcmocka-dev
  nats-server python3 ca-certificates
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: missing packages (${missing[*]}) and not root; run as root or install sudo" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
