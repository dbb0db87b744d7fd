//! Sans-IO RTMP chunk stream reader (RTMP 1.0 §5.3): bytes in, whole messages out,
//! with every size bounded before memory is spent on it.
//!
//! Why our own: `rml_rtmp` 0.8 reserves a message's declared length (up to 16 MiB)
//! as soon as its first chunk header arrives, keeps one reassembly buffer for all
//! chunk streams, and accepts any chunk size, before the peer has authenticated.
//! Here a message costs only the bytes that actually arrived, and [`Limits`] caps
//! the message and chunk sizes (small before `publish` is accepted, larger after).

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Message type of Set Chunk Size (protocol control).
pub const SET_CHUNK_SIZE: u8 = 1;
/// Message type of Abort Message (protocol control).
pub const ABORT: u8 = 2;
/// Largest message length a chunk header can declare (24 bits).
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Chunk streams one connection may use at once; real clients use fewer than 10.
const MAX_CHUNK_STREAMS: usize = 64;
const EXTENDED: u32 = 0xFF_FFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (any type) accepted.
    pub max_message_len: usize,
    /// Largest chunk size the peer may set.
    pub max_chunk_size: usize,
}

impl Limits {
    /// Before `publish` is accepted only commands flow: a few hundred bytes each.
    pub const UNAUTHENTICATED: Limits = Limits {
        max_message_len: 64 << 10,
        max_chunk_size: 64 << 10,
    };
    /// A publisher's media: a keyframe of a high-bitrate 4K stream fits easily.
    pub const PUBLISHING: Limits = Limits {
        max_message_len: MAX_MESSAGE_LEN,
        max_chunk_size: MAX_MESSAGE_LEN,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("message of {len} bytes (type {type_id}) on chunk stream {csid} exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        csid: u32,
        type_id: u8,
        len: usize,
        limit: usize,
    },
    #[error("chunk size {size} outside 1..={limit}")]
    ChunkSize { size: u64, limit: usize },
    #[error("chunk stream {csid}: header type {fmt} without an earlier full header")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error(
        "chunk stream {csid}: a new message header (type {fmt}) before the last message ended"
    )]
    InterruptedMessage { csid: u32, fmt: u8 },
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("malformed {what} message")]
    Malformed { what: &'static str },
}

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    /// The last header's timestamp field (a delta, or for type 0 the absolute time):
    /// what a type-3 header starting a new message adds.
    delta: u32,
    extended: bool,
    len: usize,
    type_id: u8,
    stream_id: u32,
    partial: BytesMut,
    /// A message is being reassembled (some chunks arrived, not all).
    in_progress: bool,
}

pub struct ChunkReader {
    limits: Limits,
    chunk_size: usize,
    buf: BytesMut,
    streams: HashMap<u32, ChunkStream>,
}

impl ChunkReader {
    pub fn new(limits: Limits) -> Self {
        ChunkReader {
            limits,
            chunk_size: 128,
            buf: BytesMut::new(),
            streams: HashMap::new(),
        }
    }

