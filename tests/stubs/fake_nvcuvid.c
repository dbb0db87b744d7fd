/* A stand-in libnvcuvid.so.1 (tests only): NVIDIA's parser + decoder contract,
 * decoding H.264 for real with FFmpeg's software decoder (libavcodec), pictures
 * in the stand-in libcuda's device memory. Written through NVIDIA's own struct
 * definitions (ffnvcodec headers), so the Rust side reading it checks our
 * bindgen layout against the real one.
 *
 * What it holds the caller to, as the real parser and decoder do:
 * - The sequence callback's return: 0 fails the parse, 1 keeps the parser's
 *   surface count (ulMaxNumDecodeSurfaces at creation, or the last override),
 *   >1 sets it. The parser cycles CurrPicIdx through that many surfaces; a
 *   decoder created with fewer (ulNumDecodeSurfaces) rejects the index.
 * - A packet without CUVID_PKT_ENDOFPICTURE is not known to be complete until
 *   the next packet (or end of stream) arrives, so its pictures are decoded and
 *   displayed during the next cuvidParseVideoData call.
 * - cuvidMapVideoFrame64 hands out at most ulNumOutputSurfaces mapped surfaces
 *   (NV12, pitch aligned to 512, chroma at pitch x ((ulTargetHeight+1)&~1));
 *   each unmap must name a mapped surface; destroying the decoder with a surface
 *   mapped, or using a surface after the decoder is gone, is a violation.
 * - Caps as a Hopper NVDEC: H.264 and HEVC up to 4096x4096 on 7 engines, no AV1.
 * Switches (besides LADDERD_STANDIN_FAIL, see standin.h):
 *   LADDERD_STANDIN_NVDEC_RESEQUENCE=N  at the N-th picture, the parser calls the
 *     sequence callback again with the same size and 8 more minimum surfaces (a
 *     new SPS with more reference frames). */
#include <libavcodec/avcodec.h>
#include <ffnvcodec/dynlink_cuda.h>
#include <ffnvcodec/dynlink_cuviddec.h>
#include <ffnvcodec/dynlink_nvcuvid.h>
#include "standin.h"

#define FAIL(name)                        \
    do {                                  \
        int c_ = standin_fail(name);      \
        if (c_) return (CUresult)c_;      \
    } while (0)

