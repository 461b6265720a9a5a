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
        Value::Array(_) | Value::Object(_) => Ok(json_to_hashtable(v)),
        _ => Err(Error::new(
            ErrorKind::Api,
            format!("amoCRM answered a bare JSON {v} where an object or a list was expected"),
        )
        .with_title("Unexpected answer")),
    }
}

pub fn null_zval() -> Zval {
    let mut z = Zval::new();
    z.set_null();
    z
}

const MAX_DEPTH: usize = 128;

pub fn hashtable_to_json(ht: &ZendHashTable) -> Result<Value, String> {
    array_to_json(ht, 0)
}

fn array_to_json(ht: &ZendHashTable, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    if ht.has_sequential_keys() {
        let mut out = Vec::with_capacity(ht.len());
        for v in ht.values() {
            out.push(zval_to_json(v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    let mut out = Map::with_capacity(ht.len());
    for (k, v) in ht.iter() {
        out.insert(k.to_string(), zval_to_json(v, depth + 1)?);
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
