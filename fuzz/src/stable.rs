//! The stable harness: the fuzz targets without libFuzzer, on the stable
//! toolchain, for `./build.sh test`. It replays the committed corpus, then
//! mutates it at random for a time budget (bit flips, interesting bytes and
//! numbers, the target's dictionary, splices). It has no coverage
//! instrumentation; its only feedback is the target's outcome label: an
//! input that takes a branch no earlier input took joins the pool. The first
//! failure stops the run; its input is saved under the artifacts folder.
//!
//! ```text
//! target/release/token_file [--seconds 15] [--seed N] [--corpus DIR]... [--artifacts DIR] [FILE...]
//! target/release/token_file --describe
//! ```
//! With FILEs it only replays them (to reproduce a failure). With
//! `AMOCRM_RELIABILITY_DIR` set it appends its row to the report's
//! `50-fuzzing` section.

use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest input made (a token file may be 64 KiB; the parsers'
/// interesting cases are small).
const MAX_LEN: usize = 16 * 1024;
/// A single input that runs longer than this is a hang.
const HANG: Duration = Duration::from_secs(10);

struct Args {
    seconds: f64,
    seed: u64,
    corpus: Vec<PathBuf>,
    artifacts: PathBuf,
    files: Vec<PathBuf>,
    describe: bool,
}

fn parse_args(name: &str) -> Result<Args, String> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        seconds: 15.0,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        corpus: Vec::new(),
        artifacts: crate_dir.join("../target/fuzz/artifacts").join(name),
        files: Vec::new(),
        describe: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                a.seconds = value(&arg)?
                    .parse()
                    .map_err(|_| "--seconds: a number".to_string())?
            }
            "--seed" => {
                a.seed = value(&arg)?
                    .parse()
                    .map_err(|_| "--seed: a whole number".to_string())?
            }
            "--corpus" => a.corpus.push(value(&arg)?.into()),
            "--artifacts" => a.artifacts = value(&arg)?.into(),
            "--describe" => a.describe = true,
            s if s.starts_with("--") => return Err(format!("unknown flag {s}")),
            _ => a.files.push(arg.into()),
        }
    }
    if a.corpus.is_empty() {
        a.corpus.push(crate_dir.join("corpus").join(name));
    }
    Ok(a)
}

/// splitmix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING_BYTES: &[u8] =
    b"\0\x01\x7f\x80\xff\xc3\xe2\t\n\r \"\\/{}[],:-+.0123456789eE%&=abz~";
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.0",
    "1.0",
    "1e3",
    "1E-7",
    "1.5",
    "255",
    "65535",
    "1262304000",
    "1800000000",
    "253402300799",
    "253402300800",
    "2147483647",
    "2147483648",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e19",
    "-1e19",
    "1e308",
    "1e309",
    "-1e400",
    "5e-324",
    "0.1",
];

/// A libFuzzer dictionary: one `"token"` per line, `\xNN`, `\\` and `\"` escapes.
pub fn read_dictionary(path: &Path) -> Vec<Vec<u8>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some(start) = line.find('"') else {
            continue;
        };
        let Some(end) = line.rfind('"').filter(|e| *e > start) else {
            continue;
        };
        let raw = &line.as_bytes()[start + 1..end];
        let mut token = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            match (raw[i], raw.get(i + 1)) {
                (b'\\', Some(b'x')) if i + 3 < raw.len() => {
                    let hex = std::str::from_utf8(&raw[i + 2..i + 4]).unwrap_or("");
                    if let Ok(b) = u8::from_str_radix(hex, 16) {
                        token.push(b);
                    }
                    i += 4;
                }
                (b'\\', Some(&c)) => {
                    token.push(c);
                    i += 2;
                }
                (c, _) => {
                    token.push(c);
                    i += 1;
                }
            }
        }
        out.push(token);
    }
    out
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 => {
                let b = if rng.below(2) == 0 {
                    INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
                } else {
                    rng.next() as u8
                };
                input.insert(at, b);
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(8));
                input.drain(from..from + n);
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let chunk = input[from..from + n].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, chunk);
            }
            5 | 6 if !dict.is_empty() => {
                let token = &dict[rng.below(dict.len())];
                if rng.below(2) == 0 || len == 0 {
                    input.splice(at..at, token.iter().copied());
                } else {
                    let from = rng.below(len);
                    let end = (from + 1 + rng.below(8)).min(len);
                    input.splice(from..end, token.iter().copied());
                }
            }
            7 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            8 => {
                // A run of digits becomes an interesting number.
                let digits: Vec<usize> = (0..len).filter(|&i| input[i].is_ascii_digit()).collect();
                let num = INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.len())].as_bytes();
                if digits.is_empty() {
                    input.splice(at..at, num.iter().copied());
                } else {
                    let start = digits[rng.below(digits.len())];
                    let mut end = start;
                    while end < len && input[end].is_ascii_digit() {
                        end += 1;
                    }
                    input.splice(start..end, num.iter().copied());
                }
            }
            9 if len > 1 => input.truncate(rng.below(len)),
            _ => {
                // Nest: wrap a slice in brackets, or repeat an opener.
                let opener: &[u8] = [&b"["[..], b"{\"a\":", b"a[b]"][rng.below(3)];
                for _ in 0..1 + rng.below(40) {
                    input.splice(at..at, opener.iter().copied());
                }
            }
        }
    }
    input.truncate(MAX_LEN);
}

