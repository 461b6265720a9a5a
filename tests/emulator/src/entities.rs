//! The entity types: how each is built, validated, changed and rendered,
//! plus what they share (tags, custom field values, links, events) and the
//! seed data (pipeline 1001, users 1001/1002, contact fields, a widget).

use serde_json::{json, Map, Value};

use crate::api::{
    bad_request, collection, exists, get_obj, insert, scalar_string, Cx, EntityDef, FieldError,
    Obj, Rx, Vx, MAX_LIMIT,
};
use crate::http::Response;
use crate::oauth::{ACCOUNT_ID, USER_ID};
use crate::state::{LinkRec, State};

/// Entity types with notes, tags, links and custom fields.
pub const ENTITY_TYPES: &[&str] = &["leads", "contacts", "companies", "customers"];

pub const DEFAULT_STATUS_ID: i64 = 10001;
pub const DEFAULT_PIPELINE_ID: i64 = 1001;
pub const UNSORTED_STATUS_ID: i64 = 10000;
pub const WON: i64 = 142;
pub const LOST: i64 = 143;
/// Storage keys of the system statuses (142/143 exist in every pipeline).
const SYSTEM_KEY_BASE: u64 = 1 << 40;
pub const FIRST_ENUM_ID: u64 = 22_000_001;

pub fn obj(v: Value) -> Obj {
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

fn i64_of(o: &Obj, k: &str) -> Option<i64> {
    o.get(k).and_then(Value::as_i64)
}

fn str_of<'a>(o: &'a Obj, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

/// `leads` → `lead`, as events name entity types.
pub fn singular(plural: &str) -> &str {
    match plural {
        "leads" => "lead",
        "contacts" => "contact",
        "companies" => "company",
        "customers" => "customer",
        "tasks" => "task",
        other => other,
    }
}

// ---------------------------------------------------------------- field specs

/// The JSON type a writable field takes.
#[derive(Clone, Copy, Debug)]
pub enum K {
    Str,
    Int,
    Bool,
    Arr,
    Obj,
}

pub type Spec = &'static [(&'static str, K)];

fn fits(v: &Value, k: K) -> bool {
    match k {
        K::Str => v.is_string(),
        K::Int => v.as_i64().is_some(),
        K::Bool => v.is_boolean(),
        K::Arr => v.is_array(),
        K::Obj => v.is_object(),
    }
}

fn type_error(path: &str, k: K) -> FieldError {
    match k {
        K::Str => FieldError::string(path),
        K::Int => FieldError::int(path),
        K::Bool => FieldError::bool(path),
        K::Arr => FieldError::array(path),
        K::Obj => FieldError::object(path),
    }
}

/// Type errors of the fields of a spec (null is always accepted).
pub fn check_fields(item: &Obj, spec: Spec, errs: &mut Vec<FieldError>) {
    for (f, k) in spec {
        match item.get(*f) {
            None | Some(Value::Null) => {}
            Some(v) if fits(v, *k) => {}
            Some(_) => errs.push(type_error(f, *k)),
        }
    }
}

/// Copy the well-typed, non-null fields of a spec.
pub fn copy_fields(obj: &mut Obj, item: &Obj, spec: Spec) {
    for (f, k) in spec {
        if let Some(v) = item.get(*f) {
            if fits(v, *k) {
                obj.insert((*f).into(), v.clone());
            }
        }
    }
}

/// On create, a field that must be there and not be empty.
pub fn required(item: &Obj, f: &str, vx: &Vx, errs: &mut Vec<FieldError>) {
    let blank = match item.get(f) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    };
    if blank && vx.creating() {
        errs.push(FieldError::blank(f));
    }
}

// ---------------------------------------------------------------- events

/// Record an event (`lead_added`, `lead_status_changed`, ...).
#[allow(clippy::too_many_arguments)]
pub fn push_event(
    st: &mut State,
    now: i64,
    typ: &str,
    plural: &str,
    entity_id: u64,
    created_by: i64,
    before: Value,
    after: Value,
) {
    let col = collection(&mut st.collections, &EVENTS);
    let key = col.next_id;
    col.next_id += 1;
    let id = format!("01{:010x}{:014x}", now.max(0), key);
    let o = obj(json!({
        "id": id,
        "type": typ,
        "entity_id": entity_id,
        "entity_type": singular(plural),
        "created_by": created_by,
        "created_at": now,
        "value_after": after,
        "value_before": before,
        "account_id": ACCOUNT_ID,
        "_links": null,
        "_embedded": {"entity": {"id": entity_id}},
    }));
    col.items.insert(key, o);
}

/// `lead` → `leads`.
fn plural(singular: &str) -> &str {
    match singular {
        "lead" => "leads",
        "contact" => "contacts",
        "company" => "companies",
        "customer" => "customers",
        "task" => "tasks",
        other => other,
    }
}

fn event_decorate(o: &mut Obj, rx: &Rx) {
    let (Some(id), Some(ty)) = (
        o.get("entity_id").and_then(Value::as_u64),
        o.get("entity_type").and_then(Value::as_str),
    ) else {
        return;
    };
    let href = rx.href(&format!("{}/{id}", plural(ty)));
    o.insert(
        "_embedded".into(),
        json!({"entity": {"id": id, "_links": href}}),
    );
}

// ---------------------------------------------------------------- tags

pub fn validate_tags(tags: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, t) in tags.iter().enumerate() {
        let ok = t.as_object().is_some_and(|o| {
            o.get("id").and_then(Value::as_i64).is_some()
                || o.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
        });
        if !ok {
            errs.push(FieldError::new(
                "NotBlank",
                format!("{path}.{i}"),
                "A tag needs an `id` or a `name`.",
            ));
        }
    }
}

/// Find a tag of an entity type by name, creating it when asked.
pub fn tag_by_name(st: &mut State, et: &str, name: &str, color: Option<&Value>) -> Value {
    let col = collection(&mut st.collections, &TAGS);
    let found = col.items.values().find(|t| {
        str_of(t, "__entity_type") == Some(et)
            && str_of(t, "name").is_some_and(|n| n.eq_ignore_ascii_case(name))
    });
    if let Some(t) = found {
        return json!({"id": t["id"], "name": t["name"], "color": t["color"]});
    }
    let id = col.next_id;
    col.next_id += 1;
    let color = color
        .filter(|c| c.is_string())
        .cloned()
        .unwrap_or(Value::Null);
    col.items.insert(
        id,
        obj(json!({"id": id, "name": name, "color": color, "__entity_type": et})),
    );
    json!({"id": id, "name": name, "color": color})
}

/// Resolve tag references to `{"id","name","color"}`, creating names as needed.
pub fn resolve_tags(refs: &[Value], st: &mut State, et: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in refs {
        let Some(o) = r.as_object() else { continue };
        let found = if let Some(id) = o.get("id").and_then(Value::as_u64) {
            st.collections.get("tags").and_then(|c| {
                c.items
                    .get(&id)
                    .filter(|t| str_of(t, "__entity_type") == Some(et))
                    .map(|t| json!({"id": t["id"], "name": t["name"], "color": t["color"]}))
            })
        } else {
            o.get("name")
                .and_then(Value::as_str)
                .map(|name| tag_by_name(st, et, name, o.get("color")))
        };
        if let Some(t) = found {
            if !out.iter().any(|x| x["id"] == t["id"]) {
                out.push(t);
            }
        }
    }
    out
}

fn check_tag_fields(item: &Obj, errs: &mut Vec<FieldError>) {
    for f in ["tags_to_add", "tags_to_delete"] {
        match item.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::Array(tags)) => validate_tags(tags, f, errs),
            Some(_) => errs.push(FieldError::array(f)),
        }
    }
}

/// `_embedded.tags` (replace), `tags_to_add`, `tags_to_delete`.
fn apply_tags(obj: &mut Obj, item: &Obj, st: &mut State, et: &str) {
    let mut current: Vec<Value> = obj
        .get("_embedded")
        .and_then(|e| e.get("tags"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut changed = false;
    match item.get("_embedded").and_then(|e| e.get("tags")) {
        Some(Value::Array(refs)) => {
            current = resolve_tags(refs, st, et);
            changed = true;
        }
        // amoCRM: `"_embedded": {"tags": null}` removes every tag.
        Some(Value::Null) => {
            current.clear();
            changed = true;
        }
        _ => {}
    }
    if let Some(Value::Array(refs)) = item.get("tags_to_add") {
        for t in resolve_tags(refs, st, et) {
            if !current.iter().any(|c| c["id"] == t["id"]) {
                current.push(t);
            }
        }
        changed = true;
    }
    if let Some(Value::Array(refs)) = item.get("tags_to_delete") {
        current.retain(|c| {
            !refs.iter().any(|r| {
                (r.get("id").is_some() && r.get("id") == c.get("id"))
                    || (r.get("name").is_some() && r.get("name") == c.get("name"))
            })
        });
        changed = true;
    }
    if changed {
        if let Some(Value::Object(e)) = obj.get_mut("_embedded") {
            e.insert("tags".into(), Value::Array(current));
        }
    }
}

// ---------------------------------------------------------------- custom field values

/// Shape of `custom_fields_values`: a list of `{field_id | field_code, values}`.
/// Unknown `field_code`s are refused; unknown `field_id`s are kept as given.
pub fn check_cfv(item: &Obj, st: &State, scope: &str, errs: &mut Vec<FieldError>) {
    let list = match item.get("custom_fields_values") {
        None | Some(Value::Null) => return,
        Some(Value::Array(l)) => l,
        Some(_) => {
            errs.push(FieldError::array("custom_fields_values"));
            return;
        }
    };
    for (i, cf) in list.iter().enumerate() {
        let p = format!("custom_fields_values.{i}");
        let Some(o) = cf.as_object() else {
            errs.push(FieldError::object(p));
            continue;
        };
        let id = o.get("field_id").filter(|v| !v.is_null());
        let code = o.get("field_code").filter(|v| !v.is_null());
        match (id, code) {
            (None, None) => errs.push(FieldError::blank(format!("{p}.field_id"))),
            (Some(v), _) if v.as_i64().is_none() => {
                errs.push(FieldError::int(format!("{p}.field_id")))
            }
            (None, Some(c)) => match c.as_str() {
                None => errs.push(FieldError::string(format!("{p}.field_code"))),
                Some(c) if field_def(st, scope, None, Some(c)).is_none() => {
                    errs.push(FieldError::choice(format!("{p}.field_code")))
                }
                _ => {}
            },
            _ => {}
        }
        match o.get("values") {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(_) => errs.push(FieldError::array(format!("{p}.values"))),
        }
    }
}

/// The custom field definition of a scope by id or code.
fn field_def<'a>(
    st: &'a State,
    scope: &str,
    id: Option<i64>,
    code: Option<&str>,
) -> Option<&'a Obj> {
    st.collections
        .get("custom_fields")?
        .items
        .values()
        .find(|f| {
            str_of(f, "__scope") == Some(scope)
                && match (id, code) {
                    (Some(id), _) => i64_of(f, "id") == Some(id),
                    (None, Some(c)) => str_of(f, "code").is_some_and(|x| x.eq_ignore_ascii_case(c)),
                    _ => false,
                }
        })
}

