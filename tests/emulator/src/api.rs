//! API v4: bearer check, routing and the entity collections.
//!
//! Entities share one generic implementation (list with `_page`/`_links`/
//! 204, get by id, batch create, patch by id, batch patch); each entity type
//! is an [`EntityDef`] that says how to build, validate and change one object.
//! Adding contacts, companies, tasks... means adding a def to [`ENTITIES`].

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::http::{Request, Response};
use crate::oauth::{access_status, ACCOUNT_ID, USER_ID};
use crate::state::{bump, Collection};
use crate::Shared;

const HAL: &str = "application/hal+json";
const PROBLEM: &str = "application/problem+json";
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

fn not_found() -> Response {
    problem(404, "Not Found", "Ресурс не найден")
}

fn method_not_allowed(allow: &str) -> Response {
    problem(405, "Method Not Allowed", "Method not allowed").with_header("Allow", allow)
}

/// One validation error of one item.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub code: &'static str,
    pub path: String,
    pub detail: String,
}

impl FieldError {
    fn new(code: &'static str, path: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            code,
            path: path.into(),
            detail: detail.into(),
        }
    }
    fn int(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type int.")
    }
    fn string(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type string.")
    }
    fn array(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type array.")
    }
    fn object(path: impl Into<String>) -> Self {
        Self::new("InvalidType", path, "This value should be of type object.")
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

type Obj = Map<String, Value>;

/// How one entity type behaves.
pub struct EntityDef {
    /// API name: path segment and `_embedded` key (`leads`).
    pub name: &'static str,
    pub first_id: u64,
    /// Largest write batch.
    pub max_batch: usize,
    /// Fields usable in `filter[..]` (equality, `[from]`/`[to]`) and `order[..]`.
    pub filter_fields: &'static [&'static str],
    /// A new object with every field at its default.
    pub template: fn(id: u64, now: i64) -> Obj,
    /// Errors of one create/patch item (empty = fine).
    pub validate: fn(item: &Obj) -> Vec<FieldError>,
    /// Apply a (validated) item's fields to an object.
    pub apply: fn(obj: &mut Obj, item: &Obj, tags: &mut Vec<(u64, String)>, now: i64),
    /// Whether `query=...` finds this object.
    pub search: fn(obj: &Obj, q: &str) -> bool,
}

pub static ENTITIES: &[EntityDef] = &[EntityDef {
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
        "created_at",
        "updated_at",
        "closed_at",
    ],
    template: lead_template,
    validate: lead_validate,
    apply: lead_apply,
    search: lead_search,
}];

pub fn entity_def(name: &str) -> Option<&'static EntityDef> {
    ENTITIES.iter().find(|d| d.name == name)
}

// ---------------------------------------------------------------- leads

pub const DEFAULT_STATUS_ID: i64 = 10001;
pub const DEFAULT_PIPELINE_ID: i64 = 1001;
const WON: i64 = 142;
const LOST: i64 = 143;

fn lead_template(id: u64, now: i64) -> Obj {
    let v = json!({
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
    });
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
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

fn lead_validate(item: &Obj) -> Vec<FieldError> {
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
    match item.get("custom_fields_values") {
        None | Some(Value::Null) | Some(Value::Array(_)) => {}
        Some(_) => errs.push(FieldError::array("custom_fields_values")),
    }
    match item.get("_embedded") {
        None | Some(Value::Null) => {}
        Some(Value::Object(e)) => match e.get("tags") {
            None | Some(Value::Null) => {}
            Some(Value::Array(tags)) => validate_tags(tags, "_embedded.tags", &mut errs),
            Some(_) => errs.push(FieldError::array("_embedded.tags")),
        },
        Some(_) => errs.push(FieldError::object("_embedded")),
    }
    for f in ["tags_to_add", "tags_to_delete"] {
        match item.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::Array(tags)) => validate_tags(tags, f, &mut errs),
            Some(_) => errs.push(FieldError::array(f)),
        }
    }
    errs
}

