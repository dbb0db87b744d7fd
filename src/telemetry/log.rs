//! `tracing` set-up: text or JSON lines on stderr, one line per event.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Level from `LADDERD_LOG` (or `RUST_LOG`), default `info`.
/// `mpeg2ts_reader` logs a warning per malformed TS packet: kept to errors, so a
/// publisher sending garbage cannot flood the log (the demuxer counts them).
pub fn init(format: LogFormat) {
    let filter = std::env::var("LADDERD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(format!("{f},mpeg2ts_reader=error")).ok())
        .unwrap_or_else(|| EnvFilter::new("info,mpeg2ts_reader=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // Errors only if a subscriber is already set (tests); that one stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Panics (e.g. inside a third-party parser) become one log line with where they happened.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        tracing::error!(%thread, %at, "panic: {msg}");
    }));
}