/// One value list of a known field, with enum ids and codes filled in.
fn norm_values(def: &Obj, values: &Value) -> Value {
    let Some(list) = values.as_array() else {
        return values.clone();
    };
    let enums: Vec<&Obj> = def
        .get("enums")
        .and_then(Value::as_array)
        .map(|e| e.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let multitext = str_of(def, "type") == Some("multitext");
    Value::Array(
        list.iter()
            .map(|v| {
                let Some(o) = v.as_object() else {
                    return v.clone();
                };
                let mut o = o.clone();
                if enums.is_empty() {
                    return Value::Object(o);
                }
                let by_id = i64_of(&o, "enum_id")
                    .and_then(|id| enums.iter().find(|e| i64_of(e, "id") == Some(id)));
                let by_code = str_of(&o, "enum_code").and_then(|c| {
                    enums
                        .iter()
                        .find(|e| str_of(e, "code").is_some_and(|v| v.eq_ignore_ascii_case(c)))
                        .or_else(|| {
                            enums.iter().find(|e| {
                                str_of(e, "value").is_some_and(|v| v.eq_ignore_ascii_case(c))
                            })
                        })
                });
                let by_value = if multitext {
                    None
                } else {
                    str_of(&o, "value")
                        .and_then(|c| enums.iter().find(|e| str_of(e, "value") == Some(c)))
                };
                let default = if multitext { enums.first() } else { None };
                if let Some(e) = by_id.or(by_code).or(by_value).or(default) {
                    o.insert("enum_id".into(), e["id"].clone());
                    if multitext {
                        o.insert("enum_code".into(), e["value"].clone());
                    } else {
                        o.insert("value".into(), e["value"].clone());
                        // A select's value carries its enum's code, when it has one.
                        match e.get("code") {
                            Some(c) if !c.is_null() => {
                                o.insert("enum_code".into(), c.clone());
                            }
                            _ => {
                                o.remove("enum_code");
                            }
                        }
                    }
                }
                Value::Object(o)
            })
            .collect(),
    )
}

/// One `custom_fields_values` entry in amoCRM's shape when the field is known.
fn norm_cf(st: &State, scope: &str, cf: &Obj) -> Value {
    let def = field_def(st, scope, i64_of(cf, "field_id"), str_of(cf, "field_code"));
    match def {
        Some(d) => json!({
            "field_id": d["id"],
            "field_name": d["name"],
            "field_code": d["code"],
            "field_type": d["type"],
            "values": norm_values(d, cf.get("values").unwrap_or(&Value::Null)),
        }),
        None => Value::Object(cf.clone()),
    }
}

/// Set `custom_fields_values`: given fields replace their stored entry
/// (empty or null `values` remove it); other stored fields stay.
pub fn apply_cfv(obj: &mut Obj, item: &Obj, st: &State, scope: &str, creating: bool) {
    match item.get("custom_fields_values") {
        Some(Value::Null) => {
            obj.insert("custom_fields_values".into(), Value::Null);
        }
        Some(Value::Array(list)) => {
            let mut cur: Vec<Value> = if creating {
                Vec::new()
            } else {
                obj.get("custom_fields_values")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            for cf in list.iter().filter_map(Value::as_object) {
                let n = norm_cf(st, scope, cf);
                let same = |c: &Value| match (c.get("field_id"), n.get("field_id")) {
                    (Some(a), Some(b)) if !a.is_null() => a == b,
                    _ => {
                        c.get("field_code").is_some() && c.get("field_code") == n.get("field_code")
                    }
                };
                let remove = match n.get("values") {
                    None | Some(Value::Null) => true,
                    Some(Value::Array(a)) => a.is_empty(),
                    _ => false,
                };
                match cur.iter().position(same) {
                    Some(i) if remove => {
                        cur.remove(i);
                    }
                    Some(i) => cur[i] = n,
                    None if remove => {}
                    None => cur.push(n),
                }
            }
            let v = if cur.is_empty() {
                Value::Null
            } else {
                Value::Array(cur)
            };
            obj.insert("custom_fields_values".into(), v);
        }
        _ => {}
    }
}

/// The string values of a stored object's custom fields with a code.
pub fn cf_values(o: &Obj, code: &str) -> Vec<String> {
    o.get("custom_fields_values")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter(|cf| {
                    cf.get("field_code")
                        .and_then(Value::as_str)
                        .is_some_and(|c| c.eq_ignore_ascii_case(code))
                })
                .flat_map(|cf| {
                    cf.get("values")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|v| v.get("value").and_then(scalar_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Whether two phone numbers are the same (digits only; the last 10 digits
/// when both have at least 10, so `8 912...` matches `+7 912...`).
pub fn same_phone(a: &str, b: &str) -> bool {
    let (a, b) = (digits(a), digits(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a.len() >= 10 && b.len() >= 10 {
        a[a.len() - 10..] == b[b.len() - 10..]
    } else {
        a == b
    }
}

/// Name (case-insensitive substring), exact id, or any custom field value
/// (substring; phones compared by digits).
fn search_with_fields(o: &Obj, q: &str, names: &[&str]) -> bool {
    let ql = q.to_lowercase();
    if names
        .iter()
        .any(|n| str_of(o, n).is_some_and(|v| v.to_lowercase().contains(&ql)))
        || o.get("id").map(Value::to_string).as_deref() == Some(q)
    {
        return true;
    }
    let qd = digits(q);
    let values: Vec<String> = o
        .get("custom_fields_values")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .flat_map(|cf| {
                    cf.get("values")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|v| v.get("value").and_then(scalar_string))
                .collect()
        })
        .unwrap_or_default();
    values.iter().any(|v| {
        v.to_lowercase().contains(&ql)
            || (qd.len() >= 5 && (digits(v).contains(&qd) || same_phone(v, &qd)))
    })
}

// ---------------------------------------------------------------- links

/// Storage order of entity types in a link: a link is kept once, from the
/// lower rank to the higher one.
fn rank(t: &str) -> u8 {
    match t {
        "leads" => 0,
        "customers" => 1,
        "contacts" => 2,
        "companies" => 3,
        _ => 4,
    }
}

/// What an entity type may be linked to.
pub fn linkable(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("leads", "contacts" | "companies" | "catalog_elements")
            | (
                "contacts",
                "leads" | "companies" | "customers" | "catalog_elements"
            )
            | (
                "companies",
                "leads" | "contacts" | "customers" | "catalog_elements"
            )
            | ("customers", "contacts" | "companies" | "catalog_elements")
    )
}

/// Entities of `to_type` linked to (`ty`, `id`), with the link's metadata.
pub fn linked(st: &State, ty: &str, id: u64, to_type: &str) -> Vec<(u64, Value)> {
    st.links
        .iter()
        .filter_map(|l| {
            if l.from_type == ty && l.from_id == id && l.to_type == to_type {
                Some((l.to_id, l.metadata.clone()))
            } else if l.to_type == ty && l.to_id == id && l.from_type == to_type {
                Some((l.from_id, l.metadata.clone()))
            } else {
                None
            }
        })
        .collect()
}

fn canonical(a: (&str, u64), b: (&str, u64)) -> ((String, u64), (String, u64)) {
    if rank(a.0) <= rank(b.0) {
        ((a.0.to_string(), a.1), (b.0.to_string(), b.1))
    } else {
        ((b.0.to_string(), b.1), (a.0.to_string(), a.1))
    }
}

pub fn remove_link(st: &mut State, a: (&str, u64), b: (&str, u64)) -> bool {
    let ((ft, fi), (tt, ti)) = canonical(a, b);
    let before = st.links.len();
    st.links
        .retain(|l| !(l.from_type == ft && l.from_id == fi && l.to_type == tt && l.to_id == ti));
    before != st.links.len()
}

/// Link two entities; returns the stored metadata. A lead, contact or
/// customer has at most one company (a new one replaces it); the first
/// contact of a lead or customer is its main contact.
pub fn add_link(st: &mut State, a: (&str, u64), b: (&str, u64), metadata: &Value) -> Value {
    let ((ft, fi), (tt, ti)) = canonical(a, b);
    if tt == "companies" && matches!(ft.as_str(), "leads" | "contacts" | "customers") {
        st.links.retain(|l| {
            !(l.from_type == ft && l.from_id == fi && l.to_type == "companies" && l.to_id != ti)
        });
    }
    let mut meta = metadata.clone();
    if tt == "contacts" && matches!(ft.as_str(), "leads" | "customers") {
        let others: Vec<&mut LinkRec> = st
            .links
            .iter_mut()
            .filter(|l| {
                l.from_type == ft && l.from_id == fi && l.to_type == "contacts" && l.to_id != ti
            })
            .collect();
        let want_main = metadata.get("main_contact").and_then(Value::as_bool);
        let has_main = others
            .iter()
            .any(|l| l.metadata.get("main_contact") == Some(&json!(true)));
        let main = match want_main {
            Some(true) => {
                for l in others {
                    l.metadata = json!({"main_contact": false});
                }
                true
            }
            Some(false) => false,
            None => !has_main,
        };
        meta = json!({"main_contact": main});
    } else if tt == "catalog_elements" {
        let q = metadata
            .get("quantity")
            .filter(|q| q.is_number())
            .cloned()
            .unwrap_or(json!(1));
        meta = json!({"quantity": q, "catalog_id": metadata.get("catalog_id").cloned().unwrap_or(Value::Null)});
        if let Some(p) = metadata.get("price_id") {
            meta["price_id"] = p.clone();
        }
    } else if meta.as_object().is_some_and(Map::is_empty) {
        meta = Value::Null;
    }
    match st
        .links
        .iter_mut()
        .find(|l| l.from_type == ft && l.from_id == fi && l.to_type == tt && l.to_id == ti)
    {
        Some(l) => l.metadata = meta.clone(),
        None => st.links.push(LinkRec {
            from_type: ft,
            from_id: fi,
            to_type: tt,
            to_id: ti,
            metadata: meta.clone(),
        }),
    }
    meta
}

/// Every link of an entity goes when the entity goes.
pub fn drop_links(st: &mut State, ty: &str, id: u64) {
    st.links.retain(|l| {
        !((l.from_type == ty && l.from_id == id) || (l.to_type == ty && l.to_id == id))
    });
}

/// `_embedded.{to_type}` of an object from its links.
fn embed_links(o: &mut Obj, rx: &Rx, ty: &str, to_type: &str, main: bool) {
    let Some(id) = o.get("id").and_then(Value::as_u64) else {
        return;
    };
    let list: Vec<Value> = linked(rx.st, ty, id, to_type)
        .into_iter()
        .map(|(tid, meta)| {
            let mut e = Map::new();
            e.insert("id".into(), json!(tid));
            if main {
                e.insert(
                    "is_main".into(),
                    json!(meta.get("main_contact") == Some(&json!(true))),
                );
            }
            if to_type == "catalog_elements" {
                e.insert("metadata".into(), meta.clone());
            }
            e.insert("_links".into(), rx.href(&format!("{to_type}/{tid}")));
            Value::Object(e)
        })
        .collect();
    if !o.get("_embedded").is_some_and(Value::is_object) {
        o.insert("_embedded".into(), json!({}));
    }
    if let Some(Value::Object(e)) = o.get_mut("_embedded") {
        e.insert(to_type.into(), Value::Array(list));
    }
}

/// `_embedded.{key}: [{"id"}, ...]` of a create/patch item: each an existing entity.
fn check_refs(item: &Obj, key: &str, target: &str, st: &State, errs: &mut Vec<FieldError>) {
    let Some(list) = item.get("_embedded").and_then(|e| e.get(key)) else {
        return;
    };
    let path = format!("_embedded.{key}");
    let Some(list) = list.as_array() else {
        if !list.is_null() {
            errs.push(FieldError::array(path));
        }
        return;
    };
    for (i, r) in list.iter().enumerate() {
        match r.get("id").and_then(Value::as_u64) {
            None => errs.push(FieldError::blank(format!("{path}.{i}.id"))),
            Some(id) if !exists(st, target, id) => {
                errs.push(FieldError::missing(format!("{path}.{i}.id")))
            }
            _ => {}
        }
    }
}

fn apply_refs(obj: &Obj, item: &Obj, st: &mut State, ty: &str, key: &str) {
    let Some(id) = obj.get("id").and_then(Value::as_u64) else {
        return;
    };
    if let Some(Value::Array(list)) = item.get("_embedded").and_then(|e| e.get(key)) {
        for r in list {
            if let Some(tid) = r.get("id").and_then(Value::as_u64) {
                let meta = match r.get("is_main") {
                    Some(Value::Bool(b)) => json!({"main_contact": b}),
                    _ => Value::Null,
                };
                add_link(st, (ty, id), (key, tid), &meta);
            }
        }
    }
}

fn check_embedded_obj(item: &Obj, errs: &mut Vec<FieldError>) -> bool {
    match item.get("_embedded") {
        None | Some(Value::Null) | Some(Value::Object(_)) => true,
        Some(_) => {
            errs.push(FieldError::object("_embedded"));
            false
        }
    }
}

fn check_embedded_tags(item: &Obj, errs: &mut Vec<FieldError>) {
    if let Some(Value::Object(e)) = item.get("_embedded") {
        match e.get("tags") {
            None | Some(Value::Null) => {}
            Some(Value::Array(tags)) => validate_tags(tags, "_embedded.tags", errs),
            Some(_) => errs.push(FieldError::array("_embedded.tags")),
        }
    }
}

// ---------------------------------------------------------------- pipelines/statuses helpers

pub fn main_pipeline(st: &State) -> Option<u64> {
    let c = st.collections.get("pipelines")?;
    c.items
        .values()
        .find(|p| p.get("is_main") == Some(&json!(true)))
        .or_else(|| c.items.values().next())
        .and_then(|p| p.get("id").and_then(Value::as_u64))
}

fn statuses_of(st: &State, pipeline: u64) -> Vec<&Obj> {
    let mut v: Vec<&Obj> = st
        .collections
        .get("statuses")
        .map(|c| {
            c.items
                .values()
                .filter(|s| s.get("pipeline_id").and_then(Value::as_u64) == Some(pipeline))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|s| i64_of(s, "sort").unwrap_or(0));
    v
}

pub fn status_exists(st: &State, pipeline: u64, status: i64) -> bool {
    statuses_of(st, pipeline)
        .iter()
        .any(|s| i64_of(s, "id") == Some(status))
}

/// The pipeline of a status that is not 142/143.
fn pipeline_of(st: &State, status: i64) -> Option<u64> {
    if status == WON || status == LOST {
        return None;
    }
    st.collections
        .get("statuses")?
        .items
        .values()
        .find(|s| i64_of(s, "id") == Some(status))
        .and_then(|s| s.get("pipeline_id").and_then(Value::as_u64))
}

/// The first ordinary status of a pipeline (not unsorted, not 142/143).
pub fn first_status(st: &State, pipeline: u64) -> Option<i64> {
    statuses_of(st, pipeline)
        .into_iter()
        .find(|s| {
            i64_of(s, "type") == Some(0) && !matches!(i64_of(s, "id"), Some(WON) | Some(LOST))
        })
        .and_then(|s| i64_of(s, "id"))
}

/// The unsorted status of a pipeline (type 1), if it has one.
pub fn unsorted_status(st: &State, pipeline: u64) -> Option<i64> {
    statuses_of(st, pipeline)
        .into_iter()
        .find(|s| i64_of(s, "type") == Some(1))
        .and_then(|s| i64_of(s, "id"))
}

/// 142 and 143 of a pipeline, stored under their own keys.
fn add_system_statuses(st: &mut State, pipeline: u64) {
    let col = collection(&mut st.collections, &STATUSES);
    for (id, name, sort, color) in [
        (WON, "Успешно реализовано", 10000, "#CCFF66"),
        (LOST, "Закрыто и не реализовано", 11000, "#D5D8DB"),
    ] {
        let key = SYSTEM_KEY_BASE + pipeline * 1000 + id as u64;
        col.items.insert(
            key,
            obj(json!({
                "id": id, "name": name, "sort": sort, "is_editable": false,
                "pipeline_id": pipeline, "color": color, "type": 0,
                "account_id": ACCOUNT_ID, "_links": null,
            })),
        );
    }
}

// ---------------------------------------------------------------- common bits

pub(crate) fn no_search(_: &Obj, _: &str) -> bool {
    false
}

pub(crate) fn no_decorate(_: &mut Obj, _: &Rx) {}

pub(crate) fn delete_ok(_: &mut State, _: &Obj) -> Result<(), Response> {
    Ok(())
}

pub(crate) fn no_validate(_: &Obj, _: &Vx) -> Vec<FieldError> {
    Vec::new()
}

pub(crate) fn no_apply(_: &mut Obj, _: &Obj, _: &mut Cx) {}

pub(crate) fn bare_template(id: u64, _now: i64) -> Obj {
    obj(json!({"id": id}))
}

pub(crate) fn name_search(o: &Obj, q: &str) -> bool {
    let ql = q.to_lowercase();
    str_of(o, "name").is_some_and(|n| n.to_lowercase().contains(&ql))
        || o.get("id").map(Value::to_string).as_deref() == Some(q)
}

const AUDIT: &[(&str, K)] = &[
    ("created_by", K::Int),
    ("updated_by", K::Int),
    ("created_at", K::Int),
    ("updated_at", K::Int),
];

// ---------------------------------------------------------------- leads

pub const LEADS: EntityDef = EntityDef {
    name: "leads",
    first_id: 1_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "name",
        "price",
        "status_id",
        "pipeline_id",
        "responsible_user_id",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "closed_at",
        "closest_task_at",
        "loss_reason_id",
    ],
    filter_alias: &[("statuses", "status_id")],
    id_field: "id",
    template: lead_template,
    validate: lead_validate,
    apply: lead_apply,
    search: lead_search,
    decorate: lead_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: Some("lead"),
};

fn lead_template(id: u64, now: i64) -> Obj {
    obj(json!({
        "id": id,
        "name": format!("Сделка #{id}"),
        "price": 0,
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "status_id": DEFAULT_STATUS_ID,
        "pipeline_id": DEFAULT_PIPELINE_ID,
        "loss_reason_id": null,
        "created_by": 0,
        "updated_by": 0,
        "created_at": now,
        "updated_at": now,
        "closed_at": null,
        "closest_task_at": null,
        "is_deleted": false,
        "custom_fields_values": null,
        "score": null,
        "account_id": ACCOUNT_ID,
        "labor_cost": null,
        "_links": null,
        "_embedded": {"tags": [], "companies": []},
    }))
}

const LEAD_INT_FIELDS: &[&str] = &[
    "price",
    "status_id",
    "pipeline_id",
    "responsible_user_id",
    "loss_reason_id",
    "created_at",
    "updated_at",
    "closed_at",
    "created_by",
    "updated_by",
];

pub fn lead_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match item.get("name") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => errs.push(FieldError::string("name")),
    }
    for f in LEAD_INT_FIELDS {
        match item.get(*f) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_i64().is_some() => {}
            Some(_) => errs.push(FieldError::int(*f)),
        }
    }
    check_cfv(item, vx.st, "leads", &mut errs);
    if check_embedded_obj(item, &mut errs) {
        check_embedded_tags(item, &mut errs);
        check_refs(item, "contacts", "contacts", vx.st, &mut errs);
        check_refs(item, "companies", "companies", vx.st, &mut errs);
    }
    check_tag_fields(item, &mut errs);
    if errs.is_empty() {
        check_lead_status(item, vx, &mut errs);
    }
    errs
}

/// The pipeline and status a lead item asks for must exist together.
fn check_lead_status(item: &Obj, vx: &Vx, errs: &mut Vec<FieldError>) {
    let s = i64_of(item, "status_id");
    let p = item.get("pipeline_id").and_then(Value::as_u64);
    if s.is_none() && p.is_none() {
        return;
    }
    let st = vx.st;
    let current = vx
        .existing
        .and_then(|e| e.get("pipeline_id"))
        .and_then(Value::as_u64);
    let target = p.or_else(|| {
        let s = s?;
        match current {
            Some(c) if status_exists(st, c, s) => Some(c),
            _ => pipeline_of(st, s).or(current).or_else(|| main_pipeline(st)),
        }
    });
    let Some(target) = target else {
        errs.push(FieldError::missing("status_id"));
        return;
    };
    if !exists(st, "pipelines", target) {
        errs.push(FieldError::new(
            "NotFound",
            "status_id",
            format!("Pipeline {target} not found"),
        ));
        return;
    }
    if let Some(s) = s {
        if !status_exists(st, target, s) {
            errs.push(FieldError::new(
                "NotFound",
                "status_id",
                format!("Status {s} not found in pipeline {target}"),
            ));
        }
    }
}

fn lead_apply(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    let old = (
        obj.get("status_id").cloned(),
        obj.get("pipeline_id").cloned(),
    );
    if let Some(Value::String(s)) = item.get("name") {
        obj.insert("name".into(), Value::String(s.clone()));
    }
    for f in LEAD_INT_FIELDS {
        match item.get(*f) {
            Some(v @ Value::Number(_)) => {
                obj.insert((*f).into(), v.clone());
            }
            Some(Value::Null) if *f == "price" => {
                obj.insert("price".into(), json!(0));
            }
            Some(Value::Null) if matches!(*f, "loss_reason_id" | "closed_at") => {
                obj.insert((*f).into(), Value::Null);
            }
            _ => {}
        }
    }
    // Pipeline and status go together.
    let s = i64_of(item, "status_id");
    let p = item.get("pipeline_id").and_then(Value::as_u64);
    match (s, p) {
        (None, None) if cx.creating => {
            if let Some(m) = main_pipeline(cx.st) {
                obj.insert("pipeline_id".into(), json!(m));
                if let Some(f) = first_status(cx.st, m) {
                    obj.insert("status_id".into(), json!(f));
                }
            }
        }
        (None, Some(p)) if cx.creating || old.1 != Some(json!(p)) => {
            if let Some(f) = first_status(cx.st, p) {
                obj.insert("status_id".into(), json!(f));
            }
        }
        (Some(s), None) => {
            let cur = obj.get("pipeline_id").and_then(Value::as_u64).unwrap_or(0);
            if !status_exists(cx.st, cur, s) {
                if let Some(p) = pipeline_of(cx.st, s).or_else(|| main_pipeline(cx.st)) {
                    obj.insert("pipeline_id".into(), json!(p));
                }
            }
        }
        _ => {}
    }
    let status = obj.get("status_id").and_then(Value::as_i64);
    if matches!(status, Some(WON | LOST)) && obj.get("closed_at").is_some_and(Value::is_null) {
        obj.insert("closed_at".into(), json!(cx.now));
    }
    apply_cfv(obj, item, cx.st, "leads", cx.creating);
    apply_tags(obj, item, cx.st, "leads");
    apply_refs(obj, item, cx.st, "leads", "contacts");
    apply_refs(obj, item, cx.st, "leads", "companies");
    let new = (
        obj.get("status_id").cloned(),
        obj.get("pipeline_id").cloned(),
    );
    if !cx.creating && new != old {
        let id = obj.get("id").and_then(Value::as_u64).unwrap_or(0);
        let by = cx.user.unwrap_or(0);
        push_event(
            cx.st,
            cx.now,
            "lead_status_changed",
            "leads",
            id,
            by,
            json!([{"lead_status": {"id": old.0, "pipeline_id": old.1}}]),
            json!([{"lead_status": {"id": new.0, "pipeline_id": new.1}}]),
        );
    }
}

fn lead_search(o: &Obj, q: &str) -> bool {
    search_with_fields(o, q, &["name"])
}

fn lead_decorate(o: &mut Obj, rx: &Rx) {
    embed_links(o, rx, "leads", "companies", false);
    if rx.with("contacts") {
        embed_links(o, rx, "leads", "contacts", true);
    }
    if rx.with("catalog_elements") {
        embed_links(o, rx, "leads", "catalog_elements", false);
    }
}

// ---------------------------------------------------------------- contacts

pub const CONTACTS: EntityDef = EntityDef {
    name: "contacts",
    first_id: 2_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "name",
        "first_name",
        "last_name",
        "responsible_user_id",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "closest_task_at",
    ],
    filter_alias: &[],
    id_field: "id",
    template: contact_template,
    validate: contact_validate,
    apply: contact_apply,
    search: contact_search,
    decorate: contact_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: Some("contact"),
};

const CONTACT_SPEC: Spec = &[
    ("name", K::Str),
    ("first_name", K::Str),
    ("last_name", K::Str),
    ("responsible_user_id", K::Int),
    ("group_id", K::Int),
    ("closest_task_at", K::Int),
];

fn contact_template(id: u64, now: i64) -> Obj {
    obj(json!({
        "id": id,
        "name": "",
        "first_name": "",
        "last_name": "",
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "created_by": 0,
        "updated_by": 0,
        "created_at": now,
        "updated_at": now,
        "closest_task_at": null,
        "is_deleted": false,
        "is_unsorted": false,
        "custom_fields_values": null,
        "account_id": ACCOUNT_ID,
        "_links": null,
        "_embedded": {"tags": [], "companies": []},
    }))
}

pub fn contact_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(item, CONTACT_SPEC, &mut errs);
    check_fields(item, AUDIT, &mut errs);
    check_cfv(item, vx.st, "contacts", &mut errs);
    if check_embedded_obj(item, &mut errs) {
        check_embedded_tags(item, &mut errs);
        check_refs(item, "companies", "companies", vx.st, &mut errs);
    }
    check_tag_fields(item, &mut errs);
    errs
}

fn contact_apply(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    copy_fields(obj, item, CONTACT_SPEC);
    copy_fields(obj, item, AUDIT);
    if !item.get("name").is_some_and(Value::is_string)
        && (item.contains_key("first_name") || item.contains_key("last_name"))
    {
        let full = format!(
            "{} {}",
            str_of(obj, "first_name").unwrap_or(""),
            str_of(obj, "last_name").unwrap_or("")
        );
        obj.insert("name".into(), json!(full.trim()));
    }
    apply_cfv(obj, item, cx.st, "contacts", cx.creating);
    apply_tags(obj, item, cx.st, "contacts");
    apply_refs(obj, item, cx.st, "contacts", "companies");
}

pub fn contact_search(o: &Obj, q: &str) -> bool {
    search_with_fields(o, q, &["name", "first_name", "last_name"])
}

fn contact_decorate(o: &mut Obj, rx: &Rx) {
    embed_links(o, rx, "contacts", "companies", false);
    for w in ["leads", "customers", "catalog_elements"] {
        if rx.with(w) {
            embed_links(o, rx, "contacts", w, false);
        }
    }
}

// ---------------------------------------------------------------- companies

pub const COMPANIES: EntityDef = EntityDef {
    name: "companies",
    first_id: 3_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "name",
        "responsible_user_id",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "closest_task_at",
    ],
    filter_alias: &[],
    id_field: "id",
    template: company_template,
    validate: company_validate,
    apply: company_apply,
    search: company_search,
    decorate: company_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: Some("company"),
};

const COMPANY_SPEC: Spec = &[
    ("name", K::Str),
    ("responsible_user_id", K::Int),
    ("group_id", K::Int),
    ("closest_task_at", K::Int),
];

fn company_template(id: u64, now: i64) -> Obj {
    obj(json!({
        "id": id,
        "name": "",
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "created_by": 0,
        "updated_by": 0,
        "created_at": now,
        "updated_at": now,
        "closest_task_at": null,
        "is_deleted": false,
        "custom_fields_values": null,
        "account_id": ACCOUNT_ID,
        "_links": null,
        "_embedded": {"tags": []},
    }))
}

pub fn company_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(item, COMPANY_SPEC, &mut errs);
    check_fields(item, AUDIT, &mut errs);
    check_cfv(item, vx.st, "companies", &mut errs);
    if check_embedded_obj(item, &mut errs) {
        check_embedded_tags(item, &mut errs);
    }
    check_tag_fields(item, &mut errs);
    errs
}