/// The dictionary's tokens that are JSON strings, as strings: the names and
/// values the tree mutations use.
fn dictionary_strings(dict: &[Vec<u8>]) -> Vec<String> {
    let mut out: Vec<String> = dict
        .iter()
        .filter_map(|t| serde_json::from_slice::<Value>(t).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    out.extend(
        [
            "",
            " ",
            "0",
            "1",
            "01",
            "-0",
            "-1",
            "a]",
            "[",
            "a.b",
            "a b",
            "\0",
            "\r\n",
            "é",
            "Заявка",
            "😀",
            "\u{2028}",
            "\u{1b}[31m",
            "with",
            "filter",
            "title",
            "detail",
        ]
        .map(str::to_string),
    );
    out
}

fn random_string(rng: &mut Rng, strings: &[String]) -> String {
    match rng.below(16) {
        0 => "x".repeat(rng.below(9000)),
        1 => (0..rng.below(12))
            .map(|_| char::from(32 + rng.below(95) as u8))
            .collect(),
        _ => strings[rng.below(strings.len())].clone(),
    }
}

fn random_scalar(rng: &mut Rng, strings: &[String]) -> Value {
    match rng.below(6) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => serde_json::from_str(INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.len())])
            .unwrap_or(Value::Null),
        3 => Value::from(rng.next() as i64 >> rng.below(64)),
        _ => Value::String(random_string(rng, strings)),
    }
}

fn random_value(rng: &mut Rng, strings: &[String], depth: usize) -> Value {
    if depth == 0 || rng.below(3) == 0 {
        return random_scalar(rng, strings);
    }
    let n = rng.below(5);
    if rng.below(2) == 0 {
        Value::Array(
            (0..n)
                .map(|_| random_value(rng, strings, depth - 1))
                .collect(),
        )
    } else {
        Value::Object(
            (0..n)
                .map(|_| {
                    (
                        random_string(rng, strings),
                        random_value(rng, strings, depth - 1),
                    )
                })
                .collect(),
        )
    }
}

