//! API v4: rate limit, bearer check, context user, routing and the generic
//! entity collections.
//!
//! Entities share one generic implementation (list with `_page`/`_links`/
//! 204, get by id, batch create, patch by id, batch patch, delete by id);
//! each entity type is an [`EntityDef`] that says how to build, validate,
//! change and render one object. Adding an entity means adding a def to
//! [`ENTITIES`] (see `entities.rs`) and a line to [`route`]. Endpoints that
//! are not plain collections (webhooks, unsorted, complex, links, calls, ...)
//! live in `extra.rs`.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::entities::{self as ent, ENTITY_TYPES};
use crate::extra;
use crate::http::{Request, Response};
use crate::migration;
use crate::more;
use crate::oauth::access_status;
use crate::ratelimit::{self, Verdict};
use crate::state::{bump, Collection, State};
use crate::Shared;

pub const HAL: &str = "application/hal+json";
pub const PROBLEM: &str = "application/problem+json";
/// Default page size of lists.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size and largest write batch.
pub const MAX_LIMIT: usize = 250;

/// `{"title","type":"https://httpstatus.es/{status}","status","detail"}`
pub fn problem(status: u16, title: &str, detail: &str) -> Response {
    Response::json(
        status,
        PROBLEM,
        &json!({
            "title": title,
            "type": format!("https://httpstatus.es/{status}"),
            "status": status,
            "detail": detail,
        }),
    )
}

pub fn unauthorized() -> Response {
    problem(401, "Unauthorized", "Неверный логин или пароль")
}

pub fn not_found() -> Response {
    problem(404, "Not Found", "Ресурс не найден")
}

pub fn method_not_allowed(allow: &str) -> Response {
    problem(405, "Method Not Allowed", "Method not allowed").with_header("Allow", allow)
}

pub fn bad_request(detail: &str) -> Response {
    problem(400, "Bad Request", detail)
}

/// One validation error of one item.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub code: &'static str,
    pub path: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(code: &'static str, path: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            code,
            path: path.into(),
            detail: detail.into(),
        }
    }
    pub fn int(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type int.")
    }
    pub fn string(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type string.")
    }
    pub fn bool(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type bool.")
    }
    pub fn array(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type array.")
    }
    pub fn object(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type object.")
    }
    pub fn blank(path: impl Into<String>) -> Self {
        Self::new("NotBlank", path, "This value should not be blank.")
    }
    pub fn missing(path: impl Into<String>) -> Self {
        Self::new("NotFound", path, "Entity not found")
    }
    pub fn choice(path: impl Into<String>) -> Self {
        Self::new(
            "NotSupportedChoice",
            path,
            "The value you selected is not a valid choice.",
        )
    }
}

/// amoCRM's 400 "Request validation failed" with per-item errors.
pub fn validation_error(items: Vec<(String, Vec<FieldError>)>) -> Response {
    let ve: Vec<Value> = items
        .into_iter()
        .map(|(rid, errs)| {
            json!({
                "request_id": rid,
                "errors": errs.into_iter().map(|e| json!({
                    "code": e.code, "path": e.path, "detail": e.detail
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Response::json(
        400,
        PROBLEM,
        &json!({
            "validation-errors": ve,
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        }),
    )
}

pub type Obj = Map<String, Value>;

/// What validation may look at.
pub struct Vx<'a> {
    pub st: &'a State,
    /// The stored object on a patch; `None` on create.
    pub existing: Option<&'a Obj>,
    /// Fields fixed by the path (`entity_id` of `/leads/5/notes`, ...).
    pub fixed: &'a [(&'static str, Value)],
}

impl Vx<'_> {
    pub fn creating(&self) -> bool {
        self.existing.is_none()
    }
    pub fn fixed(&self, k: &str) -> Option<&Value> {
        self.fixed.iter().find(|(f, _)| *f == k).map(|(_, v)| v)
    }
    /// The value a field will have: the item's, else the stored one.
    pub fn field<'b>(&'b self, item: &'b Obj, k: &str) -> Option<&'b Value> {
        item.get(k)
            .filter(|v| !v.is_null())
            .or_else(|| self.existing.and_then(|e| e.get(k)))
    }
}

/// What a write may change.
pub struct Cx<'a> {
    pub st: &'a mut State,
    /// The emulated clock.
    pub now: i64,
    /// The user of `X-Context-User-ID`, if any.
    pub user: Option<i64>,
    pub creating: bool,
}

/// What rendering may look at.
pub struct Rx<'a> {
    pub st: &'a State,
    /// `with=...` values.
    pub with: &'a [String],
    pub referer: &'a str,
}

impl Rx<'_> {
    pub fn with(&self, w: &str) -> bool {
        self.with.iter().any(|x| x == w)
    }
    pub fn href(&self, path: &str) -> Value {
        links_self(format!("http://{}/api/v4/{path}", self.referer))
    }
}

/// How one entity type behaves.
pub struct EntityDef {
    /// Storage name and `_embedded` key (`leads`).
    pub name: &'static str,
    pub first_id: u64,
    /// Largest write batch.
    pub max_batch: usize,
    /// Fields usable in `filter[..]` (equality, `[from]`/`[to]`) and `order[..]`.
    pub filter_fields: &'static [&'static str],
    /// `filter[alias]` means `filter[field]`.
    pub filter_alias: &'static [(&'static str, &'static str)],
    /// The id field (`id`; `uid` for unsorted, `code` for widgets).
    pub id_field: &'static str,
    /// A new object with every field at its default.
    pub template: fn(id: u64, now: i64) -> Obj,
    /// Errors of one create/patch item (empty = fine).
    pub validate: fn(item: &Obj, vx: &Vx) -> Vec<FieldError>,
    /// Apply a (validated) item's fields to an object.
    pub apply: fn(obj: &mut Obj, item: &Obj, cx: &mut Cx),
    /// Whether `query=...` finds this object.
    pub search: fn(obj: &Obj, q: &str) -> bool,
    /// Fill computed parts (`_embedded` from links, ...) when rendering.
    pub decorate: fn(obj: &mut Obj, rx: &Rx),
    /// The path of one object after `/api/v4/`; `None` = `{name}/{id}`.
    pub self_path: Option<fn(obj: &Obj) -> String>,
    /// Check (and cascade) a delete; `Err` is the answer.
    pub on_delete: fn(st: &mut State, obj: &Obj) -> Result<(), Response>,
    /// Events noun (`lead` → `lead_added`), if adding one records an event.
    pub event: Option<&'static str>,
}

