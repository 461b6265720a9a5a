//! amoCRM's answer, straight from its bytes to PHP arrays: no JSON tree in
//! between. Gives what `json_decode($json, true)` gives (numeric string
//! keys become integer keys, a later duplicate key replaces the value in
//! the first one's place, integers beyond PHP_INT_MAX become floats), with
//! three differences on purpose: a bare scalar, nesting deeper than
//! [`MAX_JSON_DEPTH`] and a number beyond float range are refused.
//!
//! Faster and smaller than json_decode(): every array is made with the room
//! it needs (its elements are gathered first), and an object key that
//! repeats — `id`, `name`, `custom_fields_values` in each of 250 leads — is
//! one PHP string shared by every array that has it, its hash computed once.
//!
//! PHP ends the request with a fatal error when an allocation goes beyond
//! memory_limit; so the memory in use is checked as the arrays are built,
//! and an answer that would not fit is refused with an exception instead.

use crate::error::{Error, ErrorKind, Result};
use crate::transport::MAX_JSON_DEPTH;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::types::{ArrayKey, ZendHashTable, ZendStr, Zval};
use rustc_hash::FxHashMap;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Keys longer than this are not shared (they rarely repeat).
const MAX_SHARED_LEN: usize = 48;
/// Values longer than this are not shared: most are an entity's own (names,
/// comments), and looking each up would cost more than it saves.
const MAX_SHARED_VALUE: usize = 16;
/// An answer shorter than this is one entity or a few: nothing repeats
/// enough to pay for the index, and no string is shared.
const SHARE_FROM: usize = 8 << 10;
/// At most this many distinct strings are shared per answer.
const MAX_SHARED: usize = 4096;
/// Memory is checked after this many values, and before any long string.
const CHECK_EVERY: u32 = 1024;
const LONG_STRING: usize = 64 << 10;
/// What is kept free below memory_limit: PHP takes memory in 2 MB chunks.
const SPARE: usize = 2 << 20;

extern "C" {
    /// PHP's own count of the request's allocated memory (Zend/zend_alloc.h).
    pub fn zend_memory_usage(real_usage: bool) -> usize;
}

/// The PHP array of a JSON answer (an object or a list).
pub fn answer(bytes: &[u8]) -> std::result::Result<ZBox<ZendHashTable>, Refusal> {
    let limit = super::ini_lookup("memory_limit").and_then(|s| parse_quantity(&s));
    let mut b = Builder {
        pending: Vec::new(),
        open: Vec::new(),
        strings: FxHashMap::default(),
        seen: Vec::new(),
        share: bytes.len() >= SHARE_FROM,
        top: None,
        limit,
        since_check: 0,
        too_big: None,
    };
    // Valid UTF-8 (nearly always) is read without checking each string
    // again; otherwise serde_json finds and names the fault.
    let parsed = match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => parse(&mut b, serde_json::Deserializer::from_str(text)),
        Err(_) => parse(&mut b, serde_json::Deserializer::from_slice(bytes)),
    };
    match (parsed, b.top.take()) {
        (Ok(_), Some(top)) => Ok(top),
        (Ok(scalar), None) => Err(Refusal::Bare(describe_scalar(&scalar))),
        (Err(e), _) => match b.too_big.take() {
            Some(err) => Err(Refusal::Memory(err)),
            None => Err(Refusal::Json(e)),
        },
    }
}

fn parse<'de, R: serde_json::de::Read<'de>>(
    b: &mut Builder,
    mut de: serde_json::Deserializer<R>,
) -> serde_json::Result<Zval> {
    de.disable_recursion_limit();
    let z = Seed(b).deserialize(&mut de)?;
    de.end()?;
    Ok(z)
}

/// Why an answer did not become PHP arrays.
#[derive(Debug)]
pub enum Refusal {
    /// Not JSON, nested too deep, a number beyond float range.
    Json(serde_json::Error),
    /// A bare scalar: amoCRM answers objects and lists.
    Bare(String),
    /// It would not fit in memory_limit.
    Memory(Error),
}

fn describe_scalar(z: &Zval) -> String {
    if z.is_null() {
        "null".into()
    } else if let Some(b) = z.bool() {
        b.to_string()
    } else if let Some(n) = z.long() {
        n.to_string()
    } else if let Some(f) = z.double() {
        f.to_string()
    } else {
        "string".into()
    }
}

