//! CMAF boxes read back from served objects: decode times, durations and
//! timescales, and a segment's `tfdt` moved for the tests that forge one.

/// One media segment as its bytes say: where its decode time starts and how
/// long its samples last (track timescale), beside what the playlist says.
#[derive(Debug, Clone)]
pub struct SegmentTime {
    pub uri: String,
    pub extinf: f64,
    pub discontinuity: bool,
    pub tfdt: u64,
    pub ticks: u64,
    /// `(tfdt, ticks)` of each fragment (part or chunk) in the segment.
    pub fragments: Vec<(u64, u64)>,
}

/// Every box `(type, body)` directly inside `data`.
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        if size < 8 || at + size > data.len() {
            break;
        }
        out.push((kind, &data[at + 8..at + size]));
        at += size;
    }
    out
}

/// Moves a CMAF segment (every `moof`'s `tfdt`: its parts too) from media
/// time `from` to `to`, in place.
pub fn shift_tfdt(seg: &mut [u8], from: u64, to: u64) {
    fn offsets(data: &[u8], base: usize, path: &[&[u8; 4]], out: &mut Vec<usize>) {
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            if size < 8 || at + size > data.len() {
                break;
            }
            if &data[at + 4..at + 8] == path[0] {
                if path.len() == 1 {
                    out.push(base + at + 8);
                } else {
                    offsets(&data[at + 8..at + size], base + at + 8, &path[1..], out);
                }
            }
            at += size;
        }
    }
    let mut found = Vec::new();
    offsets(seg, 0, &[b"moof", b"traf", b"tfdt"], &mut found);
    assert!(!found.is_empty(), "no tfdt");
    for at in found {
        if seg[at] == 1 {
            let t = u64::from_be_bytes(seg[at + 4..at + 12].try_into().unwrap());
            seg[at + 4..at + 12].copy_from_slice(&(t - from + to).to_be_bytes());
        } else {
            let t = u64::from(u32::from_be_bytes(seg[at + 4..at + 8].try_into().unwrap()));
            let t = u32::try_from(t - from + to).expect("tfdt v0 overflows");
            seg[at + 4..at + 8].copy_from_slice(&t.to_be_bytes());
        }
    }
}

/// `(tfdt, sum of sample durations)` of each `moof` of a CMAF segment (its
/// parts, or each part's chunks), in order.
pub fn fragment_times(seg: &[u8]) -> Vec<(u64, u64)> {
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    for (_, moof) in boxes(seg).into_iter().filter(|(k, _)| k == b"moof") {
        let (mut first, mut ticks) = (None, 0u64);
        for (_, traf) in boxes(moof).into_iter().filter(|(k, _)| k == b"traf") {
            let mut default = 0u32;
            for (kind, b) in boxes(traf) {
                let flags = be32(b, 0) & 0xff_ffff;
                match &kind {
                    b"tfhd" => {
                        let mut at = 8;
                        at += if flags & 0x01 != 0 { 8 } else { 0 };
                        at += if flags & 0x02 != 0 { 4 } else { 0 };
                        if flags & 0x08 != 0 {
                            default = be32(b, at);
                        }
                    }
                    b"tfdt" => {
                        let t = if b[0] == 1 {
                            u64::from_be_bytes(b[4..12].try_into().unwrap())
                        } else {
                            be32(b, 4) as u64
                        };
                        first.get_or_insert(t);
                    }
                    b"trun" => {
                        let count = be32(b, 4) as usize;
                        let mut at = 8;
                        at += if flags & 0x01 != 0 { 4 } else { 0 };
                        at += if flags & 0x04 != 0 { 4 } else { 0 };
                        let fields = [0x100, 0x200, 0x400, 0x800]
                            .iter()
                            .filter(|f| flags & **f != 0)
                            .count();
                        for _ in 0..count {
                            ticks += if flags & 0x100 != 0 {
                                be32(b, at)
                            } else {
                                default
                            } as u64;
                            at += 4 * fields;
                        }
                    }
                    _ => {}
                }
            }
        }
        out.push((first.unwrap_or(0), ticks));
    }
    out
}

/// The media timescale of an init segment (`mdhd`).
pub fn init_timescale(init: &[u8]) -> u32 {
    let find = |data: &[u8], kind: &[u8; 4]| -> Vec<u8> {
        boxes(data)
            .into_iter()
            .find(|(k, _)| k == kind)
            .map(|(_, b)| b.to_vec())
            .unwrap_or_default()
    };
    let mdhd = find(
        &find(&find(&find(init, b"moov"), b"trak"), b"mdia"),
        b"mdhd",
    );
    let at = if mdhd.first() == Some(&1) { 20 } else { 12 };
    mdhd.get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()))
}
