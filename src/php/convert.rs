//! PHP values to JSON and back. Arrays with keys 0..n-1 in order are JSON
//! lists, other arrays objects; JSON objects come back as PHP arrays, as
//! `json_decode($json, true)` would give them.

use super::exceptions::to_php;
use crate::error::{Error, ErrorKind};
use ext_php_rs::boxed::ZBox;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use serde_json::{Map, Number, Value};

pub fn json_result(r: crate::error::Result<Value>) -> PhpResult<ZBox<ZendHashTable>> {
    r.and_then(|v| json_to_array(&v)).map_err(to_php)
}

/// A JSON object or list as a PHP array; amoCRM never answers a bare scalar.
pub fn json_to_array(v: &Value) -> crate::error::Result<ZBox<ZendHashTable>> {
    match v {
        Value::Array(_) | Value::Object(_) => {
            fits_in_memory(v)?;
            Ok(json_to_hashtable(v))
        }
        _ => Err(Error::new(
            ErrorKind::Api,
            format!("amoCRM answered a bare JSON {v} where an object or a list was expected"),
        )
        .with_title("Unexpected answer")),
    }
}

/// Refuses an answer whose PHP arrays would not fit in `memory_limit`: PHP
/// would end the request with a fatal error in the middle of building them.
fn fits_in_memory(v: &Value) -> crate::error::Result<()> {
    let Some(limit) =
        super::ini_lookup("memory_limit").and_then(|s| super::decode::parse_quantity(&s))
    else {
        return Ok(());
    };
    // PHP checks memory_limit against the memory it took from the system,
    // in 2 MB chunks: compare that, with a chunk to spare.
    // SAFETY: called on the request's thread, inside a request.
    let used = unsafe { super::decode::zend_memory_usage(true) };
    let need = php_cost(v) / 8 * 9 + (2 << 20); // an eighth more for the allocator's bins
    if used.saturating_add(need) <= limit {
        return Ok(());
    }
    let mb = |n: usize| n.div_ceil(1 << 20);
    Err(Error::new(
        ErrorKind::Api,
        format!(
            "amoCRM's answer would take about {} MB as PHP arrays, and memory_limit ({} MB, {} MB in use) has no room for it: ask for smaller pages (`limit`) or raise memory_limit",
            mb(need),
            mb(limit),
            mb(used)
        ),
    )
    .with_title("Answer too large for memory_limit"))
}

/// About what `v` costs as PHP values (PHP 8.2): a zend_array is 56 bytes
/// plus room for at least 8 elements, in powers of two: 16 bytes each in a
/// list, 40 in a map (a 32-byte bucket and 8 bytes of hash); a string is 24
/// bytes plus its length and a NUL, rounded up to 8. Within 1 % of what
/// json_decode() allocates for a page of 250 leads.
fn php_cost(v: &Value) -> usize {
    let string = |s: &str| (24 + s.len() + 1).next_multiple_of(8);
    let table = |n: usize, per: usize| 56 + n.max(8).next_power_of_two() * per;
    match v {
        Value::String(s) => string(s),
        Value::Array(items) => table(items.len(), 16) + items.iter().map(php_cost).sum::<usize>(),
        Value::Object(map) => {
            table(map.len(), 40)
                + map
                    .iter()
                    .map(|(k, i)| string(k) + php_cost(i))
                    .sum::<usize>()
        }
        _ => 0,
    }
}

pub fn null_zval() -> Zval {
    let mut z = Zval::new();
    z.set_null();
    z
}

/// Levels of arrays a body or a query may nest: as deep as an answer is
/// read (transport::MAX_JSON_DEPTH), so what is sent can be read back.
const MAX_DEPTH: usize = crate::transport::MAX_JSON_DEPTH;

pub fn hashtable_to_json(ht: &ZendHashTable) -> Result<Value, String> {
    array_to_json(ht, 0)
}

/// `depth` arrays enclose `ht`.
fn array_to_json(ht: &ZendHashTable, depth: usize) -> Result<Value, String> {
    if depth >= MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    // Keys are read as raw zvals: ext-php-rs's own iterators (and
    // has_sequential_keys) panic on a string key that is not UTF-8.
    let mut entries: Vec<(String, &Zval)> = Vec::with_capacity(ht.len());
    let mut is_list = true;
    let mut it = ht.iter();
    while let Some((key, v)) = it.next_zval() {
        let name = if let Some(i) = key.long() {
            is_list &= usize::try_from(i) == Ok(entries.len());
            i.to_string()
        } else if let Some(s) = key.str() {
            is_list = false;
            s.to_string()
        } else {
            return Err("a key is not valid UTF-8".into());
        };
        entries.push((name, v));
    }
    if is_list {
        let mut out = Vec::with_capacity(entries.len());
        for (_, v) in entries {
            out.push(zval_to_json(v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    let mut out = Map::with_capacity(entries.len());
    for (k, v) in entries {
        out.insert(k, zval_to_json(v, depth + 1)?);
    }
    Ok(Value::Object(out))
}

pub fn zval_to_json(z: &Zval, depth: usize) -> Result<Value, String> {
    if z.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = z.bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = z.long() {
        return Ok(Value::from(n));
    }
    if let Some(f) = z.double() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| "NAN and INF cannot be sent as JSON".to_string());
    }
    if let Some(s) = z.str() {
        return Ok(Value::String(s.to_string()));
    }
    if z.is_string() {
        return Err("a string is not valid UTF-8".into());
    }
    if let Some(ht) = z.array() {
        return array_to_json(ht, depth);
    }
    if z.is_reference() {
        if let Some(inner) = z.reference() {
            return zval_to_json(inner, depth);
        }
    }
    Err(format!(
        "a value of type {} cannot be sent as JSON; pass arrays and scalars",
        z.get_type()
    ))
}

pub fn json_to_zval(v: &Value) -> Zval {
    let mut z = Zval::new();
    match v {
        Value::Null => z.set_null(),
        Value::Bool(b) => z.set_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => z.set_long(i),
            None => z.set_double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => {
            if z.set_string(s, false).is_err() {
                z.set_null();
            }
        }
        Value::Array(_) | Value::Object(_) => z.set_hashtable(json_to_hashtable(v)),
    }
    z
}

pub fn json_to_hashtable(v: &Value) -> ZBox<ZendHashTable> {
    match v {
        Value::Array(items) => {
            let mut ht = ZendHashTable::with_capacity(items.len() as u32);
            for item in items {
                let _ = ht.push(json_to_zval(item));
            }
            ht
        }
        Value::Object(map) => {
            let mut ht = ZendHashTable::with_capacity(map.len() as u32);
            for (k, item) in map {
                // Numeric keys become integer keys, as with json_decode().
                let _ = ht.insert(k.as_str(), json_to_zval(item));
            }
            ht
        }
        _ => ZendHashTable::new(),
    }
}
