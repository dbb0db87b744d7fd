/* A stand-in libcuda.so.1: the CUDA driver as far as ladderd can observe it,
 * backed by the CPU, for CI (tests/gpu.rs builds it with cc; never shipped).
 *
 * - One device. LADDERD_STANDIN_GPU=h100 (default: "Stub H100", sm_90, 80 GiB,
 *   no NVENC) or rtx ("Stand-in RTX 4090", sm_89, 24 GiB, NVENC; see
 *   fake_nvenc.c). LADDERD_STANDIN_DRIVER: the driver version (default 12090).
 * - Device memory is host memory behind opaque CUdeviceptrs in a non-canonical
 *   address range (0xd000...: dereferencing one as a host pointer faults).
 *   Every access is checked against its allocation's bounds; freed blocks are
 *   poisoned and never reused, so a use after free is a violation, not luck.
 *   LADDERD_STANDIN_MEM caps the live bytes (default 4 GiB): beyond it
 *   cuMemAlloc answers CUDA_ERROR_OUT_OF_MEMORY.
 * - Streams must be non-blocking streams of their own (the legacy NULL stream
 *   serialises every channel) and the primary context must be set to
 *   CU_CTX_SCHED_BLOCKING_SYNC before a synchronisation (else it spins).
 * - Work on a stream (kernel launches, async copies) is queued and runs only
 *   when something synchronises, as on a GPU: reading a result before a sync
 *   reads stale memory, and NVENC reading a buffer with queued writes is a
 *   violation.
 * - cuModuleLoadData takes PTX whose ".version" this driver supports (else
 *   CUDA_ERROR_UNSUPPORTED_PTX_VERSION, 222) or a cubin (ELF); the functions
 *   are the module's ".entry"s. cuLaunchKernel runs the CPU reference of the
 *   named kernel (a port of kernels/scale.cu, as src/transcode/gpu/kernel_ref.rs)
 *   over exactly the launched grid and block, reading the argument layout the
 *   kernel declares, and rejects arguments that cannot be that layout.
 * - Switches: see standin.h (LADDERD_STANDIN_FAIL). */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <ffnvcodec/dynlink_cuda.h>
#include "standin.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------------------- device */
static int is_rtx(void) {
    const char *g = getenv("LADDERD_STANDIN_GPU");
    return g && strcmp(g, "rtx") == 0;
}
static int driver_version(void) { return (int)standin_env_long("LADDERD_STANDIN_DRIVER", 12090); }
static int ctx_token, initialised;

#define FAIL(name)                        \
    do {                                  \
        int c_ = standin_fail(name);      \
        if (c_) return (CUresult)c_;      \
    } while (0)

CUresult cuInit(unsigned int flags) {
    FAIL("cuInit");
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    initialised = 1;
    return CUDA_SUCCESS;
}
CUresult cuDriverGetVersion(int *v) { *v = driver_version(); return CUDA_SUCCESS; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return CUDA_SUCCESS; }
CUresult cuDeviceGet(int *dev, int ordinal) {
    *dev = ordinal;
    return ordinal == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}
