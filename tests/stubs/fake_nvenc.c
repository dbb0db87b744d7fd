/* A stand-in libnvidia-encode.so.1 (tests only), written against NVIDIA's
 * nvEncodeAPI.h (ffnvcodec): the API loads, offers version 12.2 and fills the
 * function table.
 *
 * LADDERD_STANDIN_GPU=h100 (default): opening a session fails with
 * NV_ENC_ERR_UNSUPPORTED_DEVICE, as on Hopper (no NVENC).
 * LADDERD_STANDIN_GPU=rtx: sessions open, at most LADDERD_STANDIN_NVENC_SESSIONS
 * at a time (default 3, as consumer GeForce drivers cap them; more answer
 * NV_ENC_ERR_OUT_OF_MEMORY), and encode H.264 for real with libx264 reading the
 * registered NV12 device memory (chroma at pitch x height) in place. Held to the
 * contract: struct versions, the CUDA context, registration of live
 * allocations (freeing one while registered is a violation, see fake_cuda.c),
 * map before encode and unmap after, one bitstream lock at a time, a picture
 * encoded only once the GPU work writing it has finished, and the EOS flush (a
 * NULL picture with NV_ENC_PIC_FLAG_EOS) before nvEncDestroyEncoder. */
#include <stdint.h>
#include <x264.h>
#include <ffnvcodec/nvEncodeAPI.h>
#include "standin.h"

#define FAIL(name)                           \
    do {                                     \
        int c_ = standin_fail(name);         \
        if (c_) return (NVENCSTATUS)c_;      \
    } while (0)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int sessions;

#define MAX_REGS 64
struct reg {
    int live, mapped;
    standin_devptr ptr;
    uint32_t width, height, pitch;
};
struct bitstream {
    int live, filled, locked;
    unsigned char *data;
    size_t size, cap;
    uint64_t ts;
    uint32_t frame_idx;
    NV_ENC_PIC_TYPE type;
};
struct encoder {
    int initialised, eos;
    long frames;
    uint32_t width, height;
    x264_t *x;
    struct reg regs[MAX_REGS];
    struct bitstream bs[4];
};

static int enabled(void) {
    const char *g = getenv("LADDERD_STANDIN_GPU");
    return g && strcmp(g, "rtx") == 0;
}

