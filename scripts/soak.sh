#!/usr/bin/env bash
# Soak: run the real ladderd for N hours under publisher drops, failover, pollers and
# SIGHUPs, sampling RSS, fds, threads, DVR disk use and archive lag every 30 s; prints a
# Markdown table, writes OUT/soak.md and OUT/soak.svg. Not a CI test (issue 30).
#
#   bash scripts/soak.sh --hours 2 --out /tmp/soak
#   LADDERD_BIN=target/debug/ladderd bash scripts/soak.sh --hours 0.1 --out /tmp/soak-smoke
#
# LADDERD_BIN: the binary (default target/release/ladderd, built with
# `cargo build --release --locked` when missing). A `garage` binary (~/.cargo/bin,
# LADDERD_GARAGE or PATH) turns the archive to a local Garage on; without one the soak
# runs without the archive and says so. Every other option: `scripts/soak.py --help`.
# Exit: 0 ok; 1 ladderd died; 2 the soak could not run; 3 ladderd did not stop cleanly.
set -euo pipefail

here=$(pwd)
cd "$(dirname "$0")/.."
root=$(pwd)
abs() { case "$1" in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }

out=""
hours=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$(abs "$2"); shift 2 ;;
        --out=*) out=$(abs "${1#--out=}"); shift ;;
        --hours) hours="$2"; args+=(--hours "$2"); shift 2 ;;
        --hours=*) hours="${1#--hours=}"; args+=("$1"); shift ;;
        -h|--help) exec python3 "$root/scripts/soak.py" --help ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -z "$hours" ]; then
    echo "usage: scripts/soak.sh --hours H [--out DIR] [soak.py options]" >&2
    exit 2
fi
if [ -z "$out" ]; then
    out="$root/target/soak-$(date -u +%Y%m%dT%H%M%SZ)"
fi
args+=(--out "$out")

for tool in ffmpeg python3 du; do
    command -v "$tool" >/dev/null || { echo "soak: $tool is not installed" >&2; exit 2; }
done

if [ -n "${LADDERD_BIN:-}" ]; then bin=$(abs "$LADDERD_BIN"); else bin="$root/target/release/ladderd"; fi
if [ ! -x "$bin" ]; then
    if [ -n "${LADDERD_BIN:-}" ]; then
        echo "soak: LADDERD_BIN=$bin is not an executable" >&2
        exit 2
    fi
    echo "soak: $bin missing: cargo build --release --locked" >&2
    cargo build --release --locked --bin ladderd
fi

mkdir -p "$out"
pidfile="$out/work/pids"
py=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # soak.py stops what it started itself; this is for a soak.py that was killed.
    if [ -n "$py" ] && kill -0 "$py" 2>/dev/null; then
        kill -TERM "$py" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$py" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$py" 2>/dev/null || true
    fi
    if [ -s "$pidfile" ]; then
        while read -r pid; do
            # Each child leads a process group of its own.
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        done <"$pidfile"
        : >"$pidfile"
    fi
    exit "$rc"
}
trap cleanup EXIT
# Ctrl-C reaches soak.py too; a TERM sent to this script alone is passed on. Either
# way soak.py stops everything, writes the report and exits; we wait for it.
trap 'kill -TERM "$py" 2>/dev/null || true' INT TERM

python3 -u "$root/scripts/soak.py" --bin "$bin" "${args[@]}" &
py=$!
set +e
wait "$py"
rc=$?
# A signal interrupts `wait`: wait again for the report.
while kill -0 "$py" 2>/dev/null; do wait "$py"; rc=$?; done
exit "$rc"