pub static ENTITIES: &[EntityDef] = &[
    ent::LEADS,
    ent::CONTACTS,
    ent::COMPANIES,
    ent::CUSTOMERS,
    ent::TASKS,
    ent::NOTES,
    ent::TAGS,
    ent::PIPELINES,
    ent::STATUSES,
    ent::CUSTOM_FIELDS,
    ent::LOSS_REASONS,
    ent::USERS,
    ent::ROLES,
    ent::CATALOGS,
    ent::ELEMENTS,
    ent::EVENTS,
    ent::SOURCES,
    ent::UNSORTED,
    ent::WEBHOOKS,
    ent::WIDGETS,
    ent::SHORT_LINKS,
    more::SEGMENTS,
    more::CUSTOMER_STATUSES,
    more::TRANSACTIONS,
    more::CF_GROUPS,
    more::SUBSCRIPTIONS,
    more::WEBSITE_BUTTONS,
    more::CHAT_TEMPLATES,
    more::TALKS,
];

pub fn entity_def(name: &str) -> &'static EntityDef {
    ENTITIES
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no entity def {name}"))
}

pub fn find_def(name: &str) -> Option<&'static EntityDef> {
    ENTITIES.iter().find(|d| d.name == name)
}

// ---------------------------------------------------------------- helpers

pub fn links_self(href: String) -> Value {
    json!({"self": {"href": href}})
}

pub fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

/// The path of one object after `/api/v4/`.
pub fn self_path(def: &EntityDef, obj: &Obj) -> String {
    match def.self_path {
        Some(f) => f(obj),
        None => format!(
            "{}/{}",
            def.name,
            obj.get(def.id_field)
                .and_then(scalar_string)
                .unwrap_or_default()
        ),
    }
}

/// An object in API shape: hidden `__` fields dropped, `_links` and the
/// computed parts filled in.
pub fn render(def: &EntityDef, obj: &Obj, rx: &Rx) -> Value {
    let mut o: Obj = obj
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    o.insert("_links".into(), rx.href(&self_path(def, obj)));
    (def.decorate)(&mut o, rx);
    Value::Object(o)
}

/// All objects of one entity type, rendered (for the control API).
pub fn all_entities(shared: &Shared, name: &str) -> Value {
    let Some(def) = find_def(name) else {
        return json!([]);
    };
    let st = shared.lock();
    let rx = Rx {
        st: &st,
        with: &[],
        referer: &shared.referer,
    };
    let items: Vec<Value> = st
        .collections
        .get(def.name)
        .map(|c| c.items.values().map(|o| render(def, o, &rx)).collect())
        .unwrap_or_default();
    Value::Array(items)
}

pub fn collection<'a>(
    cols: &'a mut HashMap<&'static str, Collection>,
    def: &EntityDef,
) -> &'a mut Collection {
    cols.entry(def.name).or_insert_with(|| Collection {
        next_id: def.first_id,
        ..Collection::default()
    })
}

/// `request_id` of an item: its own, or its position.
pub fn request_id(item: &Value, pos: usize) -> String {
    match item.get("request_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => pos.to_string(),
    }
}

pub fn parse_json(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|_| bad_request("Request body is not valid JSON"))
}

/// A body that should be one object; empty, `null` and `[]` mean `{}`.
pub fn parse_object(body: &[u8]) -> Result<Obj, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match parse_json(body)? {
        Value::Object(o) => Ok(o),
        Value::Null => Ok(Map::new()),
        Value::Array(a) if a.is_empty() => Ok(Map::new()),
        _ => Err(validation_error(vec![(
            "0".into(),
            vec![FieldError::object("")],
        )])),
    }
}

/// Validate a write batch: an array of objects, 1..=max items.
pub fn batch_items(v: &Value, max: usize) -> Result<&Vec<Value>, Response> {
    let Some(items) = v.as_array() else {
        return Err(validation_error(vec![(
            "0".into(),
            vec![FieldError::array("")],
        )]));
    };
    if items.is_empty() {
        return Err(validation_error(vec![(
            "0".into(),
            vec![FieldError::new(
                "NotBlank",
                "",
                "This collection should contain 1 element or more.",
            )],
        )]));
    }
    if items.len() > max {
        return Err(bad_request(&format!(
            "Too many entities in one request: {} (at most {max})",
            items.len()
        )));
    }
    Ok(items)
}