static NVENCSTATUS NVENCAPI open_session(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *p, void **out) {
    *out = 0;
    if (!enabled()) return NV_ENC_ERR_UNSUPPORTED_DEVICE;
    FAIL("nvEncOpenEncodeSessionEx");
    if (p->version != NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (p->deviceType != NV_ENC_DEVICE_TYPE_CUDA) return NV_ENC_ERR_UNSUPPORTED_DEVICE;
    if (p->device != standin_context()) return NV_ENC_ERR_INVALID_DEVICE;
    if (p->apiVersion != NVENCAPI_VERSION) return NV_ENC_ERR_INVALID_VERSION;
    pthread_mutex_lock(&mu);
    long limit = standin_env_long("LADDERD_STANDIN_NVENC_SESSIONS", 3);
    if (sessions >= limit) {
        pthread_mutex_unlock(&mu);
        fprintf(stderr, "ladderd stand-in: NVENC session limit (%ld) reached\n", limit);
        return NV_ENC_ERR_OUT_OF_MEMORY;
    }
    sessions++;
    pthread_mutex_unlock(&mu);
    *out = calloc(1, sizeof(struct encoder));
    return NV_ENC_SUCCESS;
}

static const GUID h264 = {0x6bc82762, 0x4e63, 0x4ca4, {0xaa, 0x85, 0x1e, 0x50, 0xf3, 0x21, 0xf6, 0xbf}};
static int same(const GUID *a, const GUID *b) { return memcmp(a, b, sizeof *a) == 0; }

static NVENCSTATUS NVENCAPI guid_count(void *e, uint32_t *n) {
    (void)e;
    *n = 1;
    return NV_ENC_SUCCESS;
}
static NVENCSTATUS NVENCAPI guids(void *e, GUID *g, uint32_t size, uint32_t *n) {
    (void)e;
    if (size < 1) return NV_ENC_ERR_INVALID_PARAM;
    g[0] = h264;
    *n = 1;
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI preset_config(void *e, GUID codec, GUID preset, NV_ENC_TUNING_INFO tuning,
                                          NV_ENC_PRESET_CONFIG *c) {
    (void)e, (void)preset, (void)tuning;
    if (!same(&codec, &h264)) return NV_ENC_ERR_UNSUPPORTED_PARAM;
    if (c->version != NV_ENC_PRESET_CONFIG_VER || c->presetCfg.version != NV_ENC_CONFIG_VER)
        return NV_ENC_ERR_INVALID_VERSION;
    c->presetCfg.gopLength = 250;
    c->presetCfg.frameIntervalP = 1;
    c->presetCfg.rcParams.version = NV_ENC_RC_PARAMS_VER;
    c->presetCfg.rcParams.rateControlMode = NV_ENC_PARAMS_RC_CONSTQP;
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI initialize(void *h, NV_ENC_INITIALIZE_PARAMS *p) {
    FAIL("nvEncInitializeEncoder");
    struct encoder *e = h;
    if (p->version != NV_ENC_INITIALIZE_PARAMS_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (!same(&p->encodeGUID, &h264)) return NV_ENC_ERR_UNSUPPORTED_PARAM;
    if (e->initialised) return NV_ENC_ERR_INVALID_CALL;
    NV_ENC_CONFIG *c = p->encodeConfig;
    if (!c || c->version != NV_ENC_CONFIG_VER || c->rcParams.version != NV_ENC_RC_PARAMS_VER)
        return NV_ENC_ERR_INVALID_VERSION;
    if (p->encodeWidth < 32 || p->encodeHeight < 32 || p->encodeWidth > 4096 || p->encodeHeight > 4096 ||
        p->enableEncodeAsync || !p->enablePTD || !p->frameRateNum || !p->frameRateDen)
        return NV_ENC_ERR_INVALID_PARAM;
    if (c->frameIntervalP != 1)
        standin_violation("nvEncInitializeEncoder: frameIntervalP %d (B-frames): ladderd's path assumes none",
                          c->frameIntervalP);
    x264_param_t xp;
    x264_param_default_preset(&xp, "ultrafast", "zerolatency");
    xp.i_width = (int)p->encodeWidth;
    xp.i_height = (int)p->encodeHeight;
    xp.i_csp = X264_CSP_NV12;
    xp.i_fps_num = p->frameRateNum;
    xp.i_fps_den = p->frameRateDen;
    xp.i_keyint_max = c->gopLength == NVENC_INFINITE_GOPLENGTH ? X264_KEYINT_MAX_INFINITE : (int)c->gopLength;
    xp.b_repeat_headers = c->encodeCodecConfig.h264Config.repeatSPSPPS;
    xp.b_annexb = 1;
    xp.i_threads = 1;
    xp.i_log_level = X264_LOG_NONE;
    uint32_t kbps = c->rcParams.averageBitRate / 1000;
    if (c->rcParams.rateControlMode == NV_ENC_PARAMS_RC_CBR && kbps) {
        xp.rc.i_rc_method = X264_RC_ABR;
        xp.rc.i_bitrate = (int)kbps;
        xp.rc.i_vbv_max_bitrate = (int)(c->rcParams.maxBitRate / 1000);
        xp.rc.i_vbv_buffer_size = (int)(c->rcParams.vbvBufferSize / 1000);
    }
    x264_param_apply_profile(&xp, "high");
    e->x = x264_encoder_open(&xp);
    if (!e->x) return NV_ENC_ERR_INVALID_PARAM;
    e->width = p->encodeWidth;
    e->height = p->encodeHeight;
    e->initialised = 1;
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI create_bitstream(void *h, NV_ENC_CREATE_BITSTREAM_BUFFER *p) {
    FAIL("nvEncCreateBitstreamBuffer");
    struct encoder *e = h;
    if (p->version != NV_ENC_CREATE_BITSTREAM_BUFFER_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (!e->initialised) return NV_ENC_ERR_ENCODER_NOT_INITIALIZED;
    for (int i = 0; i < 4; i++)
        if (!e->bs[i].live) {
            memset(&e->bs[i], 0, sizeof e->bs[i]);
            e->bs[i].live = 1;
            p->bitstreamBuffer = &e->bs[i];
            return NV_ENC_SUCCESS;
        }
    return NV_ENC_ERR_OUT_OF_MEMORY;
}
static struct bitstream *bitstream_of(struct encoder *e, void *p, const char *call) {
    for (int i = 0; i < 4; i++)
        if (p == &e->bs[i] && e->bs[i].live) return &e->bs[i];
    standin_violation("%s: %p is not a bitstream buffer of this session", call, p);
}
static NVENCSTATUS NVENCAPI destroy_bitstream(void *h, NV_ENC_OUTPUT_PTR p) {
    struct bitstream *b = bitstream_of(h, p, "nvEncDestroyBitstreamBuffer");
    if (b->locked) standin_violation("nvEncDestroyBitstreamBuffer while locked");
    free(b->data);
    memset(b, 0, sizeof *b);
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI register_resource(void *h, NV_ENC_REGISTER_RESOURCE *p) {
    FAIL("nvEncRegisterResource");
    struct encoder *e = h;
    if (p->version != NV_ENC_REGISTER_RESOURCE_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (p->resourceType != NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR || p->bufferFormat != NV_ENC_BUFFER_FORMAT_NV12 ||
        p->bufferUsage != NV_ENC_INPUT_IMAGE)
        return NV_ENC_ERR_UNSUPPORTED_PARAM;
    if (p->pitch < p->width || p->width != e->width || p->height != e->height) return NV_ENC_ERR_INVALID_PARAM;
    standin_devptr ptr = (standin_devptr)(uintptr_t)p->resourceToRegister;
    standin_resolve(ptr, (size_t)p->pitch * p->height * 3 / 2, "nvEncRegisterResource (NV12, pitch x height x 3/2)");
    for (int i = 0; i < MAX_REGS; i++)
        if (!e->regs[i].live) {
            struct reg *r = &e->regs[i];
            r->live = 1, r->mapped = 0, r->ptr = ptr, r->width = p->width, r->height = p->height, r->pitch = p->pitch;
            standin_hold(ptr, +1);
            p->registeredResource = r;
            return NV_ENC_SUCCESS;
        }
    return NV_ENC_ERR_RESOURCE_REGISTER_FAILED;
}
static struct reg *reg_of(struct encoder *e, void *p, const char *call) {
    for (int i = 0; i < MAX_REGS; i++)
        if (p == &e->regs[i] && e->regs[i].live) return &e->regs[i];
    standin_violation("%s: %p is not a registered resource of this session", call, p);
}
static NVENCSTATUS NVENCAPI unregister_resource(void *h, NV_ENC_REGISTERED_PTR p) {
    struct reg *r = reg_of(h, p, "nvEncUnregisterResource");
    if (r->mapped) standin_violation("nvEncUnregisterResource while mapped");
    standin_hold(r->ptr, -1);
    r->live = 0;
    return NV_ENC_SUCCESS;
}
/* A mapped input is a different handle from its registration. */
#define MAPPED(r) ((void *)((uintptr_t)(r) | 1))
static struct reg *mapped_of(struct encoder *e, void *p, const char *call) {
    if (!((uintptr_t)p & 1)) standin_violation("%s: %p is not a mapped input (pass mappedResource)", call, p);
    struct reg *r = reg_of(e, (void *)((uintptr_t)p & ~(uintptr_t)1), call);
    if (!r->mapped) standin_violation("%s: resource not mapped", call);
    return r;
}
static NVENCSTATUS NVENCAPI map_input(void *h, NV_ENC_MAP_INPUT_RESOURCE *p) {
    FAIL("nvEncMapInputResource");
    if (p->version != NV_ENC_MAP_INPUT_RESOURCE_VER) return NV_ENC_ERR_INVALID_VERSION;
    struct reg *r = reg_of(h, p->registeredResource, "nvEncMapInputResource");
    if (r->mapped) return NV_ENC_ERR_INVALID_CALL;
    r->mapped = 1;
    p->mappedResource = MAPPED(r);
    p->mappedBufferFmt = NV_ENC_BUFFER_FORMAT_NV12;
    return NV_ENC_SUCCESS;
}
static NVENCSTATUS NVENCAPI unmap_input(void *h, NV_ENC_INPUT_PTR p) {
    struct reg *r = mapped_of(h, p, "nvEncUnmapInputResource");
    r->mapped = 0;
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI encode(void *h, NV_ENC_PIC_PARAMS *p) {
    struct encoder *e = h;
    if (p->version != NV_ENC_PIC_PARAMS_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (p->encodePicFlags & NV_ENC_PIC_FLAG_EOS) {
        if (p->inputBuffer) standin_violation("nvEncEncodePicture: EOS with an input picture");
        e->eos = 1;
        return NV_ENC_SUCCESS;
    }
    FAIL("nvEncEncodePicture");
    if (!e->initialised) return NV_ENC_ERR_ENCODER_NOT_INITIALIZED;
    if (e->eos) standin_violation("nvEncEncodePicture after the EOS flush");
    struct reg *r = mapped_of(e, p->inputBuffer, "nvEncEncodePicture");
    struct bitstream *b = bitstream_of(e, p->outputBitstream, "nvEncEncodePicture");
    if (b->locked || b->filled) standin_violation("nvEncEncodePicture into a bitstream buffer not yet unlocked");
    if (p->inputWidth != e->width || p->inputHeight != e->height || p->inputPitch != r->pitch ||
        p->bufferFmt != NV_ENC_BUFFER_FORMAT_NV12 || p->pictureStruct != NV_ENC_PIC_STRUCT_FRAME)
        return NV_ENC_ERR_INVALID_PARAM;
    size_t bytes = (size_t)r->pitch * r->height * 3 / 2;
    if (standin_pending_write(r->ptr, bytes))
        standin_violation("nvEncEncodePicture reads 0x%llx while queued GPU work still writes it "
                          "(synchronise the stream first)",
                          r->ptr);
    unsigned char *y = standin_resolve(r->ptr, bytes, "nvEncEncodePicture input");
    x264_picture_t in, out;
    x264_picture_init(&in);
    in.img.i_csp = X264_CSP_NV12;
    in.img.i_plane = 2;
    in.img.plane[0] = y;
    in.img.plane[1] = y + (size_t)r->pitch * r->height;
    in.img.i_stride[0] = in.img.i_stride[1] = (int)r->pitch;
    in.i_pts = (int64_t)p->inputTimeStamp;
    in.i_type = (p->encodePicFlags & NV_ENC_PIC_FLAG_FORCEIDR) ? X264_TYPE_IDR : X264_TYPE_AUTO;
    x264_nal_t *nals;
    int n;
    int size = x264_encoder_encode(e->x, &nals, &n, &in, &out);
    if (size < 0) return NV_ENC_ERR_GENERIC;
    if (size == 0) return NV_ENC_ERR_NEED_MORE_INPUT;
    if ((size_t)size > b->cap) {
        b->cap = (size_t)size;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data, nals[0].p_payload, (size_t)size); /* x264 lays the NALs out contiguously */
    b->size = (size_t)size;
    b->ts = (uint64_t)out.i_pts;
    b->frame_idx = p->frameIdx;
    b->type = out.b_keyframe ? NV_ENC_PIC_TYPE_IDR : NV_ENC_PIC_TYPE_P;
    if ((p->encodePicFlags & NV_ENC_PIC_FLAG_FORCEIDR) && !out.b_keyframe)
        standin_violation("x264 ignored a forced IDR");
    b->filled = 1;
    e->frames++;
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI lock_bitstream(void *h, NV_ENC_LOCK_BITSTREAM *p) {
    FAIL("nvEncLockBitstream");
    if (p->version != NV_ENC_LOCK_BITSTREAM_VER) return NV_ENC_ERR_INVALID_VERSION;
    struct bitstream *b = bitstream_of(h, p->outputBitstream, "nvEncLockBitstream");
    if (b->locked) return NV_ENC_ERR_LOCK_BUSY;
    if (!b->filled) standin_violation("nvEncLockBitstream on a buffer no picture was encoded into");
    b->locked = 1;
    p->bitstreamBufferPtr = b->data;
    p->bitstreamSizeInBytes = (uint32_t)b->size;
    p->outputTimeStamp = b->ts;
    p->frameIdx = b->frame_idx;
    p->pictureType = b->type;
    p->pictureStruct = NV_ENC_PIC_STRUCT_FRAME;
    return NV_ENC_SUCCESS;
}
static NVENCSTATUS NVENCAPI unlock_bitstream(void *h, NV_ENC_OUTPUT_PTR p) {
    struct bitstream *b = bitstream_of(h, p, "nvEncUnlockBitstream");
    if (!b->locked) standin_violation("nvEncUnlockBitstream on a buffer not locked");
    b->locked = 0;
    b->filled = 0;
    memset(b->data, 0xDB, b->size); /* the pointer handed out at lock is dead now */
    return NV_ENC_SUCCESS;
}

static NVENCSTATUS NVENCAPI destroy(void *h) {
    struct encoder *e = h;
    if (e->frames > 0 && !e->eos)
        standin_violation("nvEncDestroyEncoder after %ld pictures without the EOS flush "
                          "(nvEncEncodePicture with NV_ENC_PIC_FLAG_EOS and no input)",
                          e->frames);
    for (int i = 0; i < MAX_REGS; i++)
        if (e->regs[i].live) standin_violation("nvEncDestroyEncoder with resource 0x%llx still registered",
                                               e->regs[i].ptr);
    for (int i = 0; i < 4; i++)
        if (e->bs[i].live) standin_violation("nvEncDestroyEncoder with a bitstream buffer not destroyed");
    if (e->x) x264_encoder_close(e->x);
    memset(e, 0xDB, sizeof *e);
    free(e);
    pthread_mutex_lock(&mu);
    sessions--;
    pthread_mutex_unlock(&mu);
    return NV_ENC_SUCCESS;
}

NVENCSTATUS NVENCAPI NvEncodeAPIGetMaxSupportedVersion(uint32_t *v) {
    *v = (12 << 4) | 2;
    return NV_ENC_SUCCESS;
}
NVENCSTATUS NVENCAPI NvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST *f) {
    if (f->version != NV_ENCODE_API_FUNCTION_LIST_VER) return NV_ENC_ERR_INVALID_VERSION;
    f->nvEncOpenEncodeSessionEx = open_session;
    f->nvEncGetEncodeGUIDCount = guid_count;
    f->nvEncGetEncodeGUIDs = guids;
    f->nvEncGetEncodePresetConfigEx = preset_config;
    f->nvEncInitializeEncoder = initialize;
    f->nvEncCreateBitstreamBuffer = create_bitstream;
    f->nvEncDestroyBitstreamBuffer = destroy_bitstream;
    f->nvEncRegisterResource = register_resource;
    f->nvEncUnregisterResource = unregister_resource;
    f->nvEncMapInputResource = map_input;
    f->nvEncUnmapInputResource = unmap_input;
    f->nvEncEncodePicture = encode;
    f->nvEncLockBitstream = lock_bitstream;
    f->nvEncUnlockBitstream = unlock_bitstream;
    f->nvEncDestroyEncoder = destroy;
    return NV_ENC_SUCCESS;
}
