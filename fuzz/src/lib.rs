//! Fuzzing amocrm's parsers: the targets ([`targets`]) and the stable
//! harness that runs them without libFuzzer ([`stable`]). See README.md.

pub mod stable;
pub mod targets;

/// What each target checks, for the report (docs/reliability.md).
pub mod checks {
    pub const TOKEN_FILE: &str = "token file (TokenPair::from_json, check): refusals never quote a token; a parsed pair reads back equal after to_json; its times are unix seconds, so sums with them are exact; check() passes only header-safe tokens and times amoCRM could set";
    pub const AMO_ANSWER: &str = "amoCRM answers (transport::decode, api_error): any status and body; JSON 2xx returned as sent, 204 none; the error kind of the README's table, amoCRM's title and validation-errors passed on; the message one line, bounded";
    pub const QUERY_ENCODER: &str = "query encoder (client::encode_query): only maps are queries; output form-urlencoded; every leaf sent once in order; read back with PHP's rules (a model of $_GET) it is the array that was meant";
}

#[cfg(test)]
mod tests {
    use super::targets;
    use std::path::Path;

    /// Every committed corpus file, through its target: the regression
    /// inputs of the defects fuzzing found stay fixed, with every `cargo test`.
    fn replay(name: &str, target: fn(&[u8]) -> String) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{} fails", path.display());
            n += 1;
        }
        assert!(n >= 10, "{name}: only {n} corpus files");
    }

    #[test]
    fn token_file_corpus() {
        replay("token_file", targets::token_file);
    }

    #[test]
    fn amo_answer_corpus() {
        replay("amo_answer", targets::amo_answer);
    }

    #[test]
    fn query_encoder_corpus() {
        replay("query_encoder", targets::query_encoder);
    }
}