/// Whether a stored object belongs to a path's scope.
pub fn in_scope(obj: &Obj, fixed: &[(&'static str, Value)]) -> bool {
    fixed.iter().all(|(k, v)| obj.get(*k) == Some(v))
}

/// The storage key of the object with this id (as text) in a scope.
pub fn find_key(
    st: &State,
    def: &EntityDef,
    fixed: &[(&'static str, Value)],
    id: &str,
) -> Option<u64> {
    let col = st.collections.get(def.name)?;
    let matches = |o: &Obj| {
        o.get(def.id_field).and_then(scalar_string).as_deref() == Some(id) && in_scope(o, fixed)
    };
    if let Ok(n) = id.parse::<u64>() {
        if col.items.get(&n).is_some_and(matches) {
            return Some(n);
        }
    }
    col.items.iter().find(|(_, o)| matches(o)).map(|(k, _)| *k)
}

pub fn get_obj<'a>(st: &'a State, def: &EntityDef, key: u64) -> Option<&'a Obj> {
    st.collections.get(def.name).and_then(|c| c.items.get(&key))
}

/// Whether an entity with this numeric id exists.
pub fn exists(st: &State, name: &str, id: u64) -> bool {
    st.collections
        .get(name)
        .is_some_and(|c| c.items.contains_key(&id))
}

/// Insert a new object built from a validated item; returns its id.
pub fn insert(cx: &mut Cx, def: &EntityDef, fixed: &[(&'static str, Value)], item: &Obj) -> u64 {
    let col = collection(&mut cx.st.collections, def);
    let id = col.next_id;
    col.next_id += 1;
    let mut obj = (def.template)(id, cx.now);
    for (k, v) in fixed {
        obj.insert((*k).into(), v.clone());
    }
    if let Some(u) = cx.user {
        for f in ["created_by", "updated_by", "responsible_user_id"] {
            if obj.contains_key(f) {
                obj.insert(f.into(), json!(u));
            }
        }
    }
    let was = cx.creating;
    cx.creating = true;
    (def.apply)(&mut obj, item, cx);
    cx.creating = was;
    // The path wins over the item (`entity_id` of `/leads/5/notes`).
    for (k, v) in fixed {
        obj.insert((*k).into(), v.clone());
    }
    if let Some(noun) = def.event {
        let after = if def.name == "leads" {
            json!([{"lead_status": {"id": obj.get("status_id"), "pipeline_id": obj.get("pipeline_id")}}])
        } else {
            json!([])
        };
        let by = obj.get("created_by").and_then(Value::as_i64).unwrap_or(0);
        ent::push_event(
            cx.st,
            cx.now,
            &format!("{noun}_added"),
            def.name,
            id,
            by,
            json!([]),
            after,
        );
    }
    collection(&mut cx.st.collections, def)
        .items
        .insert(id, obj);
    id
}

/// Apply a validated patch item to a stored object.
pub fn update(cx: &mut Cx, def: &EntityDef, key: u64, item: &Obj) -> Option<Obj> {
    let mut obj = collection(&mut cx.st.collections, def).items.remove(&key)?;
    if obj.contains_key("updated_at") {
        obj.insert("updated_at".into(), json!(cx.now));
    }
    if let Some(u) = cx.user {
        if obj.contains_key("updated_by") {
            obj.insert("updated_by".into(), json!(u));
        }
    }
    let was = cx.creating;
    cx.creating = false;
    (def.apply)(&mut obj, item, cx);
    cx.creating = was;
    collection(&mut cx.st.collections, def)
        .items
        .insert(key, obj.clone());
    Some(obj)
}

// ---------------------------------------------------------------- requests

/// One API request, once authorized.
pub struct Rq<'a> {
    pub shared: &'a Shared,
    pub req: &'a Request,
    /// `X-Context-User-ID`, checked.
    pub user: Option<i64>,
}

impl Rq<'_> {
    pub fn href(&self, path: &str) -> Value {
        links_self(format!("http://{}/api/v4/{path}", self.shared.referer))
    }

    /// `with=a,b` and `with[]=a`.
    pub fn with(&self) -> Vec<String> {
        self.req
            .query_pairs()
            .into_iter()
            .filter(|(k, _)| k == "with" || k == "with[]" || k.starts_with("with["))
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Where a collection lives: its def, its list path and its fixed fields.
pub struct Scope {
    pub def: &'static EntityDef,
    /// The list's path after `/api/v4/` (`leads/5/notes`).
    pub path: String,
    /// Fields every object of the list has; set on create.
    pub fixed: Vec<(&'static str, Value)>,
}

impl Scope {
    pub fn plain(name: &str) -> Scope {
        let def = entity_def(name);
        Scope {
            def,
            path: def.name.to_string(),
            fixed: Vec::new(),
        }
    }
    pub fn new(name: &str, path: impl Into<String>, fixed: Vec<(&'static str, Value)>) -> Scope {
        Scope {
            def: entity_def(name),
            path: path.into(),
            fixed,
        }
    }
}

pub fn create(rq: &Rq, sc: &Scope) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, sc.def.max_batch) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = rq.shared.now();
    let mut st = rq.shared.lock();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let errs = match item.as_object() {
            Some(o) => (sc.def.validate)(
                o,
                &Vx {
                    st: &st,
                    existing: None,
                    fixed: &sc.fixed,
                },
            ),
            None => vec![FieldError::object("")],
        };
        if !errs.is_empty() {
            errors.push((request_id(item, i), errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let mut cx = Cx {
        st: &mut st,
        now,
        user: rq.user,
        creating: true,
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let empty = Map::new();
        let o = item.as_object().unwrap_or(&empty);
        let id = insert(&mut cx, sc.def, &sc.fixed, o);
        let stored = get_obj(cx.st, sc.def, id);
        let path = stored.map(|o| self_path(sc.def, o)).unwrap_or_default();
        // The stored id: a number, or a string where amoCRM's ids are (field groups).
        let id = stored
            .and_then(|o| o.get(sc.def.id_field).cloned())
            .unwrap_or(json!(id));
        out.push(json!({
            "id": id,
            "request_id": request_id(item, i),
            "_links": rq.href(&path),
        }));
    }
    if FULL_CREATE_ANSWERS.contains(&sc.def.name) {
        full_objects(rq, sc.def, cx.st, &mut out);
    }
    let body = json!({
        "_links": rq.href(&sc.path),
        "_embedded": {sc.def.name: out},
    });
    Response::json(200, HAL, &body)
}

/// The lists whose POST answers the whole new objects (with their
/// `request_id`), not only ids: custom fields (enums, nested, chained
/// lists with the ids amoCRM gave them).
pub const FULL_CREATE_ANSWERS: &[&str] = &["custom_fields"];

/// Replaces each `{id, request_id, _links}` of a create answer by the
/// rendered object with its `request_id`.
fn full_objects(rq: &Rq, def: &EntityDef, st: &State, out: &mut [Value]) {
    let with = Vec::new();
    let rx = Rx {
        st,
        with: &with,
        referer: &rq.shared.referer,
    };
    for v in out.iter_mut() {
        let Some(id) = v.get("id").and_then(Value::as_u64) else {
            continue;
        };
        if let Some(o) = get_obj(st, def, id) {
            let mut full = render(def, o, &rx);
            if let (Value::Object(f), Some(r)) = (&mut full, v.get("request_id")) {
                f.insert("request_id".into(), r.clone());
            }
            *v = full;
        }
    }
}

fn patch_answer(rq: &Rq, def: &EntityDef, obj: &Obj, rid: &str) -> Value {
    json!({
        "id": obj.get(def.id_field).cloned().unwrap_or(Value::Null),
        "updated_at": obj.get("updated_at").cloned().unwrap_or(Value::Null),
        "request_id": rid,
        "_links": rq.href(&self_path(def, obj)),
    })
}

fn not_found_error(rid: String) -> Response {
    validation_error(vec![(rid, vec![FieldError::missing("id")])])
}

pub fn patch_one(rq: &Rq, sc: &Scope, id: &str) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rid = request_id(&v, 0);
    let Some(item) = v.as_object() else {
        return validation_error(vec![(rid, vec![FieldError::object("")])]);
    };
    let now = rq.shared.now();
    let mut st = rq.shared.lock();
    let key = find_key(&st, sc.def, &sc.fixed, id);
    let errs = (sc.def.validate)(
        item,
        &Vx {
            st: &st,
            existing: key.and_then(|k| get_obj(&st, sc.def, k)),
            fixed: &sc.fixed,
        },
    );
    if !errs.is_empty() {
        return validation_error(vec![(rid, errs)]);
    }
    let Some(key) = key else {
        return not_found_error(rid);
    };
    let mut cx = Cx {
        st: &mut st,
        now,
        user: rq.user,
        creating: false,
    };
    match update(&mut cx, sc.def, key, item) {
        Some(obj) => Response::json(200, HAL, &patch_answer(rq, sc.def, &obj, &rid)),
        None => not_found_error(rid),
    }
}

pub fn patch_batch(rq: &Rq, sc: &Scope) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, sc.def.max_batch) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = rq.shared.now();
    let mut st = rq.shared.lock();
    let mut errors = Vec::new();
    let mut patches = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rid = request_id(item, i);
        let Some(o) = item.as_object() else {
            errors.push((rid, vec![FieldError::object("")]));
            continue;
        };
        let id = o.get(sc.def.id_field).and_then(scalar_string);
        let key = id
            .as_deref()
            .and_then(|id| find_key(&st, sc.def, &sc.fixed, id));
        let mut errs = (sc.def.validate)(
            o,
            &Vx {
                st: &st,
                existing: key.and_then(|k| get_obj(&st, sc.def, k)),
                fixed: &sc.fixed,
            },
        );
        match (id, key) {
            (None, _) => errs.push(FieldError::blank(sc.def.id_field)),
            (Some(_), None) => errs.push(FieldError::missing(sc.def.id_field)),
            (Some(_), Some(k)) => patches.push((k, o, rid.clone())),
        }
        if !errs.is_empty() {
            errors.push((rid, errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let mut cx = Cx {
        st: &mut st,
        now,
        user: rq.user,
        creating: false,
    };
    let mut out = Vec::new();
    for (key, item, rid) in patches {
        if let Some(obj) = update(&mut cx, sc.def, key, item) {
            out.push(patch_answer(rq, sc.def, &obj, &rid));
        }
    }
    let body = json!({
        "_links": rq.href(&sc.path),
        "_embedded": {sc.def.name: out},
    });
    Response::json(200, HAL, &body)
}

pub fn get_one(rq: &Rq, sc: &Scope, id: &str) -> Response {
    let st = rq.shared.lock();
    let with = rq.with();
    let rx = Rx {
        st: &st,
        with: &with,
        referer: &rq.shared.referer,
    };
    match find_key(&st, sc.def, &sc.fixed, id).and_then(|k| get_obj(&st, sc.def, k)) {
        Some(obj) => Response::json(200, HAL, &render(sc.def, obj, &rx)),
        None => Response::empty(204),
    }
}

pub fn delete_one(rq: &Rq, sc: &Scope, id: &str) -> Response {
    let mut st = rq.shared.lock();
    let Some(key) = find_key(&st, sc.def, &sc.fixed, id) else {
        return not_found();
    };
    let Some(obj) = get_obj(&st, sc.def, key).cloned() else {
        return not_found();
    };
    if let Err(r) = (sc.def.on_delete)(&mut st, &obj) {
        return r;
    }
    collection(&mut st.collections, sc.def).items.remove(&key);
    Response::empty(204)
}

/// Split `filter[a][b][]` into `["a", "b", ""]`.
pub fn bracket_parts(key: &str, prefix: &str) -> Option<Vec<String>> {
    let rest = key.strip_prefix(prefix)?;
    let mut parts = Vec::new();
    let mut s = rest;
    while let Some(r) = s.strip_prefix('[') {
        let end = r.find(']')?;
        parts.push(r[..end].to_string());
        s = &r[end + 1..];
    }
    if !s.is_empty() || parts.is_empty() {
        return None;
    }
    Some(parts)
}

#[derive(Default, Debug)]
pub struct Cond {
    pub values: Vec<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub bad: bool,
}

impl Cond {
    pub fn matches(&self, v: Option<&Value>) -> bool {
        if self.bad {
            return false;
        }
        let v = v.unwrap_or(&Value::Null);
        if !self.values.is_empty() {
            let hit = match v {
                Value::Bool(b) => self.values.iter().any(|x| {
                    let x = x.to_ascii_lowercase();
                    if *b {
                        x == "1" || x == "true"
                    } else {
                        x == "0" || x == "false"
                    }
                }),
                other => scalar_string(other).is_some_and(|s| self.values.contains(&s)),
            };
            if !hit {
                return false;
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let Some(n) = v.as_i64() else { return false };
            if self.from.is_some_and(|f| n < f) || self.to.is_some_and(|t| n > t) {
                return false;
            }
        }
        true
    }
}

/// `page` and `limit` of a list request.
pub fn page_limit(pairs: &[(String, String)]) -> Result<(usize, usize), Response> {
    let mut page = 1;
    let mut limit = DEFAULT_LIMIT;
    let mut errors = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "page" => match v.parse::<usize>() {
                Ok(p) if p >= 1 => page = p,
                _ => errors.push(FieldError::new(
                    "InvalidValue",
                    "page",
                    "This value should be a positive integer.",
                )),
            },
            "limit" => match v.parse::<usize>() {
                Ok(l) if (1..=MAX_LIMIT).contains(&l) => limit = l,
                _ => errors.push(FieldError::new(
                    "InvalidValue",
                    "limit",
                    format!("This value should be between 1 and {MAX_LIMIT}."),
                )),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok((page, limit))
    } else {
        Err(validation_error(vec![("0".into(), errors)]))
    }
}

/// One page of a whole list and whether a next page exists.
pub fn paginate(all: Vec<Value>, page: usize, limit: usize) -> (Vec<Value>, bool) {
    let start = (page - 1).saturating_mul(limit);
    let has_next = all.len() > start.saturating_add(limit);
    (all.into_iter().skip(start).take(limit).collect(), has_next)
}

/// `_page`, `_links.self/next/prev` and `_embedded.{key}` of one page, or 204.
pub fn page_answer(
    rq: &Rq,
    path: &str,
    key: &str,
    slice: Vec<Value>,
    has_next: bool,
    page: usize,
    limit: usize,
) -> Response {
    page_answer_counted(rq, path, key, slice, has_next, page, limit, None)
}

/// The lists whose answers carry `_total_items` and `_page_count` in
/// amoCRM's documentation (leads, contacts, … do not: their totals are not
/// counted for you).
pub const COUNTED_LISTS: &[&str] = &[
    "custom_fields",
    "loss_reasons",
    "pipelines",
    "statuses",
    "users",
    "roles",
    "sources",
];

/// [`page_answer`] with `_total_items` and `_page_count` when `total` is given.
#[allow(clippy::too_many_arguments)]
pub fn page_answer_counted(
    rq: &Rq,
    path: &str,
    key: &str,
    slice: Vec<Value>,
    has_next: bool,
    page: usize,
    limit: usize,
    total: Option<usize>,
) -> Response {
    if slice.is_empty() {
        return Response::empty(204);
    }
    let pairs = rq.req.query_pairs();
    let href = |p: usize| -> String {
        let mut kept: Vec<(&str, &str)> = pairs
            .iter()
            .filter(|(k, _)| k != "page" && k != "limit")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ps = p.to_string();
        let ls = limit.to_string();
        kept.push(("page", &ps));
        kept.push(("limit", &ls));
        format!(
            "http://{}/api/v4/{}?{}",
            rq.shared.referer,
            path,
            crate::util::form_encode(kept)
        )
    };
    let mut links = Map::new();
    links.insert("self".into(), json!({"href": href(page)}));
    if has_next {
        links.insert("next".into(), json!({"href": href(page + 1)}));
    }
    if page > 1 {
        links.insert("prev".into(), json!({"href": href(page - 1)}));
    }
    let mut body = json!({
        "_page": page,
        "_links": links,
        "_embedded": {key: slice},
    });
    if let (Some(total), Value::Object(b)) = (total, &mut body) {
        b.insert("_total_items".into(), json!(total));
        b.insert("_page_count".into(), json!(total.div_ceil(limit.max(1))));
    }
    Response::json(200, HAL, &body)
}

pub fn list(rq: &Rq, sc: &Scope) -> Response {
    let def = sc.def;
    let pairs = rq.req.query_pairs();
    let (page, limit) = match page_limit(&pairs) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut query: Option<String> = None;
    let mut order: Option<(String, bool)> = None;
    let mut conds: HashMap<String, Cond> = HashMap::new();
    for (k, v) in &pairs {
        if k == "query" {
            if !v.is_empty() {
                query = Some(v.clone());
            }
        } else if let Some(parts) = bracket_parts(k, "filter") {
            let mut field = parts[0].clone();
            if let Some((_, real)) = def.filter_alias.iter().find(|(a, _)| *a == field) {
                field = real.to_string();
            }
            if !def.filter_fields.contains(&field.as_str()) {
                continue;
            }
            let c = conds.entry(field).or_default();
            match parts.get(1).map(String::as_str) {
                Some("from") | Some("to") => match v.parse::<i64>() {
                    Ok(n) if parts[1] == "from" => c.from = Some(n),
                    Ok(n) => c.to = Some(n),
                    Err(_) => c.bad = true,
                },
                _ => c.values.extend(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                ),
            }
        } else if let Some(parts) = bracket_parts(k, "order") {
            if parts.len() == 1 && def.filter_fields.contains(&parts[0].as_str()) {
                order = Some((parts[0].clone(), v.eq_ignore_ascii_case("desc")));
            }
        }
    }

    let st = rq.shared.lock();
    let mut found: Vec<&Obj> = st
        .collections
        .get(def.name)
        .map(|c| {
            c.items
                .values()
                .filter(|o| in_scope(o, &sc.fixed))
                .filter(|o| conds.iter().all(|(f, c)| c.matches(o.get(f))))
                .filter(|o| query.as_deref().is_none_or(|q| (def.search)(o, q)))
                .collect()
        })
        .unwrap_or_default();
    if let Some((field, desc)) = &order {
        let key = |o: &Obj| -> (i64, String) {
            match o.get(field) {
                Some(Value::Number(n)) => (n.as_i64().unwrap_or(0), String::new()),
                Some(Value::String(s)) => (0, s.clone()),
                _ => (i64::MIN, String::new()),
            }
        };
        // Stable sort; ties stay in storage order.
        found.sort_by(|a, b| {
            let o = key(a).cmp(&key(b));
            if *desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let with = rq.with();
    let rx = Rx {
        st: &st,
        with: &with,
        referer: &rq.shared.referer,
    };
    let start = (page - 1).saturating_mul(limit);
    let has_next = found.len() > start.saturating_add(limit);
    // Render only the page.
    let slice: Vec<Value> = found
        .iter()
        .skip(start)
        .take(limit)
        .map(|o| render(def, o, &rx))
        .collect();
    let total = COUNTED_LISTS.contains(&def.name).then_some(found.len());
    drop(st);
    page_answer_counted(rq, &sc.path, def.name, slice, has_next, page, limit, total)
}

// ---------------------------------------------------------------- entry

fn bearer(req: &Request) -> Option<&str> {
    let h = req.header("authorization")?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Everything under `/api/v4`; counts `api_calls` by status.
pub fn handle(shared: &Shared, req: &Request) -> Response {
    let resp = limited(shared, req);
    let mut st = shared.lock();
    bump(&mut st.stats.api_calls, resp.status.to_string());
    if req.method != "GET" && req.method != "HEAD" && (200..300).contains(&resp.status) {
        bump(
            &mut st.stats.api_writes_applied,
            req.method.to_ascii_uppercase(),
        );
    }
    drop(st);
    resp
}

/// The rate limiter (nginx's, in front of everything: requests with a bad
/// token count too), then the API.
fn limited(shared: &Shared, req: &Request) -> Response {
    {
        let mut st = shared.lock();
        if req.header("x-context-user-id").is_some() {
            st.stats.context_user_requests += 1;
        }
        match st.limiter.check(Instant::now()) {
            Verdict::Pass => {}
            Verdict::TooMany => {
                st.stats.rate_limited += 1;
                return ratelimit::too_many();
            }
            Verdict::Blocked => {
                st.stats.blocked += 1;
                return ratelimit::forbidden();
            }
        }
    }
    route(shared, req)
}

/// `X-Context-User-ID`: absent → `Ok(None)`; a known user → `Ok(Some)`.
fn context_user(shared: &Shared, req: &Request) -> Result<Option<i64>, Response> {
    let Some(h) = req.header("x-context-user-id") else {
        return Ok(None);
    };
    let forbidden = || problem(403, "Forbidden", "User not found");
    let id = h.trim().parse::<u64>().map_err(|_| forbidden())?;
    if exists(&shared.lock(), "users", id) {
        Ok(Some(id as i64))
    } else {
        Err(forbidden())
    }
}

/// Webhooks, users and roles writes are for admins: a context user who is
/// not one gets 403.
fn admin_only(shared: &Shared, user: Option<i64>) -> Option<Response> {
    let u = user?;
    let st = shared.lock();
    let admin = get_obj(&st, entity_def("users"), u as u64)
        .and_then(|o| o.get("rights"))
        .and_then(|r| r.get("is_admin"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (!admin).then(|| problem(403, "Forbidden", "Access denied"))
}

fn is_entity_type(s: &str) -> bool {
    ENTITY_TYPES.contains(&s)
}

fn num(s: &str) -> Option<u64> {
    s.parse::<u64>().ok().filter(|n| *n > 0)
}

fn route(shared: &Shared, req: &Request) -> Response {
    let now = shared.now();
    let authorized = bearer(req).is_some_and(|t| access_status(&shared.lock(), t, now) == "valid");
    if !authorized {
        return unauthorized();
    }
    let user = match context_user(shared, req) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let rq = Rq { shared, req, user };

    let rest = req.path.strip_prefix("/api/v4").unwrap_or("");
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let m = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    let crud = |sc: Scope| -> Response {
        match m {
            "GET" => list(&rq, &sc),
            "POST" => create(&rq, &sc),
            "PATCH" => patch_batch(&rq, &sc),
            _ => method_not_allowed("GET, POST, PATCH"),
        }
    };
    let one = |sc: Scope, id: &str, allow: &str| -> Response {
        match m {
            "GET" if allow.contains("GET") => get_one(&rq, &sc, id),
            "PATCH" if allow.contains("PATCH") => patch_one(&rq, &sc, id),
            "DELETE" if allow.contains("DELETE") => delete_one(&rq, &sc, id),
            _ => method_not_allowed(allow),
        }
    };
    let only = |allow: &str, f: &dyn Fn() -> Response| -> Response {
        if allow.split(", ").any(|a| a == m) {
            f()
        } else {
            method_not_allowed(allow)
        }
    };
    match segs.as_slice() {
        ["account"] => only("GET", &|| extra::account(&rq)),
        [et, id, "files"] if is_entity_type(et) => crate::drive::entity_files(shared, req, et, id),

        // leads/...
        ["leads", "complex"] => only("POST", &|| extra::complex(&rq)),
        ["leads", "pipelines"] => match m {
            "GET" => list(&rq, &Scope::new("pipelines", "leads/pipelines", vec![])),
            "POST" => create(&rq, &Scope::new("pipelines", "leads/pipelines", vec![])),
            _ => method_not_allowed("GET, POST"),
        },
        ["leads", "pipelines", pid] => match num(pid) {
            Some(_) => one(
                Scope::new("pipelines", "leads/pipelines", vec![]),
                pid,
                "GET, PATCH, DELETE",
            ),
            None => not_found(),
        },
        ["leads", "pipelines", pid, "statuses", rest @ ..] => {
            let Some(p) = num(pid) else {
                return not_found();
            };
            if !exists(&shared.lock(), "pipelines", p) {
                return not_found();
            }
            let sc = Scope::new(
                "statuses",
                format!("leads/pipelines/{p}/statuses"),
                vec![("pipeline_id", json!(p))],
            );
            match rest {
                [] => match m {
                    "GET" => list(&rq, &sc),
                    "POST" => create(&rq, &sc),
                    _ => method_not_allowed("GET, POST"),
                },
                [sid] if num(sid).is_some() => one(sc, sid, "GET, PATCH, DELETE"),
                _ => not_found(),
            }
        }
        ["leads", "loss_reasons"] => match m {
            "GET" => list(
                &rq,
                &Scope::new("loss_reasons", "leads/loss_reasons", vec![]),
            ),
            "POST" => create(
                &rq,
                &Scope::new("loss_reasons", "leads/loss_reasons", vec![]),
            ),
            _ => method_not_allowed("GET, POST"),
        },
        ["leads", "loss_reasons", id] if num(id).is_some() => one(
            Scope::new("loss_reasons", "leads/loss_reasons", vec![]),
            id,
            "GET, PATCH, DELETE",
        ),
        ["leads", "unsorted", rest @ ..] => extra::unsorted(&rq, m, rest),

        // {leads|contacts|companies|customers}/...
        ["customers", "segments", "custom_fields", rest @ ..] => {
            custom_fields(&rq, m, "customers/segments", "customers_segments", rest)
        }
        ["customers", "segments", rest @ ..] => more::segments(&rq, m, rest),
        ["customers", "statuses", rest @ ..] => more::customer_statuses(&rq, m, rest),
        ["customers", "transactions", rest @ ..] => more::transactions(&rq, m, None, rest),
        ["customers", cid, "transactions", rest @ ..] if num(cid).is_some() => {
            more::transactions(&rq, m, num(cid), rest)
        }
        ["customers", cid, "bonus_points"] if num(cid).is_some() => {
            only("POST", &|| more::bonus_points(&rq, num(cid).unwrap_or(0)))
        }
        [et @ ("leads" | "customers"), eid, "subscriptions", rest @ ..] if num(eid).is_some() => {
            more::subscriptions(&rq, m, et, num(eid).unwrap_or(0), rest)
        }
        [et, "custom_fields", "groups", rest @ ..] if is_entity_type(et) => {
            more::cf_groups(&rq, m, et, et, rest)
        }
        ["catalogs", cid, "custom_fields", "groups", rest @ ..] if num(cid).is_some() => {
            let c = num(cid).unwrap_or(0);
            if !exists(&shared.lock(), "catalogs", c) {
                return not_found();
            }
            more::cf_groups(&rq, m, &format!("catalogs/{c}"), "catalogs", rest)
        }
        ["catalogs", "products", "settings"] => more::products_settings(&rq, m),
        ["events", "types"] => only("GET", &|| more::event_types(&rq)),
        ["website_buttons", rest @ ..] => more::website_buttons(&rq, m, rest),
        ["chats", "templates", rest @ ..] => more::chat_templates(&rq, m, rest),
        ["talks", rest @ ..] => more::talks(&rq, m, rest),
        [et, "notes", id, action @ ("pin" | "unpin")]
            if is_entity_type(et) && num(id).is_some() =>
        {
            only("POST", &|| {
                migration::note_pin(&rq, et, id, *action == "pin")
            })
        }
        ["customers", "mode"] => only("PATCH", &|| migration::customers_mode(&rq)),
        [et, "notes", rest @ ..] if is_entity_type(et) => {
            let sc = Scope::new(
                "notes",
                format!("{et}/notes"),
                vec![("__entity_type", json!(et))],
            );
            match rest {
                [] => crud(sc),
                [id] if num(id).is_some() => one(sc, id, "GET, PATCH"),
                _ => not_found(),
            }
        }
        [et, eid, "notes", rest @ ..] if is_entity_type(et) && num(eid).is_some() => {
            let e = num(eid).unwrap_or(0);
            let sc = Scope::new(
                "notes",
                format!("{et}/{e}/notes"),
                vec![("__entity_type", json!(et)), ("entity_id", json!(e))],
            );
            match rest {
                [] => crud(sc),
                [id] if num(id).is_some() => one(sc, id, "GET, PATCH"),
                _ => not_found(),
            }
        }
        [et, "tags"] if is_entity_type(et) => match m {
            "GET" => list(
                &rq,
                &Scope::new(
                    "tags",
                    format!("{et}/tags"),
                    vec![("__entity_type", json!(et))],
                ),
            ),
            "POST" => extra::tags_create(&rq, et),
            _ => method_not_allowed("GET, POST"),
        },
        [et, "custom_fields", rest @ ..] if is_entity_type(et) => {
            custom_fields(&rq, m, et, et, rest)
        }
        ["catalogs", cid, "custom_fields", rest @ ..] if num(cid).is_some() => {
            let c = num(cid).unwrap_or(0);
            if !exists(&shared.lock(), "catalogs", c) {
                return not_found();
            }
            custom_fields(&rq, m, &format!("catalogs/{c}"), "catalogs", rest)
        }
        [et, "links"] if is_entity_type(et) => only("GET", &|| extra::links_list(&rq, et, None)),
        [et, eid, "links"] if is_entity_type(et) && num(eid).is_some() => {
            only("GET", &|| extra::links_list(&rq, et, num(eid)))
        }
        [et, "link"] if is_entity_type(et) => only("POST", &|| extra::link(&rq, et, None)),
        [et, eid, "link"] if is_entity_type(et) && num(eid).is_some() => {
            only("POST", &|| extra::link(&rq, et, num(eid)))
        }
        [et, "unlink"] if is_entity_type(et) => only("POST", &|| extra::unlink(&rq, et, None)),
        [et, eid, "unlink"] if is_entity_type(et) && num(eid).is_some() => {
            only("POST", &|| extra::unlink(&rq, et, num(eid)))
        }

        ["users"] => match m {
            "GET" => list(&rq, &Scope::plain("users")),
            "POST" => {
                admin_only(shared, user).unwrap_or_else(|| create(&rq, &Scope::plain("users")))
            }
            _ => method_not_allowed("GET, POST"),
        },
        ["users", action @ ("activate" | "deactivate")] => only("POST", &|| {
            admin_only(shared, user)
                .unwrap_or_else(|| migration::users_action(&rq, *action == "activate"))
        }),
        ["users", id] if num(id).is_some() => one(Scope::plain("users"), id, "GET"),
        ["roles"] => match m {
            "GET" => list(&rq, &Scope::plain("roles")),
            "POST" => {
                admin_only(shared, user).unwrap_or_else(|| create(&rq, &Scope::plain("roles")))
            }
            _ => method_not_allowed("GET, POST"),
        },
        ["roles", id] if num(id).is_some() => match m {
            "PATCH" | "DELETE" => admin_only(shared, user)
                .unwrap_or_else(|| one(Scope::plain("roles"), id, "GET, PATCH, DELETE")),
            _ => one(Scope::plain("roles"), id, "GET, PATCH, DELETE"),
        },
        ["webhooks"] => admin_only(shared, user)
            .unwrap_or_else(|| only("GET, POST, DELETE", &|| extra::webhooks(&rq, m))),
        ["catalogs"] => crud(Scope::plain("catalogs")),
        ["catalogs", id] if num(id).is_some() => one(Scope::plain("catalogs"), id, "GET, PATCH"),
        ["catalogs", cid, "elements", rest @ ..] => {
            let Some(c) = num(cid) else {
                return not_found();
            };
            if !exists(&shared.lock(), "catalogs", c) {
                return not_found();
            }
            let sc = Scope::new(
                "elements",
                format!("catalogs/{c}/elements"),
                vec![("catalog_id", json!(c))],
            );
            match rest {
                [] => crud(sc),
                [id] if num(id).is_some() => one(sc, id, "GET, PATCH"),
                _ => not_found(),
            }
        }
        ["events"] => only("GET", &|| list(&rq, &Scope::plain("events"))),
        ["events", id] => one(Scope::plain("events"), id, "GET"),
        ["sources"] if m == "DELETE" => migration::sources_delete(&rq),
        ["sources"] => crud(Scope::plain("sources")),
        ["sources", id] if num(id).is_some() => {
            one(Scope::plain("sources"), id, "GET, PATCH, DELETE")
        }
        ["calls"] => only("POST", &|| extra::calls(&rq)),
        ["widgets"] => only("GET", &|| list(&rq, &Scope::plain("widgets"))),
        ["widgets", code] => match m {
            "GET" => get_one(&rq, &Scope::plain("widgets"), code),
            "POST" => extra::widget_install(&rq, code),
            "DELETE" => extra::widget_uninstall(&rq, code),
            _ => method_not_allowed("GET, POST, DELETE"),
        },
        ["short_links"] => only("POST", &|| extra::short_links(&rq)),
        ["currencies"] => only("GET", &|| extra::currencies(&rq)),

        // Plain entities last: `leads/complex` etc. are matched above.
        [entity] if is_entity_type(entity) || *entity == "tasks" => crud(Scope::plain(entity)),
        [entity, id] if is_entity_type(entity) || *entity == "tasks" => match num(id) {
            Some(_) => one(Scope::plain(entity), id, "GET, PATCH"),
            None => not_found(),
        },
        _ => not_found(),
    }
}

/// `/{scope}/custom_fields[/{id}]`.
fn custom_fields(rq: &Rq, m: &str, scope: &str, entity_type: &str, rest: &[&str]) -> Response {
    let sc = Scope::new(
        "custom_fields",
        format!("{scope}/custom_fields"),
        vec![
            ("__scope", json!(scope)),
            ("entity_type", json!(entity_type)),
        ],
    );
    match rest {
        [] => match m {
            "GET" => list(rq, &sc),
            "POST" => create(rq, &sc),
            "PATCH" => patch_batch(rq, &sc),
            _ => method_not_allowed("GET, POST, PATCH"),
        },
        [id] if num(id).is_some() => match m {
            "GET" => get_one(rq, &sc, id),
            "PATCH" => patch_one(rq, &sc, id),
            "DELETE" => delete_one(rq, &sc, id),
            _ => method_not_allowed("GET, PATCH, DELETE"),
        },
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets() {
        assert_eq!(
            bracket_parts("filter[id][]", "filter"),
            Some(vec!["id".to_string(), String::new()])
        );
        assert_eq!(
            bracket_parts("filter[id]", "filter"),
            Some(vec!["id".to_string()])
        );
        assert_eq!(bracket_parts("filter", "filter"), None);
        assert_eq!(bracket_parts("filter[id", "filter"), None);
        assert_eq!(bracket_parts("filterx[id]", "filter"), None);
    }

    #[test]
    fn conds_on_bools() {
        let c = Cond {
            values: vec!["1".into()],
            ..Cond::default()
        };
        assert!(c.matches(Some(&json!(true))));
        assert!(!c.matches(Some(&json!(false))));
        let c = Cond {
            values: vec!["false".into()],
            ..Cond::default()
        };
        assert!(c.matches(Some(&json!(false))));
    }

    #[test]
    fn ids_never_collide() {
        let mut firsts: Vec<u64> = ENTITIES.iter().map(|d| d.first_id).collect();
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), ENTITIES.len());
        for w in firsts.windows(2) {
            assert!(w[1] - w[0] >= 1_000_000, "{} and {}", w[0], w[1]);
        }
    }
}
