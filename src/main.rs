//! The `ladderd` binary: parse, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use ladderd::cli::{Cli, Command, ConfigCommand};
use ladderd::config::{Config, ConfigError};

/// Exit code for a configuration the operator must fix.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    ladderd::telemetry::log::init(cli.global.log_format);
    let overrides = cli.global.overrides();
    match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Serve { demo } => {
            let overrides = ladderd::config::Overrides { demo, ..overrides };
            let config = match Config::load(cli.global.config.as_deref(), &overrides) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            match ladderd::runtime::serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match Config::load(Some(&file), &overrides) {
            Ok(c) => {
                println!(
                    "{}: ok ({} streams, rtmp {}, srt {}, http {})",
                    file.display(),
                    c.streams.len(),
                    c.server.rtmp_listen,
                    c.server.srt_listen,
                    c.server.http_listen
                );
                for (name, why) in ladderd::ingest::srt::access::unusable_streams(&c) {
                    println!("warning: stream {name} cannot publish over SRT: {why}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(e),
        },
        Command::Sign {
            name,
            ttl,
            prefix,
            vod,
            base_url,
        } => {
            let config = match Config::load(cli.global.config.as_deref(), &overrides) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            match sign(&config, &name, &ttl, prefix.as_deref(), vod, base_url) {
                Ok(urls) => {
                    print!("{urls}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    eprintln!("ladderd sign: {why}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Probe { json } => {
            let report = ladderd::tools::probe::run(ladderd::ingest::srt::ffi::srt().map(|_| ()));
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("probe: {e}"),
                }
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Command::Hwtest {
            seconds,
            max_channels,
            device,
            json,
        } => {
            let report = ladderd::tools::hwtest::run(&ladderd::tools::hwtest::Options {
                seconds,
                max_channels,
                device,
            });
            print!("{}", report.to_table());
            if let Some(path) = json {
                let written = serde_json::to_string_pretty(&report)
                    .map_err(|e| e.to_string())
                    .and_then(|s| std::fs::write(&path, s).map_err(|e| e.to_string()));
                if let Err(e) = written {
                    eprintln!("hwtest: cannot write {}: {e}", path.display());
                }
            }
            if report.stand_in.is_some() {
                // The CPU stand-in driver: 1 when a check failed, else 2 (no
                // hardware ran, as with no GPU at all).
                ExitCode::from(if report.rows_passed() { 2 } else { 1 })
            } else if !report.ran_on_gpu {
                ExitCode::from(2)
            } else if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Transcode {
            input,
            out,
            encoder,
            x264_preset,
        } => {
            let mut config = match Config::load(cli.global.config.as_deref(), &overrides) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            if let Some(e) = encoder {
                config.ladder.encoder = e;
            }
            if let Some(p) = x264_preset {
                config.ladder.x264_preset = p;
            }
            if let Err(why) = config.ladder.soft_codecs().check() {
                eprintln!("ladderd transcode: {why}");
                return ExitCode::from(EXIT_CONFIG);
            }
            match ladderd::tools::transcode::transcode(&input, &out, &config) {
                Ok(summary) => {
                    print!("{}", summary.to_text());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ladderd transcode: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench { which } => {
            use ladderd::cli::BenchCommand;
            let result = match which {
                BenchCommand::Ladder { input, encoder } => {
                    ladderd::tools::bench::ladder(input.as_deref(), encoder).map(|r| r.text)
                }
                BenchCommand::Channels { input, max } => {
                    ladderd::tools::bench::channels(input.as_deref(), max)
                }
                BenchCommand::Telemetry { input } => {
                    ladderd::tools::bench::telemetry(input.as_deref())
                }
            };
            match result {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ladderd bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The signed playback URLs of NAME (HLS, DASH, the player page), one a line.
/// Why `ladderd sign` made no URL.
#[derive(Debug, thiserror::Error)]
enum SignError {
    #[error("playback.signing_key is not set in the configuration")]
    NoKey,
    #[error("{0:?} is not a stream name")]
    Name(String),
    #[error("--ttl {0:?}: use 90s, 30m, 1h or 2d")]
    Ttl(String),
    #[error(transparent)]
    Key(#[from] ladderd::origin::signing::KeyError),
    #[error("--prefix: letters, digits, '.', '-' or '_'")]
    Prefix,
}

fn sign(
    config: &Config,
    name: &str,
    ttl: &str,
    prefix: Option<&str>,
    vod: bool,
    base_url: Option<String>,
) -> Result<String, SignError> {
    use ladderd::origin::signing::{parse_ttl, Scope, SigningKey};
    let path = &config.playback.signing_key;
    if path.as_os_str().is_empty() {
        return Err(SignError::NoKey);
    }
    if !ladderd::config::valid_name(name) {
        return Err(SignError::Name(name.to_string()));
    }
    let ttl = parse_ttl(ttl).ok_or_else(|| SignError::Ttl(ttl.to_string()))?;
    let key = SigningKey::load(path)?;
    let now = ladderd::telemetry::clock::unix_ms() / 1000;
    let scope = if vod { Scope::Vod } else { Scope::Live };
    let token = key
        .token(scope, name, now + ttl, prefix)
        .map_err(|_| SignError::Prefix)?;
    let base = base_url.unwrap_or_else(|| {
        let mut addr = config.server.http_listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    let base = base.trim_end_matches('/');
    let kind = if vod { "vod" } else { "live" };
    let dir = format!("{base}/{kind}/{name}/t/{token}");
    let mode = if vod { "&mode=vod" } else { "" };
    Ok(format!(
        "{dir}/master.m3u8\n{dir}/manifest.mpd\n{base}/watch/{name}?token={token}{mode}\n"
    ))
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("ladderd: config error: {e}");
    ExitCode::from(EXIT_CONFIG)
}