fn company_apply(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    copy_fields(obj, item, COMPANY_SPEC);
    copy_fields(obj, item, AUDIT);
    apply_cfv(obj, item, cx.st, "companies", cx.creating);
    apply_tags(obj, item, cx.st, "companies");
}

fn company_search(o: &Obj, q: &str) -> bool {
    search_with_fields(o, q, &["name"])
}

fn company_decorate(o: &mut Obj, rx: &Rx) {
    for w in ["contacts", "leads", "customers", "catalog_elements"] {
        if rx.with(w) {
            embed_links(o, rx, "companies", w, false);
        }
    }
}

// ---------------------------------------------------------------- customers

pub const CUSTOMERS: EntityDef = EntityDef {
    name: "customers",
    first_id: 4_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "name",
        "next_date",
        "next_price",
        "status_id",
        "responsible_user_id",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "closest_task_at",
    ],
    filter_alias: &[],
    id_field: "id",
    template: customer_template,
    validate: customer_validate,
    apply: customer_apply,
    search: company_search,
    decorate: customer_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: Some("customer"),
};

const CUSTOMER_SPEC: Spec = &[
    ("name", K::Str),
    ("next_price", K::Int),
    ("next_date", K::Int),
    ("responsible_user_id", K::Int),
    ("status_id", K::Int),
    ("periodicity", K::Int),
    ("closest_task_at", K::Int),
];

