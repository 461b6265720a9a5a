//! `amocrm-emulator [--host 127.0.0.1] [--port N] [--client-id ..] [--client-secret ..]
//!  [--redirect-uri ..] [--referer ..] [--port-file PATH] [--rate-limit N]`
//!
//! Prints `listening on HOST:PORT` once bound, then serves until killed.

use std::io::Write;
use std::process::ExitCode;

use amocrm_emulator::{Emulator, EmulatorConfig};

const USAGE: &str = "usage: amocrm-emulator [--host 127.0.0.1] [--port N (0 = pick)] \
[--client-id ID] [--client-secret SECRET] [--redirect-uri URI] [--referer HOST:PORT] \
[--port-file PATH] [--rate-limit N (requests per second; 0 = off; default 7)] \
[--max-part-size BYTES (the drive host's upload part size; default 524288)]\n\
env defaults: EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EMULATOR_REDIRECT_URI, EMULATOR_RATE_LIMIT";

fn parse_args(args: &[String]) -> Result<(EmulatorConfig, Option<String>), String> {
    let mut cfg = EmulatorConfig::default();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(v) = env("EMULATOR_CLIENT_ID") {
        cfg.client_id = v;
    }
    if let Some(v) = env("EMULATOR_CLIENT_SECRET") {
        cfg.client_secret = v;
    }
    if let Some(v) = env("EMULATOR_REDIRECT_URI") {
        cfg.redirect_uri = v;
    }
    if let Some(v) = env("EMULATOR_RATE_LIMIT") {
        cfg.rate_limit = v
            .parse()
            .map_err(|_| format!("bad EMULATOR_RATE_LIMIT {v:?}"))?;
    }
    let mut port_file = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--host" => cfg.host = value()?,
            "--port" => {
                let v = value()?;
                cfg.port = v.parse().map_err(|_| format!("bad --port {v:?}"))?;
            }
            "--client-id" => cfg.client_id = value()?,
            "--client-secret" => cfg.client_secret = value()?,
            "--redirect-uri" => cfg.redirect_uri = value()?,
            "--referer" => cfg.referer = Some(value()?),
            "--port-file" => port_file = Some(value()?),
            "--max-part-size" => {
                let v = value()?;
                cfg.drive_max_part_size = v
                    .parse()
                    .map_err(|_| format!("bad --max-part-size {v:?}"))?;
            }
            "--rate-limit" => {
                let v = value()?;
                cfg.rate_limit = v.parse().map_err(|_| format!("bad --rate-limit {v:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((cfg, port_file))
}

/// Write `contents` to `path` atomically: temp file in the same folder, then rename.
fn write_atomic(path: &str, contents: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp.{}", std::process::id());
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, port_file) = match parse_args(&args) {
        Ok(x) => x,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("amocrm-emulator: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let emu = match Emulator::start(cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("amocrm-emulator: {e}");
            return ExitCode::from(1);
        }
    };
    let hostport = emu.base_url().trim_start_matches("http://").to_string();
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {hostport}");
        let _ = out.flush();
    }
    if let Some(p) = port_file {
        if let Err(e) = write_atomic(&p, &emu.port().to_string()) {
            eprintln!("amocrm-emulator: cannot write port file {p}: {e}");
            return ExitCode::from(1);
        }
    }
    // Serve until killed (SIGTERM/SIGINT end the process).
    loop {
        std::thread::park();
    }
}
