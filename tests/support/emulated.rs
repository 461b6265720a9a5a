//! What the core's integration tests share: a configuration pointing at the
//! in-process emulator, and a pair the emulator minted in a token file.

use amocrm::clock::now;
use amocrm::config::Config;
use amocrm_emulator::Emulator;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The emulator's integration over plain http on loopback; `extra` keys
/// replace the defaults (`allowed_domains` is `localhost`).
pub fn config(emu: &Emulator, token_path: &Path, extra: &[(&str, &str)]) -> Config {
    let mut o: BTreeMap<String, String> = [
        ("client_id", emu.config().client_id.as_str()),
        ("client_secret", emu.config().client_secret.as_str()),
        ("redirect_uri", emu.config().redirect_uri.as_str()),
        ("token_path", token_path.to_str().unwrap()),
        ("allowed_domains", "localhost"),
        ("insecure_http", "1"),
        ("timeout", "5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        o.insert(k.to_string(), v.to_string());
    }
    Config::resolve(&o, &|_| None, &|_| None).unwrap()
}

/// Writes a pair the emulator minted, expiring in `expires_in` seconds, as
/// the gateway would have stored it; returns it.
#[allow(dead_code)] // not every test file seeds this way
pub fn seed(emu: &Emulator, path: &Path, expires_in: i64) -> Value {
    let t = emu.mint_tokens();
    let pair = json!({
        "access_token": t["access_token"], "refresh_token": t["refresh_token"],
        "expires_at": now() + expires_in, "base_domain": emu.referer(), "updated_at": now(),
    });
    std::fs::write(path, serde_json::to_vec(&pair).unwrap()).unwrap();
    pair
}