fn customer_template(id: u64, now: i64) -> Obj {
    obj(json!({
        "id": id,
        "name": "",
        "next_price": 0,
        "next_date": null,
        "responsible_user_id": USER_ID,
        "status_id": null,
        "periodicity": 0,
        "created_by": 0,
        "updated_by": 0,
        "created_at": now,
        "updated_at": now,
        "closest_task_at": null,
        "is_deleted": false,
        "custom_fields_values": null,
        "ltv": 0,
        "purchases_count": 0,
        "average_check": 0,
        "account_id": ACCOUNT_ID,
        "_links": null,
        "_embedded": {"segments": [], "tags": []},
    }))
}

fn customer_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(item, CUSTOMER_SPEC, &mut errs);
    check_fields(item, AUDIT, &mut errs);
    check_cfv(item, vx.st, "customers", &mut errs);
    if check_embedded_obj(item, &mut errs) {
        check_embedded_tags(item, &mut errs);
        check_refs(item, "contacts", "contacts", vx.st, &mut errs);
        check_refs(item, "companies", "companies", vx.st, &mut errs);
    }
    check_tag_fields(item, &mut errs);
    errs
}

fn customer_apply(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    copy_fields(obj, item, CUSTOMER_SPEC);
    copy_fields(obj, item, AUDIT);
    apply_cfv(obj, item, cx.st, "customers", cx.creating);
    apply_tags(obj, item, cx.st, "customers");
    apply_refs(obj, item, cx.st, "customers", "contacts");
    apply_refs(obj, item, cx.st, "customers", "companies");
}

fn customer_decorate(o: &mut Obj, rx: &Rx) {
    for w in ["contacts", "companies", "catalog_elements"] {
        if rx.with(w) {
            embed_links(o, rx, "customers", w, w == "contacts");
        }
    }
}

// ---------------------------------------------------------------- tasks

pub const TASKS: EntityDef = EntityDef {
    name: "tasks",
    first_id: 5_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "responsible_user_id",
        "is_completed",
        "task_type_id",
        "entity_type",
        "entity_id",
        "created_by",
        "created_at",
        "updated_at",
        "complete_till",
    ],
    filter_alias: &[("task_type", "task_type_id")],
    id_field: "id",
    template: task_template,
    validate: task_validate,
    apply: task_apply,
    search: |o, q| {
        let ql = q.to_lowercase();
        str_of(o, "text").is_some_and(|t| t.to_lowercase().contains(&ql))
            || o.get("id").map(Value::to_string).as_deref() == Some(q)
    },
    decorate: no_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

const TASK_SPEC: Spec = &[
    ("responsible_user_id", K::Int),
    ("group_id", K::Int),
    ("entity_id", K::Int),
    ("entity_type", K::Str),
    ("duration", K::Int),
    ("is_completed", K::Bool),
    ("task_type_id", K::Int),
    ("text", K::Str),
    ("complete_till", K::Int),
];

fn task_template(id: u64, now: i64) -> Obj {
    obj(json!({
        "id": id,
        "created_by": 0,
        "updated_by": 0,
        "created_at": now,
        "updated_at": now,
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "entity_id": null,
        "entity_type": null,
        "duration": 0,
        "is_completed": false,
        "task_type_id": 1,
        "text": "",
        "result": [],
        "complete_till": 0,
        "account_id": ACCOUNT_ID,
        "_links": null,
    }))
}

