#!/usr/bin/env bash
# Regenerates the NVDEC/NVENC struct layouts in src/transcode/gpu/ffi/ from the
# MIT-licensed headers in Debian's libffmpeg-nvenc-dev (ffnvcodec 11.1). Run by
# hand when the headers move; the output is committed, so building never needs
# bindgen, clang or the headers. Needs: apt-get install libffmpeg-nvenc-dev
# libclang-dev; cargo install bindgen-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
out=src/transcode/gpu/ffi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include <ffnvcodec/dynlink_cuda.h>\n#include <ffnvcodec/dynlink_cuviddec.h>\n#include <ffnvcodec/dynlink_nvcuvid.h>\n' >"$tmp/nvcuvid.h"
printf '#include <ffnvcodec/nvEncodeAPI.h>\n' >"$tmp/nvenc.h"
common=(--no-layout-tests --no-doc-comments --use-core --default-enum-style=consts --no-prepend-enum-name)
# Types and constants only: the entry points are looked up with libloading at run time.
bindgen "$tmp/nvcuvid.h" "${common[@]}" \
  --allowlist-type 'CUVID.*|cudaVideo.*|tcuvid.*|CUvideo.*|PFNVID.*|cudaAudio.*|CUAUDIO.*|CUVIDEOFORMAT.*' \
  --allowlist-var 'CUVID_.*|cudaVideo.*' -o "$out/nvcuvid_sys.rs" -- -I/usr/include
bindgen "$tmp/nvenc.h" "${common[@]}" \
  --allowlist-type 'NV_ENC.*|NVENC.*|_NV_ENC.*|GUID|PNVENC.*|NV_ENCODE.*' \
  --allowlist-var 'NVENC.*|NV_ENC.*' --blocklist-var '.*_GUID' -o "$out/nvenc_sys.rs" -- -I/usr/include