fn validate_tags(tags: &[Value], path: &str, errs: &mut Vec<FieldError>) {
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

/// Resolve tag references to `{"id","name","color"}`, creating names as needed.
fn resolve_tags(refs: &[Value], dict: &mut Vec<(u64, String)>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in refs {
        let Some(o) = r.as_object() else { continue };
        let found = if let Some(id) = o.get("id").and_then(Value::as_u64) {
            dict.iter().find(|(i, _)| *i == id).cloned()
        } else if let Some(name) = o.get("name").and_then(Value::as_str) {
            match dict.iter().find(|(_, n)| n == name) {
                Some(t) => Some(t.clone()),
                None => {
                    let t = (dict.len() as u64 + 1, name.to_string());
                    dict.push(t.clone());
                    Some(t)
                }
            }
        } else {
            None
        };
        if let Some((id, name)) = found {
            if !out.iter().any(|t| t["id"] == json!(id)) {
                out.push(json!({"id": id, "name": name, "color": null}));
            }
        }
    }
    out
}

fn lead_apply(obj: &mut Obj, item: &Obj, tags: &mut Vec<(u64, String)>, now: i64) {
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
    let status = obj.get("status_id").and_then(Value::as_i64);
    if matches!(status, Some(WON | LOST)) && obj.get("closed_at").is_some_and(Value::is_null) {
        obj.insert("closed_at".into(), json!(now));
    }
    if let Some(cf) = item.get("custom_fields_values") {
        if cf.is_array() || cf.is_null() {
            obj.insert("custom_fields_values".into(), cf.clone());
        }
    }
    let mut current: Vec<Value> = obj
        .get("_embedded")
        .and_then(|e| e.get("tags"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut changed = false;
    if let Some(Value::Array(refs)) = item.get("_embedded").and_then(|e| e.get("tags")) {
        current = resolve_tags(refs, tags);
        changed = true;
    }
    if let Some(Value::Array(refs)) = item.get("tags_to_add") {
        for t in resolve_tags(refs, tags) {
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

fn lead_search(obj: &Obj, q: &str) -> bool {
    let q = q.to_lowercase();
    obj.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.to_lowercase().contains(&q))
        || obj.get("id").map(Value::to_string).as_deref() == Some(q.as_str())
}

// ---------------------------------------------------------------- generic

fn links_self(href: String) -> Value {
    json!({"self": {"href": href}})
}

fn render(def: &EntityDef, obj: &Obj, referer: &str) -> Value {
    let mut o = obj.clone();
    let id = o.get("id").cloned().unwrap_or(Value::Null);
    o.insert(
        "_links".into(),
        links_self(format!("http://{referer}/api/v4/{}/{id}", def.name)),
    );
    Value::Object(o)
}

/// All objects of one entity type, rendered (for the control API).
pub fn all_entities(shared: &Shared, name: &str) -> Value {
    let Some(def) = entity_def(name) else {
        return json!([]);
    };
    let st = shared.lock();
    let items: Vec<Value> = st
        .collections
        .get(def.name)
        .map(|c| {
            c.items
                .values()
                .map(|o| render(def, o, &shared.referer))
                .collect()
        })
        .unwrap_or_default();
    Value::Array(items)
}

fn collection<'a>(
    cols: &'a mut HashMap<&'static str, Collection>,
    def: &EntityDef,
) -> &'a mut Collection {
    cols.entry(def.name).or_insert_with(|| Collection {
        next_id: def.first_id,
        ..Collection::default()
    })
}

/// `request_id` of an item: its own, or its position.
fn request_id(item: &Value, pos: usize) -> String {
    match item.get("request_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => pos.to_string(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|_| problem(400, "Bad Request", "Request body is not valid JSON"))
}

/// Validate a write batch: an array of objects, 1..=max items.
fn batch_items<'a>(def: &EntityDef, v: &'a Value) -> Result<&'a Vec<Value>, Response> {
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
    if items.len() > def.max_batch {
        return Err(problem(
            400,
            "Bad Request",
            &format!(
                "Too many entities in one request: {} (at most {})",
                items.len(),
                def.max_batch
            ),
        ));
    }
    Ok(items)
}

fn create(shared: &Shared, def: &EntityDef, req: &Request) -> Response {
    let v = match parse_json(&req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(def, &v) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let errs = match item.as_object() {
            Some(o) => (def.validate)(o),
            None => vec![FieldError::object("")],
        };
        if !errs.is_empty() {
            errors.push((request_id(item, i), errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let now = shared.now();
    let referer = &shared.referer;
    let mut st = shared.lock();
    let col = collection(&mut st.collections, def);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = col.next_id;
        col.next_id += 1;
        let mut obj = (def.template)(id, now);
        if let Some(o) = item.as_object() {
            (def.apply)(&mut obj, o, &mut col.tags, now);
        }
        col.items.insert(id, obj);
        out.push(json!({
            "id": id,
            "request_id": request_id(item, i),
            "_links": links_self(format!("http://{referer}/api/v4/{}/{id}", def.name)),
        }));
    }
    let body = json!({
        "_links": links_self(format!("http://{referer}/api/v4/{}", def.name)),
        "_embedded": {def.name: out},
    });
    Response::json(200, HAL, &body)
}

/// Apply patch items (validated, with existing ids) and return the answers.
fn apply_patches(shared: &Shared, def: &EntityDef, patches: &[(u64, &Obj, String)]) -> Vec<Value> {
    let now = shared.now();
    let referer = &shared.referer;
    let mut st = shared.lock();
    let col = collection(&mut st.collections, def);
    let mut out = Vec::new();
    for (id, item, rid) in patches {
        let Collection { items, tags, .. } = &mut *col;
        let Some(obj) = items.get_mut(id) else {
            continue;
        };
        obj.insert("updated_at".into(), json!(now));
        (def.apply)(obj, item, tags, now);
        out.push(json!({
            "id": id,
            "updated_at": obj.get("updated_at").cloned().unwrap_or(json!(now)),
            "request_id": rid,
            "_links": links_self(format!("http://{referer}/api/v4/{}/{id}", def.name)),
        }));
    }
    out
}

fn exists(shared: &Shared, def: &EntityDef, id: u64) -> bool {
    shared
        .lock()
        .collections
        .get(def.name)
        .is_some_and(|c| c.items.contains_key(&id))
}

fn not_found_error(rid: String) -> Response {
    validation_error(vec![(
        rid,
        vec![FieldError::new("NotFound", "id", "Entity not found")],
    )])
}

fn patch_one(shared: &Shared, def: &EntityDef, id: u64, req: &Request) -> Response {
    let v = match parse_json(&req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rid = request_id(&v, 0);
    let Some(item) = v.as_object() else {
        return validation_error(vec![(rid, vec![FieldError::object("")])]);
    };
    let errs = (def.validate)(item);
    if !errs.is_empty() {
        return validation_error(vec![(rid, errs)]);
    }
    if !exists(shared, def, id) {
        return not_found_error(rid);
    }
    let mut out = apply_patches(shared, def, &[(id, item, rid.clone())]);
    match out.pop() {
        Some(one) => Response::json(200, HAL, &one),
        None => not_found_error(rid),
    }
}

fn patch_batch(shared: &Shared, def: &EntityDef, req: &Request) -> Response {
    let v = match parse_json(&req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(def, &v) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    let mut patches = Vec::new();
    {
        let st = shared.lock();
        let col = st.collections.get(def.name);
        for (i, item) in items.iter().enumerate() {
            let rid = request_id(item, i);
            let Some(o) = item.as_object() else {
                errors.push((rid, vec![FieldError::object("")]));
                continue;
            };
            let mut errs = (def.validate)(o);
            match o.get("id").and_then(Value::as_u64) {
                None => errs.push(FieldError::new(
                    "NotBlank",
                    "id",
                    "This value should not be blank.",
                )),
                Some(id) if !col.is_some_and(|c| c.items.contains_key(&id)) => {
                    errs.push(FieldError::new("NotFound", "id", "Entity not found"))
                }
                Some(id) => patches.push((id, o, rid.clone())),
            }
            if !errs.is_empty() {
                errors.push((rid, errs));
            }
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let out = apply_patches(shared, def, &patches);
    let body = json!({
        "_links": links_self(format!("http://{}/api/v4/{}", shared.referer, def.name)),
        "_embedded": {def.name: out},
    });
    Response::json(200, HAL, &body)
}

fn get_one(shared: &Shared, def: &EntityDef, id: u64) -> Response {
    let st = shared.lock();
    match st.collections.get(def.name).and_then(|c| c.items.get(&id)) {
        Some(obj) => Response::json(200, HAL, &render(def, obj, &shared.referer)),
        None => Response::empty(204),
    }
}

/// Split `filter[a][b][]` into `["a", "b", ""]`.
fn bracket_parts(key: &str, prefix: &str) -> Option<Vec<String>> {
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
struct Cond {
    values: Vec<String>,
    from: Option<i64>,
    to: Option<i64>,
    bad: bool,
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Cond {
    fn matches(&self, v: Option<&Value>) -> bool {
        if self.bad {
            return false;
        }
        let v = v.unwrap_or(&Value::Null);
        if !self.values.is_empty() {
            match scalar_string(v) {
                Some(s) if self.values.contains(&s) => {}
                _ => return false,
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

fn list(shared: &Shared, def: &EntityDef, req: &Request) -> Response {
    let pairs = req.query_pairs();
    let mut page: usize = 1;
    let mut limit: usize = DEFAULT_LIMIT;
    let mut query: Option<String> = None;
    let mut order: Option<(String, bool)> = None;
    let mut conds: HashMap<String, Cond> = HashMap::new();
    let mut errors = Vec::new();
    for (k, v) in &pairs {
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
            "query" if !v.is_empty() => query = Some(v.clone()),
            _ => {
                if let Some(parts) = bracket_parts(k, "filter") {
                    let field = parts[0].clone();
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
        }
    }
    if !errors.is_empty() {
        return validation_error(vec![("0".into(), errors)]);
    }

    let st = shared.lock();
    let mut found: Vec<&Obj> = st
        .collections
        .get(def.name)
        .map(|c| {
            c.items
                .values()
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
        // Stable sort; ties stay in id order.
        found.sort_by(|a, b| {
            let o = key(a).cmp(&key(b));
            if *desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let start = (page - 1).saturating_mul(limit);
    let slice: Vec<Value> = found
        .iter()
        .skip(start)
        .take(limit)
        .map(|o| render(def, o, &shared.referer))
        .collect();
    if slice.is_empty() {
        return Response::empty(204);
    }
    let has_next = found.len() > start + limit;
    drop(st);

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
            shared.referer,
            def.name,
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
    let body = json!({
        "_page": page,
        "_links": links,
        "_embedded": {def.name: slice},
    });
    Response::json(200, HAL, &body)
}

fn account(shared: &Shared) -> Response {
    let body = json!({
        "id": ACCOUNT_ID,
        "name": "Emulated account",
        "subdomain": "emulator",
        "created_at": shared.started_at,
        "created_by": 0,
        "updated_at": shared.started_at,
        "updated_by": 0,
        "current_user_id": USER_ID,
        "country": "RU",
        "currency": "RUB",
        "currency_symbol": "₽",
        "customers_mode": "disabled",
        "is_unsorted_on": true,
        "mobile_feature_version": 0,
        "is_loss_reason_enabled": true,
        "is_helpbot_enabled": false,
        "is_technical_account": false,
        "contact_name_display_order": 1,
        "amojo_id": shared.amojo_id,
        "_links": links_self(format!("http://{}/api/v4/account", shared.referer)),
    });
    Response::json(200, HAL, &body)
}

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
    let resp = route(shared, req);
    bump(&mut shared.lock().stats.api_calls, resp.status.to_string());
    resp
}

fn route(shared: &Shared, req: &Request) -> Response {
    let now = shared.now();
    let authorized = bearer(req).is_some_and(|t| access_status(&shared.lock(), t, now) == "valid");
    if !authorized {
        return unauthorized();
    }
    // Hook point for account-wide limits (7 rps → HTML 429, block → HTML 403).

    let rest = req.path.strip_prefix("/api/v4").unwrap_or("");
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let m = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    match segs.as_slice() {
        ["account"] => match m {
            "GET" => account(shared),
            _ => method_not_allowed("GET"),
        },
        [entity] => match entity_def(entity) {
            Some(def) => match m {
                "GET" => list(shared, def, req),
                "POST" => create(shared, def, req),
                "PATCH" => patch_batch(shared, def, req),
                _ => method_not_allowed("GET, POST, PATCH"),
            },
            None => not_found(),
        },
        [entity, id] => match (entity_def(entity), id.parse::<u64>()) {
            (Some(def), Ok(id)) => match m {
                "GET" => get_one(shared, def, id),
                "PATCH" => patch_one(shared, def, id, req),
                _ => method_not_allowed("GET, PATCH"),
            },
            _ => not_found(),
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
    fn lead_validation() {
        let o = |v: Value| v.as_object().cloned().unwrap();
        assert!(lead_validate(&o(json!({"name": "x", "price": 5}))).is_empty());
        let e = lead_validate(&o(json!({"price": "5"})));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "price");
        assert_eq!(lead_validate(&o(json!({"price": 1.5, "name": 3}))).len(), 2);
        assert_eq!(
            lead_validate(&o(json!({"_embedded": {"tags": [{}]}}))).len(),
            1
        );
    }

    #[test]
    fn tags_resolve() {
        let mut dict = Vec::new();
        let t = resolve_tags(
            &[json!({"name": "a"}), json!({"name": "a"}), json!({"id": 1})],
            &mut dict,
        );
        assert_eq!(t.len(), 1);
        assert_eq!(dict.len(), 1);
    }
}
