//! AMF0 nesting-depth check, run on every command and data message before
//! `rml_amf0` (which recurses once per nested object or array) sees it.
//!
//! A 16 KB `connect` nesting objects 4,000 deep overflowed the I/O thread's stack,
//! which no `catch_unwind` can contain. This walk is iterative and follows
//! `rml_amf0` 0.3's grammar (including where it stops), so the depth it reports is
//! the depth that parser would reach.

/// Real commands nest one or two levels (`connect`'s command object, `onMetaData`'s
/// ECMA array); 32 leaves room for odd encoders and none for a stack overflow.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AMF0 values nest deeper than {limit} levels")]
pub struct TooDeep {
    pub limit: usize,
}

enum Frame {
    Object,
    StrictArray { left: u32 },
}

/// What the value parser would do next.
enum Want {
    /// A value where a missing one (end of input or the object-end marker) just ends
    /// the sequence: the top level, and strict-array elements.
    OptionalValue,
    /// A property value: a missing one is a parse error.
    PropertyValue,
    /// An object property: name length, then name and value, or 0 and the end marker.
    Property,
}

/// Scans the AMF0 values of a command (types 17, 20) or data (15, 18) message.
/// `Err` only for nesting deeper than `limit`; other malformations are left to the
/// parser, which returns errors for them.
pub fn check_message_depth(type_id: u8, payload: &[u8], limit: usize) -> Result<(), TooDeep> {
    check_depth(payload, limit)?;
    // rml_rtmp drops a leading 0 of type 17 (AMF3 command carrying AMF0).
    if type_id == 17 && payload.first() == Some(&0) {
        check_depth(&payload[1..], limit)?;
    }
    Ok(())
}

/// The deepest nesting of objects, ECMA arrays and strict arrays in `b`, capped at
/// `limit` (beyond it: `Err`).
pub fn check_depth(b: &[u8], limit: usize) -> Result<(), TooDeep> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut at = 0usize;
    let mut want = Want::OptionalValue;
    loop {
        match want {
            Want::Property => {
                let Some(len) = be_u16(b, at) else {
                    return Ok(());
                };
                at += 2;
                if len == 0 {
                    if b.get(at) != Some(&0x09) {
                        return Ok(());
                    }
                    at += 1;
                    stack.pop();
                    want = after_value(&mut stack);
                } else {
                    at = (at + len as usize).min(b.len());
                    want = Want::PropertyValue;
                }
            }
            Want::OptionalValue | Want::PropertyValue => {
                let marker = match b.get(at) {
                    None | Some(0x09) => {
                        if matches!(want, Want::PropertyValue) {
                            return Ok(()); // the parser's UnexpectedEof: it stops here
                        }
                        at += usize::from(at < b.len());
                        // Ends the top level, or the strict array being read.
                        match stack.last() {
                            None => return Ok(()),
                            Some(Frame::StrictArray { .. }) => {
                                stack.pop();
                                want = after_value(&mut stack);
                                continue;
                            }
                            Some(Frame::Object) => return Ok(()),
                        }
                    }
                    Some(&m) => m,
                };
                at += 1;
                let nested = match marker {
                    0x00 => {
                        at += 8;
                        None
                    }
                    0x01 => {
                        at += 1;
                        None
                    }
                    0x05 | 0x06 => None,
                    0x02 => {
                        let Some(len) = be_u16(b, at) else {
                            return Ok(());
                        };
                        at = (at + 2 + len as usize).min(b.len());
                        None
                    }
                    0x03 => Some(Frame::Object),
                    0x08 => {
                        at += 4;
                        Some(Frame::Object)
                    }
                    0x0A => {
                        let Some(left) = be_u32(b, at) else {
                            return Ok(());
                        };
                        at += 4;
                        Some(Frame::StrictArray { left })
                    }
                    _ => return Ok(()), // unknown marker: the parser errors out
                };
                if at > b.len() {
                    return Ok(());
                }
                match nested {
                    None => want = after_value(&mut stack),
                    Some(frame) => {
                        if stack.len() >= limit {
                            return Err(TooDeep { limit });
                        }
                        want = match frame {
                            Frame::Object => Want::Property,
                            Frame::StrictArray { .. } => Want::OptionalValue,
                        };
                        stack.push(frame);
                        if let Some(Frame::StrictArray { left: 0 }) = stack.last() {
                            stack.pop();
                            want = after_value(&mut stack);
                        }
                    }
                }
            }
        }
    }
}

