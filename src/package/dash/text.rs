//! Values as the MPD writes them: ISO 8601 durations, decimals, frame rates, attributes.

/// `xs:duration` of a whole number of micro-seconds, trailing zeros trimmed.
pub(super) fn duration_micros(micros: u64) -> String {
    let (s, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        format!("PT{s}S")
    } else {
        let f = format!("{frac:06}");
        format!("PT{s}.{}S", f.trim_end_matches('0'))
    }
}

pub(super) fn duration(secs: f64) -> String {
    duration_micros((secs.max(0.0) * 1e6).round() as u64)
}

/// A decimal of a whole number of micro-units, trailing zeros trimmed.
pub(super) fn decimal(v: f64) -> String {
    let micros = (v.max(0.0) * 1e6).round() as u64;
    let (i, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        format!("{i}")
    } else {
        let f = format!("{frac:06}");
        format!("{i}.{}", f.trim_end_matches('0'))
    }
}

/// `FrameRateType`: an integer, or a fraction (29.97 is `30000/1001`).
pub(super) fn frame_rate(fps: f64) -> String {
    let milli = (fps * 1000.0).round() as u64;
    if milli % 1000 == 0 {
        return format!("{}", milli / 1000);
    }
    let ntsc = (fps * 1.001).round();
    if ntsc > 0.0 && (ntsc / 1.001 - fps).abs() < 0.005 {
        return format!("{}/1001", ntsc as u64 * 1000);
    }
    format!("{milli}/1000")
}

/// Attribute text: names and codecs come from the configuration and the
/// stream, never markup.
pub(super) fn attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}
