#!/usr/bin/env bash
# The one test command. On a fresh Debian machine it installs what the tests
# drive (ffmpeg/ffprobe as the real RTMP peer, curl for h2c, nasm and
# pkg-config for the codec build, kill from procps, chromium + node/npm for
# hls.js playback and hls-parser, xmllint (libxml2-utils) for the MPD schema,
# varnish for the edge tier), installs the npm packages from the
# lockfile, promtool (prometheus) and systemd-analyze (systemd) for the
# operations checks, libx264-dev and libclang-dev (the x264 feature),
# ffnvcodec headers and libavcodec-dev (the CPU stand-ins for NVIDIA's driver
# libraries: libavcodec decodes H.264 for the NVDEC stand-in), NVRTC (PyPI wheel, no GPU needed) for the CUDA kernel
# compile tests, Garage (cargo install) for the archive tests, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need ffmpeg ffmpeg
need ffprobe ffmpeg
# A second SRT peer (ffmpeg is the first; both use Debian's libsrt).
need srt-live-transmit srt-tools
need curl curl
need nasm nasm
need pkg-config pkg-config
need /usr/bin/kill procps
need chromium chromium
need node nodejs
need npm npm
need promtool prometheus
need systemd-analyze systemd
# The DASH tests validate MPDs against the MPEG schema.
need xmllint libxml2-utils
# The edge tier in front of the origin (deploy/varnish/).
need varnishd varnish
need varnishncsa varnish
# NVIDIA's MIT-licensed codec headers: the GPU tests build stub driver libraries.
[ -f /usr/include/ffnvcodec/nvEncodeAPI.h ] || missing+=(libffmpeg-nvenc-dev)
# The NVDEC stand-in decodes with FFmpeg's libavcodec (headers + .so links).
pkg-config --exists libavcodec 2>/dev/null || missing+=(libavcodec-dev)
# The x264 feature: libx264 to link, libclang for x264-sys's bindgen.
pkg-config --exists x264 2>/dev/null || missing+=(libx264-dev)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "scripts/test.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    $(printf '%s\n' "${missing[@]}" | sort -u)
fi

npm ci --no-audit --no-fund --loglevel=error

# The archive tests drive a real S3-compatible server: Garage, from crates.io
# (LMDB metadata; its C libraries built from source).
if ! command -v garage >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  gstart=$(date +%s)
  cargo install --locked garage --version 2.5.0 --no-default-features --features bundled-libs,lmdb
  echo "scripts/test.sh: garage install took $(( $(date +%s) - gstart )) s" >&2
fi

# NVRTC without a GPU, for the CUDA kernel tests: NVIDIA's wheel in a venv,
# put on the loader path for the build (build.rs compiles the kernels to PTX)
# and the tests (which then require it).
nvrtc_wheel="nvidia-cuda-nvrtc-cu12==12.9.86"
if ! .venv/bin/python -c 'import nvidia.cuda_nvrtc' >/dev/null 2>&1; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "$nvrtc_wheel"
fi
nvrtc_lib=$(echo "$PWD"/.venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib)
export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LADDERD_REQUIRE_NVRTC=1
# Every test in tests/gpu.rs must run here (the stand-ins and kernels are
# installed above): one that cannot fails instead of passing unchecked. On a
# machine with a real NVIDIA driver the two "no driver" checks cannot hold;
# there they say so and hwtest/run.sh is the GPU suite.
if ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 '; then
  echo "scripts/test.sh: this machine has libcuda: the no-driver checks in tests/gpu.rs will be skipped" >&2
else
  export LADDERD_REQUIRE_GPU=1
fi
cargo --version
start=$(date +%s)
# The default binary (openh264 only, what scripts/run.sh builds) must build;
# everything else (benches included) builds and tests with the x264 feature
# too, which covers the default code paths as well.
cargo build --locked --bin ladderd
cargo build --locked --all-targets --features x264
echo "scripts/test.sh: build took $(( $(date +%s) - start )) s" >&2
cargo test --locked --features x264
echo "scripts/test.sh: build + tests took $(( $(date +%s) - start )) s" >&2