CUresult cuDeviceGetName(char *name, int len, int dev) {
    (void)dev;
    strncpy(name, is_rtx() ? "Stand-in RTX 4090" : "Stub H100", (size_t)len);
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
    (void)dev;
    switch (attr) {
    case 75: *v = is_rtx() ? 8 : 9; break; /* compute capability major */
    case 76: *v = is_rtx() ? 9 : 0; break; /* minor */
    default: *v = 0;
    }
    return CUDA_SUCCESS;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int dev) {
    (void)dev;
    *bytes = (size_t)(is_rtx() ? 24 : 80) << 30;
    return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
    FAIL("cuDevicePrimaryCtxRetain");
    if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
    (void)dev;
    *ctx = &ctx_token;
    return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { (void)dev; return CUDA_SUCCESS; }
/* The primary context's scheduling flags: ladderd asks for BLOCKING_SYNC (4)
 * so a synchronisation sleeps instead of spinning beside the CPU encoders. */
static unsigned ctx_flags;
CUresult cuDevicePrimaryCtxSetFlags_v2(int dev, unsigned flags) {
    (void)dev;
    if (flags & ~0x1fU) return CUDA_ERROR_INVALID_VALUE;
    ctx_flags = flags;
    return CUDA_SUCCESS;
}
static __thread void *current;
CUresult cuCtxSetCurrent(void *ctx) {
    if (ctx && ctx != &ctx_token) standin_violation("cuCtxSetCurrent(%p): not a context", ctx);
    current = ctx;
    return CUDA_SUCCESS;
}
CUresult cuCtxGetCurrent(void **ctx) { *ctx = current; return CUDA_SUCCESS; }
void *standin_context(void) { return &ctx_token; }

static void need_context(const char *call) {
    if (current != &ctx_token) standin_violation("%s without a current context on this thread", call);
}

/* ---------------------------------------------------------------- memory */
#define BASE 0xd000000000000000ULL
struct alloc {
    CUdeviceptr base;
    size_t size;
    unsigned char *host;
    int freed;
    int held;
};
static struct alloc *allocs;
static size_t nallocs, cap_allocs;
static CUdeviceptr next_base = BASE;
static size_t live_bytes;

static struct alloc *find(CUdeviceptr p) {
    for (size_t i = nallocs; i-- > 0;)
        if (p >= allocs[i].base && p < allocs[i].base + allocs[i].size + 4096) return &allocs[i];
    return 0;
}

/* Caller holds mu. */
static void *resolve_locked(CUdeviceptr p, size_t len, const char *who) {
    struct alloc *a = find(p);
    if (!a) standin_violation("%s: device address 0x%llx is not in any allocation", who, p);
    if (a->freed)
        standin_violation("%s: device address 0x%llx is in a freed block (0x%llx, %zu bytes): use after free",
                          who, p, a->base, a->size);
    if (p + len > a->base + a->size)
        standin_violation("%s: [0x%llx, +%zu) runs %llu bytes past the end of its allocation (0x%llx, %zu bytes)",
                          who, p, len, p + len - (a->base + a->size), a->base, a->size);
    return a->host + (p - a->base);
}

void *standin_resolve(CUdeviceptr p, size_t len, const char *who) {
    pthread_mutex_lock(&mu);
    void *h = resolve_locked(p, len, who);
    pthread_mutex_unlock(&mu);
    return h;
}

static CUdeviceptr alloc_locked(size_t bytes) {
    if (nallocs == cap_allocs) {
        cap_allocs = cap_allocs ? cap_allocs * 2 : 256;
        allocs = realloc(allocs, cap_allocs * sizeof *allocs);
    }
    struct alloc *a = &allocs[nallocs++];
    a->base = next_base;
    a->size = bytes;
    a->host = malloc(bytes);
    if (!a->host) standin_violation("host out of memory for %zu bytes", bytes);
    memset(a->host, 0xA5, bytes); /* never zero: fresh memory holds garbage */
    a->freed = 0;
    a->held = 0;
    /* A gap after each block: an address past the end belongs to nothing. */
    next_base += (bytes + 8191 + (1 << 20)) & ~(CUdeviceptr)4095;
    live_bytes += bytes;
    return a->base;
}

static void free_locked(CUdeviceptr p, const char *who) {
    struct alloc *a = find(p);
    if (!a || a->base != p) standin_violation("%s(0x%llx): not the start of an allocation", who, p);
    if (a->freed) standin_violation("%s(0x%llx): freed twice", who, p);
    if (a->held)
        standin_violation("%s(0x%llx): freed while registered with NVENC (%d registration(s))", who, p, a->held);
    memset(a->host, 0xDB, a->size); /* poison, then give the host memory back */
    free(a->host);
    a->host = 0;
    a->freed = 1;
    live_bytes -= a->size;
}

CUdeviceptr standin_alloc(size_t bytes) {
    pthread_mutex_lock(&mu);
    CUdeviceptr p = alloc_locked(bytes);
    pthread_mutex_unlock(&mu);
    return p;
}
void standin_free(CUdeviceptr p) {
    pthread_mutex_lock(&mu);
    free_locked(p, "driver-internal free");
    pthread_mutex_unlock(&mu);
}
void standin_hold(CUdeviceptr p, int delta) {
    pthread_mutex_lock(&mu);
    struct alloc *a = find(p);
    if (!a || a->freed) standin_violation("NVENC registration of 0x%llx: not a live allocation", p);
    a->held += delta;
    pthread_mutex_unlock(&mu);
}

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
    need_context("cuMemAlloc");
    FAIL("cuMemAlloc_v2");
    pthread_mutex_lock(&mu);
    size_t limit = (size_t)standin_env_long("LADDERD_STANDIN_MEM", 4L << 30);
    if (bytes == 0 || live_bytes + bytes > limit) {
        pthread_mutex_unlock(&mu);
        *p = 0;
        return bytes == 0 ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_OUT_OF_MEMORY;
    }
    *p = alloc_locked(bytes);
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
    FAIL("cuMemFree_v2");
    pthread_mutex_lock(&mu);
    free_locked(p, "cuMemFree");
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- kernels */
#define MAX_RUNGS 8
struct RungPlane {
    unsigned long long dst;
    int pitch, width, height;
};
struct Ladder {
    int count;
    struct RungPlane rungs[MAX_RUNGS];
};
enum kernel { K_SCALE, K_NV12_TO_I420, K_I420_TO_NV12, K_COUNT };
static const char *kernel_names[K_COUNT] = {"scale_plane_ladder", "nv12_to_i420", "i420_to_nv12"};
struct function {
    enum kernel k;
};
static struct function functions[K_COUNT] = {{K_SCALE}, {K_NV12_TO_I420}, {K_I420_TO_NV12}};
struct module {
    int has[K_COUNT];
};

/* The CUDA version a PTX ISA version needs (PTX ISA release notes). */
static int ptx_needs(int major, int minor) {
    if (major >= 9) return 13000;
    if (major == 8) {
        static const int v[] = {12000, 12010, 12020, 12030, 12040, 12050, 12070, 12080, 12090};
        return minor < 9 ? v[minor] : 12090;
    }
    if (major == 7) return 11000 + minor * 10;
    return 10000;
}

CUresult cuModuleLoadData(void **m, const void *image) {
    need_context("cuModuleLoadData");
    FAIL("cuModuleLoadData");
    const char *text = image;
    struct module *mod = calloc(1, sizeof *mod);
    if (memcmp(text, "\x7f" "ELF", 4) == 0) {
        /* A cubin (ELF64): its string tables name the kernels. The image's
         * extent is where its section and program header tables end. */
        const unsigned char *b = image;
        uint64_t shoff, phoff;
        uint16_t phentsize, phnum, shentsize, shnum;
        memcpy(&phoff, b + 0x20, 8), memcpy(&shoff, b + 0x28, 8);
        memcpy(&phentsize, b + 0x36, 2), memcpy(&phnum, b + 0x38, 2);
        memcpy(&shentsize, b + 0x3a, 2), memcpy(&shnum, b + 0x3c, 2);
        size_t n = shoff + (size_t)shentsize * shnum;
        if (phoff + (size_t)phentsize * phnum > n) n = phoff + (size_t)phentsize * phnum;
        if (b[4] != 2 || n < 64 || n > (64u << 20)) {
            free(mod);
            return CUDA_ERROR_INVALID_IMAGE;
        }
        for (int k = 0; k < K_COUNT; k++)
            mod->has[k] = memmem(b, n, kernel_names[k], strlen(kernel_names[k])) != 0;
    } else {
        const char *v = strstr(text, ".version ");
        int major = 0, minor = 0;
        if (!v || sscanf(v, ".version %d.%d", &major, &minor) != 2) {
            free(mod);
            return CUDA_ERROR_INVALID_PTX;
        }
        if (ptx_needs(major, minor) > driver_version()) {
            free(mod);
            return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
        }
        for (int k = 0; k < K_COUNT; k++) {
            char entry[128];
            snprintf(entry, sizeof entry, ".entry %s(", kernel_names[k]);
            mod->has[k] = strstr(text, entry) != 0;
        }
    }
    *m = mod;
    return CUDA_SUCCESS;
}
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
    struct module *mod = m;
    for (int k = 0; k < K_COUNT; k++)
        if (strcmp(name, kernel_names[k]) == 0 && mod->has[k]) {
            *f = &functions[k];
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_NOT_FOUND;
}
CUresult cuModuleUnload(void *m) { free(m); return CUDA_SUCCESS; }

/* kernels/scale.cu's arithmetic, operation for operation (compiled with
 * -ffp-contract=off, as the kernels are with --fmad=false). The per-column and
 * per-row windows and triangle weights are computed once per launch instead of
 * once per thread: the same values, summed in the same order, so every output
 * sample is bit-identical to scale_sample() in the kernel. */
static float triangle(float x) {
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}
static void window(int o, int in_size, int out_size, float *center, float *fscale, int *lo, int *hi) {
    float ratio = (float)in_size / (float)out_size;
    float s = ratio > 1.0f ? ratio : 1.0f;
    float c = ((float)o + 0.5f) * ratio;
    int a = (int)floorf(c - s + 0.5f);
    int b = (int)floorf(c + s + 0.5f);
    *center = c;
    *fscale = s;
    *lo = a < 0 ? 0 : a;
    *hi = b > in_size ? in_size : b;
}
struct axis {
    int *lo, *hi, *off; /* window [lo, hi), weights at w[off] */
    float *w, *wsum;
};
static void axis_of(struct axis *a, int out, int in) {
    a->lo = malloc(out * sizeof(int));
    a->hi = malloc(out * sizeof(int));
    a->off = malloc(out * sizeof(int));
    a->wsum = malloc(out * sizeof(float));
    size_t n = 0, cap = (size_t)out * 8 + 64;
    a->w = malloc(cap * sizeof(float));
    for (int o = 0; o < out; o++) {
        float c, s;
        window(o, in, out, &c, &s, &a->lo[o], &a->hi[o]);
        a->off[o] = (int)n;
        float sum = 0.0f;
        for (int i = a->lo[o]; i < a->hi[o]; i++) {
            if (n == cap) a->w = realloc(a->w, (cap *= 2) * sizeof(float));
            float w = triangle(((float)i - c + 0.5f) / s);
            a->w[n++] = w;
            sum += w;
        }
        a->wsum[o] = sum;
    }
}
static void axis_free(struct axis *a) {
    free(a->lo), free(a->hi), free(a->off), free(a->w), free(a->wsum);
}
/* Threads (x, y) for x < xmax, y < ymax of one rung's plane. */
static void scale_plane(const unsigned char *src, int src_pitch, int sw, int sh, int channels, unsigned char *dst,
                        int dst_pitch, int dw, int dh, int xmax, int ymax) {
    struct axis ax, ay;
    axis_of(&ax, dw, sw);
    axis_of(&ay, dh, sh);
    for (int y = 0; y < dh && y < ymax; y++) {
        for (int x = 0; x < dw && x < xmax; x++) {
            float acc[2] = {0.0f, 0.0f};
            float wsum_y = 0.0f, wsum_x = ax.wsum[x];
            for (int j = ay.lo[y]; j < ay.hi[y]; j++) {
                float wy = ay.w[ay.off[y] + j - ay.lo[y]];
                if (wy == 0.0f) continue;
                wsum_y += wy;
                const unsigned char *row = src + (size_t)j * src_pitch;
                float racc[2] = {0.0f, 0.0f};
                const float *wx = &ax.w[ax.off[x]];
                for (int i = ax.lo[x]; i < ax.hi[x]; i++) {
                    float w = wx[i - ax.lo[x]];
                    for (int c = 0; c < channels; c++) racc[c] += w * (float)row[i * channels + c];
                }
                for (int c = 0; c < channels; c++) acc[c] += wy * racc[c];
            }
            float norm = wsum_x * wsum_y;
            unsigned char *out = dst + (size_t)y * dst_pitch + x * channels;
            for (int c = 0; c < channels; c++) {
                float v = norm > 0.0f ? acc[c] / norm : 0.0f;
                v = fminf(fmaxf(v + 0.5f, 0.0f), 255.0f);
                out[c] = (unsigned char)v;
            }
        }
    }
    axis_free(&ax);
    axis_free(&ay);
}

/* ---------------------------------------------------------------- streams */
enum op_kind { OP_SCALE, OP_NV12_TO_I420, OP_I420_TO_NV12, OP_COPY2D, OP_DTOH, OP_HTOD };
struct op {
    enum op_kind kind;
    unsigned gx, gy, gz, bx, by;
    /* kernel arguments, as read from kernelParams at launch */
    CUdeviceptr a0, a1, a2;
    int i0, i1, i2, i3;
    struct Ladder ladder;
    CUDA_MEMCPY2D copy;
    void *host;
    size_t bytes;
    /* where it writes, for standin_pending_write */
    CUdeviceptr wlo, whi;
};
static struct op *queue;
static size_t nqueue, cap_queue;
static long launches_on_null_stream, launches;

static void enqueue(const struct op *o) {
    if (nqueue == cap_queue) {
        cap_queue = cap_queue ? cap_queue * 2 : 64;
        queue = realloc(queue, cap_queue * sizeof *queue);
    }
    queue[nqueue++] = *o;
}

static void run_op(struct op *o) {
    unsigned tx = o->gx * o->bx, ty = o->gy * o->by;
    switch (o->kind) {
    case OP_SCALE: {
        int pitch = o->i0, sw = o->i1, sh = o->i2, ch = o->i3;
        const unsigned char *src =
            resolve_locked(o->a0, (size_t)(sh - 1) * pitch + (size_t)sw * ch, "scale_plane_ladder source");
        for (int r = 0; r < o->ladder.count && r < (int)o->gz; r++) {
            struct RungPlane p = o->ladder.rungs[r];
            unsigned char *dst = resolve_locked(p.dst, (size_t)(p.height - 1) * p.pitch + (size_t)p.width * ch,
                                                "scale_plane_ladder destination");
            scale_plane(src, pitch, sw, sh, ch, dst, p.pitch, p.width, p.height, (int)tx, (int)ty);
        }
        break;
    }
    case OP_NV12_TO_I420: {
        int pitch = o->i0, w = o->i1, h = o->i2, cw = (w + 1) / 2, chh = (h + 1) / 2;
        const unsigned char *ys = resolve_locked(o->a0, (size_t)(h - 1) * pitch + w, "nv12_to_i420 luma");
        const unsigned char *uvs = resolve_locked(o->a1, (size_t)(chh - 1) * pitch + 2 * cw, "nv12_to_i420 chroma");
        unsigned char *dst = resolve_locked(o->a2, (size_t)w * h + 2 * (size_t)cw * chh, "nv12_to_i420 output");
        size_t plane = (size_t)w * h;
        for (int y = 0; y < (int)ty; y++)
            for (int x = 0; x < (int)tx; x++) {
                if (x < w && y < h) dst[(size_t)y * w + x] = ys[(size_t)y * pitch + x];
                if (x < cw && y < chh) {
                    const unsigned char *uv = uvs + (size_t)y * pitch + 2 * x;
                    dst[plane + (size_t)y * cw + x] = uv[0];
                    dst[plane + (size_t)cw * chh + (size_t)y * cw + x] = uv[1];
                }
            }
        break;
    }
    case OP_I420_TO_NV12: {
        int w = o->i0, h = o->i1, pitch = o->i2, cw = (w + 1) / 2, chh = (h + 1) / 2;
        const unsigned char *src = resolve_locked(o->a0, (size_t)w * h + 2 * (size_t)cw * chh, "i420_to_nv12 input");
        unsigned char *yd = resolve_locked(o->a1, (size_t)(h - 1) * pitch + w, "i420_to_nv12 luma");
        unsigned char *uvd = resolve_locked(o->a2, (size_t)(chh - 1) * pitch + 2 * cw, "i420_to_nv12 chroma");
        size_t plane = (size_t)w * h;
        for (int y = 0; y < (int)ty; y++)
            for (int x = 0; x < (int)tx; x++) {
                if (x < w && y < h) yd[(size_t)y * pitch + x] = src[(size_t)y * w + x];
                if (x < cw && y < chh) {
                    unsigned char *uv = uvd + (size_t)y * pitch + 2 * x;
                    uv[0] = src[plane + (size_t)y * cw + x];
                    uv[1] = src[plane + (size_t)cw * chh + (size_t)y * cw + x];
                }
            }
        break;
    }
    case OP_COPY2D: {
        CUDA_MEMCPY2D *c = &o->copy;
        for (size_t row = 0; row < c->Height; row++) {
            const unsigned char *s;
            unsigned char *d;
            size_t so = (c->srcY + row) * c->srcPitch + c->srcXInBytes;
            size_t dof = (c->dstY + row) * c->dstPitch + c->dstXInBytes;
            s = c->srcMemoryType == CU_MEMORYTYPE_DEVICE
                    ? resolve_locked(c->srcDevice + so, c->WidthInBytes, "cuMemcpy2DAsync source")
                    : (const unsigned char *)c->srcHost + so;
            d = c->dstMemoryType == CU_MEMORYTYPE_DEVICE
                    ? resolve_locked(c->dstDevice + dof, c->WidthInBytes, "cuMemcpy2DAsync destination")
                    : (unsigned char *)c->dstHost + dof;
            memmove(d, s, c->WidthInBytes);
        }
        break;
    }
    case OP_DTOH:
        memcpy(o->host, resolve_locked(o->a0, o->bytes, "cuMemcpyDtoHAsync"), o->bytes);
        break;
    case OP_HTOD:
        memcpy(resolve_locked(o->a0, o->bytes, "cuMemcpyHtoDAsync"), o->host, o->bytes);
        free(o->host);
        break;
    }
}

static void sync_locked(void) {
    for (size_t i = 0; i < nqueue; i++) run_op(&queue[i]);
    nqueue = 0;
}
void standin_sync(void) {
    pthread_mutex_lock(&mu);
    sync_locked();
    pthread_mutex_unlock(&mu);
}
int standin_pending_write(CUdeviceptr p, size_t len) {
    pthread_mutex_lock(&mu);
    int hit = 0;
    for (size_t i = 0; i < nqueue; i++)
        if (queue[i].wlo < p + len && p < queue[i].whi) hit = 1;
    pthread_mutex_unlock(&mu);
    return hit;
}

/* Streams: ladderd gives each decoder and ladder its own non-blocking stream;
 * the legacy NULL stream (which serialises every channel) is a violation. */
#define STREAM_MAGIC 0x5354524d
struct stream {
    unsigned magic, flags;
};
CUresult cuStreamCreate(void **s, unsigned flags) {
    need_context("cuStreamCreate");
    FAIL("cuStreamCreate");
    struct stream *st = malloc(sizeof *st);
    st->magic = STREAM_MAGIC;
    st->flags = flags;
    *s = st;
    return CUDA_SUCCESS;
}
CUresult cuStreamDestroy_v2(void *s) {
    struct stream *st = s;
    if (!st || st->magic != STREAM_MAGIC) standin_violation("cuStreamDestroy(%p): not a stream", s);
    st->magic = 0;
    free(st);
    return CUDA_SUCCESS;
}
static void check_stream(const char *call, void *s) {
    struct stream *st = s;
    if (!st)
        standin_violation("%s on the legacy NULL stream: it waits for every other stream's work "
                          "(use a non-blocking stream per decoder/ladder)",
                          call);
    if (st->magic != STREAM_MAGIC) standin_violation("%s: %p is not a live stream", call, s);
    if (!(st->flags & 1)) standin_violation("%s: stream created without CU_STREAM_NON_BLOCKING", call);
}
void standin_check_stream(void *s, const char *call) { check_stream(call, s); }

CUresult cuStreamSynchronize(void *s) {
    need_context("cuStreamSynchronize");
    check_stream("cuStreamSynchronize", s);
    if (!(ctx_flags & 4))
        standin_violation("cuStreamSynchronize with the context on SCHED_AUTO (flags %u): the wait spins a "
                          "CPU core; set CU_CTX_SCHED_BLOCKING_SYNC before retaining the primary context",
                          ctx_flags);
    FAIL("cuStreamSynchronize");
    standin_sync();
    return CUDA_SUCCESS;
}
CUresult cuCtxSynchronize(void) {
    need_context("cuCtxSynchronize");
    standin_sync();
    return CUDA_SUCCESS;
}

/* Validates an argument read as a device pointer: it must be a live allocation
 * (an int or a host pointer in its place is not). */
static void device_arg(const char *kernel, int i, CUdeviceptr p) {
    struct alloc *a = find(p);
    if (!a || a->freed)
        standin_violation("cuLaunchKernel(%s): argument %d (0x%llx) is not a live device allocation: "
                          "the argument list does not match the kernel's signature",
                          kernel, i, p);
}
static void int_arg(const char *kernel, int i, int v, int lo, int hi) {
    if (v < lo || v > hi)
        standin_violation("cuLaunchKernel(%s): argument %d is %d, outside [%d, %d]: "
                          "the argument list does not match the kernel's signature",
                          kernel, i, v, lo, hi);
}

CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shmem, void *stream, void **params, void **extra) {
    need_context("cuLaunchKernel");
    FAIL("cuLaunchKernel");
    struct function *fn = f;
    if (fn < functions || fn >= functions + K_COUNT) standin_violation("cuLaunchKernel: %p is not a function", f);
    const char *name = kernel_names[fn->k];
    if (extra) standin_violation("cuLaunchKernel(%s): arguments through `extra` are not used by ladderd", name);
    if (!params) return CUDA_ERROR_INVALID_VALUE;
    if (bx * by * bz > 1024 || bx == 0 || by == 0 || bz == 0 || gx == 0 || gy == 0 || gz == 0 || gz > 65535 ||
        gy > 65535)
        return CUDA_ERROR_INVALID_VALUE;
    if (shmem) standin_violation("cuLaunchKernel(%s): %u bytes of dynamic shared memory; the kernel uses none", name,
                                 shmem);
    if (bz != 1) standin_violation("cuLaunchKernel(%s): blockDim.z %u; the kernels index in x and y only", name, bz);
    struct op o;
    memset(&o, 0, sizeof o);
    o.gx = gx, o.gy = gy, o.gz = gz, o.bx = bx, o.by = by;
    pthread_mutex_lock(&mu);
    launches++;
    if (!stream) launches_on_null_stream++;
    check_stream("cuLaunchKernel", stream);
    switch (fn->k) {
    case K_SCALE: {
        /* (const u8 *src, int src_pitch, int sw, int sh, int channels, Ladder ladder) */
        o.kind = OP_SCALE;
        o.a0 = *(CUdeviceptr *)params[0];
        o.i0 = *(int *)params[1], o.i1 = *(int *)params[2], o.i2 = *(int *)params[3], o.i3 = *(int *)params[4];
        memcpy(&o.ladder, params[5], sizeof o.ladder);
        device_arg(name, 0, o.a0);
        int_arg(name, 4, o.i3, 1, 2);
        int_arg(name, 2, o.i1, 1, 16384);
        int_arg(name, 3, o.i2, 1, 16384);
        int_arg(name, 1, o.i0, o.i1 * o.i3, 1 << 20);
        int_arg(name, 5, o.ladder.count, 1, MAX_RUNGS);
        unsigned maxw = 0, maxh = 0;
        o.wlo = ~0ULL;
        for (int r = 0; r < o.ladder.count; r++) {
            struct RungPlane p = o.ladder.rungs[r];
            device_arg(name, 5, p.dst);
            int_arg(name, 5, p.width, 1, 16384);
            int_arg(name, 5, p.height, 1, 16384);
            int_arg(name, 5, p.pitch, p.width * o.i3, 1 << 20);
            if ((unsigned)p.width > maxw) maxw = p.width;
            if ((unsigned)p.height > maxh) maxh = p.height;
            if (p.dst < o.wlo) o.wlo = p.dst;
            CUdeviceptr end = p.dst + (CUdeviceptr)p.pitch * p.height;
            if (end > o.whi) o.whi = end;
        }
        if (gx * bx < maxw || gy * by < maxh || gz < (unsigned)o.ladder.count)
            standin_violation("cuLaunchKernel(scale_plane_ladder): grid (%u,%u,%u) x block (%u,%u) does not cover "
                              "%u x %u samples on %d rungs",
                              gx, gy, gz, bx, by, maxw, maxh, o.ladder.count);
        break;
    }
    case K_NV12_TO_I420: {
        /* (const u8 *y, const u8 *uv, int pitch, int width, int height, u8 *dst) */
        o.kind = OP_NV12_TO_I420;
        o.a0 = *(CUdeviceptr *)params[0], o.a1 = *(CUdeviceptr *)params[1];
        o.i0 = *(int *)params[2], o.i1 = *(int *)params[3], o.i2 = *(int *)params[4];
        o.a2 = *(CUdeviceptr *)params[5];
        device_arg(name, 0, o.a0), device_arg(name, 1, o.a1), device_arg(name, 5, o.a2);
        int_arg(name, 3, o.i1, 1, 16384), int_arg(name, 4, o.i2, 1, 16384), int_arg(name, 2, o.i0, o.i1, 1 << 20);
        if (gx * bx < (unsigned)o.i1 || gy * by < (unsigned)o.i2)
            standin_violation("cuLaunchKernel(nv12_to_i420): grid does not cover %d x %d", o.i1, o.i2);
        o.wlo = o.a2, o.whi = o.a2 + (CUdeviceptr)o.i1 * o.i2 * 3 / 2 + o.i1 + o.i2 + 1;
        break;
    }
    case K_I420_TO_NV12: {
        /* (const u8 *src, int width, int height, u8 *y, u8 *uv, int pitch) */
        o.kind = OP_I420_TO_NV12;
        o.a0 = *(CUdeviceptr *)params[0];
        o.i0 = *(int *)params[1], o.i1 = *(int *)params[2];
        o.a1 = *(CUdeviceptr *)params[3], o.a2 = *(CUdeviceptr *)params[4];
        o.i2 = *(int *)params[5];
        device_arg(name, 0, o.a0), device_arg(name, 3, o.a1), device_arg(name, 4, o.a2);
        int_arg(name, 1, o.i0, 1, 16384), int_arg(name, 2, o.i1, 1, 16384), int_arg(name, 5, o.i2, o.i0, 1 << 20);
        if (gx * bx < (unsigned)o.i0 || gy * by < (unsigned)o.i1)
            standin_violation("cuLaunchKernel(i420_to_nv12): grid does not cover %d x %d", o.i0, o.i1);
        o.wlo = o.a1 < o.a2 ? o.a1 : o.a2;
        o.whi = (o.a1 > o.a2 ? o.a1 : o.a2) + (CUdeviceptr)o.i2 * o.i1;
        break;
    }
    default:
        abort();
    }
    enqueue(&o);
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- copies */
CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *c, void *stream) {
    need_context("cuMemcpy2DAsync");
    check_stream("cuMemcpy2DAsync", stream);
    FAIL("cuMemcpy2DAsync_v2");
    if (c->srcPitch < c->WidthInBytes + c->srcXInBytes || c->dstPitch < c->WidthInBytes + c->dstXInBytes)
        return CUDA_ERROR_INVALID_VALUE;
    struct op o;
    memset(&o, 0, sizeof o);
    o.kind = OP_COPY2D;
    o.copy = *c;
    pthread_mutex_lock(&mu);
    /* Bounds now (as the driver validates at the call) and again when it runs. */
    if (c->Height) {
        size_t last_s = (c->srcY + c->Height - 1) * c->srcPitch + c->srcXInBytes;
        size_t last_d = (c->dstY + c->Height - 1) * c->dstPitch + c->dstXInBytes;
        if (c->srcMemoryType == CU_MEMORYTYPE_DEVICE)
            resolve_locked(c->srcDevice + last_s, c->WidthInBytes, "cuMemcpy2DAsync source");
        if (c->dstMemoryType == CU_MEMORYTYPE_DEVICE) {
            resolve_locked(c->dstDevice + last_d, c->WidthInBytes, "cuMemcpy2DAsync destination");
            o.wlo = c->dstDevice, o.whi = c->dstDevice + last_d + c->WidthInBytes;
        }
    }
    enqueue(&o);
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *stream) {
    need_context("cuMemcpyDtoHAsync");
    check_stream("cuMemcpyDtoHAsync", stream);
    FAIL("cuMemcpyDtoHAsync_v2");
    struct op o;
    memset(&o, 0, sizeof o);
    o.kind = OP_DTOH, o.host = dst, o.a0 = src, o.bytes = n;
    pthread_mutex_lock(&mu);
    resolve_locked(src, n, "cuMemcpyDtoHAsync");
    enqueue(&o);
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream) {
    need_context("cuMemcpyHtoDAsync");
    check_stream("cuMemcpyHtoDAsync", stream);
    FAIL("cuMemcpyHtoDAsync_v2");
    struct op o;
    memset(&o, 0, sizeof o);
    /* Pageable host memory: the driver stages it before returning. */
    o.kind = OP_HTOD, o.a0 = dst, o.bytes = n, o.host = malloc(n);
    memcpy(o.host, src, n);
    o.wlo = dst, o.whi = dst + n;
    pthread_mutex_lock(&mu);
    resolve_locked(dst, n, "cuMemcpyHtoDAsync");
    enqueue(&o);
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}

