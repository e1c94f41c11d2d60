#!/usr/bin/env bash
# Installs what the tests need beyond the .NET SDK, from Debian's packages:
#   nats-server (JetStream capable), prometheus (the real scraper of the registry's /metrics test),
#   chromium and chromium-driver (the dashboard's browser tests drive headless Chromium through Selenium).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "install-deps: ${missing[*]} not found, installing the Debian package(s)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: prometheus recommends node-exporter and friends; the tests start only the server, by hand.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in nats-server prometheus chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-deps: $tool still missing after install" >&2; exit 1; }
done
# The package starts a system Prometheus on :9090 under systemd where systemd runs; the tests need none of it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus || true
  $SUDO systemctl disable prometheus >/dev/null 2>&1 || true
fi
echo "install-deps: $(nats-server --version); $(prometheus --version 2>&1 | head -n 1); $(chromedriver --version 2>&1 | head -n 1)" >&2
