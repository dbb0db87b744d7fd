// NV12 downscale for every rung of the ladder, in device memory.
//
// The filter is the CPU scaler's (fast_image_resize `Convolution(Bilinear)`):
// a triangle filter whose support widens with the downscale ratio, so a 3x
// reduction averages ~6 source pixels per axis instead of aliasing the way
// 4-tap bilinear sampling does. `src/transcode/gpu/kernel_ref.rs` is the same
// arithmetic on the CPU; keep the two in step.
//
// One launch scales one plane to every rung: blockIdx.z picks the rung, the grid
// is sized for the largest rung and threads outside a smaller rung return.

#define MAX_RUNGS 8

struct RungPlane {
    unsigned long long dst;  // device pointer to the rung's plane
    int pitch;               // bytes per row
    int width;               // in samples (pixels for luma, UV pairs for chroma)
    int height;
};

struct Ladder {
    int count;
    RungPlane rungs[MAX_RUNGS];
};

__device__ __forceinline__ float triangle(float x) {
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

// The source window and the filter scale for output sample `o` of `out_size`
// taken from `in_size`: pixel centres at (o + 0.5) * ratio, support 1 * ratio.
__device__ __forceinline__ void window(int o, int in_size, int out_size,
                                       float* center, float* fscale,
                                       int* lo, int* hi) {
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

// `channels` interleaved samples per pixel: 1 for Y, 2 for NV12's UV plane.
__device__ __forceinline__ void scale_sample(const unsigned char* src, int src_pitch,
                                             int sw, int sh, int channels,
                                             unsigned char* dst, int dst_pitch,
                                             int dw, int dh, int x, int y) {
    float cx, sx, cy, sy;
    int x0, x1, y0, y1;
    window(x, sw, dw, &cx, &sx, &x0, &x1);
    window(y, sh, dh, &cy, &sy, &y0, &y1);
    float acc[2] = {0.0f, 0.0f};
    float wsum_y = 0.0f, wsum_x = 0.0f;
    for (int i = x0; i < x1; i++) {
        wsum_x += triangle(((float)i - cx + 0.5f) / sx);
    }
    for (int j = y0; j < y1; j++) {
        float wy = triangle(((float)j - cy + 0.5f) / sy);
        if (wy == 0.0f) continue;
        wsum_y += wy;
        const unsigned char* row = src + (size_t)j * src_pitch;
        float racc[2] = {0.0f, 0.0f};
        for (int i = x0; i < x1; i++) {
            float wx = triangle(((float)i - cx + 0.5f) / sx);
            for (int c = 0; c < channels; c++) {
                racc[c] += wx * (float)row[i * channels + c];
            }
        }
        for (int c = 0; c < channels; c++) acc[c] += wy * racc[c];
    }
    float norm = wsum_x * wsum_y;
    unsigned char* out = dst + (size_t)y * dst_pitch + x * channels;
    for (int c = 0; c < channels; c++) {
        float v = norm > 0.0f ? acc[c] / norm : 0.0f;
        v = fminf(fmaxf(v + 0.5f, 0.0f), 255.0f);
        out[c] = (unsigned char)v;
    }
}

// One plane of the source (Y: channels = 1; UV: channels = 2, sizes in UV
// pairs) to the same plane of every rung in `ladder`.
extern "C" __global__ void scale_plane_ladder(const unsigned char* src, int src_pitch,
                                              int sw, int sh, int channels,
                                              Ladder ladder) {
    int r = blockIdx.z;
    if (r >= ladder.count) return;
    RungPlane p = ladder.rungs[r];
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= p.width || y >= p.height) return;
    scale_sample(src, src_pitch, sw, sh, channels,
                 (unsigned char*)p.dst, p.pitch, p.width, p.height, x, y);
}

// NV12 (pitched, on the device) to tight I420 in one device buffer, so a rung
// bound for a CPU encoder crosses to the host in one copy (hybrid path:
// NVDEC + CUDA scale + software encode, e.g. on Hopper, which has no NVENC).
extern "C" __global__ void nv12_to_i420(const unsigned char* y_src, const unsigned char* uv_src,
                                        int pitch, int width, int height,
                                        unsigned char* dst) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < width && y < height) {
        dst[(size_t)y * width + x] = y_src[(size_t)y * pitch + x];
    }
    int cw = (width + 1) / 2, ch = (height + 1) / 2;
    if (x < cw && y < ch) {
        size_t plane = (size_t)width * height;
        const unsigned char* uv = uv_src + (size_t)y * pitch + 2 * x;
        dst[plane + (size_t)y * cw + x] = uv[0];
        dst[plane + (size_t)cw * ch + (size_t)y * cw + x] = uv[1];
    }
}

// Tight I420 on the device to pitched NV12 (test and software-decode input:
// the frame a CPU decoder produced, uploaded once for the GPU scaler).
extern "C" __global__ void i420_to_nv12(const unsigned char* src, int width, int height,
                                        unsigned char* y_dst, unsigned char* uv_dst, int pitch) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < width && y < height) {
        y_dst[(size_t)y * pitch + x] = src[(size_t)y * width + x];
    }
    int cw = (width + 1) / 2, ch = (height + 1) / 2;
    if (x < cw && y < ch) {
        size_t plane = (size_t)width * height;
        unsigned char* uv = uv_dst + (size_t)y * pitch + 2 * x;
        uv[0] = src[plane + (size_t)y * cw + x];
        uv[1] = src[plane + (size_t)cw * ch + (size_t)y * cw + x];
    }
}
