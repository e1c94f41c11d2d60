#!/usr/bin/env bash
# Installs what the tests need beyond the .NET SDK: nats-server (Debian package, JetStream capable).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

if command -v nats-server >/dev/null 2>&1; then
  exit 0
fi

echo "install-deps: nats-server not found, installing the Debian package" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root (or sudo) to apt-get install nats-server" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq nats-server >/dev/null
command -v nats-server >/dev/null 2>&1 || { echo "install-deps: nats-server still missing after install" >&2; exit 1; }
echo "install-deps: $(nats-server --version)" >&2
