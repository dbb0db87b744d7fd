/* A libcuda.so.1 that reports one Hopper-like device ("Stub H100", sm_90,
 * 80 GiB) and accepts a context and a module without running anything: enough
 * for `probe` to open the device and ask NVDEC and NVENC what they offer, and
 * for `serve` to choose the hybrid backend. Used by tests/gpu.rs only (CI has
 * no GPU). Plain C types, so it needs no CUDA header. */
#include <string.h>

typedef int CUresult;
static int ctx_token, mod_token, fn_token;

CUresult cuInit(unsigned int flags) { (void)flags; return 0; }
CUresult cuDriverGetVersion(int *v) { *v = 12090; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return ordinal == 0 ? 0 : 101; }
CUresult cuDeviceGetName(char *name, int len, int dev) {
    (void)dev; strncpy(name, "Stub H100", (size_t)len); return 0; }
CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
    (void)dev; *v = attr == 75 ? 9 : 0; return 0; }
CUresult cuDeviceTotalMem_v2(size_t *bytes, int dev) {
    (void)dev; *bytes = (size_t)80 << 30; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) { (void)dev; *ctx = &ctx_token; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { (void)dev; return 0; }
CUresult cuCtxSetCurrent(void *ctx) { (void)ctx; return 0; }
CUresult cuCtxGetCurrent(void **ctx) { *ctx = &ctx_token; return 0; }
CUresult cuModuleLoadData(void **m, const void *image) { (void)image; *m = &mod_token; return 0; }
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
    (void)m; (void)name; *f = &fn_token; return 0; }
CUresult cuModuleUnload(void *m) { (void)m; return 0; }
/* No memory: the GPU scaler's first allocation fails, so a stream's ladder
 * meets a GPU error at start (the rest of the process must not notice). */
CUresult cuMemAlloc_v2(unsigned long long *p, size_t bytes) { (void)bytes; *p = 0; return 2; }
/* Present (the backend checks every entry point it uses at start), never reached. */
CUresult cuMemFree_v2(unsigned long long p) { (void)p; return 0; }
CUresult cuLaunchKernel(void) { return 999; }
CUresult cuStreamSynchronize(void *s) { (void)s; return 0; }
CUresult cuMemcpy2DAsync_v2(const void *c, void *s) { (void)c; (void)s; return 999; }
CUresult cuMemcpyDtoHAsync_v2(void *d, unsigned long long s, size_t n, void *st) { (void)d; (void)s; (void)n; (void)st; return 999; }
CUresult cuMemcpyHtoDAsync_v2(unsigned long long d, const void *s, size_t n, void *st) { (void)d; (void)s; (void)n; (void)st; return 999; }
/* NVRTC looks for the driver's private export table; there is none here. */
CUresult cuGetExportTable(const void **table, const void *id) { (void)id; *table = 0; return 801; }
CUresult cuGetErrorName(int e, const char **s) {
    *s = e == 101 ? "CUDA_ERROR_INVALID_DEVICE" : e == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_UNKNOWN"; return 0; }
CUresult cuGetErrorString(int e, const char **s) {
    *s = e == 101 ? "invalid device ordinal" : e == 2 ? "out of memory" : "unknown error"; return 0; }