enum Key {
    /// A list element.
    None,
    Index(i64),
    /// Shared: one of `Builder::strings`.
    Shared(SharedStr),
    /// Used once.
    Own(ZBox<ZendStr>),
}

/// A shared string; the builder holds one reference, each array that uses
/// it as a key or a value another.
#[derive(Clone, Copy)]
struct SharedStr(*const ZendStr);

/// A string seen before: the PHP string (the builder's reference to it),
/// and the integer PHP makes of it as an array key (`"12"` is the key 12).
struct Seen {
    string: Zval,
    index: Option<i64>,
}

struct Builder {
    /// The elements of the open arrays, innermost last.
    pending: Vec<(Key, Zval)>,
    /// Where each open array's elements start in `pending`.
    open: Vec<usize>,
    /// Whether strings are shared at all (a large answer).
    share: bool,
    /// Keys and short values, each made once per answer: where in `seen`.
    strings: FxHashMap<Box<str>, usize>,
    seen: Vec<Seen>,
    /// The outermost array, once closed.
    top: Option<ZBox<ZendHashTable>>,
    limit: Option<usize>,
    since_check: u32,
    /// Set when the answer would not fit: the reason the parse stopped.
    too_big: Option<Error>,
}

impl Builder {
    /// The shared PHP string for `s`, made on first sight; None when `s` is
    /// too long to share or the table is full. One hash lookup when seen.
    fn shared(&mut self, s: &str) -> Option<&Seen> {
        if !self.share || s.len() > MAX_SHARED_LEN {
            return None;
        }
        let at = match self.strings.get(s) {
            Some(&at) => at,
            None if self.seen.len() >= MAX_SHARED => return None,
            None => {
                let index = match ArrayKey::from(s) {
                    ArrayKey::Long(i) => Some(i),
                    _ => None,
                };
                let mut string = Zval::new();
                string.set_zend_string(ZendStr::new(s, false));
                self.seen.push(Seen { string, index });
                let at = self.seen.len() - 1;
                self.strings.insert(s.into(), at);
                at
            }
        };
        self.seen.get(at)
    }

    fn key(&mut self, k: &str) -> Key {
        match self.shared(k) {
            Some(Seen { index: Some(i), .. }) => Key::Index(*i),
            Some(seen) => match seen.string.zend_str() {
                Some(s) => Key::Shared(SharedStr(s)),
                None => unreachable!("a shared string is a string"),
            },
            None => match ArrayKey::from(k) {
                ArrayKey::Long(i) => Key::Index(i),
                _ => Key::Own(ZendStr::new(k, false)),
            },
        }
    }

    /// A string value: shared when short (types, enum values, cities
    /// repeat on every entity), else a string of its own.
    fn string(&mut self, v: &str) -> Zval {
        let shared = if v.len() <= MAX_SHARED_VALUE {
            self.shared(v)
        } else {
            None
        };
        match shared {
            // Another reference to the same PHP string.
            Some(seen) => seen.string.shallow_clone(),
            None => {
                let mut z = Zval::new();
                z.set_zend_string(ZendStr::new(v, false));
                z
            }
        }
    }

    /// Whether `more` bytes (and the growth of the open arrays) still fit
    /// in memory_limit; checked every CHECK_EVERY values and for any long
    /// string.
    fn room_for<E: serde::de::Error>(&mut self, more: usize) -> std::result::Result<(), E> {
        self.since_check += 1;
        let Some(limit) = self.limit else {
            return Ok(());
        };
        if self.since_check < CHECK_EVERY && more < LONG_STRING {
            return Ok(());
        }
        self.since_check = 0;
        // SAFETY: called on the request's thread, inside a request.
        let used = unsafe { zend_memory_usage(true) };
        // The elements gathered so far become arrays: up to 40 bytes each.
        let ahead = self.pending.len() * 40 + more;
        if used.saturating_add(ahead).saturating_add(SPARE) <= limit {
            return Ok(());
        }
        let mb = |n: usize| n.div_ceil(1 << 20);
        self.too_big = Some(
            Error::new(
                ErrorKind::Api,
                format!(
                    "amoCRM's answer does not fit in memory_limit ({} MB, {} MB in use) as PHP arrays: ask for smaller pages (`limit`) or raise memory_limit",
                    mb(limit),
                    mb(used)
                ),
            )
            .with_title("Answer too large for memory_limit"),
        );
        Err(E::custom("the answer does not fit in memory_limit"))
    }