fn task_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(item, TASK_SPEC, &mut errs);
    check_fields(item, AUDIT, &mut errs);
    required(item, "text", vx, &mut errs);
    if vx.creating() && item.get("complete_till").is_none_or(Value::is_null) {
        errs.push(FieldError::blank("complete_till"));
    }
    if let Some(t) = str_of(item, "entity_type") {
        if !ENTITY_TYPES.contains(&t) {
            errs.push(FieldError::choice("entity_type"));
        } else if vx.field(item, "entity_id").is_none_or(Value::is_null) {
            errs.push(FieldError::blank("entity_id"));
        }
    }
    if let Some(id) = item.get("entity_id").and_then(Value::as_u64) {
        match vx.field(item, "entity_type").and_then(Value::as_str) {
            None => errs.push(FieldError::blank("entity_type")),
            Some(t) if ENTITY_TYPES.contains(&t) && !exists(vx.st, t, id) => {
                errs.push(FieldError::missing("entity_id"))
            }
            _ => {}
        }
    }
    match item.get("result") {
        None | Some(Value::Null) => {}
        Some(Value::Object(r)) => match r.get("text") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => errs.push(FieldError::string("result.text")),
        },
        Some(_) => errs.push(FieldError::object("result")),
    }
    errs
}

fn task_apply(obj: &mut Obj, item: &Obj, _cx: &mut Cx) {
    copy_fields(obj, item, TASK_SPEC);
    copy_fields(obj, item, AUDIT);
    if let Some(Value::Object(r)) = item.get("result") {
        obj.insert(
            "result".into(),
            json!({"text": r.get("text").cloned().unwrap_or(json!(""))}),
        );
    }
}

// ---------------------------------------------------------------- notes

pub const NOTE_TYPES: &[&str] = &[
    "common",
    "call_in",
    "call_out",
    "service_message",
    "extended_service_message",
    "message_cashier",
    "geolocation",
    "sms_in",
    "sms_out",
    "attachment",
];

pub const NOTES: EntityDef = EntityDef {
    name: "notes",
    first_id: 6_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "entity_id",
        "note_type",
        "created_by",
        "created_at",
        "updated_at",
        "responsible_user_id",
    ],
    filter_alias: &[],
    id_field: "id",
    template: note_template,
    validate: note_validate,
    apply: note_apply,
    search: no_search,
    decorate: no_decorate,
    self_path: Some(|o| {
        format!(
            "{}/notes/{}",
            str_of(o, "__entity_type").unwrap_or("leads"),
            o.get("id").map(Value::to_string).unwrap_or_default()
        )
    }),
    on_delete: delete_ok,
    event: None,
};

const NOTE_SPEC: Spec = &[
    ("entity_id", K::Int),
    ("responsible_user_id", K::Int),
    ("group_id", K::Int),
    ("note_type", K::Str),
    ("params", K::Obj),
    ("is_needs_to_trigger_digital_pipeline", K::Bool),
];

fn note_template(id: u64, now: i64) -> Obj {
    obj(json!({
        "id": id,
        "entity_id": 0,
        "created_by": 0,
        "updated_by": 0,
        "created_at": now,
        "updated_at": now,
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "note_type": "common",
        "params": {},
        "is_pinned": false,
        "account_id": ACCOUNT_ID,
        "_links": null,
    }))
}

/// The params a note type needs.
fn note_params_required(t: &str) -> &'static [&'static str] {
    match t {
        "common" | "sms_in" | "sms_out" | "message_cashier" => &["text"],
        "call_in" | "call_out" => &["uniq", "duration", "source", "phone"],
        "service_message" | "extended_service_message" => &["service", "text"],
        "geolocation" => &["text", "address", "longitude", "latitude"],
        _ => &[],
    }
}

fn note_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(item, NOTE_SPEC, &mut errs);
    check_fields(item, AUDIT, &mut errs);
    let et = vx
        .fixed("__entity_type")
        .and_then(Value::as_str)
        .unwrap_or("leads");
    if vx.creating() {
        match vx.fixed("entity_id").or_else(|| item.get("entity_id")) {
            None | Some(Value::Null) => errs.push(FieldError::blank("entity_id")),
            Some(v) => {
                if let Some(id) = v.as_u64() {
                    if !exists(vx.st, et, id) {
                        errs.push(FieldError::missing("entity_id"));
                    }
                }
            }
        }
    }
    required(item, "note_type", vx, &mut errs);
    let t = vx.field(item, "note_type").and_then(Value::as_str);
    if let Some(t) = t {
        if !NOTE_TYPES.contains(&t) {
            errs.push(FieldError::choice("note_type"));
        } else if vx.creating() || item.contains_key("params") {
            let params = item.get("params").and_then(Value::as_object);
            for p in note_params_required(t) {
                let ok = params.and_then(|ps| ps.get(*p)).is_some_and(|v| match v {
                    Value::String(s) => !s.is_empty(),
                    Value::Null => false,
                    _ => true,
                });
                if !ok {
                    errs.push(FieldError::blank(format!("params.{p}")));
                }
            }
        }
    }
    errs
}

fn note_apply(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    let entity_id = obj.get("entity_id").cloned();
    copy_fields(obj, item, NOTE_SPEC);
    copy_fields(obj, item, AUDIT);
    if !cx.creating {
        if let Some(e) = entity_id {
            obj.insert("entity_id".into(), e);
        }
    }
}

// ---------------------------------------------------------------- tags (entity)

pub const TAGS: EntityDef = EntityDef {
    name: "tags",
    first_id: 7_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "name"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| obj(json!({"id": id, "name": "", "color": null})),
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, &[("name", K::Str), ("color", K::Str)], &mut errs);
        required(item, "name", vx, &mut errs);
        errs
    },
    apply: |o, item, _| copy_fields(o, item, &[("name", K::Str), ("color", K::Str)]),
    search: name_search,
    decorate: no_decorate,
    self_path: Some(|o| {
        format!(
            "{}/tags/{}",
            str_of(o, "__entity_type").unwrap_or("leads"),
            o.get("id").map(Value::to_string).unwrap_or_default()
        )
    }),
    on_delete: delete_ok,
    event: None,
};

// ---------------------------------------------------------------- pipelines

pub const PIPELINES: EntityDef = EntityDef {
    name: "pipelines",
    first_id: 8_000_001,
    max_batch: 50,
    filter_fields: &["id", "name", "sort", "is_main"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        obj(json!({
            "id": id, "name": "", "sort": 0, "is_main": false, "is_unsorted_on": true,
            "is_archive": false, "account_id": ACCOUNT_ID, "_links": null,
            "_embedded": {"statuses": []},
        }))
    },
    validate: pipeline_validate,
    apply: pipeline_apply,
    search: name_search,
    decorate: pipeline_decorate,
    self_path: Some(|o| {
        format!(
            "leads/pipelines/{}",
            o.get("id").map(Value::to_string).unwrap_or_default()
        )
    }),
    on_delete: pipeline_delete,
    event: None,
};

const PIPELINE_SPEC: Spec = &[
    ("name", K::Str),
    ("sort", K::Int),
    ("is_main", K::Bool),
    ("is_unsorted_on", K::Bool),
    ("is_archive", K::Bool),
];

const STATUS_SPEC: Spec = &[("name", K::Str), ("sort", K::Int), ("color", K::Str)];

fn pipeline_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(item, PIPELINE_SPEC, &mut errs);
    required(item, "name", vx, &mut errs);
    if check_embedded_obj(item, &mut errs) {
        match item.get("_embedded").and_then(|e| e.get("statuses")) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) if vx.creating() => {
                for (i, s) in list.iter().enumerate() {
                    let p = format!("_embedded.statuses.{i}");
                    let Some(o) = s.as_object() else {
                        errs.push(FieldError::object(p));
                        continue;
                    };
                    for (f, k) in STATUS_SPEC {
                        match o.get(*f) {
                            None | Some(Value::Null) => {}
                            Some(v) if fits(v, *k) => {}
                            Some(_) => errs.push(type_error(&format!("{p}.{f}"), *k)),
                        }
                    }
                    if str_of(o, "name").is_none_or(|n| n.trim().is_empty()) {
                        errs.push(FieldError::blank(format!("{p}.name")));
                    }
                }
            }
            Some(Value::Array(_)) => {}
            Some(_) => errs.push(FieldError::array("_embedded.statuses")),
        }
    }
    errs
}

fn pipeline_apply(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    copy_fields(obj, item, PIPELINE_SPEC);
    let id = obj.get("id").and_then(Value::as_u64).unwrap_or(0);
    if item.get("is_main") == Some(&json!(true)) {
        for (k, p) in collection(&mut cx.st.collections, &PIPELINES)
            .items
            .iter_mut()
        {
            if *k != id {
                p.insert("is_main".into(), json!(false));
            }
        }
    }
    if cx.creating {
        if let Some(Value::Array(list)) = item.get("_embedded").and_then(|e| e.get("statuses")) {
            for (i, s) in list.iter().enumerate() {
                let Some(o) = s.as_object() else { continue };
                let mut o = o.clone();
                o.entry("sort").or_insert(json!((i as i64 + 1) * 10));
                insert(cx, &STATUSES, &[("pipeline_id", json!(id))], &o);
            }
        }
        add_system_statuses(cx.st, id);
    }
}

fn pipeline_decorate(o: &mut Obj, rx: &Rx) {
    let Some(id) = o.get("id").and_then(Value::as_u64) else {
        return;
    };
    let list: Vec<Value> = statuses_of(rx.st, id)
        .into_iter()
        .map(|s| crate::api::render(&STATUSES, s, rx))
        .collect();
    o.insert("_embedded".into(), json!({"statuses": list}));
}

fn pipeline_delete(st: &mut State, o: &Obj) -> Result<(), Response> {
    if o.get("is_main") == Some(&json!(true)) {
        return Err(bad_request("The main pipeline cannot be deleted"));
    }
    let id = o.get("id").and_then(Value::as_u64);
    collection(&mut st.collections, &STATUSES)
        .items
        .retain(|_, s| s.get("pipeline_id").and_then(Value::as_u64) != id);
    Ok(())
}