/// One change to the tree: somewhere in it, a value replaced, a member
/// added, removed, renamed or duplicated, or a value wrapped, up to
/// nesting deeper than the parsers allow.
fn mutate_tree(rng: &mut Rng, v: &mut Value, strings: &[String], depth: usize) {
    let children = match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    if children > 0 && rng.below(3) != 0 && depth < 200 {
        let i = rng.below(children);
        let child = match v {
            Value::Array(a) => a.get_mut(i),
            Value::Object(o) => o.values_mut().nth(i),
            _ => None,
        };
        if let Some(child) = child {
            return mutate_tree(rng, child, strings, depth + 1);
        }
    }
    match (rng.below(8), v) {
        (0, Value::Array(a)) if !a.is_empty() => {
            a.remove(rng.below(children));
        }
        (0, Value::Object(o)) if !o.is_empty() => {
            let k = o
                .keys()
                .nth(rng.below(children))
                .cloned()
                .unwrap_or_default();
            o.remove(&k);
        }
        (1, Value::Array(a)) => a.push(random_value(rng, strings, 3)),
        (1, Value::Object(o)) => {
            o.insert(random_string(rng, strings), random_value(rng, strings, 3));
        }
        (2, Value::Object(o)) if !o.is_empty() => {
            let k = o
                .keys()
                .nth(rng.below(children))
                .cloned()
                .unwrap_or_default();
            if let Some(item) = o.remove(&k) {
                o.insert(random_string(rng, strings), item);
            }
        }
        (3, Value::Array(a)) if !a.is_empty() => {
            let item = a[rng.below(children)].clone();
            a.insert(rng.below(children + 1), item);
        }
        (4, v) => {
            let inner = v.take();
            *v = if rng.below(2) == 0 {
                Value::Array(vec![inner])
            } else {
                Value::Object([(random_string(rng, strings), inner)].into_iter().collect())
            };
        }
        (5, v) => {
            // Around the parsers' depth limit (128).
            let mut inner = v.take();
            for _ in 0..120 + rng.below(16) {
                inner = Value::Array(vec![inner]);
            }
            *v = inner;
        }
        (6, v) => *v = random_value(rng, strings, 4),
        (_, v) => *v = random_scalar(rng, strings),
    }
}

/// Mutates the JSON in an input (after a head such as `429\n`) as a tree;
/// `None` when the input holds no JSON.
fn mutate_json(rng: &mut Rng, input: &[u8], strings: &[String]) -> Option<Vec<u8>> {
    let start = input.iter().position(|b| *b == b'{' || *b == b'[')?;
    let mut v: Value = serde_json::from_slice(&input[start..]).ok()?;
    for _ in 0..1 + rng.below(3) {
        mutate_tree(rng, &mut v, strings, 0);
    }
    let mut out = input[..start].to_vec();
    let body = if rng.below(4) == 0 {
        serde_json::to_vec_pretty(&v)
    } else {
        serde_json::to_vec(&v)
    };
    out.extend(body.ok()?);
    Some(out)
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// One input through the target; `Err` is the failure's message.
fn run_one(target: fn(&[u8]) -> String, input: &[u8]) -> Result<String, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| target(input))) {
        Ok(label) => Ok(label),
        Err(_) => {
            let msg = PANIC
                .lock()
                .map_or(None, |mut p| p.take())
                .unwrap_or_else(|| "panicked".into());
            // Bounded: the input itself is saved whole.
            Ok::<_, String>(()).and(Err(if msg.chars().count() > 1500 {
                format!("{}…", msg.chars().take(1500).collect::<String>())
            } else {
                msg
            }))
        }
    }
}

fn save_artifact(dir: &Path, input: &[u8]) -> PathBuf {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("crash-{hash:016x}"));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, input);
    path
}

