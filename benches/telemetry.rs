//! The cost of telemetry (`cargo bench --bench telemetry`): ns per recorded
//! latency sample, and ladder fps with latency recording on vs off, in the
//! same run. Needs ffmpeg (to make the 720p30 input).

fn main() {
    match ladderd::tools::bench::telemetry(None) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("bench telemetry: {e}");
            std::process::exit(1);
        }
    }
}