    fn enter<E: serde::de::Error>(&mut self) -> std::result::Result<(), E> {
        if self.open.len() >= MAX_JSON_DEPTH {
            return Err(E::custom(format!(
                "nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        self.open.push(self.pending.len());
        Ok(())
    }

    /// Closes the innermost array: its gathered elements become a PHP array
    /// of exactly their number (the outermost one is kept in `top`).
    fn close<E: serde::de::Error>(&mut self) -> std::result::Result<Zval, E> {
        let start = self.open.pop().expect("an open array");
        let n = self.pending.len() - start;
        self.room_for::<E>(56 + n * 40)?;
        let mut ht = ZendHashTable::with_capacity(n as u32);
        for (key, value) in self.pending.drain(start..) {
            let _ = match key {
                Key::None => ht.push(value),
                Key::Index(i) => ht.insert(i, value),
                // SAFETY: the builder's reference keeps the string alive.
                Key::Shared(k) => ht.insert(ArrayKey::ZendString(unsafe { &*k.0 }), value),
                Key::Own(s) => ht.insert(ArrayKey::ZendString(&s), value),
            };
        }
        let mut z = Zval::new();
        if self.open.is_empty() {
            self.top = Some(ht);
        } else {
            z.set_hashtable(ht);
        }
        Ok(z)
    }
}

struct Seed<'a>(&'a mut Builder);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Zval;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Zval, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Zval;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E>(self) -> std::result::Result<Zval, E> {
        let mut z = Zval::new();
        z.set_null();
        Ok(z)
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Zval, E> {
        let mut z = Zval::new();
        z.set_bool(v);
        Ok(z)
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Zval, E> {
        let mut z = Zval::new();
        z.set_long(v);
        Ok(z)
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Zval, E> {
        let mut z = Zval::new();
        match i64::try_from(v) {
            Ok(i) => z.set_long(i),
            // As json_decode(): beyond PHP_INT_MAX, a float.
            Err(_) => z.set_double(v as f64),
        }
        Ok(z)
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Zval, E> {
        let mut z = Zval::new();
        z.set_double(v);
        Ok(z)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Zval, E> {
        self.0.room_for::<E>(v.len() + 32)?;
        Ok(self.0.string(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Zval, A::Error> {
        let b = self.0;
        b.enter::<A::Error>()?;
        while let Some(z) = seq.next_element_seed(Seed(&mut *b))? {
            b.pending.push((Key::None, z));
        }
        b.close::<A::Error>()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Zval, A::Error> {
        let b = self.0;
        b.enter::<A::Error>()?;
        while let Some(key) = map.next_key_seed(KeySeed(&mut *b))? {
            let z = map.next_value_seed(Seed(&mut *b))?;
            b.pending.push((key, z));
        }
        b.close::<A::Error>()
    }
}

struct KeySeed<'a>(&'a mut Builder);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Key, E> {
        Ok(self.0.key(v))
    }
}

/// php.ini's quantity syntax: `128M`, `1G`, `524288`; `-1` (or 0) is no limit.
pub fn parse_quantity(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, ' '),
    };
    let n: i64 = digits.trim().parse().ok()?;
    if n <= 0 {
        return None;
    }
    let shift = match unit {
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => 0,
    };
    usize::try_from(n).ok()?.checked_shl(shift)
}

/// The error for an answer that did not become PHP arrays, as
/// [`crate::transport::decode`] words it.
pub fn refusal_error(r: Refusal, resp: &crate::transport::Response) -> Error {
    match r {
        Refusal::Json(e) => crate::transport::not_json(resp, &e),
        Refusal::Bare(what) => Error::new(
            ErrorKind::Api,
            format!("amoCRM answered a bare JSON {what} where an object or a list was expected"),
        )
        .with_title("Unexpected answer"),
        Refusal::Memory(e) => e.with_request(resp.info.clone()),
    }
}

/// The answer of a request as PHP, or null for a 204.
pub fn response(resp: crate::transport::Response) -> Result<Option<ZBox<ZendHashTable>>> {
    let Some(resp) = crate::transport::success(resp)? else {
        return Ok(None);
    };
    answer(&resp.body)
        .map(Some)
        .map_err(|r| refusal_error(r, &resp))
}
