/* libnvidia-encode.so.1 as a Hopper driver ships it: the API loads, offers a
 * recent version, and opening an encode session fails with
 * NV_ENC_ERR_UNSUPPORTED_DEVICE (the GPU has no NVENC). */
#include <string.h>
#include <ffnvcodec/nvEncodeAPI.h>

static NVENCSTATUS NVENCAPI open_session(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *p, void **enc) {
    (void)p; *enc = 0; return NV_ENC_ERR_UNSUPPORTED_DEVICE; }

NVENCSTATUS NVENCAPI NvEncodeAPIGetMaxSupportedVersion(uint32_t *v) { *v = (12 << 4) | 2; return NV_ENC_SUCCESS; }
NVENCSTATUS NVENCAPI NvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST *f) {
    if (f->version != NV_ENCODE_API_FUNCTION_LIST_VER) return NV_ENC_ERR_INVALID_VERSION;
    f->nvEncOpenEncodeSessionEx = open_session;
    return NV_ENC_SUCCESS;
}
