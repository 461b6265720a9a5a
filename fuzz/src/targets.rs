//! The fuzz targets. Each feeds one of the client's parsers whatever bytes
//! the fuzzer makes, and checks what must hold for every input; a broken
//! property is a panic, which libFuzzer and the stable harness both report
//! with the input that caused it. Each returns a short label of the outcome
//! (which branch the input took), which the stable harness uses as its
//! coarse feedback: an input with a label not seen before joins the pool.

use amocrm::client::encode_query;
use amocrm::error::{ErrorKind, RequestInfo};
use amocrm::token::{TokenPair, MAX_TOKEN_BYTES};
use amocrm::transport::{decode, Response};
use serde_json::Value;

/// A fixed "now" (2027-01-15), so that an input means the same every run.
pub const NOW: i64 = 1_800_000_000;

// ------------------------------------------------------------ token file

/// The token-file parser (`TokenPair::from_json`, as `FileStore::load` and
/// `importTokens` use it) and the checks every stored pair passes
/// (`TokenPair::check`).
///
/// - Refusals never quote a token (a parse error names the field).
/// - A parsed pair written with `to_json` reads back equal.
/// - Its times are unix seconds (0 to year 9999), so that every later sum
///   (`expires_at - now`, `updated_at + 90 days`) is exact.
/// - `check` accepts exactly the pairs whose tokens can go into a header
///   and whose times amoCRM could have set.
pub fn token_file(data: &[u8]) -> String {
    let secrets = secrets_in(data);
    match TokenPair::from_json(data) {
        Err(why) => {
            assert_no_secret(&why, &secrets, data);
            format!("refused: {}", label(&why))
        }
        Ok(pair) => {
            let again = TokenPair::from_json(&pair.to_json())
                .unwrap_or_else(|e| panic!("to_json wrote a file that from_json refuses: {e}"));
            assert_eq!(again, pair, "a pair does not survive to_json → from_json");
            for (name, t) in [
                ("expires_at", pair.expires_at),
                ("updated_at", pair.updated_at),
            ] {
                assert!(
                    (0..=MAX_UNIX_TIME).contains(&t),
                    "`{name}` = {t} was accepted: not a unix time, and sums with it can overflow"
                );
            }
            for now in [0, NOW, MAX_UNIX_TIME] {
                assert_eq!(
                    i128::from(pair.expires_in(now)),
                    i128::from(pair.expires_at) - i128::from(now),
                    "expires_in({now}) is not exact"
                );
                let _ = pair.is_expiring(now, 43_200);
            }
            match pair.check(NOW) {
                Ok(()) => {
                    for t in [Some(&pair.access_token), pair.refresh_token.as_ref()]
                        .into_iter()
                        .flatten()
                    {
                        let t = t.expose();
                        assert!(
                            !t.is_empty()
                                && t.len() <= MAX_TOKEN_BYTES
                                && t.bytes().all(|b| b.is_ascii_graphic()),
                            "check() passed a token that cannot be sent in a header"
                        );
                    }
                    assert!(
                        (1_262_304_000..=NOW + 5 * 366 * 86_400).contains(&pair.expires_at),
                        "check() passed `expires_at` = {}",
                        pair.expires_at
                    );
                    "stored".into()
                }
                Err(why) => {
                    assert_no_secret(&why, &secrets, data);
                    format!("parsed, check refused: {}", label(&why))
                }
            }
        }
    }
}

/// 9999-12-31T23:59:59Z.
pub const MAX_UNIX_TIME: i64 = 253_402_300_799;

/// The token values of a token-file-shaped input, as the parser would trim
/// them, when they are distinctive enough to be recognized in a message:
/// at least 6 bytes and one character that no message of ours is made of.
fn secrets_in(data: &[u8]) -> Vec<String> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(data) else {
        return Vec::new();
    };
    [
        "access_token",
        "refresh_token",
        "accessToken",
        "refreshToken",
    ]
    .iter()
    .filter_map(|k| obj.get(*k).and_then(Value::as_str))
    .map(|s| s.trim().to_string())
    .filter(|s| s.len() >= 6 && s.contains(['~', '^', '|', '$', '#', '@', '!', '%', '*']))
    .collect()
}

