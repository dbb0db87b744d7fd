#!/usr/bin/env bash
# The hardware lab's one command on a GPU box:   bash hwtest/run.sh [ladderd hwtest options]
# Runs `ladderd probe`, then `ladderd hwtest`, printing a table and writing
# hwtest/results/hwtest-<UTC time>.json. Uses $LADDERD when set (a release
# binary carried to a box without a toolchain), else target/release/ladderd,
# building it when missing. Needs the NVIDIA driver; nothing else (the input
# is made by ladderd itself). Exit 0: all checks passed; 1: a check failed;
# 2: no usable GPU (nothing ran).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LADDERD:-target/release/ladderd}
if [ ! -x "$bin" ]; then
  cargo build --release --locked
fi
mkdir -p hwtest/results
"$bin" probe
exec "$bin" hwtest --json "hwtest/results/hwtest-$(date -u +%Y%m%dT%H%M%SZ).json" "$@"