pub const STATUSES: EntityDef = EntityDef {
    name: "statuses",
    first_id: 9_000_001,
    max_batch: 100,
    filter_fields: &["id", "name", "sort", "type"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        obj(json!({
            "id": id, "name": "", "sort": 0, "is_editable": true, "pipeline_id": 0,
            "color": "#99ccff", "type": 0, "account_id": ACCOUNT_ID, "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, STATUS_SPEC, &mut errs);
        required(item, "name", vx, &mut errs);
        errs
    },
    apply: |o, item, _| copy_fields(o, item, STATUS_SPEC),
    search: name_search,
    decorate: no_decorate,
    self_path: Some(|o| {
        format!(
            "leads/pipelines/{}/statuses/{}",
            o.get("pipeline_id")
                .map(Value::to_string)
                .unwrap_or_default(),
            o.get("id").map(Value::to_string).unwrap_or_default()
        )
    }),
    on_delete: |_, o| {
        let id = i64_of(o, "id");
        if matches!(id, Some(WON) | Some(LOST)) || i64_of(o, "type") == Some(1) {
            Err(bad_request("System statuses cannot be deleted"))
        } else {
            Ok(())
        }
    },
    event: None,
};

// ---------------------------------------------------------------- custom fields

pub const CF_TYPES: &[&str] = &[
    "text",
    "numeric",
    "checkbox",
    "select",
    "multiselect",
    "date",
    "url",
    "textarea",
    "radiobutton",
    "streetaddress",
    "smart_address",
    "birthday",
    "legal_entity",
    "date_time",
    "price",
    "category",
    "items",
    "tracking_data",
    "linked_entity",
    "chained_list",
    "monetary",
    "file",
    "payer",
    "supplier",
    "multitext",
];

pub const CUSTOM_FIELDS: EntityDef = EntityDef {
    name: "custom_fields",
    first_id: 10_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "code", "type", "name"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        obj(json!({
            "id": id, "name": "", "type": "text", "account_id": ACCOUNT_ID, "code": null,
            "sort": 500, "is_api_only": false, "enums": null, "group_id": null,
            "required_statuses": [], "is_deletable": true, "is_predefined": false,
            "entity_type": "leads", "remind": null, "triggers": [], "currency": null,
            "hidden_statuses": [], "chained_lists": null, "nested": null, "_links": null,
        }))
    },
    validate: cf_validate,
    apply: cf_apply,
    search: name_search,
    decorate: no_decorate,
    self_path: Some(|o| {
        format!(
            "{}/custom_fields/{}",
            str_of(o, "__scope").unwrap_or("leads"),
            o.get("id").map(Value::to_string).unwrap_or_default()
        )
    }),
    on_delete: |_, o| {
        if o.get("is_deletable") == Some(&json!(false)) {
            Err(bad_request("This field cannot be deleted"))
        } else {
            Ok(())
        }
    },
    event: None,
};

const CF_SPEC: Spec = &[
    ("name", K::Str),
    ("code", K::Str),
    ("sort", K::Int),
    ("is_api_only", K::Bool),
    ("group_id", K::Str),
    ("required_statuses", K::Arr),
    ("hidden_statuses", K::Arr),
    ("remind", K::Str),
    ("currency", K::Str),
    ("settings", K::Obj),
];

fn cf_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(item, CF_SPEC, &mut errs);
    check_fields(item, &[("type", K::Str), ("enums", K::Arr)], &mut errs);
    required(item, "name", vx, &mut errs);
    required(item, "type", vx, &mut errs);
    if let Some(t) = str_of(item, "type") {
        if !CF_TYPES.contains(&t) {
            errs.push(FieldError::choice("type"));
        }
    }
    if let Some(Value::Array(list)) = item.get("enums") {
        for (i, e) in list.iter().enumerate() {
            if e.get("value")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::blank(format!("enums.{i}.value")));
            }
        }
    }
    cf_validate_trees(item, vx, &mut errs);
    errs
}

fn cf_apply(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    copy_fields(obj, item, CF_SPEC);
    if cx.creating {
        if let Some(t) = str_of(item, "type") {
            obj.insert("type".into(), json!(t));
        }
    }
    if let Some(Value::Array(list)) = item.get("enums") {
        let old: Vec<Value> = obj
            .get("enums")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let keep = e
                .get("id")
                .and_then(Value::as_u64)
                .filter(|id| old.iter().any(|o| o["id"] == json!(id)));
            let id = keep.unwrap_or_else(|| {
                if cx.st.next_enum_id == 0 {
                    cx.st.next_enum_id = FIRST_ENUM_ID;
                }
                let id = cx.st.next_enum_id;
                cx.st.next_enum_id += 1;
                id
            });
            let code = e
                .get("code")
                .filter(|c| c.is_string())
                .or_else(|| {
                    old.iter()
                        .find(|o| o["id"] == json!(id))
                        .and_then(|o| o.get("code"))
                })
                .cloned()
                .unwrap_or(Value::Null);
            out.push(json!({
                "id": id,
                "value": e.get("value").cloned().unwrap_or(json!("")),
                "sort": e.get("sort").filter(|s| s.is_i64()).cloned().unwrap_or(json!((i as i64 + 1) * 10)),
                "code": code,
            }));
        }
        obj.insert("enums".into(), Value::Array(out));
    }
    cf_apply_nested(obj, item, cx);
    if let Some(Value::Array(list)) = item.get("chained_lists") {
        let out: Vec<Value> = list
            .iter()
            .map(|c| {
                json!({
                    "title": c.get("title").cloned().unwrap_or(Value::Null),
                    "catalog_id": c.get("catalog_id").cloned().unwrap_or(Value::Null),
                    "parent_catalog_id": c.get("parent_catalog_id").cloned().unwrap_or(json!(0)),
                })
            })
            .collect();
        obj.insert("chained_lists".into(), Value::Array(out));
    }
}

/// A `category` field's `nested` tree: each item gets an id; a child names
/// its parent by `parent_id`, or by the `request_id` of a new parent in the
/// same request (`parent_request_id`), as the official library sends them.
fn cf_apply_nested(obj: &mut Obj, item: &Obj, cx: &mut Cx) {
    let Some(Value::Array(list)) = item.get("nested") else {
        return;
    };
    let old: Vec<Value> = obj
        .get("nested")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut by_request: Vec<(String, u64)> = Vec::new();
    let mut out = Vec::new();
    for (i, n) in list.iter().enumerate() {
        let keep = n
            .get("id")
            .and_then(Value::as_u64)
            .filter(|id| old.iter().any(|o| o["id"] == json!(id)));
        let id = keep.unwrap_or_else(|| {
            if cx.st.next_enum_id == 0 {
                cx.st.next_enum_id = FIRST_ENUM_ID;
            }
            let id = cx.st.next_enum_id;
            cx.st.next_enum_id += 1;
            id
        });
        if let Some(r) = n.get("request_id").and_then(crate::api::scalar_string) {
            by_request.push((r, id));
        }
        let parent = match n
            .get("parent_request_id")
            .and_then(crate::api::scalar_string)
        {
            Some(r) => by_request
                .iter()
                .find(|(k, _)| *k == r)
                .map(|(_, id)| json!(id))
                .unwrap_or(Value::Null),
            None => n
                .get("parent_id")
                .filter(|p| p.is_u64())
                .cloned()
                .unwrap_or(Value::Null),
        };
        out.push(json!({
            "id": id,
            "parent_id": parent,
            "value": n.get("value").cloned().unwrap_or(json!("")),
            "sort": n.get("sort").filter(|s| s.is_i64()).cloned().unwrap_or(json!(i as i64)),
        }));
    }
    obj.insert("nested".into(), Value::Array(out));
}

/// `nested` only on a category field, `chained_lists` only on a chained
/// list, each item well formed and naming catalogs that exist.
fn cf_validate_trees(item: &Obj, vx: &Vx, errs: &mut Vec<FieldError>) {
    let kind = str_of(item, "type").or_else(|| vx.existing.and_then(|e| str_of(e, "type")));
    match item.get("nested") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if kind == Some("category") => {
            for (i, n) in list.iter().enumerate() {
                if n.get("value")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errs.push(FieldError::blank(format!("nested.{i}.value")));
                }
            }
        }
        Some(Value::Array(_)) => errs.push(FieldError::new(
            "NotSupportedChoice",
            "nested",
            "nested is only for fields of type category",
        )),
        Some(_) => errs.push(FieldError::array("nested")),
    }
    match item.get("chained_lists") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if kind == Some("chained_list") => {
            for (i, c) in list.iter().enumerate() {
                match c.get("catalog_id").and_then(Value::as_u64) {
                    Some(id) if exists(vx.st, "catalogs", id) => {}
                    Some(_) => {
                        errs.push(FieldError::missing(format!("chained_lists.{i}.catalog_id")))
                    }
                    None => errs.push(FieldError::int(format!("chained_lists.{i}.catalog_id"))),
                }
                match c.get("parent_catalog_id") {
                    None | Some(Value::Null) => {}
                    Some(p) => match p.as_u64() {
                        Some(0) => {}
                        Some(id) if exists(vx.st, "catalogs", id) => {}
                        Some(_) => errs.push(FieldError::missing(format!(
                            "chained_lists.{i}.parent_catalog_id"
                        ))),
                        None => errs.push(FieldError::int(format!(
                            "chained_lists.{i}.parent_catalog_id"
                        ))),
                    },
                }
            }
        }
        Some(Value::Array(_)) => errs.push(FieldError::new(
            "NotSupportedChoice",
            "chained_lists",
            "chained_lists is only for fields of type chained_list",
        )),
        Some(_) => errs.push(FieldError::array("chained_lists")),
    }
}

// ---------------------------------------------------------------- loss reasons

pub const LOSS_REASONS: EntityDef = EntityDef {
    name: "loss_reasons",
    first_id: 11_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "name", "sort"],
    filter_alias: &[],
    id_field: "id",
    template: |id, now| {
        obj(
            json!({"id": id, "name": "", "sort": 0, "created_at": now, "updated_at": now, "_links": null}),
        )
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, &[("name", K::Str), ("sort", K::Int)], &mut errs);
        required(item, "name", vx, &mut errs);
        errs
    },
    apply: |o, item, _| copy_fields(o, item, &[("name", K::Str), ("sort", K::Int)]),
    search: name_search,
    decorate: no_decorate,
    self_path: Some(|o| {
        format!(
            "leads/loss_reasons/{}",
            o.get("id").map(Value::to_string).unwrap_or_default()
        )
    }),
    on_delete: delete_ok,
    event: None,
};

// ---------------------------------------------------------------- users & roles

fn entity_rights() -> Value {
    json!({"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"})
}

pub fn default_rights(admin: bool) -> Value {
    json!({
        "leads": entity_rights(),
        "contacts": entity_rights(),
        "companies": entity_rights(),
        "tasks": {"edit": "A", "delete": "A"},
        "mail_access": true,
        "catalog_access": true,
        "files_access": true,
        "status_rights": [],
        "catalog_rights": null,
        "custom_fields_rights": null,
        "oper_day_reports_view_access": false,
        "oper_day_user_tracking": false,
        "is_admin": admin,
        "is_free": false,
        "is_active": true,
        "group_id": null,
        "role_id": null,
    })
}

pub const USERS: EntityDef = EntityDef {
    name: "users",
    first_id: 12_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "name", "email"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        obj(json!({
            "id": id, "name": "", "email": "", "lang": "ru",
            "rights": default_rights(false), "_links": null,
        }))
    },
    validate: user_validate,
    apply: user_apply,
    search: |o, q| {
        let ql = q.to_lowercase();
        name_search(o, q) || str_of(o, "email").is_some_and(|e| e.to_lowercase().contains(&ql))
    },
    decorate: user_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