    /// Raises (or lowers) the caps, e.g. once a publish is accepted.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Bytes held: unparsed input plus partial messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
            + self
                .streams
                .values()
                .map(|s| s.partial.len())
                .sum::<usize>()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. Set Chunk
    /// Size and Abort are applied here and not returned. After an `Err` the
    /// connection must close.
    pub fn next_message(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            let Some(message) = self.next_chunk()? else {
                return Ok(None);
            };
            match message.type_id {
                SET_CHUNK_SIZE => {
                    let size = be_u32(&message.payload, "Set Chunk Size")?;
                    // The top bit must be zero; a chunk never exceeds a message anyway.
                    if size == 0 || size as usize > self.limits.max_chunk_size || size > 0x7FFF_FFFF
                    {
                        return Err(ChunkError::ChunkSize {
                            size: size.into(),
                            limit: self.limits.max_chunk_size,
                        });
                    }
                    self.chunk_size = size as usize;
                }
                ABORT => {
                    let csid = be_u32(&message.payload, "Abort")?;
                    if let Some(s) = self.streams.get_mut(&csid) {
                        s.partial.clear();
                        s.in_progress = false;
                    }
                }
                _ => return Ok(Some(message)),
            }
        }
    }

    /// Parses one chunk if it is all here; returns a message when the chunk completes one.
    fn next_chunk(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            let b = &self.buf[..];
            let Some(&first) = b.first() else {
                return Ok(None);
            };
            let fmt = first >> 6;
            let (csid, mut at) = match first & 0x3F {
                0 if b.len() >= 2 => (64 + u32::from(b[1]), 2),
                1 if b.len() >= 3 => (64 + u32::from(b[1]) + 256 * u32::from(b[2]), 3),
                0 | 1 => return Ok(None),
                n => (u32::from(n), 1),
            };
            let header_len = [11, 7, 3, 0][fmt as usize];
            if b.len() < at + header_len {
                return Ok(None);
            }
            let h = &b[at..at + header_len];
            at += header_len;
            if !self.streams.contains_key(&csid) {
                if fmt != 0 {
                    return Err(ChunkError::NoPreviousHeader { csid, fmt });
                }
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(ChunkError::TooManyChunkStreams);
                }
            }
            let prev = self.streams.get(&csid);
            let in_progress = prev.is_some_and(|s| s.in_progress);
            if fmt != 3 && in_progress {
                return Err(ChunkError::InterruptedMessage { csid, fmt });
            }
            let ts_field = if fmt < 3 { be_u24(&h[0..3]) } else { 0 };
            let extended = match fmt {
                3 => prev.is_some_and(|s| s.extended),
                _ => ts_field == EXTENDED,
            };
            let ext_value = if extended {
                if b.len() < at + 4 {
                    return Ok(None);
                }
                let v = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                at += 4;
                Some(v)
            } else {
                None
            };
            let (len, type_id) = match fmt {
                0 | 1 => (be_u24(&h[3..6]) as usize, h[6]),
                _ => prev.map_or((0, 0), |s| (s.len, s.type_id)),
            };
            if len > self.limits.max_message_len {
                return Err(ChunkError::MessageTooLarge {
                    csid,
                    type_id,
                    len,
                    limit: self.limits.max_message_len,
                });
            }
            let have = prev.map_or(0, |s| if s.in_progress { s.partial.len() } else { 0 });
            let take = (len - have).min(self.chunk_size);
            if b.len() < at + take {
                return Ok(None);
            }
            // The whole chunk is here: commit its header and payload.
            let stream_id = if fmt == 0 {
                u32::from_le_bytes([h[7], h[8], h[9], h[10]])
            } else {
                prev.map_or(0, |s| s.stream_id)
            };
            let s = self.streams.entry(csid).or_default();
            if !s.in_progress {
                let field = ext_value.unwrap_or(ts_field);
                match fmt {
                    0 => {
                        s.timestamp = field;
                        s.delta = field;
                    }
                    1 | 2 => {
                        s.timestamp = s.timestamp.wrapping_add(field);
                        s.delta = field;
                    }
                    _ => s.timestamp = s.timestamp.wrapping_add(s.delta),
                }
                s.len = len;
                s.type_id = type_id;
                s.stream_id = stream_id;
                s.partial.clear();
                s.partial.reserve(take);
            }
            if fmt != 3 {
                s.extended = extended;
            }
            self.buf.advance(at);
            s.partial.put_slice(&self.buf[..take]);
            self.buf.advance(take);
            if s.partial.len() < s.len {
                s.in_progress = true;
                continue;
            }
            s.in_progress = false;
            return Ok(Some(Message {
                csid,
                timestamp: s.timestamp,
                type_id: s.type_id,
                stream_id: s.stream_id,
                payload: s.partial.split().freeze(),
            }));
        }
    }
}

