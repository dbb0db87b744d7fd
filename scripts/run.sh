#!/usr/bin/env bash
# Builds (release) and runs the appliance with the example configuration and
# the built-in demo stream (a live ladder with no camera).
# Extra arguments go to `ladderd serve`, e.g. --rtmp-listen 127.0.0.1:1935.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -- --config ladderd.example.toml serve --demo "$@"
