#!/usr/bin/env bash
# Install the Debian packages the project needs when they are missing:
# Chromium for browser and accessibility tests, Node.js/npm for the NHS.UK assets.
set -euo pipefail
need=()
[ "${1:-}" = "--browser" ] && { command -v chromium >/dev/null 2>&1 || need+=(chromium); }
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-system: please install: ${need[*]}" >&2
    exit 1
  fi
  echo "ensure-system: installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