fn assert_no_secret(message: &str, secrets: &[String], data: &[u8]) {
    // The account host may be quoted (it is no secret), and it may happen
    // to contain a token's text, as written or as a message quotes it
    // (whitespace and control characters flattened to one space).
    let hosts: Vec<String> = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(obj)) => ["base_domain", "baseDomain"]
            .iter()
            .filter_map(|k| obj.get(*k).and_then(Value::as_str))
            .flat_map(|h| {
                [
                    h.to_string(),
                    amocrm::error::excerpt(h.as_bytes(), usize::MAX),
                ]
            })
            .collect(),
        _ => Vec::new(),
    };
    for s in secrets {
        if message.contains(s.as_str()) && !hosts.iter().any(|h| h.contains(s.as_str())) {
            panic!("a refusal quotes a token: {message}");
        }
    }
}

/// A message's kind, without the values it quotes: the field it names and
/// its last words (every message ends in fixed text), or serde_json's error.
fn label(message: &str) -> String {
    const FIELDS: [&str; 9] = [
        "access_token",
        "refresh_token",
        "expires_at",
        "base_domain",
        "updated_at",
        "accessToken",
        "refreshToken",
        "expires",
        "baseDomain",
    ];
    if let Some(serde) = message.strip_prefix("not valid JSON (") {
        return serde.split(" at line").next().unwrap_or(serde).to_string();
    }
    let field = FIELDS
        .iter()
        .filter_map(|f| message.find(&format!("`{f}`")).map(|at| (at, *f)))
        .min()
        .map_or("", |(_, f)| f);
    let words: Vec<&str> = message.split_whitespace().collect();
    let tail = words[words.len().saturating_sub(4)..].join(" ");
    format!(
        "{field}: {}",
        tail.replace(|c: char| c.is_ascii_digit(), "")
    )
}

// ------------------------------------------------------------ amoCRM answers

/// The statuses amoCRM (and the nginx in front of it) answers with.
const STATUSES: [u16; 16] = [
    200, 201, 202, 204, 301, 400, 401, 402, 403, 404, 405, 429, 500, 502, 503, 504,
];

/// An input is `STATUS\nBODY` (three digits) as the corpus files are
/// written, or any bytes: the first picks a status, the rest is the body.
pub fn split_answer(data: &[u8]) -> (u16, &[u8]) {
    if data.len() >= 4 && data[..3].iter().all(u8::is_ascii_digit) && data[3] == b'\n' {
        let status = data[..3]
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        if status >= 100 {
            return (status, &data[4..]);
        }
    }
    match data.split_first() {
        Some((first, rest)) => (STATUSES[usize::from(*first) % STATUSES.len()], rest),
        None => (200, data),
    }
}