/* NVRTC looks for the driver's private export table; there is none here. */
CUresult cuGetExportTable(const void **table, const void *id) {
    (void)id;
    *table = 0;
    return CUDA_ERROR_NOT_SUPPORTED;
}

static const char *err_name(int e) {
    switch (e) {
    case 0: return "CUDA_SUCCESS";
    case 1: return "CUDA_ERROR_INVALID_VALUE";
    case 2: return "CUDA_ERROR_OUT_OF_MEMORY";
    case 3: return "CUDA_ERROR_NOT_INITIALIZED";
    case 100: return "CUDA_ERROR_NO_DEVICE";
    case 101: return "CUDA_ERROR_INVALID_DEVICE";
    case 200: return "CUDA_ERROR_INVALID_IMAGE";
    case 201: return "CUDA_ERROR_INVALID_CONTEXT";
    case 218: return "CUDA_ERROR_INVALID_PTX";
    case 222: return "CUDA_ERROR_UNSUPPORTED_PTX_VERSION";
    case 400: return "CUDA_ERROR_INVALID_HANDLE";
    case 500: return "CUDA_ERROR_NOT_FOUND";
    case 700: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case 801: return "CUDA_ERROR_NOT_SUPPORTED";
    default: return 0;
    }
}
CUresult cuGetErrorName(int e, const char **s) {
    *s = err_name(e);
    return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
CUresult cuGetErrorString(int e, const char **s) {
    switch (e) {
    case 2: *s = "out of memory"; break;
    case 100: *s = "no CUDA-capable device is detected"; break;
    case 101: *s = "invalid device ordinal"; break;
    case 222: *s = "the provided PTX was compiled with an unsupported toolchain."; break;
    case 700: *s = "an illegal memory access was encountered"; break;
    default: *s = err_name(e) ? err_name(e) : "unknown error";
    }
    return CUDA_SUCCESS;
}

/* Marks this library as the stand-in: `hwtest` labels its numbers by it. */
const char *ladderd_standin_driver(void) { return "ladderd CPU stand-in (tests/stubs), not an NVIDIA driver"; }

__attribute__((destructor)) static void report(void) {
    if (getenv("LADDERD_STANDIN_REPORT"))
        fprintf(stderr, "ladderd stand-in: %ld launches, %ld on the NULL stream, %zu bytes live\n", launches,
                launches_on_null_stream, live_bytes);
}