fn user_validate(item: &Obj, vx: &Vx) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_fields(
        item,
        &[
            ("name", K::Str),
            ("email", K::Str),
            ("password", K::Str),
            ("lang", K::Str),
            ("rights", K::Obj),
        ],
        &mut errs,
    );
    required(item, "name", vx, &mut errs);
    required(item, "email", vx, &mut errs);
    if let Some(e) = str_of(item, "email").filter(|e| !e.is_empty()) {
        if !e.contains('@') {
            errs.push(FieldError::new(
                "InvalidValue",
                "email",
                "This value is not a valid email address.",
            ));
        } else if vx.st.collections.get("users").is_some_and(|c| {
            c.items.values().any(|u| {
                str_of(u, "email").is_some_and(|x| x.eq_ignore_ascii_case(e))
                    && vx.existing.is_none_or(|ex| ex.get("id") != u.get("id"))
            })
        }) {
            errs.push(FieldError::new(
                "NotUnique",
                "email",
                "A user with this email already exists.",
            ));
        }
    }
    if let Some(Value::Object(r)) = item.get("rights") {
        if let Some(role) = r.get("role_id").filter(|v| !v.is_null()) {
            match role.as_u64() {
                None => errs.push(FieldError::int("rights.role_id")),
                Some(id) if !exists(vx.st, "roles", id) => {
                    errs.push(FieldError::missing("rights.role_id"))
                }
                _ => {}
            }
        }
        if let Some(a) = r.get("is_admin").filter(|v| !v.is_null()) {
            if !a.is_boolean() {
                errs.push(FieldError::bool("rights.is_admin"));
            }
        }
    }
    errs
}

fn user_apply(obj: &mut Obj, item: &Obj, _cx: &mut Cx) {
    copy_fields(
        obj,
        item,
        &[("name", K::Str), ("email", K::Str), ("lang", K::Str)],
    );
    if let Some(Value::Object(r)) = item.get("rights") {
        if let Some(Value::Object(cur)) = obj.get_mut("rights") {
            for (k, v) in r {
                cur.insert(k.clone(), v.clone());
            }
        }
    }
}

fn user_decorate(o: &mut Obj, rx: &Rx) {
    let mut emb = Map::new();
    if rx.with("role") {
        let role = o
            .get("rights")
            .and_then(|r| r.get("role_id"))
            .and_then(Value::as_u64)
            .and_then(|id| get_obj(rx.st, &ROLES, id));
        let list: Vec<Value> = role
            .map(|r| json!({"id": r["id"], "name": r["name"], "_links": rx.href(&format!("roles/{}", r["id"]))}))
            .into_iter()
            .collect();
        emb.insert("roles".into(), Value::Array(list));
    }
    if rx.with("group") {
        let gid = o
            .get("rights")
            .and_then(|r| r.get("group_id"))
            .and_then(Value::as_i64);
        let list: Vec<Value> = gid
            .map(|g| json!({"id": g, "name": if g == 0 { "Отдел продаж".to_string() } else { format!("Группа {g}") }}))
            .into_iter()
            .collect();
        emb.insert("groups".into(), Value::Array(list));
    }
    if rx.with("uuid") {
        let id = o.get("id").and_then(Value::as_u64).unwrap_or(0);
        o.insert(
            "uuid".into(),
            json!(format!("00000000-0000-4000-8000-{id:012}")),
        );
    }
    if !emb.is_empty() {
        o.insert("_embedded".into(), Value::Object(emb));
    }
}

pub const ROLES: EntityDef = EntityDef {
    name: "roles",
    first_id: 13_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "name"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        let mut r = default_rights(false);
        if let Some(o) = r.as_object_mut() {
            for k in ["is_admin", "is_free", "is_active", "group_id", "role_id"] {
                o.remove(k);
            }
        }
        obj(json!({"id": id, "name": "", "rights": r, "_links": null}))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, &[("name", K::Str), ("rights", K::Obj)], &mut errs);
        required(item, "name", vx, &mut errs);
        errs
    },
    apply: |o, item, _| {
        copy_fields(o, item, &[("name", K::Str)]);
        if let Some(Value::Object(r)) = item.get("rights") {
            if let Some(Value::Object(cur)) = o.get_mut("rights") {
                for (k, v) in r {
                    cur.insert(k.clone(), v.clone());
                }
            }
        }
    },
    search: name_search,
    decorate: |o, rx| {
        if rx.with("users") {
            let id = o.get("id").cloned();
            let users: Vec<Value> = rx
                .st
                .collections
                .get("users")
                .map(|c| {
                    c.items
                        .values()
                        .filter(|u| u.get("rights").and_then(|r| r.get("role_id")) == id.as_ref())
                        .map(|u| json!({"id": u["id"]}))
                        .collect()
                })
                .unwrap_or_default();
            o.insert("_embedded".into(), json!({"users": users}));
        }
    },
    self_path: None,
    on_delete: |st, o| {
        let id = o.get("id").cloned();
        if let Some(c) = st.collections.get_mut("users") {
            for u in c.items.values_mut() {
                if let Some(Value::Object(r)) = u.get_mut("rights") {
                    if r.get("role_id") == id.as_ref() {
                        r.insert("role_id".into(), Value::Null);
                    }
                }
            }
        }
        Ok(())
    },
    event: None,
};

// ---------------------------------------------------------------- catalogs

