#!/usr/bin/env bash
# Builds (release) and runs the appliance with the example configuration and
# the built-in demo stream (a live ladder with no camera). Open
# http://localhost:8080/ for the player page.
# Extra arguments go to `ladderd serve`, e.g. --rtmp-listen 127.0.0.1:1935.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need nasm nasm
need npm npm
# The fast software decoder and scaler, opened at run time (decoder/scaler = "auto";
# see README, Licences).
ls /usr/lib/*/libavcodec.so.59 >/dev/null 2>&1 || missing+=(libavcodec59)
ls /usr/lib/*/libswscale.so.6 >/dev/null 2>&1 || missing+=(libswscale6)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "scripts/run.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi
# hls.js for the player page, from the lockfile.
[ -f node_modules/hls.js/dist/hls.min.js ] || npm ci --omit=dev --no-audit --no-fund --loglevel=error
exec cargo run --release --locked -- --config ladderd.example.toml serve --demo "$@"