CUresult cuvidGetDecoderCaps(CUVIDDECODECAPS *c) {
    FAIL("cuvidGetDecoderCaps");
    int ok = (c->eCodecType == cudaVideoCodec_H264 || c->eCodecType == cudaVideoCodec_HEVC) &&
             c->eChromaFormat == cudaVideoChromaFormat_420 && c->nBitDepthMinus8 == 0;
    c->bIsSupported = ok;
    c->nNumNVDECs = ok ? 7 : 0;
    c->nMaxWidth = ok ? 4096 : 0;
    c->nMaxHeight = ok ? 4096 : 0;
    c->nMinWidth = 48;
    c->nMinHeight = 16;
    c->nOutputFormatMask = 1;
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- decoder */
#define MAX_OUT 8
struct decoder {
    CUVIDDECODECREATEINFO info;
    size_t surf_pitch, out_pitch, out_rows;
    standin_devptr *surfaces;
    int *decoded;
    standin_devptr out[MAX_OUT];
    int out_mapped[MAX_OUT];
};

static size_t align(size_t v, size_t a) { return (v + a - 1) / a * a; }

CUresult cuvidCreateDecoder(CUvideodecoder *out, CUVIDDECODECREATEINFO *ci) {
    FAIL("cuvidCreateDecoder");
    void *ctx = 0;
    extern CUresult cuCtxGetCurrent(void **);
    cuCtxGetCurrent(&ctx);
    if (ctx != standin_context()) standin_violation("cuvidCreateDecoder without the CUDA context current");
    if (ci->CodecType != cudaVideoCodec_H264 || ci->ChromaFormat != cudaVideoChromaFormat_420 ||
        ci->OutputFormat != cudaVideoSurfaceFormat_NV12 || ci->bitDepthMinus8 != 0)
        return CUDA_ERROR_NOT_SUPPORTED;
    if (ci->ulWidth < 48 || ci->ulHeight < 16 || ci->ulWidth > 4096 || ci->ulHeight > 4096 ||
        ci->ulNumDecodeSurfaces < 1 || ci->ulNumDecodeSurfaces > 32 || ci->ulNumOutputSurfaces < 1 ||
        ci->ulNumOutputSurfaces > MAX_OUT)
        return CUDA_ERROR_INVALID_VALUE;
    if (ci->ulMaxWidth && (ci->ulMaxWidth < ci->ulWidth || ci->ulMaxHeight < ci->ulHeight))
        return CUDA_ERROR_INVALID_VALUE;
    int dw = ci->display_area.right - ci->display_area.left, dh = ci->display_area.bottom - ci->display_area.top;
    if (dw > 0 && (dw != (int)ci->ulTargetWidth || dh != (int)ci->ulTargetHeight))
        standin_violation("cuvidCreateDecoder: target %lux%lu from a %dx%d display area: the stand-in does not "
                          "scale in the decoder (ladderd never asks it to)",
                          ci->ulTargetWidth, ci->ulTargetHeight, dw, dh);
    struct decoder *d = calloc(1, sizeof *d);
    d->info = *ci;
    d->surf_pitch = align(ci->ulWidth, 512);
    d->surfaces = calloc(ci->ulNumDecodeSurfaces, sizeof *d->surfaces);
    d->decoded = calloc(ci->ulNumDecodeSurfaces, sizeof *d->decoded);
    for (unsigned i = 0; i < ci->ulNumDecodeSurfaces; i++)
        d->surfaces[i] = standin_alloc(d->surf_pitch * ci->ulHeight * 3 / 2);
    d->out_pitch = align(ci->ulTargetWidth, 512);
    d->out_rows = ((ci->ulTargetHeight + 1) & ~1UL) + (ci->ulTargetHeight + 1) / 2;
    for (unsigned i = 0; i < ci->ulNumOutputSurfaces; i++) d->out[i] = standin_alloc(d->out_pitch * d->out_rows);
    *out = (CUvideodecoder)d;
    return CUDA_SUCCESS;
}

CUresult cuvidDestroyDecoder(CUvideodecoder h) {
    struct decoder *d = (struct decoder *)h;
    for (unsigned i = 0; i < d->info.ulNumOutputSurfaces; i++) {
        if (d->out_mapped[i]) standin_violation("cuvidDestroyDecoder with output surface %u still mapped", i);
        standin_free(d->out[i]);
    }
    for (unsigned i = 0; i < d->info.ulNumDecodeSurfaces; i++) standin_free(d->surfaces[i]);
    free(d->surfaces);
    free(d->decoded);
    memset(d, 0xDB, sizeof *d);
    free(d);
    return CUDA_SUCCESS;
}

/* The picture the parser is decoding, for cuvidDecodePicture inside the
 * decode callback (the real decoder reads the slice data the parser hands it). */
static __thread AVFrame *decoding;

CUresult cuvidDecodePicture(CUvideodecoder h, CUVIDPICPARAMS *pp) {
    FAIL("cuvidDecodePicture");
    struct decoder *d = (struct decoder *)h;
    if (!decoding) standin_violation("cuvidDecodePicture outside the parser's decode callback");
    if (pp->CurrPicIdx < 0 || (unsigned)pp->CurrPicIdx >= d->info.ulNumDecodeSurfaces) {
        fprintf(stderr,
                "ladderd stand-in: cuvidDecodePicture: CurrPicIdx %d but the decoder has %lu decode surfaces\n",
                pp->CurrPicIdx, d->info.ulNumDecodeSurfaces);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if ((unsigned)pp->PicWidthInMbs * 16 > d->info.ulWidth || (unsigned)pp->FrameHeightInMbs * 16 > d->info.ulHeight)
        return CUDA_ERROR_INVALID_VALUE;
    AVFrame *f = decoding;
    size_t pitch = d->surf_pitch, rows = d->info.ulHeight;
    unsigned char *s = standin_resolve(d->surfaces[pp->CurrPicIdx], pitch * rows * 3 / 2, "NVDEC decode surface");
    memset(s, 0x10, pitch * rows);
    memset(s + pitch * rows, 0x80, pitch * rows / 2);
    for (int y = 0; y < f->height; y++) memcpy(s + y * pitch, f->data[0] + y * f->linesize[0], f->width);
    for (int y = 0; y < (f->height + 1) / 2; y++) {
        unsigned char *uv = s + pitch * rows + y * pitch;
        for (int x = 0; x < (f->width + 1) / 2; x++) {
            uv[2 * x] = f->data[1][y * f->linesize[1] + x];
            uv[2 * x + 1] = f->data[2][y * f->linesize[2] + x];
        }
    }
    d->decoded[pp->CurrPicIdx] = 1;
    return CUDA_SUCCESS;
}

CUresult cuvidMapVideoFrame64(CUvideodecoder h, int idx, unsigned long long *ptr, unsigned int *pitch,
                              CUVIDPROCPARAMS *pp) {
    FAIL("cuvidMapVideoFrame64");
    struct decoder *d = (struct decoder *)h;
    if (idx < 0 || (unsigned)idx >= d->info.ulNumDecodeSurfaces || !d->decoded[idx]) return CUDA_ERROR_INVALID_VALUE;
    if (!pp) return CUDA_ERROR_INVALID_VALUE;
    standin_check_stream(pp->output_stream, "cuvidMapVideoFrame64 (CUVIDPROCPARAMS.output_stream)");
    unsigned slot = 0;
    while (slot < d->info.ulNumOutputSurfaces && d->out_mapped[slot]) slot++;
    if (slot == d->info.ulNumOutputSurfaces) {
        fprintf(stderr, "ladderd stand-in: cuvidMapVideoFrame64: all %lu output surfaces are mapped\n",
                d->info.ulNumOutputSurfaces);
        return CUDA_ERROR_INVALID_VALUE;
    }
    /* Post-processing: crop the display area into the output surface. */
    size_t sp = d->surf_pitch, srows = d->info.ulHeight, op = d->out_pitch;
    size_t tw = d->info.ulTargetWidth, th = d->info.ulTargetHeight, chroma = op * ((th + 1) & ~1UL);
    int left = d->info.display_area.left, top = d->info.display_area.top;
    const unsigned char *s = standin_resolve(d->surfaces[idx], sp * srows * 3 / 2, "NVDEC decode surface");
    unsigned char *o = standin_resolve(d->out[slot], op * d->out_rows, "NVDEC output surface");
    memset(o, 0xA5, op * d->out_rows);
    for (size_t y = 0; y < th; y++) memcpy(o + y * op, s + (top + y) * sp + left, tw);
    for (size_t y = 0; y < (th + 1) / 2; y++)
        memcpy(o + chroma + y * op, s + sp * srows + (top / 2 + y) * sp + (left & ~1), (tw + 1) & ~1UL);
    d->out_mapped[slot] = 1;
    *ptr = d->out[slot];
    *pitch = (unsigned)op;
    return CUDA_SUCCESS;
}

CUresult cuvidUnmapVideoFrame64(CUvideodecoder h, unsigned long long ptr) {
    struct decoder *d = (struct decoder *)h;
    for (unsigned i = 0; i < d->info.ulNumOutputSurfaces; i++)
        if (d->out[i] == ptr) {
            if (!d->out_mapped[i]) standin_violation("cuvidUnmapVideoFrame64(0x%llx): not mapped", ptr);
            d->out_mapped[i] = 0;
            return CUDA_SUCCESS;
        }
    standin_violation("cuvidUnmapVideoFrame64(0x%llx): not an output surface of this decoder", ptr);
}

/* ---------------------------------------------------------------- parser */
struct parser {
    CUVIDPARSERPARAMS p;
    AVCodecContext *av;
    AVPacket *pkt;
    AVFrame *frame;
    int have_format;
    CUVIDEOFORMAT format;
    unsigned surfaces;
    unsigned next_idx;
    long pictures;
    long resequence_at;
    int failed;
    /* A packet not yet known to be a whole picture (no ENDOFPICTURE). */
    unsigned char *held;
    size_t held_size;
    long long held_ts;
    int held_has_ts;
};

CUresult cuvidCreateVideoParser(CUvideoparser *out, CUVIDPARSERPARAMS *params) {
    FAIL("cuvidCreateVideoParser");
    if (params->CodecType != cudaVideoCodec_H264) return CUDA_ERROR_NOT_SUPPORTED;
    if (!params->pfnSequenceCallback || !params->pfnDecodePicture || !params->pfnDisplayPicture)
        return CUDA_ERROR_INVALID_VALUE;
    struct parser *ps = calloc(1, sizeof *ps);
    ps->p = *params;
    ps->surfaces = params->ulMaxNumDecodeSurfaces ? params->ulMaxNumDecodeSurfaces : 1;
    ps->av = avcodec_alloc_context3(avcodec_find_decoder(AV_CODEC_ID_H264));
    ps->av->thread_count = 1;
    /* ulMaxDisplayDelay = 0: each picture is displayed as soon as the stream's
     * reordering allows (libavcodec's output order, no extra frame delay). */
    if (avcodec_open2(ps->av, 0, 0) < 0) standin_violation("libavcodec: cannot open the H.264 decoder");
    ps->pkt = av_packet_alloc();
    ps->frame = av_frame_alloc();
    ps->resequence_at = standin_env_long("LADDERD_STANDIN_NVDEC_RESEQUENCE", 0);
    *out = (CUvideoparser)ps;
    return CUDA_SUCCESS;
}

static int sequence(struct parser *ps, CUVIDEOFORMAT *fmt) {
    int r = ps->p.pfnSequenceCallback(ps->p.pUserData, fmt);
    if (r == 0) return 0;
    if (r > 1) ps->surfaces = (unsigned)r;
    return 1;
}

/* One decoded picture through the callbacks; 0 when a callback failed. */
static int picture(struct parser *ps, AVFrame *f) {
    int w = f->width, h = f->height;
    if (!ps->have_format || ps->format.display_area.right != w || ps->format.display_area.bottom != h) {
        CUVIDEOFORMAT *fmt = &ps->format;
        memset(fmt, 0, sizeof *fmt);
        fmt->codec = cudaVideoCodec_H264;
        fmt->frame_rate.numerator = ps->av->framerate.num;
        fmt->frame_rate.denominator = ps->av->framerate.den;
        fmt->progressive_sequence = 1;
        fmt->bit_depth_luma_minus8 = 0;
        fmt->bit_depth_chroma_minus8 = 0;
        fmt->min_num_decode_surfaces = (unsigned char)((ps->av->refs > 0 ? ps->av->refs : 1) + 2);
        fmt->coded_width = (unsigned)align(w, 16);
        fmt->coded_height = (unsigned)align(h, 16);
        fmt->display_area.left = 0;
        fmt->display_area.top = 0;
        fmt->display_area.right = w;
        fmt->display_area.bottom = h;
        fmt->chroma_format = cudaVideoChromaFormat_420;
        fmt->display_aspect_ratio.x = w;
        fmt->display_aspect_ratio.y = h;
        ps->have_format = 1;
        if (!sequence(ps, fmt)) return 0;
    }
    ps->pictures++;
    if (ps->pictures == ps->resequence_at) {
        ps->format.min_num_decode_surfaces += 8;
        if (!sequence(ps, &ps->format)) return 0;
    }
    CUVIDPICPARAMS pp;
    memset(&pp, 0, sizeof pp);
    pp.PicWidthInMbs = (int)(ps->format.coded_width / 16);
    pp.FrameHeightInMbs = (int)(ps->format.coded_height / 16);
    pp.CurrPicIdx = (int)(ps->next_idx++ % ps->surfaces);
    pp.intra_pic_flag = f->key_frame != 0;
    pp.ref_pic_flag = 1;
    decoding = f;
    int r = ps->p.pfnDecodePicture(ps->p.pUserData, &pp);
    decoding = 0;
    if (!r) return 0;
    CUVIDPARSERDISPINFO di;
    memset(&di, 0, sizeof di);
    di.picture_index = pp.CurrPicIdx;
    di.progressive_frame = 1;
    di.timestamp = f->pts == AV_NOPTS_VALUE ? 0 : f->pts;
    return ps->p.pfnDisplayPicture(ps->p.pUserData, &di);
}

/* Feeds one access unit (or, with data == NULL, the end of stream). */
static CUresult decode(struct parser *ps, const unsigned char *data, size_t size, int has_ts, long long ts) {
    int r;
    if (data) {
        av_packet_unref(ps->pkt);
        if (av_new_packet(ps->pkt, (int)size) < 0) return CUDA_ERROR_OUT_OF_MEMORY;
        memcpy(ps->pkt->data, data, size);
        ps->pkt->pts = has_ts ? ts : AV_NOPTS_VALUE;
        r = avcodec_send_packet(ps->av, ps->pkt);
    } else {
        r = avcodec_send_packet(ps->av, 0);
    }
    if (r < 0 && r != AVERROR_EOF) return CUDA_SUCCESS; /* a broken packet: the parser skips it */
    while ((r = avcodec_receive_frame(ps->av, ps->frame)) == 0) {
        int ok = picture(ps, ps->frame);
        av_frame_unref(ps->frame);
        if (!ok) return CUDA_ERROR_UNKNOWN;
    }
    if (!data) avcodec_flush_buffers(ps->av);
    return CUDA_SUCCESS;
}

CUresult cuvidParseVideoData(CUvideoparser h, CUVIDSOURCEDATAPACKET *pkt) {
    FAIL("cuvidParseVideoData");
    struct parser *ps = (struct parser *)h;
    if (ps->held) {
        /* The previous packet is complete now that another one began. */
        unsigned char *held = ps->held;
        ps->held = 0;
        CUresult r = decode(ps, held, ps->held_size, ps->held_has_ts, ps->held_ts);
        free(held);
        if (r) return r;
    }
    int has_ts = (pkt->flags & CUVID_PKT_TIMESTAMP) != 0;
    if (pkt->payload_size > 0) {
        if (pkt->flags & (CUVID_PKT_ENDOFPICTURE | CUVID_PKT_ENDOFSTREAM)) {
            CUresult r = decode(ps, pkt->payload, pkt->payload_size, has_ts, pkt->timestamp);
            if (r) return r;
        } else {
            ps->held = malloc(pkt->payload_size);
            memcpy(ps->held, pkt->payload, pkt->payload_size);
            ps->held_size = pkt->payload_size;
            ps->held_has_ts = has_ts;
            ps->held_ts = pkt->timestamp;
        }
    }
    if (pkt->flags & CUVID_PKT_ENDOFSTREAM) return decode(ps, 0, 0, 0, 0);
    return CUDA_SUCCESS;
}

CUresult cuvidDestroyVideoParser(CUvideoparser h) {
    struct parser *ps = (struct parser *)h;
    free(ps->held);
    avcodec_free_context(&ps->av);
    av_packet_free(&ps->pkt);
    av_frame_free(&ps->frame);
    free(ps);
    return CUDA_SUCCESS;
}