/// A value just ended: what the enclosing container reads next.
fn after_value(stack: &mut Vec<Frame>) -> Want {
    loop {
        match stack.last_mut() {
            None => return Want::OptionalValue,
            Some(Frame::Object) => return Want::Property,
            Some(Frame::StrictArray { left }) => {
                *left = left.saturating_sub(1);
                if *left > 0 {
                    return Want::OptionalValue;
                }
                stack.pop();
            }
        }
    }
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::rml_amf0::{self, Amf0Value};
    use std::collections::HashMap;

    fn encode(values: Vec<Amf0Value>) -> Vec<u8> {
        rml_amf0::serialize(&values).unwrap()
    }

    fn nest_objects(depth: usize) -> Amf0Value {
        let mut v = Amf0Value::Number(1.0);
        for _ in 0..depth {
            v = Amf0Value::Object(HashMap::from([("a".to_string(), v)]));
        }
        v
    }

    fn nest_arrays(depth: usize) -> Amf0Value {
        let mut v = Amf0Value::Null;
        for _ in 0..depth {
            v = Amf0Value::StrictArray(vec![Amf0Value::Boolean(true), v, Amf0Value::Null]);
        }
        v
    }

    #[test]
    fn real_commands_pass() {
        let connect = encode(vec![
            Amf0Value::Utf8String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(HashMap::from([
                ("app".into(), Amf0Value::Utf8String("live".into())),
                (
                    "tcUrl".into(),
                    Amf0Value::Utf8String("rtmp://h/live".into()),
                ),
                ("fpad".into(), Amf0Value::Boolean(false)),
                ("capabilities".into(), Amf0Value::Number(15.0)),
            ])),
            Amf0Value::Null,
        ]);
        assert_eq!(check_depth(&connect, MAX_DEPTH), Ok(()));
    }

    #[test]
    fn depth_is_counted_exactly_at_the_limit() {
        for nest in [nest_objects as fn(usize) -> Amf0Value, nest_arrays] {
            let ok = encode(vec![Amf0Value::Utf8String("x".into()), nest(MAX_DEPTH)]);
            assert_eq!(check_depth(&ok, MAX_DEPTH), Ok(()));
            let bad = encode(vec![Amf0Value::Utf8String("x".into()), nest(MAX_DEPTH + 1)]);
            assert_eq!(
                check_depth(&bad, MAX_DEPTH),
                Err(TooDeep { limit: MAX_DEPTH })
            );
        }
        // Siblings after a closed container do not add depth.
        let wide = encode(vec![nest_objects(20), nest_arrays(20), nest_objects(20)]);
        assert_eq!(check_depth(&wide, MAX_DEPTH), Ok(()));
    }

    /// Issue 12 item 1: the 16 KB connect (objects 4,000 deep) and the 50 KB one
    /// (strict arrays 10,000 deep), hand-built as an attacker would, without closing
    /// anything.
    #[test]
    fn nested_amf_connect_16_kb_is_too_deep() {
        let mut objects = encode(vec![
            Amf0Value::Utf8String("connect".into()),
            Amf0Value::Number(1.0),
        ]);
        for _ in 0..4000 {
            objects.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        assert!(objects.len() > 16_000);
        assert!(check_message_depth(20, &objects, MAX_DEPTH).is_err());
        let mut arrays = encode(vec![Amf0Value::Utf8String("connect".into())]);
        for _ in 0..10_000 {
            arrays.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        assert!(check_message_depth(20, &arrays, MAX_DEPTH).is_err());
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&arrays);
        assert!(check_message_depth(17, &amf3, MAX_DEPTH).is_err());
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u64 = 7;
        for _ in 0..5000 {
            let buf: Vec<u8> = (0..64)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    [0x03, 0x0A, 0x08, 0x02, 0x00, 0x09, 0x01, (x >> 40) as u8]
                        [(x >> 33) as usize % 8]
                })
                .collect();
            let _ = check_depth(&buf, 4);
        }
    }
}