/// amoCRM's answers, error bodies first (`transport::decode` and
/// `api_error`): problem+json, `validation-errors`, nginx's HTML pages,
/// truncated and empty bodies, any status.
///
/// - A 2xx JSON body is returned as parsed; 204 is `None`; any other 2xx
///   body is an `AmoApiException`.
/// - Every other status is an error of the kind the README's table gives
///   (401 auth, 400 + `validation-errors` validation, 429 and a non-JSON
///   403 rate limit, else API), carrying the status and the request.
/// - Its `title` is amoCRM's when amoCRM sent one; `validation-errors` are
///   passed on exactly.
/// - The message is one line of bounded length whatever the body holds:
///   it goes into logs.
pub fn amo_answer(data: &[u8]) -> String {
    let (status, body) = split_answer(data);
    let info = RequestInfo {
        method: "PATCH".into(),
        url: "https://example.amocrm.ru/api/v4/leads".into(),
        status,
        request_id: Some("req-1".into()),
    };
    // A 2xx answer is read up to 128 levels deep (transport::parse_json); an
    // error body with serde_json's defaults (127 levels).
    let parsed: Option<Value> = amocrm::transport::parse_json(body).ok();
    let strict: Option<Value> = serde_json::from_slice(body).ok();
    let resp = Response {
        status,
        body: body.to_vec(),
        oversize: false,
        info: info.clone(),
    };
    let ok = (200..300).contains(&status);
    match decode(resp) {
        Ok(None) => {
            assert_eq!(status, 204, "no value for a {status}");
            "204".into()
        }
        Ok(Some(v)) => {
            assert!(ok && status != 204, "a value for a {status}");
            assert_eq!(Some(&v), parsed.as_ref(), "the JSON is not what was sent");
            assert!(
                depth(&v) <= 128,
                "an answer {} levels deep was read",
                depth(&v)
            );
            if let Some(s) = &strict {
                assert_eq!(s, &v, "serde_json reads the answer otherwise");
            }
            "2xx json".into()
        }
        Err(e) => {
            let object = strict.as_ref().filter(|v| v.is_object());
            let validation = object
                .and_then(|o| o.get("validation-errors"))
                .filter(|v| v.is_array());
            let kind = if ok {
                assert!(
                    status != 204 && parsed.is_none(),
                    "a {status} with a JSON body failed"
                );
                ErrorKind::Api
            } else {
                match status {
                    401 => ErrorKind::Auth,
                    400 if validation.is_some() => ErrorKind::Validation,
                    429 => ErrorKind::RateLimit,
                    403 if object.is_none() => ErrorKind::RateLimit,
                    _ => ErrorKind::Api,
                }
            };
            assert_eq!(e.kind, kind, "status {status}: {}", e.message);
            assert_eq!(e.status, status);
            assert_eq!(e.request.as_ref(), Some(&info));
            if !ok {
                if let Some(t) = object.and_then(|o| o.get("title")).and_then(Value::as_str) {
                    assert_eq!(e.title, t, "amoCRM's title is not passed on");
                }
                assert_eq!(e.validation_errors.as_ref(), validation);
            }
            assert!(
                !e.message.chars().any(char::is_control),
                "the message is not one line: {:?}",
                e.message
            );
            assert!(
                e.message.chars().count() <= MAX_MESSAGE_CHARS,
                "a message of {} characters",
                e.message.chars().count()
            );
            format!(
                "{status} {:?}{}{}",
                e.kind,
                if object.is_some() { " object" } else { "" },
                if e.description.is_empty() {
                    ""
                } else {
                    " described"
                }
            )
        }
    }
}

/// A message names the request (method and URL, at most ~2 KB with the
/// query stripped) and what amoCRM said, cut short.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

// ------------------------------------------------------------ query encoder

/// The query encoder (`client::encode_query`) over any JSON value, as a
/// PHP array would reach it.
///
/// - Only a map (or an empty array) is a query; anything else is refused
///   as an invalid argument `query`.
/// - The output is `application/x-www-form-urlencoded` of unreserved
///   characters and well-formed escapes only.
/// - Every leaf (not null) is sent once, in order (`with` lists joined).
/// - What amoCRM gets is what was meant: the pairs, read back the way PHP
///   (amoCRM) reads a query string, rebuild the same array — lists as lists
///   of their non-empty items, `true`/`false` as `1`/`0`.
pub fn query_encoder(data: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return "not JSON".into();
    };
    let is_query = v.is_object() || v.as_array().is_some_and(Vec::is_empty);
    let encoded = match encode_query(&v) {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Config, "{}", e.message);
            assert!(
                e.message.contains("`query"),
                "the refusal does not name the query: {}",
                e.message
            );
            if is_query {
                if e.message.contains("a URL may carry") {
                    return "refused, too long".into();
                }
                assert!(
                    has_unsendable_key(&v),
                    "a query with plain keys was refused: {}",
                    e.message
                );
                return "refused key".into();
            }
            return "refused".into();
        }
        Ok(s) => s,
    };
    assert!(is_query, "a {} was accepted as a query", kind_of(&v));
    assert!(
        encoded.len() <= amocrm::client::MAX_QUERY_BYTES,
        "a query of {} bytes was accepted",
        encoded.len()
    );
    assert!(
        !has_unsendable_key(&v),
        "a key PHP cannot read back was sent: {encoded}"
    );
    let bytes = encoded.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'%' => assert!(
                bytes.len() > i + 2
                    && bytes[i + 1..i + 3]
                        .iter()
                        .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)),
                "a broken escape at {i}: {encoded}"
            ),
            b if b.is_ascii_alphanumeric() || b"*-._+&=".contains(b) => {}
            _ => panic!("byte {b} is not form-urlencoded: {encoded}"),
        }
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(bytes).into_owned().collect();
    let mut leaves = Vec::new();
    if let Value::Object(o) = &v {
        for (k, item) in o {
            match item {
                Value::Array(items) if k == "with" => leaves.push(
                    items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => collect_leaves(item, &mut leaves),
            }
        }
    }
    let values: Vec<&String> = pairs.iter().map(|(_, v)| v).collect();
    assert_eq!(
        values,
        leaves.iter().collect::<Vec<_>>(),
        "the values sent are not the leaves, in order"
    );
    if pairs.len() > php::MAX_INPUT_VARS || depth(&v) > php::MAX_NESTING {
        return "sent, beyond PHP's input limits".into();
    }
    if !php::distinct_names(&v) {
        // `a.b` and `a b` both arrive as `a_b`: PHP's renaming, as with
        // any PHP client's http_build_query().
        return "sent, names PHP merges".into();
    }
    let expected = php::from_query(&v);
    let rebuilt = php::parse_pairs(&pairs);
    assert_eq!(
        rebuilt, expected,
        "PHP reads {encoded} as another array than was meant"
    );
    format!(
        "sent {} pairs, depth {}, {}",
        pairs.len().min(4),
        depth(&v).min(6),
        if encoded.contains("%5D%5B0%5D") {
            "a list of arrays"
        } else {
            "no list of arrays"
        }
    )
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn collect_leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push(if *b { "1" } else { "0" }.into()),
        Value::Number(n) => out.push(n.to_string()),
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_leaves(i, out)),
        Value::Object(o) => o.values().for_each(|i| collect_leaves(i, out)),
    }
}

