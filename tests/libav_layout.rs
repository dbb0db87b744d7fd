//! The libavcodec decoder declares only the fields it touches of `AVPacket`
//! and `AVFrame` (it loads the library at run time, without bindings): their
//! offsets and the constants it uses must be FFmpeg's. This compiles a C
//! program against the installed headers (libavcodec-dev) and compares.

use std::mem::offset_of;
use std::process::Command;

use ladderd::transcode::cpu::libav::{FrameHead, PacketHead, AVCODEC_MAJOR, AVUTIL_MAJOR};

#[test]
fn declared_layouts_match_ffmpegs_headers() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("layout.c");
    std::fs::write(
        &src,
        r#"#include <stddef.h>
#include <stdio.h>
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu\n", offsetof(AVPacket, buf), offsetof(AVPacket, pts), offsetof(AVPacket, dts),
         offsetof(AVPacket, data), offsetof(AVPacket, size), offsetof(AVPacket, flags));
  printf("%zu %zu %zu %zu %zu %zu\n", offsetof(AVFrame, data), offsetof(AVFrame, linesize), offsetof(AVFrame, width),
         offsetof(AVFrame, height), offsetof(AVFrame, format), offsetof(AVFrame, pts));
  printf("%d %d %d %d %d %d %d %d\n", AV_CODEC_ID_H264, AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUVJ420P, AV_PKT_FLAG_KEY,
         AVERROR(EAGAIN), AVERROR_EOF, LIBAVUTIL_VERSION_MAJOR, LIBAVCODEC_VERSION_MAJOR);
  return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("layout");
    let cc = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc");
    assert!(
        cc.status.success(),
        "compiling against libavcodec's headers (scripts/test.sh installs libavcodec-dev): {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<i64>> = text
        .lines()
        .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    let packet = [
        offset_of!(PacketHead, buf),
        offset_of!(PacketHead, pts),
        offset_of!(PacketHead, dts),
        offset_of!(PacketHead, data),
        offset_of!(PacketHead, size),
        offset_of!(PacketHead, flags),
    ];
    let frame = [
        offset_of!(FrameHead, data),
        offset_of!(FrameHead, linesize),
        offset_of!(FrameHead, width),
        offset_of!(FrameHead, height),
        offset_of!(FrameHead, format),
        offset_of!(FrameHead, pts),
    ];
    let as_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
    assert_eq!(lines[0], as_i64(&packet), "AVPacket");
    assert_eq!(lines[1], as_i64(&frame), "AVFrame");
    let c = ladderd::transcode::cpu::libav::constants();
    assert_eq!(
        lines[2],
        [
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            i64::from(AVUTIL_MAJOR),
            i64::from(AVCODEC_MAJOR)
        ],
        "constants, majors"
    );
}
