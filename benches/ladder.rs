//! The ladder benchmark (`cargo bench --bench ladder`): ladderd against ffmpeg
//! doing the same decode-once ladder on the same input in the same run, then
//! the number of 720p30 → 3-rung channels held in real time. Same code as
//! `ladderd bench ladder` / `ladderd bench channels`. Needs ffmpeg.

fn main() {
    match ladderd::tools::bench::ladder(None, None) {
        Ok(r) => print!("{}", r.text),
        Err(e) => {
            eprintln!("bench ladder: {e}");
            std::process::exit(1);
        }
    }
    match ladderd::tools::bench::channels(None, 16) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("bench channels: {e}");
            std::process::exit(1);
        }
    }
}