/// Writes `m` as one type-0 chunk (the receiver's chunk size must be at least its length).
pub fn write_single_chunk(m: &Message, out: &mut Vec<u8>) {
    match m.csid {
        2..=63 => out.push(m.csid as u8),
        64..=319 => out.extend_from_slice(&[0, (m.csid - 64) as u8]),
        _ => {
            let v = m.csid.saturating_sub(64).min(0xFFFF);
            out.extend_from_slice(&[1, (v & 0xFF) as u8, (v >> 8) as u8]);
        }
    }
    let extended = m.timestamp >= EXTENDED;
    let field = if extended { EXTENDED } else { m.timestamp };
    out.extend_from_slice(&field.to_be_bytes()[1..]);
    out.extend_from_slice(&(m.payload.len() as u32).to_be_bytes()[1..]);
    out.push(m.type_id);
    out.extend_from_slice(&m.stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&m.timestamp.to_be_bytes());
    }
    out.extend_from_slice(&m.payload);
}

fn be_u24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

fn be_u32(b: &[u8], what: &'static str) -> Result<u32, ChunkError> {
    match b {
        [a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(ChunkError::Malformed { what }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut ChunkReader) -> Result<Vec<Message>, ChunkError> {
        let mut v = Vec::new();
        while let Some(m) = r.next_message()? {
            v.push(m);
        }
        Ok(v)
    }

    /// A message split into 128-byte chunks (type 0, then type 3), as a client
    /// sends before it changes the chunk size.
    fn chunked(csid: u8, ts: u32, type_id: u8, sid: u32, payload: &[u8], size: usize) -> Vec<u8> {
        let mut out = vec![csid];
        let ext = ts >= EXTENDED;
        out.extend_from_slice(&(if ext { EXTENDED } else { ts }).to_be_bytes()[1..]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&sid.to_le_bytes());
        if ext {
            out.extend_from_slice(&ts.to_be_bytes());
        }
        for (i, c) in payload.chunks(size).enumerate() {
            if i > 0 {
                out.push(0xC0 | csid);
                if ext {
                    out.extend_from_slice(&ts.to_be_bytes());
                }
            }
            out.extend_from_slice(c);
        }
        out
    }

    #[test]
    fn reassembles_chunks_byte_by_byte() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let wire = chunked(3, 1000, 20, 0, &payload, 128);
        let mut r = ChunkReader::new(Limits::UNAUTHENTICATED);
        let mut got = Vec::new();
        for b in &wire {
            r.push(&[*b]);
            got.extend(read_all(&mut r).unwrap());
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, payload);
        assert_eq!(
            (got[0].timestamp, got[0].type_id, got[0].csid),
            (1000, 20, 3)
        );
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn deltas_extended_timestamps_and_chunk_size_changes() {
        let mut r = ChunkReader::new(Limits::PUBLISHING);
        let mut wire = Vec::new();
        // Set Chunk Size 4096 on csid 2.
        wire.extend(chunked(2, 0, 1, 0, &4096u32.to_be_bytes(), 128));
        // Video at 0x1000000 (extended), 5000 bytes in 4096-byte chunks.
        wire.extend(chunked(6, 0x100_0000, 9, 1, &[7u8; 5000], 4096));
        // Type 1 (delta 40, new length), then type 2 (delta 40), then type 3 (delta again).
        wire.extend_from_slice(&[0x46, 0, 0, 40, 0, 0, 2, 9, 1, 2]);
        wire.extend_from_slice(&[0x86, 0, 0, 40, 3, 4]);
        wire.extend_from_slice(&[0xC6, 5, 6]);
        r.push(&wire);
        let got = read_all(&mut r).unwrap();
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [0x100_0000, 0x100_0028, 0x100_0050, 0x100_0078]);
        assert_eq!(got[0].payload.len(), 5000);
        assert_eq!(&got[3].payload[..], &[5, 6]);
    }

    #[test]
    fn interleaved_chunk_streams_keep_their_own_messages() {
        let mut r = ChunkReader::new(Limits::UNAUTHENTICATED);
        let a = chunked(4, 0, 8, 1, &[1u8; 200], 128);
        let b = chunked(5, 0, 9, 1, &[2u8; 200], 128);
        // a's first chunk, b's first chunk, a's rest, b's rest.
        let (a1, a2) = a.split_at(12 + 128);
        let (b1, b2) = b.split_at(12 + 128);
        for part in [a1, b1, a2, b2] {
            r.push(part);
        }
        let got = read_all(&mut r).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].payload.iter().all(|&x| x == 1) && got[0].payload.len() == 200);
        assert!(got[1].payload.iter().all(|&x| x == 2) && got[1].payload.len() == 200);
    }

    /// Issue 12 item 2: a 16 MiB message declared before `publish` is refused at its
    /// header, before any of it is buffered.
    #[test]
    fn unauthenticated_16_mib_message_is_refused_at_its_header() {
        let mut r = ChunkReader::new(Limits::UNAUTHENTICATED);
        r.push(&[3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0, 0x02]);
        let err = r.next_message().unwrap_err();
        assert!(
            matches!(err, ChunkError::MessageTooLarge { len: 0xFF_FFFF, .. }),
            "{err}"
        );
        // Once publishing, the same header is accepted and only arrived bytes are held.
        let mut r = ChunkReader::new(Limits::PUBLISHING);
        r.push(&[3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0, 0x17]);
        assert_eq!(r.next_message(), Ok(None));
        assert!(r.buffered() < 64, "{}", r.buffered());
    }

    /// Issue 12 item 2: chunk size 0x7fffffff before `publish` is refused.
    #[test]
    fn unauthenticated_huge_chunk_size_is_refused() {
        let mut r = ChunkReader::new(Limits::UNAUTHENTICATED);
        r.push(&chunked(2, 0, 1, 0, &0x7FFF_FFFFu32.to_be_bytes(), 128));
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::ChunkSize { .. })
        ));
        let mut r = ChunkReader::new(Limits::PUBLISHING);
        r.push(&chunked(2, 0, 1, 0, &0x8000_0000u32.to_be_bytes(), 128));
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::ChunkSize { .. })
        ));
        let mut r = ChunkReader::new(Limits::PUBLISHING);
        r.push(&chunked(2, 0, 1, 0, &[0, 0], 128));
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::Malformed { .. })
        ));
    }

    #[test]
    fn protocol_violations_are_errors_not_panics() {
        let mut r = ChunkReader::new(Limits::PUBLISHING);
        r.push(&[0xC3, 1, 2, 3]);
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::NoPreviousHeader { .. })
        ));
        let mut r = ChunkReader::new(Limits::PUBLISHING);
        let mut w = chunked(3, 0, 20, 0, &[0u8; 200], 128);
        w.truncate(12 + 128);
        w.extend_from_slice(&[0x43, 0, 0, 1, 0, 0, 1, 20, 0]);
        r.push(&w);
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::InterruptedMessage { .. })
        ));
        let mut x: u64 = 0x1234_5678_9ABC_DEF0;
        for _ in 0..2000 {
            let mut r = ChunkReader::new(Limits::UNAUTHENTICATED);
            let buf: Vec<u8> = (0..256)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 33) as u8
                })
                .collect();
            r.push(&buf);
            while let Ok(Some(_)) = r.next_message() {}
            assert!(r.buffered() <= 256);
        }
    }

    #[test]
    fn single_chunk_round_trips() {
        for (csid, ts) in [(3, 0), (70, 5), (400, 0xFF_FFFF), (9, 0xFFFF_FFFF)] {
            let m = Message {
                csid,
                timestamp: ts,
                type_id: 9,
                stream_id: 1,
                payload: Bytes::from(vec![9u8; 1000]),
            };
            let mut wire = Vec::new();
            write_single_chunk(&m, &mut wire);
            let mut r = ChunkReader::new(Limits::PUBLISHING);
            r.push(&chunked(2, 0, 1, 0, &4096u32.to_be_bytes(), 128));
            r.push(&wire);
            assert_eq!(r.next_message().unwrap(), Some(m));
        }
    }
}
