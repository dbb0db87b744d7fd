/* libnvcuvid.so.1 answering cuvidGetDecoderCaps like a Hopper NVDEC: H.264
 * and HEVC up to 4096x4096 on 7 engines, no AV1. Written through NVIDIA's own
 * struct definitions (ffnvcodec headers), so the Rust side reading it checks
 * our bindgen layout against the real one. */
#include <ffnvcodec/dynlink_cuda.h>
#include <ffnvcodec/dynlink_cuviddec.h>

CUresult cuvidGetDecoderCaps(CUVIDDECODECAPS *c) {
    int ok = c->eCodecType == cudaVideoCodec_H264 || c->eCodecType == cudaVideoCodec_HEVC;
    c->bIsSupported = ok;
    c->nNumNVDECs = ok ? 7 : 0;
    c->nMaxWidth = ok ? 4096 : 0;
    c->nMaxHeight = ok ? 4096 : 0;
    c->nMinWidth = 48;
    c->nMinHeight = 16;
    c->nOutputFormatMask = 1;
    return CUDA_SUCCESS;
}
/* Present so the loader finds the full set; never called by probe. */
CUresult cuvidCreateDecoder(void *a, void *b) { (void)a; (void)b; return CUDA_ERROR_UNKNOWN; }
CUresult cuvidDestroyDecoder(void *a) { (void)a; return CUDA_SUCCESS; }
CUresult cuvidDecodePicture(void *a, void *b) { (void)a; (void)b; return CUDA_ERROR_UNKNOWN; }
CUresult cuvidMapVideoFrame64(void *a, int b, void *c, void *d, void *e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CUDA_ERROR_UNKNOWN; }
CUresult cuvidUnmapVideoFrame64(void *a, unsigned long long b) { (void)a; (void)b; return CUDA_SUCCESS; }
CUresult cuvidCreateVideoParser(void *a, void *b) { (void)a; (void)b; return CUDA_ERROR_UNKNOWN; }
CUresult cuvidParseVideoData(void *a, void *b) { (void)a; (void)b; return CUDA_ERROR_UNKNOWN; }
CUresult cuvidDestroyVideoParser(void *a) { (void)a; return CUDA_SUCCESS; }