fn corpus_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in dirs {
        if let Ok(entries) = std::fs::read_dir(d) {
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    files.sort();
    files
}

/// The binary's `main`: see the module's documentation.
pub fn main(name: &str, checks: &str, target: fn(&[u8]) -> String) -> ExitCode {
    let args = match parse_args(name) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if args.describe {
        println!("{checks}");
        return ExitCode::SUCCESS;
    }
    panic::set_hook(Box::new(|info| {
        if let Ok(mut p) = PANIC.lock() {
            *p = Some(info.to_string());
        }
    }));
    if !args.files.is_empty() {
        let mut failed = false;
        for f in &args.files {
            let input = std::fs::read(f).unwrap_or_default();
            match run_one(target, &input) {
                Ok(label) => println!("{}: ok ({label})", f.display()),
                Err(msg) => {
                    println!("{}: FAILED: {msg}", f.display());
                    failed = true;
                }
            }
        }
        return if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }

    let started = Instant::now();
    let files = corpus_files(&args.corpus);
    let dict =
        read_dictionary(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("dict/{name}.dict")));
    let strings = dictionary_strings(&dict);
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut labels: HashSet<String> = HashSet::new();
    let mut failures: Vec<String> = Vec::new();
    let execs = Arc::new(AtomicU64::new(0));

    // A watchdog: an input that does not return is a failure too.
    {
        let execs = Arc::clone(&execs);
        let (name, seed) = (name.to_string(), args.seed);
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(HANG);
                let now = execs.load(Ordering::Relaxed);
                if now == last {
                    eprintln!("{name}: an input ran longer than {HANG:?} (seed {seed}, execution {now}); rerun with --seed {seed}");
                    std::process::exit(1);
                }
                last = now;
            }
        });
    }

    for f in &files {
        let input = std::fs::read(f).unwrap_or_default();
        execs.fetch_add(1, Ordering::Relaxed);
        match run_one(target, &input) {
            Ok(label) => {
                labels.insert(label);
            }
            Err(msg) => failures.push(format!("{}: {msg}", f.display())),
        }
        pool.push(input);
    }
    let replayed = files.len();
    let mut rng = Rng(args.seed);
    let budget = Duration::from_secs_f64(args.seconds.max(0.0));
    let mut input = Vec::with_capacity(MAX_LEN);
    while failures.is_empty() && started.elapsed() < budget {
        // The clock is read once per batch of inputs.
        for _ in 0..64 {
            input.clear();
            let parent = if pool.is_empty() {
                &[][..]
            } else {
                &pool[rng.below(pool.len())][..]
            };
            match (rng.below(2) == 0)
                .then(|| mutate_json(&mut rng, parent, &strings))
                .flatten()
            {
                Some(tree) => input.extend_from_slice(&tree),
                None => {
                    input.extend_from_slice(parent);
                    mutate(&mut rng, &mut input, &pool, &dict);
                }
            }
            execs.fetch_add(1, Ordering::Relaxed);
            match run_one(target, &input) {
                Ok(label) => {
                    if labels.insert(label) && pool.len() < 100_000 {
                        pool.push(input.clone());
                    }
                }
                Err(msg) => {
                    let path = save_artifact(&args.artifacts, &input);
                    failures.push(format!("{msg}\n  input saved to {}", path.display()));
                    break;
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let total = execs.load(Ordering::Relaxed);
    let regressions: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str())
        .filter(|n| n.starts_with("regression-"))
        .map(|n| {
            n.trim_start_matches("regression-")
                .split('.')
                .next()
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    println!(
        "{name}: {total} executions in {seconds:.1} s ({:.0}/s), {replayed} corpus files replayed, {} outcome kinds, pool {}, seed {}, {} failure(s)",
        total as f64 / seconds.max(1e-9),
        labels.len(),
        pool.len(),
        args.seed,
        failures.len()
    );
    for f in &failures {
        println!("{name}: FAILED: {f}");
    }
    record(&Row {
        target: name,
        checks,
        seconds,
        execs: total,
        corpus: replayed,
        failures: &failures,
        regressions: &regressions,
        seed: args.seed,
    });
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct Row<'a> {
    target: &'a str,
    checks: &'a str,
    seconds: f64,
    execs: u64,
    corpus: usize,
    failures: &'a [String],
    regressions: &'a [String],
    seed: u64,
}

/// Appends the row to `$AMOCRM_RELIABILITY_DIR/50-fuzzing.rows.jsonl`
/// (tests/reliability/support/Results.php's format).
fn record(r: &Row<'_>) {
    let Some(dir) = std::env::var_os("AMOCRM_RELIABILITY_DIR").filter(|d| !d.is_empty()) else {
        return;
    };
    let row = serde_json::json!([
        format!("{} (Rust)", r.target),
        format!("stable harness: random mutation of the corpus, outcome feedback, no coverage (seed {})", r.seed),
        r.checks,
        (r.seconds * 10.0).round() / 10.0,
        r.execs,
        (r.execs as f64 / r.seconds.max(1e-9)).round(),
        r.corpus,
        if r.failures.is_empty() { "0".to_string() } else { format!("{}: {}", r.failures.len(), r.failures.join("; ")) },
        if r.regressions.is_empty() { "—".to_string() } else { r.regressions.join(", ") },
    ]);
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&dir).join("50-fuzzing.rows.jsonl"))
    {
        let _ = f.write_all(format!("{row}\n").as_bytes());
    }
}