/// Levels of arrays: a scalar 0, `[]` 1.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A key PHP cannot read back as sent: a bracket or NUL anywhere (it would
/// cut or re-nest the name), an empty name (at the top: spaces only, which
/// PHP strips), or inside brackets one whitespace character (PHP reads
/// `a[ ]` as `a[]`). PHP's renaming of a top-level name (`.` and spaces to
/// `_`) is amoCRM's, as for any client, and is modelled in `php`.
pub fn has_unsendable_key(v: &Value) -> bool {
    fn bad(k: &str) -> bool {
        k.contains(['[', ']', '\0']) || matches!(k, "" | " " | "\t" | "\n" | "\x0b" | "\x0c" | "\r")
    }
    fn walk(v: &Value) -> bool {
        match v {
            Value::Array(items) => items.iter().any(walk),
            Value::Object(o) => o.iter().any(|(k, i)| bad(k) || walk(i)),
            _ => false,
        }
    }
    match v {
        Value::Object(o) => o.iter().any(|(k, i)| {
            k.trim_start_matches(' ').is_empty()
                || k.contains(['[', ']', '\0'])
                || ((k != "with" || !i.is_array()) && walk(i))
        }),
        _ => false,
    }
}

/// How PHP (amoCRM's side) reads a query string into `$_GET`, for the
/// names this encoder makes: PHP's `php_register_variable_ex` rules.
pub mod php {
    use serde_json::Value;

    /// `max_input_vars` and `max_input_nesting_level`: PHP's defaults.
    pub const MAX_INPUT_VARS: usize = 1000;
    pub const MAX_NESTING: usize = 64;