pub const CATALOGS: EntityDef = EntityDef {
    name: "catalogs",
    first_id: 14_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "name", "type", "sort"],
    filter_alias: &[],
    id_field: "id",
    template: |id, now| {
        obj(json!({
            "id": id, "name": "", "created_by": 0, "updated_by": 0, "created_at": now,
            "updated_at": now, "sort": 10, "type": "regular", "can_add_elements": true,
            "can_show_in_cards": false, "can_link_multiple": true, "can_be_deleted": true,
            "sdk_widget_code": null, "account_id": ACCOUNT_ID, "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, CATALOG_SPEC, &mut errs);
        required(item, "name", vx, &mut errs);
        if let Some(t) = str_of(item, "type") {
            if !["regular", "invoices", "products"].contains(&t) {
                errs.push(FieldError::choice("type"));
            } else if t != "regular"
                && vx.existing.is_none()
                && vx
                    .st
                    .collections
                    .get("catalogs")
                    .is_some_and(|c| c.items.values().any(|o| str_of(o, "type") == Some(t)))
            {
                // amoCRM: at most one invoices list and one products list.
                errs.push(FieldError::new(
                    "NotSupportedChoice",
                    "type",
                    format!("The account already has a catalog of type {t}"),
                ));
            }
        }
        errs
    },
    apply: |o, item, cx| {
        // The type is set once, on create.
        let kind = o.get("type").cloned();
        copy_fields(o, item, CATALOG_SPEC);
        if let (false, Some(k)) = (cx.creating, kind) {
            o.insert("type".into(), k);
        }
    },
    search: name_search,
    decorate: no_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

const CATALOG_SPEC: Spec = &[
    ("name", K::Str),
    ("type", K::Str),
    ("sort", K::Int),
    ("can_add_elements", K::Bool),
    ("can_show_in_cards", K::Bool),
    ("can_link_multiple", K::Bool),
    ("sdk_widget_code", K::Str),
];

pub const ELEMENTS: EntityDef = EntityDef {
    name: "elements",
    first_id: 15_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "name", "created_at", "updated_at"],
    filter_alias: &[],
    id_field: "id",
    template: |id, now| {
        obj(json!({
            "id": id, "catalog_id": 0, "name": "", "created_by": 0, "updated_by": 0,
            "created_at": now, "updated_at": now, "is_deleted": false,
            "custom_fields_values": null, "account_id": ACCOUNT_ID, "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, &[("name", K::Str)], &mut errs);
        required(item, "name", vx, &mut errs);
        let cat = vx.fixed("catalog_id").and_then(Value::as_u64).unwrap_or(0);
        check_cfv(item, vx.st, &format!("catalogs/{cat}"), &mut errs);
        errs
    },
    apply: |o, item, cx| {
        copy_fields(o, item, &[("name", K::Str)]);
        let cat = o.get("catalog_id").and_then(Value::as_u64).unwrap_or(0);
        apply_cfv(o, item, cx.st, &format!("catalogs/{cat}"), cx.creating);
    },
    search: |o, q| search_with_fields(o, q, &["name"]),
    decorate: no_decorate,
    self_path: Some(|o| {
        format!(
            "catalogs/{}/elements/{}",
            o.get("catalog_id")
                .map(Value::to_string)
                .unwrap_or_default(),
            o.get("id").map(Value::to_string).unwrap_or_default()
        )
    }),
    on_delete: delete_ok,
    event: None,
};

// ---------------------------------------------------------------- events

pub const EVENTS: EntityDef = EntityDef {
    name: "events",
    first_id: 16_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "type",
        "entity_type",
        "entity_id",
        "created_by",
        "created_at",
    ],
    filter_alias: &[("entity", "entity_type"), ("entity_type", "entity_type")],
    id_field: "id",
    template: bare_template,
    validate: no_validate,
    apply: no_apply,
    search: no_search,
    decorate: event_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

// ---------------------------------------------------------------- sources

pub const SOURCES: EntityDef = EntityDef {
    name: "sources",
    first_id: 17_000_001,
    max_batch: 100,
    filter_fields: &["id", "name", "external_id", "pipeline_id"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        obj(json!({
            "id": id, "name": "", "pipeline_id": DEFAULT_PIPELINE_ID, "external_id": "",
            "default": false, "origin_code": null, "services": [], "account_id": ACCOUNT_ID,
            "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, SOURCE_SPEC, &mut errs);
        required(item, "name", vx, &mut errs);
        required(item, "external_id", vx, &mut errs);
        if let Some(p) = item.get("pipeline_id").and_then(Value::as_u64) {
            if !exists(vx.st, "pipelines", p) {
                errs.push(FieldError::missing("pipeline_id"));
            }
        }
        errs
    },
    apply: |o, item, cx| {
        copy_fields(o, item, SOURCE_SPEC);
        if cx.creating && item.get("pipeline_id").is_none_or(Value::is_null) {
            if let Some(m) = main_pipeline(cx.st) {
                o.insert("pipeline_id".into(), json!(m));
            }
        }
        if item.get("default") == Some(&json!(true)) {
            let id = o.get("id").cloned();
            for s in collection(&mut cx.st.collections, &SOURCES)
                .items
                .values_mut()
            {
                if s.get("id") != id.as_ref() {
                    s.insert("default".into(), json!(false));
                }
            }
        }
    },
    search: name_search,
    decorate: no_decorate,
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

const SOURCE_SPEC: Spec = &[
    ("name", K::Str),
    ("external_id", K::Str),
    ("pipeline_id", K::Int),
    ("default", K::Bool),
    ("services", K::Arr),
    ("origin_code", K::Str),
];

// ---------------------------------------------------------------- unsorted, webhooks, widgets, short links (storage; handlers in extra.rs)

pub const UNSORTED: EntityDef = EntityDef {
    name: "unsorted",
    first_id: 18_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["uid", "category", "pipeline_id", "created_at", "source_uid"],
    filter_alias: &[],
    id_field: "uid",
    template: bare_template,
    validate: no_validate,
    apply: no_apply,
    search: no_search,
    decorate: unsorted_decorate,
    self_path: Some(|o| format!("leads/unsorted/{}", str_of(o, "uid").unwrap_or(""))),
    on_delete: delete_ok,
    event: None,
};

fn unsorted_decorate(o: &mut Obj, rx: &Rx) {
    let Some(Value::Object(e)) = o.get("_embedded").cloned() else {
        return;
    };
    let mut out = Map::new();
    for (key, list) in e {
        let items: Vec<Value> = list
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| id.as_u64())
            .map(|id| {
                let mut x = Map::new();
                x.insert("id".into(), json!(id));
                if let Some(stored) = rx
                    .st
                    .collections
                    .get(key.as_str())
                    .and_then(|c| c.items.get(&id))
                {
                    x.insert(
                        "name".into(),
                        stored.get("name").cloned().unwrap_or(Value::Null),
                    );
                    if key == "leads" {
                        x.insert(
                            "price".into(),
                            stored.get("price").cloned().unwrap_or(json!(0)),
                        );
                    }
                }
                x.insert("_links".into(), rx.href(&format!("{key}/{id}")));
                Value::Object(x)
            })
            .collect();
        out.insert(key, Value::Array(items));
    }
    o.insert("_embedded".into(), Value::Object(out));
}

pub const WEBHOOKS: EntityDef = EntityDef {
    name: "webhooks",
    first_id: 19_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "destination"],
    filter_alias: &[],
    id_field: "id",
    template: bare_template,
    validate: no_validate,
    apply: no_apply,
    search: no_search,
    decorate: |o, _| {
        o.remove("_links");
    },
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

pub const WIDGETS: EntityDef = EntityDef {
    name: "widgets",
    first_id: 20_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "code"],
    filter_alias: &[],
    id_field: "code",
    template: bare_template,
    validate: no_validate,
    apply: no_apply,
    search: |o, q| str_of(o, "code").is_some_and(|c| c.contains(q)),
    decorate: no_decorate,
    self_path: Some(|o| format!("widgets/{}", str_of(o, "code").unwrap_or(""))),
    on_delete: delete_ok,
    event: None,
};

pub const SHORT_LINKS: EntityDef = EntityDef {
    name: "short_links",
    first_id: 21_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id"],
    filter_alias: &[],
    id_field: "id",
    template: bare_template,
    validate: no_validate,
    apply: no_apply,
    search: no_search,
    decorate: |o, _| {
        o.remove("_links");
    },
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

// ---------------------------------------------------------------- seed

fn seed_field(st: &mut State, scope: &str, name: &str, code: &str, typ: &str, enums: &[&str]) {
    if st.next_enum_id == 0 {
        st.next_enum_id = FIRST_ENUM_ID;
    }
    let enums: Value = if enums.is_empty() {
        Value::Null
    } else {
        Value::Array(
            enums
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let id = st.next_enum_id;
                    st.next_enum_id += 1;
                    json!({"id": id, "value": v, "sort": (i + 1) * 2, "code": null})
                })
                .collect(),
        )
    };
    let col = collection(&mut st.collections, &CUSTOM_FIELDS);
    let id = col.next_id;
    col.next_id += 1;
    let entity_type = if scope.starts_with("catalogs/") {
        "catalogs"
    } else {
        scope
    };
    let mut o = (CUSTOM_FIELDS.template)(id, 0);
    for (k, v) in [
        ("name", json!(name)),
        ("type", json!(typ)),
        ("code", json!(code)),
        ("sort", json!(id - CUSTOM_FIELDS.first_id + 1)),
        ("enums", enums),
        ("is_deletable", json!(false)),
        ("is_predefined", json!(true)),
        ("entity_type", json!(entity_type)),
        ("__scope", json!(scope)),
    ] {
        o.insert(k.into(), v);
    }
    col.items.insert(id, o);
}

/// The data every fresh account has.
pub fn seed(st: &mut State) {
    // Pipeline 1001 with its statuses.
    collection(&mut st.collections, &PIPELINES).items.insert(
        DEFAULT_PIPELINE_ID as u64,
        obj(json!({
            "id": DEFAULT_PIPELINE_ID, "name": "Воронка", "sort": 1, "is_main": true,
            "is_unsorted_on": true, "is_archive": false, "account_id": ACCOUNT_ID,
            "_links": null, "_embedded": {"statuses": []},
        })),
    );
    let statuses = collection(&mut st.collections, &STATUSES);
    for (id, name, sort, color, typ, editable) in [
        (UNSORTED_STATUS_ID, "Неразобранное", 10, "#c1c1c1", 1, false),
        (
            DEFAULT_STATUS_ID,
            "Первичный контакт",
            20,
            "#99ccff",
            0,
            true,
        ),
        (10002, "Переговоры", 30, "#ffff99", 0, true),
    ] {
        statuses.items.insert(
            id as u64,
            obj(json!({
                "id": id, "name": name, "sort": sort, "is_editable": editable,
                "pipeline_id": DEFAULT_PIPELINE_ID, "color": color, "type": typ,
                "account_id": ACCOUNT_ID, "_links": null,
            })),
        );
    }
    add_system_statuses(st, DEFAULT_PIPELINE_ID as u64);

    // Users.
    let users = collection(&mut st.collections, &USERS);
    for (id, name, email, admin) in [
        (USER_ID, "Администратор", "admin@emulator.local", true),
        (1002, "Менеджер", "manager@emulator.local", false),
    ] {
        users.items.insert(
            id as u64,
            obj(json!({
                "id": id, "name": name, "email": email, "lang": "ru",
                "rights": default_rights(admin), "_links": null,
            })),
        );
    }

    // Custom fields.
    let phone = ["WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"];
    let email = ["WORK", "PRIV", "OTHER"];
    seed_field(st, "contacts", "Телефон", "PHONE", "multitext", &phone);
    seed_field(st, "contacts", "Email", "EMAIL", "multitext", &email);
    seed_field(st, "contacts", "Должность", "POSITION", "text", &[]);
    seed_field(st, "companies", "Телефон", "PHONE", "multitext", &phone);
    seed_field(st, "companies", "Email", "EMAIL", "multitext", &email);
    seed_field(st, "companies", "Web", "WEB", "url", &[]);
    seed_field(st, "companies", "Адрес", "ADDRESS", "textarea", &[]);
    seed_field(st, "leads", "utm_source", "UTM_SOURCE", "text", &[]);
    seed_field(st, "leads", "utm_medium", "UTM_MEDIUM", "text", &[]);
    seed_field(st, "leads", "utm_campaign", "UTM_CAMPAIGN", "text", &[]);
    seed_field(st, "leads", "utm_content", "UTM_CONTENT", "text", &[]);
    seed_field(st, "leads", "utm_term", "UTM_TERM", "text", &[]);

    // A widget.
    let widgets = collection(&mut st.collections, &WIDGETS);
    let id = widgets.next_id;
    widgets.next_id += 1;
    widgets.items.insert(
        id,
        obj(json!({
            "id": id,
            "code": "amo_emulator_widget",
            "version": "1.0.0",
            "rating": "0",
            "settings_template": [
                {"key": "api_key", "name": "API key", "type": "text", "is_required": false}
            ],
            "is_lead_source": false,
            "is_work_with_dp": false,
            "is_crm_template": false,
            "client_uuid": null,
            "is_active_in_account": false,
            "pipeline_id": null,
            "settings": [],
            "_links": null,
        })),
    );
    crate::more::seed(st);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> State {
        let mut st = State::default();
        seed(&mut st);
        st
    }

    fn vx(st: &State) -> Vx<'_> {
        Vx {
            st,
            existing: None,
            fixed: &[],
        }
    }

    #[test]
    fn lead_validation() {
        let st = seeded();
        let o = |v: Value| v.as_object().cloned().unwrap();
        assert!(lead_validate(&o(json!({"name": "x", "price": 5})), &vx(&st)).is_empty());
        let e = lead_validate(&o(json!({"price": "5"})), &vx(&st));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "price");
        assert_eq!(
            lead_validate(&o(json!({"price": 1.5, "name": 3})), &vx(&st)).len(),
            2
        );
        assert_eq!(
            lead_validate(&o(json!({"_embedded": {"tags": [{}]}})), &vx(&st)).len(),
            1
        );
        let e = lead_validate(&o(json!({"status_id": 777})), &vx(&st));
        assert_eq!(e[0].path, "status_id");
        let e = lead_validate(&o(json!({"pipeline_id": 5, "status_id": 142})), &vx(&st));
        assert_eq!(e[0].path, "status_id");
        assert!(
            lead_validate(&o(json!({"pipeline_id": 1001, "status_id": 143})), &vx(&st)).is_empty()
        );
    }

    #[test]
    fn tags_resolve() {
        let mut st = seeded();
        let t = resolve_tags(
            &[json!({"name": "a"}), json!({"name": "A"}), json!({"id": 1})],
            &mut st,
            "leads",
        );
        assert_eq!(t.len(), 1);
        assert_eq!(st.collections["tags"].items.len(), 1);
        assert_eq!(t[0]["id"], 7_000_001);
        // Another entity type has its own dictionary.
        let t = resolve_tags(&[json!({"id": 7_000_001})], &mut st, "contacts");
        assert!(t.is_empty());
    }

    #[test]
    fn phones() {
        assert!(same_phone("+7 (912) 345-67-89", "89123456789"));
        assert!(!same_phone("+7 912 345 67 80", "89123456789"));
        assert!(same_phone("123", "1-2-3"));
        assert!(!same_phone("", ""));
    }

    #[test]
    fn seeds() {
        let st = seeded();
        assert_eq!(main_pipeline(&st), Some(1001));
        assert_eq!(first_status(&st, 1001), Some(10001));
        assert!(status_exists(&st, 1001, 142));
        assert!(status_exists(&st, 1001, 143));
        assert!(field_def(&st, "contacts", None, Some("phone")).is_some());
        assert!(field_def(&st, "leads", None, Some("PHONE")).is_none());
    }

    #[test]
    fn links_are_stored_once() {
        let mut st = seeded();
        add_link(&mut st, ("contacts", 2), ("leads", 1), &Value::Null);
        add_link(&mut st, ("leads", 1), ("contacts", 2), &Value::Null);
        assert_eq!(st.links.len(), 1);
        assert_eq!(st.links[0].from_type, "leads");
        assert_eq!(linked(&st, "contacts", 2, "leads").len(), 1);
        assert_eq!(
            linked(&st, "leads", 1, "contacts")[0].1["main_contact"],
            true
        );
        add_link(&mut st, ("leads", 1), ("contacts", 3), &Value::Null);
        assert_eq!(
            linked(&st, "leads", 1, "contacts")[1].1["main_contact"],
            false
        );
        // One company per lead.
        add_link(&mut st, ("leads", 1), ("companies", 4), &Value::Null);
        add_link(&mut st, ("leads", 1), ("companies", 5), &Value::Null);
        assert_eq!(linked(&st, "leads", 1, "companies"), vec![(5, Value::Null)]);
        assert!(remove_link(&mut st, ("companies", 5), ("leads", 1)));
        drop_links(&mut st, "leads", 1);
        assert!(st.links.is_empty());
    }
}