    /// A PHP array key.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum Key {
        Int(i64),
        Str(String),
    }

    /// A value as `$_GET` holds it: strings and arrays.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Php {
        Str(String),
        Arr(Vec<(Key, Php)>),
    }

    /// PHP's numeric-string rule for array keys: `-?[1-9][0-9]*` or `0`,
    /// within range.
    pub fn key(k: &str) -> Key {
        let digits = k.strip_prefix('-').unwrap_or(k);
        let canonical = match digits.as_bytes() {
            [b'0'] => k == "0",
            [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        match canonical.then(|| k.parse::<i64>().ok()).flatten() {
            Some(i) => Key::Int(i),
            None => Key::Str(k.to_string()),
        }
    }

    fn set(arr: &mut Vec<(Key, Php)>, k: Key, v: Php) -> usize {
        match arr.iter().position(|(e, _)| *e == k) {
            Some(i) => {
                arr[i].1 = v;
                i
            }
            None => {
                arr.push((k, v));
                arr.len() - 1
            }
        }
    }

    fn next_index(arr: &[(Key, Php)]) -> i64 {
        arr.iter()
            .filter_map(|(k, _)| match k {
                Key::Int(i) => Some(*i + 1),
                Key::Str(_) => None,
            })
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// The top-level name as PHP registers it: leading spaces dropped,
    /// spaces and dots turned into `_`.
    fn base_name(base: &str) -> String {
        base.trim_start_matches(' ').replace([' ', '.'], "_")
    }

    /// Whether the top-level names stay distinct after PHP's renaming.
    pub fn distinct_names(v: &Value) -> bool {
        let Value::Object(o) = v else { return true };
        let mut seen = std::collections::HashSet::new();
        o.keys().all(|k| seen.insert(key(&base_name(k))))
    }

    /// `$_GET` for these pairs (names made only of non-empty keys without
    /// brackets, as the encoder sends them).
    pub fn parse_pairs(pairs: &[(String, String)]) -> Php {
        let mut root: Vec<(Key, Php)> = Vec::new();
        for (name, value) in pairs {
            let (base, rest) = match name.find('[') {
                Some(i) => (&name[..i], &name[i..]),
                None => (name.as_str(), ""),
            };
            let base = base_name(base);
            if base.is_empty() {
                continue;
            }
            let mut segments: Vec<&str> = Vec::new();
            let mut rest = rest;
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(close) = inner.find(']') else { break };
                segments.push(&inner[..close]);
                rest = &inner[close + 1..];
            }
            let mut node = &mut root;
            let mut k = key(&base);
            for seg in segments {
                let i = match node.iter().position(|(e, _)| *e == k) {
                    Some(i) if matches!(node[i].1, Php::Arr(_)) => i,
                    _ => set(node, k, Php::Arr(Vec::new())),
                };
                let Php::Arr(child) = &mut node[i].1 else {
                    unreachable!()
                };
                node = child;
                // PHP skips one whitespace character before `]`: `a[ ]` is `a[]`.
                k = if matches!(seg, "" | " " | "\t" | "\n" | "\x0b" | "\x0c" | "\r") {
                    Key::Int(next_index(node))
                } else {
                    key(seg)
                };
            }
            set(node, k, Php::Str(value.clone()));
        }
        Php::Arr(root)
    }

    /// What a query array should arrive as: leaves as strings (`true` 1,
    /// `false` 0), nulls and empty arrays gone, a list as the list of its
    /// remaining items, a `with` list joined with commas.
    pub fn from_query(v: &Value) -> Php {
        let mut root = Vec::new();
        if let Value::Object(o) = v {
            for (k, item) in o {
                let node = match item {
                    Value::Array(items) if k == "with" => Some(Php::Str(
                        items
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(","),
                    )),
                    _ => meant(item),
                };
                let name = base_name(k);
                if let (Some(node), false) = (node, name.is_empty()) {
                    set(&mut root, key(&name), node);
                }
            }
        }
        Php::Arr(root)
    }

    fn meant(v: &Value) -> Option<Php> {
        match v {
            Value::Null => None,
            Value::Bool(b) => Some(Php::Str(if *b { "1" } else { "0" }.into())),
            Value::Number(n) => Some(Php::Str(n.to_string())),
            Value::String(s) => Some(Php::Str(s.clone())),
            Value::Array(items) => {
                let kept: Vec<(Key, Php)> = items
                    .iter()
                    .filter_map(meant)
                    .enumerate()
                    .map(|(i, p)| (Key::Int(i as i64), p))
                    .collect();
                (!kept.is_empty()).then_some(Php::Arr(kept))
            }
            Value::Object(o) => {
                let mut kept = Vec::new();
                for (k, i) in o {
                    if let Some(p) = meant(i) {
                        set(&mut kept, key(k), p);
                    }
                }
                (!kept.is_empty()).then_some(Php::Arr(kept))
            }
        }
    }
}
