//! amoCRM's v4 entities as services with the official library's verbs
//! (`get`, `getOne`, `add`, `update`, …) on plain JSON shaped exactly like
//! amoCRM's: controllers never build URLs or dig in `_embedded` by hand.

use crate::client::AmoCore;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::Response;
use serde_json::{json, Map, Value};

/// What a service supports; anything else is refused before any I/O.
pub mod verb {
    pub const LIST: u8 = 1;
    pub const ONE: u8 = 2;
    pub const ADD: u8 = 4;
    /// `PATCH /entity` with a list.
    pub const UPDATE_BATCH: u8 = 8;
    /// `PATCH /entity/{id}`.
    pub const UPDATE_ONE: u8 = 16;
    pub const DELETE_ONE: u8 = 32;
    /// `POST /entity` with one bare object (customers' segments): addOne only.
    pub const ADD_SINGLE: u8 = 64;
    pub const CRUD: u8 = LIST | ONE | ADD | UPDATE_BATCH | UPDATE_ONE;
}

/// The entity types that have notes, tags, links and custom fields.
const ENTITY_TYPES: &[&str] = &["leads", "contacts", "companies", "customers"];

#[derive(Debug, Clone)]
pub struct Service {
    /// How PHP code named it, for messages: `leads`, `notes(contacts)`.
    pub label: String,
    /// `/api/v4/leads`
    pub path: String,
    /// The list's key inside `_embedded`.
    pub key: &'static str,
    pub verbs: u8,
}

fn svc(label: impl Into<String>, path: impl Into<String>, key: &'static str, verbs: u8) -> Service {
    Service {
        label: label.into(),
        path: path.into(),
        key,
        verbs,
    }
}

fn entity_type(service: &str, t: &str, extra: &[&str]) -> Result<String> {
    let t = t.trim().trim_matches('/');
    let catalog = t
        .strip_prefix("catalogs/")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    if ENTITY_TYPES.contains(&t) || extra.contains(&t) || (service == "customFields" && catalog) {
        return Ok(t.to_string());
    }
    Err(Error::argument(
        "entityType",
        format!(
            "{service}() takes one of {}, got `{t}`",
            [ENTITY_TYPES, extra].concat().join(", ")
        ),
    ))
}

fn positive(name: &str, id: i64) -> Result<i64> {
    if id > 0 {
        Ok(id)
    } else {
        Err(Error::argument(
            name,
            format!("must be a positive id, got {id}"),
        ))
    }
}

impl Service {
    /// A service without an argument: `leads`, `contacts`, …
    pub fn named(name: &str) -> Result<Service> {
        use verb::*;
        Ok(match name {
            "leads" => svc(name, "/api/v4/leads", "leads", CRUD),
            "contacts" => svc(name, "/api/v4/contacts", "contacts", CRUD),
            "companies" => svc(name, "/api/v4/companies", "companies", CRUD),
            "customers" => svc(name, "/api/v4/customers", "customers", CRUD),
            "tasks" => svc(name, "/api/v4/tasks", "tasks", CRUD),
            "pipelines" => svc(
                name,
                "/api/v4/leads/pipelines",
                "pipelines",
                LIST | ONE | ADD | UPDATE_ONE | DELETE_ONE,
            ),
            "lossReasons" => svc(
                name,
                "/api/v4/leads/loss_reasons",
                "loss_reasons",
                // PATCH /leads/loss_reasons/{id}; no batch PATCH.
                LIST | ONE | ADD | UPDATE_ONE | DELETE_ONE,
            ),
            "users" => svc(name, "/api/v4/users", "users", LIST | ONE | ADD),
            "roles" => svc(
                name,
                "/api/v4/roles",
                "roles",
                LIST | ONE | ADD | UPDATE_ONE | DELETE_ONE,
            ),
            "webhooks" => svc(name, "/api/v4/webhooks", "webhooks", LIST),
            "unsorted" => svc(name, "/api/v4/leads/unsorted", "unsorted", LIST | ONE),
            "catalogs" => svc(name, "/api/v4/catalogs", "catalogs", CRUD),
            "events" => svc(name, "/api/v4/events", "events", LIST | ONE),
            "sources" => svc(name, "/api/v4/sources", "sources", CRUD | DELETE_ONE),
            "calls" => svc(name, "/api/v4/calls", "calls", ADD),
            "widgets" => svc(name, "/api/v4/widgets", "widgets", LIST),
            "shortLinks" => svc(name, "/api/v4/short_links", "short_links", ADD),
            "currencies" => svc(name, "/api/v4/currencies", "currencies", LIST),
            // Products: only their settings (`settings()`, `updateSettings()`).
            "products" => svc(name, "/api/v4/catalogs/products", "products", 0),
            // Added per customer (`/customers/{id}/transactions`), listed for all.
            "transactions" => svc(
                name,
                "/api/v4/customers/transactions",
                "transactions",
                LIST | ONE,
            ),
            "customersSegments" => svc(
                name,
                "/api/v4/customers/segments",
                "segments",
                LIST | ONE | ADD_SINGLE | UPDATE_ONE | DELETE_ONE,
            ),
            "customersStatuses" => svc(
                name,
                "/api/v4/customers/statuses",
                "statuses",
                LIST | ONE | ADD | UPDATE_ONE | DELETE_ONE,
            ),
            // Only earnPoints()/redeemPoints() on `/customers/{id}/bonus_points`.
            "customersBonusPoints" => svc(name, "/api/v4/customers", "customers", 0),
            "eventTypes" => svc(name, "/api/v4/events/types", "events_types", LIST),
            "websiteButtons" => svc(
                name,
                "/api/v4/website_buttons",
                "website_buttons",
                LIST | ONE,
            ),
            "chatTemplates" => svc(
                name,
                "/api/v4/chats/templates",
                "chat_templates",
                CRUD | DELETE_ONE,
            ),
            "talks" => svc(name, "/api/v4/talks", "talks", ONE),
            _ => {
                return Err(Error::argument(
                    "service",
                    format!("no service named `{name}`"),
                ))
            }
        })
    }

    pub fn notes(entity: &str) -> Result<Service> {
        let e = entity_type("notes", entity, &[])?;
        Ok(svc(
            format!("notes({e})"),
            format!("/api/v4/{e}/notes"),
            "notes",
            verb::CRUD,
        ))
    }

    pub fn tags(entity: &str) -> Result<Service> {
        let e = entity_type("tags", entity, &[])?;
        Ok(svc(
            format!("tags({e})"),
            format!("/api/v4/{e}/tags"),
            "tags",
            verb::LIST | verb::ADD,
        ))
    }

    pub fn custom_fields(entity: &str) -> Result<Service> {
        let e = entity_type("customFields", entity, &["customers/segments"])?;
        Ok(svc(
            format!("customFields({e})"),
            format!("/api/v4/{e}/custom_fields"),
            "custom_fields",
            verb::CRUD | verb::DELETE_ONE,
        ))
    }

    pub fn links(entity: &str) -> Result<Service> {
        let e = entity_type("links", entity, &[])?;
        Ok(svc(
            format!("links({e})"),
            format!("/api/v4/{e}/links"),
            "links",
            verb::LIST,
        ))
    }

    pub fn statuses(pipeline_id: i64) -> Result<Service> {
        let id = positive("pipelineId", pipeline_id)?;
        Ok(svc(
            format!("statuses({id})"),
            format!("/api/v4/leads/pipelines/{id}/statuses"),
            "statuses",
            verb::LIST | verb::ONE | verb::ADD | verb::UPDATE_ONE | verb::DELETE_ONE,
        ))
    }

    pub fn catalog_elements(catalog_id: i64) -> Result<Service> {
        let id = positive("catalogId", catalog_id)?;
        Ok(svc(
            format!("catalogElements({id})"),
            format!("/api/v4/catalogs/{id}/elements"),
            "elements",
            verb::CRUD,
        ))
    }

    /// Custom field groups of leads, contacts, companies, customers or a
    /// catalog (`catalogs/{id}`, or the official library's `catalogs:{id}`).
    pub fn custom_field_groups(entity: Option<&str>) -> Result<Service> {
        let Some(entity) = entity else {
            return Err(Error::argument(
                "entityType",
                "customFieldGroups() needs an entity type: leads, contacts, companies, customers or catalogs:{id}",
            ));
        };
        let entity = entity.trim().replacen("catalogs:", "catalogs/", 1);
        let e = entity_type("customFieldGroups", &entity, &[]).or_else(|err| {
            let catalog = entity
                .strip_prefix("catalogs/")
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
            if catalog && !entity.ends_with("/0") {
                Ok(entity.clone())
            } else {
                Err(err)
            }
        })?;
        Ok(svc(
            format!("customFieldGroups({e})"),
            format!("/api/v4/{e}/custom_fields/groups"),
            "custom_field_groups",
            verb::LIST | verb::ONE | verb::ADD | verb::UPDATE_ONE | verb::DELETE_ONE,
        ))
    }

    /// The users subscribed to one lead or customer.
    pub fn entity_subscriptions(entity: &str, entity_id: i64) -> Result<Service> {
        let e = entity.trim().trim_matches('/');
        if !matches!(e, "leads" | "customers") {
            return Err(Error::argument(
                "entityType",
                format!("entitySubscriptions() takes leads or customers, got `{e}`"),
            ));
        }
        let id = positive("entityId", entity_id)?;
        Ok(svc(
            format!("entitySubscriptions({e}, {id})"),
            format!("/api/v4/{e}/{id}/subscriptions"),
            "subscriptions",
            verb::LIST,
        ))
    }

    fn require(&self, v: u8, method: &str) -> Result<()> {
        if self.verbs & v == v {
            Ok(())
        } else {
            Err(Error::argument(
                method,
                format!(
                    "{}() does not support {method}() in amoCRM's API",
                    self.label
                ),
            ))
        }
    }

    /// `/path/{id}` for an int id or a string id (unsorted uids, event ids, widget codes).
    pub fn item_path(&self, id: &Value) -> Result<String> {
        Ok(format!("{}/{}", self.path, id_segment(id)?))
    }
}

/// An id as a path segment: a positive int, or a string of letters, digits, `_` and `-`.
pub fn id_segment(id: &Value) -> Result<String> {
    match id {
        Value::Number(n) if n.as_i64().is_some_and(|i| i > 0) => Ok(n.to_string()),
        Value::String(s)
            if !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(s.clone())
        }
        _ => Err(Error::argument(
            "id",
            format!("must be a positive int or a plain string id, got {id}"),
        )),
    }
}

/// An answer as the caller holds it: serde_json's tree in Rust, PHP arrays
/// in the binding (decoded straight from the bytes, no tree in between).
pub trait Answer: Sized {
    /// The final answer's body, `None` for an empty 204; any other status
    /// is the error it means.
    fn decode(resp: Response) -> Result<Option<Self>>;
    /// Takes `_embedded.<key>` out of the answer, if it is a list.
    fn take_embedded(&mut self, key: &str) -> Option<Self>;
    /// `_links.next.href`, if there is one.
    fn next_href(&self) -> Option<&str>;
    /// An empty list (the page of a 204).
    fn empty_list() -> Self;
}

impl Answer for Value {
    fn decode(resp: Response) -> Result<Option<Self>> {
        crate::transport::decode(resp)
    }
    fn take_embedded(&mut self, key: &str) -> Option<Self> {
        let list = self.get_mut("_embedded")?.get_mut(key)?;
        list.is_array().then(|| list.take())
    }
    fn next_href(&self) -> Option<&str> {
        self.pointer("/_links/next/href")?.as_str()
    }
    fn empty_list() -> Self {
        Value::Array(Vec::new())
    }
}

/// A page of a list: its items and the path of the next page, if any.
pub struct Page<A> {
    pub items: A,
    pub next: Option<String>,
}

/// Checks list parameters and turns them into the query amoCRM expects.
pub fn list_query(params: &Value) -> Result<Value> {
    let obj = match params {
        Value::Object(o) => o.clone(),
        Value::Array(a) if a.is_empty() => Map::new(),
        _ => {
            return Err(Error::argument(
                "params",
                "must be an array keyed by parameter name",
            ))
        }
    };
    if let Some(limit) = obj.get("limit") {
        match limit.as_i64() {
            Some(1..=250) => {}
            _ => {
                return Err(Error::argument(
                    "limit",
                    format!("must be from 1 to 250, got {limit}"),
                ))
            }
        }
    }
    if let Some(page) = obj.get("page") {
        if page.as_i64().is_none_or(|p| p < 1) {
            return Err(Error::argument(
                "page",
                format!("must be 1 or more, got {page}"),
            ));
        }
    }
    if let Some(with) = obj.get("with") {
        let ok = match with {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            return Err(Error::argument("with", "must be a list of strings"));
        }
    }
    Ok(Value::Object(obj))
}

fn embedded(svc: &Service, answer: &mut Value, what: &str) -> Result<Vec<Value>> {
    match answer.take_embedded(svc.key) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(no_list(svc, what)),
    }
}

fn no_list(svc: &Service, what: &str) -> Error {
    Error::new(
        ErrorKind::Api,
        format!(
            "amoCRM's answer to {what} {} has no `_embedded.{}` list",
            svc.path, svc.key
        ),
    )
    .with_title("Unexpected answer")
}

/// The next page's path and query from `_links.next.href`, only when it
/// points at the same API path (never follow a link to another host).
fn next_path(svc: &Service, href: &str) -> Option<String> {
    let url = url::Url::parse(href)
        .or_else(|_| url::Url::parse("http://placeholder.invalid")?.join(href))
        .ok()?;
    if url.path() != svc.path {
        return None;
    }
    Some(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

/// The first page of a list.
pub fn page<A: Answer>(
    core: &AmoCore,
    svc: &Service,
    params: &Value,
    ctx: Option<i64>,
) -> Result<Page<A>> {
    svc.require(verb::LIST, "get")?;
    let query = list_query(params)?;
    let answer = A::decode(core.send("GET", &svc.path, Some(&query), None, ctx)?)?;
    parse_page(svc, answer)
}

/// The page at a path taken from a previous page's `_links.next`.
pub fn page_at<A: Answer>(
    core: &AmoCore,
    svc: &Service,
    path: &str,
    ctx: Option<i64>,
) -> Result<Page<A>> {
    let answer = A::decode(core.send("GET", path, None, None, ctx)?)?;
    parse_page(svc, answer)
}

fn parse_page<A: Answer>(svc: &Service, answer: Option<A>) -> Result<Page<A>> {
    let Some(mut answer) = answer else {
        return Ok(Page {
            items: A::empty_list(),
            next: None,
        });
    };
    let next = answer.next_href().and_then(|href| next_path(svc, href));
    let items = answer
        .take_embedded(svc.key)
        .ok_or_else(|| no_list(svc, "GET"))?;
    Ok(Page { items, next })
}

/// One page of entities: the list inside `_embedded`.
pub fn get<A: Answer>(
    core: &AmoCore,
    svc: &Service,
    params: &Value,
    ctx: Option<i64>,
) -> Result<A> {
    page(core, svc, params, ctx).map(|p| p.items)
}

pub fn get_one<A: Answer>(
    core: &AmoCore,
    svc: &Service,
    id: &Value,
    with: &[String],
    ctx: Option<i64>,
) -> Result<Option<A>> {
    svc.require(verb::ONE, "getOne")?;
    let query = if with.is_empty() {
        None
    } else {
        Some(json!({ "with": with }))
    };
    A::decode(core.send("GET", &svc.one_path(id)?, query.as_ref(), None, ctx)?)
}

fn items_list(items: &Value, name: &str) -> Result<Vec<Value>> {
    let list = match items {
        Value::Array(a) => a.clone(),
        Value::Object(o) if o.is_empty() => Vec::new(),
        _ => return Err(Error::argument(name, "must be a list of entities")),
    };
    for (i, item) in list.iter().enumerate() {
        if !item.is_object() {
            return Err(Error::argument(
                &format!("{name}[{i}]"),
                "must be an array of fields",
            ));
        }
    }
    Ok(list)
}

/// Gives every item a `request_id` (its position, unless it has one) so that
/// results and validation errors map back to the input across batches.
fn number_items(items: &mut [Value]) {
    for (i, item) in items.iter_mut().enumerate() {
        if let Some(o) = item.as_object_mut() {
            o.entry("request_id")
                .or_insert_with(|| Value::String(i.to_string()));
        }
    }
}

/// Sends `items` in batches of `batch` and gathers the results in input order.
#[allow(clippy::too_many_arguments)]
fn batched(
    core: &AmoCore,
    ctx: Option<i64>,
    svc: &Service,
    method: &str,
    path: &str,
    items: Vec<Value>,
    batch: usize,
    take: impl Fn(Option<Value>) -> Result<Vec<Value>>,
) -> Result<Vec<Value>> {
    let batch = batch.max(1);
    let total = items.len();
    let mut out = Vec::with_capacity(total);
    for (n, chunk) in items.chunks(batch).enumerate() {
        let body = Value::Array(chunk.to_vec());
        let result = core
            .request(method, path, None, Some(&body), ctx)
            .and_then(&take)
            .and_then(|got| {
                if got.len() == chunk.len() {
                    Ok(got)
                } else {
                    Err(Error::new(
                        ErrorKind::Api,
                        format!(
                            "amoCRM answered {} results for {} items to {method} {path}",
                            got.len(),
                            chunk.len()
                        ),
                    )
                    .with_title("Unexpected answer"))
                }
            });
        match result {
            Ok(got) => out.extend(got),
            Err(e) if n == 0 => return Err(e),
            Err(e) => {
                let batches = total.div_ceil(batch);
                let saved = out.len() - 1;
                return Err(e.context(|m| {
                    format!(
                        "{m} ({}: batch {} of {batches} failed; items 0–{saved} were already saved)",
                        svc.label,
                        n + 1
                    )
                }));
            }
        }
    }
    Ok(out)
}

fn embedded_or_empty(svc: &Service, answer: Option<Value>, what: &str) -> Result<Vec<Value>> {
    match answer {
        Some(mut a) => embedded(svc, &mut a, what),
        None => Ok(Vec::new()),
    }
}

/// The created items, and the per-item errors some lists (calls) answer with
/// 200 in `_embedded.errors`, put back in the order of `request_ids`.
fn created_in_order(
    svc: &Service,
    answer: Option<Value>,
    request_ids: &[Value],
) -> Result<Vec<Value>> {
    let Some(mut answer) = answer else {
        return Ok(Vec::new());
    };
    let mut got = embedded(svc, &mut answer, "POST")?;
    if let Some(Value::Array(errors)) = answer.pointer("/_embedded/errors") {
        got.extend(errors.iter().cloned());
        let position = |v: &Value| {
            let id = v.get("request_id");
            request_ids
                .iter()
                .position(|r| Some(r) == id)
                .unwrap_or(usize::MAX)
        };
        got.sort_by_key(position);
    }
    Ok(got)
}

fn unexpected_204(method: &str, path: &str) -> Error {
    Error::new(
        ErrorKind::Api,
        format!("amoCRM answered 204 to {method} {path} where the entity was expected"),
    )
    .with_title("Unexpected answer")
}

/// Writes through one client handle: its context user and batch size.
pub struct Writer<'a> {
    pub core: &'a AmoCore,
    pub ctx: Option<i64>,
    pub batch: usize,
}

impl Writer<'_> {
    /// One request with this handle's context user.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Option<Value>> {
        self.core.request(method, path, None, body, self.ctx)
    }

    /// Adds `items` to `path` in batches; results come back in input order
    /// (a per-item error in amoCRM's answer takes its item's place).
    pub fn add_to(&self, svc: &Service, path: &str, items: &Value) -> Result<Vec<Value>> {
        let mut list = items_list(items, "items")?;
        number_items(&mut list);
        let ids: Vec<Value> = list.iter().map(|i| i["request_id"].clone()).collect();
        batched(
            self.core,
            self.ctx,
            svc,
            "POST",
            path,
            list,
            self.batch,
            |a| created_in_order(svc, a, &ids),
        )
    }

    pub fn add(&self, svc: &Service, items: &Value) -> Result<Vec<Value>> {
        svc.require(verb::ADD, "add")?;
        self.add_to(svc, &svc.path, items)
    }

    /// Creates one entity: a bare object where amoCRM takes one (segments),
    /// else a batch of one.
    pub fn add_one(&self, svc: &Service, item: &Value) -> Result<Value> {
        if svc.verbs & verb::ADD_SINGLE != 0 {
            if !item.is_object() {
                return Err(Error::argument("item", "must be an array of fields"));
            }
            return self
                .call("POST", &svc.path, Some(item))?
                .ok_or_else(|| unexpected_204("POST", &svc.path));
        }
        let mut got = self.add(svc, &Value::Array(vec![item.clone()]))?;
        Ok(got.pop().unwrap_or_else(|| json!({})))
    }

    /// A request whose success is its status (202 with no body: closing a
    /// talk, adding an online chat): the body, if any, is not read.
    pub fn act(&self, method: &str, path: &str, body: Option<&Value>) -> Result<()> {
        let resp = self.core.send(method, path, None, body, self.ctx)?;
        if !resp.oversize && (200..300).contains(&resp.status) {
            return Ok(());
        }
        crate::transport::success(resp).map(|_| ())
    }

    /// `POST /customers/{id}/transactions?accrue_bonus=…`: purchases of one
    /// customer, in batches; results in input order.
    pub fn add_transactions(
        &self,
        svc: &Service,
        customer_id: i64,
        items: &Value,
        accrue_bonus: bool,
    ) -> Result<Vec<Value>> {
        let id = positive("customerId", customer_id)?;
        let mut list = items_list(items, "items")?;
        for (i, item) in list.iter().enumerate() {
            if item.get("price").is_none_or(|p| p.as_i64().is_none()) {
                return Err(Error::argument(
                    &format!("items[{i}].price"),
                    "is missing or not an int (amoCRM requires a purchase's price)",
                ));
            }
        }
        number_items(&mut list);
        let ids: Vec<Value> = list.iter().map(|i| i["request_id"].clone()).collect();
        let path = format!("/api/v4/customers/{id}/transactions?accrue_bonus={accrue_bonus}");
        batched(
            self.core,
            self.ctx,
            svc,
            "POST",
            &path,
            list,
            self.batch,
            |a| created_in_order(svc, a, &ids),
        )
    }

    /// `DELETE /customers/{customerId}/transactions/{id}`.
    pub fn delete_transaction(&self, customer_id: i64, transaction_id: i64) -> Result<()> {
        let c = positive("customerId", customer_id)?;
        let t = positive("transactionId", transaction_id)?;
        self.call(
            "DELETE",
            &format!("/api/v4/customers/{c}/transactions/{t}"),
            None,
        )
        .map(|_| ())
    }

    /// `POST /customers/{id}/bonus_points` with `{earn|redeem: points}`;
    /// the customer's balance after it.
    pub fn bonus_points(&self, customer_id: i64, action: &str, points: i64) -> Result<Option<i64>> {
        let id = positive("customerId", customer_id)?;
        if points <= 0 {
            return Err(Error::argument(
                "points",
                format!("must be a positive number of points, got {points}"),
            ));
        }
        let answer = self.call(
            "POST",
            &format!("/api/v4/customers/{id}/bonus_points"),
            Some(&json!({ action: points })),
        )?;
        Ok(answer.and_then(|a| a.get("bonus_points").and_then(Value::as_i64)))
    }

    pub fn update(&self, svc: &Service, items: &Value) -> Result<Vec<Value>> {
        svc.require(verb::UPDATE_ONE, "update")?;
        let mut list = items_list(items, "items")?;
        for (i, item) in list.iter().enumerate() {
            id_segment(item.get("id").unwrap_or(&Value::Null)).map_err(|_| {
                Error::argument(&format!("items[{i}].id"), "is missing or not a positive id")
            })?;
        }
        if svc.verbs & verb::UPDATE_BATCH == 0 {
            // amoCRM has no batch PATCH here: one request per item.
            return list.iter().map(|item| self.update_one(svc, item)).collect();
        }
        number_items(&mut list);
        batched(
            self.core,
            self.ctx,
            svc,
            "PATCH",
            &svc.path,
            list,
            self.batch,
            |a| embedded_or_empty(svc, a, "PATCH"),
        )
    }

    pub fn update_one(&self, svc: &Service, item: &Value) -> Result<Value> {
        svc.require(verb::UPDATE_ONE, "updateOne")?;
        if !item.is_object() {
            return Err(Error::argument("item", "must be an array of fields"));
        }
        let id = item
            .get("id")
            .ok_or_else(|| Error::argument("item.id", "is missing"))?;
        let path = svc
            .item_path(id)
            .map_err(|_| Error::argument("item.id", "is not a positive id"))?;
        self.call("PATCH", &path, Some(item))?.ok_or_else(|| {
            Error::new(
                ErrorKind::Api,
                format!("amoCRM answered 204 to PATCH {path} where the entity was expected"),
            )
            .with_title("Unexpected answer")
        })
    }

    pub fn delete_one(&self, svc: &Service, id: &Value) -> Result<()> {
        svc.require(verb::DELETE_ONE, "deleteOne")?;
        self.call("DELETE", &svc.item_path(id)?, None).map(|_| ())
    }

    /// `POST /api/v4/leads/complex`: leads with their contact and company in
    /// one call, at most 50 per request; amoCRM answers a bare array.
    pub fn add_complex(&self, items: &Value) -> Result<Vec<Value>> {
        let svc = svc("leads", "/api/v4/leads/complex", "leads", verb::ADD);
        let mut list = items_list(items, "items")?;
        number_items(&mut list);
        batched(
            self.core,
            self.ctx,
            &svc,
            "POST",
            &svc.path,
            list,
            self.batch.min(50),
            |a| match a {
                Some(Value::Array(items)) => Ok(items),
                _ => Err(Error::new(
                    ErrorKind::Api,
                    "amoCRM's answer to POST /api/v4/leads/complex is not a list",
                )
                .with_title("Unexpected answer")),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_11_services_have_amocrms_paths_and_keys() {
        for (name, path, key) in [
            ("products", "/api/v4/catalogs/products", "products"),
            (
                "transactions",
                "/api/v4/customers/transactions",
                "transactions",
            ),
            (
                "customersSegments",
                "/api/v4/customers/segments",
                "segments",
            ),
            (
                "customersStatuses",
                "/api/v4/customers/statuses",
                "statuses",
            ),
            ("eventTypes", "/api/v4/events/types", "events_types"),
            (
                "websiteButtons",
                "/api/v4/website_buttons",
                "website_buttons",
            ),
            ("chatTemplates", "/api/v4/chats/templates", "chat_templates"),
            ("talks", "/api/v4/talks", "talks"),
        ] {
            let s = Service::named(name).unwrap();
            assert_eq!((s.path.as_str(), s.key), (path, key), "{name}");
        }
    }

    #[test]
    fn verbs_amocrm_lacks_are_refused_naming_service_and_verb() {
        for (name, v, method) in [
            ("products", verb::LIST, "get"),
            ("customersBonusPoints", verb::LIST, "get"),
            ("talks", verb::LIST, "get"),
            ("eventTypes", verb::ADD, "add"),
            ("customersSegments", verb::ADD, "add"),
            ("transactions", verb::UPDATE_ONE, "updateOne"),
        ] {
            let e = Service::named(name)
                .unwrap()
                .require(v, method)
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config, "{name}");
            let m = e.to_string();
            assert!(
                m.contains(&format!("{name}() does not support {method}()")),
                "{m}"
            );
        }
        let segments = Service::named("customersSegments").unwrap();
        assert!(segments.require(verb::ADD_SINGLE, "addOne").is_ok());
        assert!(segments.require(verb::DELETE_ONE, "deleteOne").is_ok());
    }

    #[test]
    fn custom_field_groups_take_the_librarys_catalog_form() {
        let g = Service::custom_field_groups(Some("leads")).unwrap();
        assert_eq!(g.path, "/api/v4/leads/custom_fields/groups");
        let c = Service::custom_field_groups(Some("catalogs:4255")).unwrap();
        assert_eq!(c.path, "/api/v4/catalogs/4255/custom_fields/groups");
        assert_eq!(c.label, "customFieldGroups(catalogs/4255)");
        for bad in [
            None,
            Some("deals"),
            Some("catalogs:"),
            Some("catalogs:x"),
            Some("catalogs:0"),
        ] {
            let e = Service::custom_field_groups(bad).unwrap_err();
            assert!(e.to_string().contains("entityType"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn entity_subscriptions_of_leads_and_customers() {
        let s = Service::entity_subscriptions("customers", 7).unwrap();
        assert_eq!(s.path, "/api/v4/customers/7/subscriptions");
        assert_eq!(s.key, "subscriptions");
        assert!(Service::entity_subscriptions("contacts", 7)
            .unwrap_err()
            .to_string()
            .contains("entityType"));
        assert!(Service::entity_subscriptions("leads", 0)
            .unwrap_err()
            .to_string()
            .contains("entityId"));
    }
}

// ------------------------------------------------------------------
// Migration from the official library (issue 11): the verbs its services
// have beyond CRUD, the methods each service offers (for the message of an
// unknown one), and pages with their metadata.

/// The most user ids amoCRM takes in one activate/deactivate request.
pub const USERS_PER_ACTION: usize = 10;

/// The customers modes `customers()->setMode()` takes (the official
/// library's `AccountModel::CUSTOMERS_MODE_PERIODICITY` and `SEGMENTS`).
pub const CUSTOMERS_MODES: &[&str] = &["periodicity", "segments"];

impl Service {
    /// Whether this service offers a PHP method. The shared verbs are
    /// checked against amoCRM's (`users()` has no `update`); a class's own
    /// methods (`addComplex`, `subscribe`, …) are its own to offer.
    pub fn offers(&self, method: &str) -> bool {
        use verb::*;
        let need = match method {
            "get" | "iterate" | "getPage" | "nextPage" | "prevPage" => LIST,
            "getOne" => ONE,
            "add" | "addOne" => ADD,
            "update" | "updateOne" => UPDATE_ONE,
            "deleteOne" => DELETE_ONE,
            _ => return true,
        };
        self.verbs & need == need
    }

    /// `leads` for `notes(leads)`; `None` for any other service.
    pub fn notes_entity(&self) -> Option<&str> {
        let e = self.path.strip_prefix("/api/v4/")?.strip_suffix("/notes")?;
        ENTITY_TYPES.contains(&e).then_some(e)
    }

    /// The notes of one entity, `/api/v4/leads/{id}/notes` (the official
    /// library's `getByParentId`).
    pub fn notes_of(&self, parent_id: i64) -> Result<Service> {
        let e = self.notes_entity().ok_or_else(|| {
            Error::argument("getByParentId", format!("{}() has no parent", self.label))
        })?;
        let id = positive("parentId", parent_id)?;
        Ok(svc(
            format!("notes({e}) of {id}"),
            format!("/api/v4/{e}/{id}/notes"),
            "notes",
            verb::LIST | verb::ONE,
        ))
    }

    /// The path of one entity: an id, or for notes also the official
    /// library's `['id' => note, 'entity_id' => parent]`.
    pub fn one_path(&self, id: &Value) -> Result<String> {
        match (id, self.notes_entity()) {
            (Value::Object(o), Some(_)) => {
                let note = o
                    .get("id")
                    .ok_or_else(|| Error::argument("id.id", "is missing"))?;
                let parent = o
                    .get("entity_id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| Error::argument("id.entity_id", "is missing or not an int"))?;
                self.notes_of(parent)?.item_path(note)
            }
            _ => self.item_path(id),
        }
    }
}

/// The message of a method a service class does not have: names the
/// method, the service and the methods it does have.
pub fn unknown_method(owner: &str, method: &str, offered: &[String]) -> Error {
    Error::argument(
        "method",
        format!(
            "{owner} has no method {method}(): its methods are {}",
            offered.join(", ")
        ),
    )
}

/// Ids from a list of ints or of entities with an `id` (what `get()` returns).
pub fn id_list(name: &str, ids: &Value) -> Result<Vec<i64>> {
    let list = match ids {
        Value::Array(a) if !a.is_empty() => a,
        _ => return Err(Error::argument(name, "must be a non-empty list of ids")),
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let id = match v {
                Value::Object(o) => o.get("id").and_then(Value::as_i64),
                other => other.as_i64(),
            };
            id.filter(|id| *id > 0).ok_or_else(|| {
                Error::argument(
                    &format!("{name}[{i}]"),
                    "must be a positive id or an entity with its id",
                )
            })
        })
        .collect()
}

/// `_links.{rel}.href` of a page, as a path to GET: only on this service's
/// path and the account's host (`base_domain`). `Ok(None)` when the page
/// has no such link; an error when the link points elsewhere.
pub fn neighbour_path(
    svc: &Service,
    base_domain: &str,
    rel: &str,
    href: Option<&str>,
) -> Result<Option<String>> {
    let Some(href) = href else {
        return Ok(None);
    };
    let name = format!("page._links.{rel}.href");
    if let Ok(url) = url::Url::parse(href) {
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        if !authority.eq_ignore_ascii_case(base_domain) {
            return Err(Error::argument(
                &name,
                format!("points at another host than the account's `{base_domain}`"),
            ));
        }
    }
    match next_path(svc, href) {
        Some(path) => Ok(Some(path)),
        None => Err(Error::argument(
            &name,
            format!("is not a page of {}() ({})", svc.label, svc.path),
        )),
    }
}

/// One page as amoCRM answered it (`_page`, `_links`, `_total_items`,
/// `_embedded.<key>`), `None` on 204.
pub fn page_as_is<A: Answer>(
    core: &AmoCore,
    svc: &Service,
    params: &Value,
    ctx: Option<i64>,
) -> Result<Option<A>> {
    svc.require(verb::LIST, "getPage")?;
    let query = list_query(params)?;
    A::decode(core.send("GET", &svc.path, Some(&query), None, ctx)?)
}

/// The page at a path from [`neighbour_path`], as amoCRM answered it.
pub fn page_as_is_at<A: Answer>(core: &AmoCore, path: &str, ctx: Option<i64>) -> Result<Option<A>> {
    A::decode(core.send("GET", path, None, None, ctx)?)
}

impl Writer<'_> {
    /// `POST /api/v4/users/{activate|deactivate}` with `[{"id": …}]`, at
    /// most ten users a request (amoCRM's limit): more are sent in turn.
    pub fn users_action(&self, svc: &Service, action: &str, ids: &Value) -> Result<()> {
        if svc.path != "/api/v4/users" {
            return Err(Error::argument(
                action,
                format!("{}() has no {action}()", svc.label),
            ));
        }
        let ids = id_list("userIds", ids)?;
        let path = format!("{}/{action}", svc.path);
        for chunk in ids.chunks(USERS_PER_ACTION) {
            let body = Value::Array(chunk.iter().map(|id| json!({ "id": id })).collect());
            self.call("POST", &path, Some(&body))?;
        }
        Ok(())
    }

    /// `PATCH /api/v4/customers/mode`: the mode amoCRM now has, or `None`
    /// when customers are off (as the official library's `setMode`).
    pub fn set_customers_mode(&self, mode: &str, enabled: bool) -> Result<Option<String>> {
        if !CUSTOMERS_MODES.contains(&mode) {
            return Err(Error::argument(
                "mode",
                format!(
                    "must be one of {}, got `{mode}`",
                    CUSTOMERS_MODES.join(", ")
                ),
            ));
        }
        let body = json!({ "mode": mode, "is_enabled": enabled });
        let answer = self.call("PATCH", "/api/v4/customers/mode", Some(&body))?;
        let answer = answer.unwrap_or(Value::Null);
        let on = answer.get("is_enabled").and_then(Value::as_bool) == Some(true);
        Ok(answer
            .get("mode")
            .and_then(Value::as_str)
            .filter(|m| on && !m.is_empty())
            .map(str::to_string))
    }

    /// `DELETE /api/v4/sources` with `[{"id": …}]`: several at once, in
    /// batches of `batch_size`.
    pub fn delete_batch(&self, svc: &Service, ids: &Value) -> Result<()> {
        if svc.path != "/api/v4/sources" {
            return Err(Error::argument(
                "delete",
                format!("{}() does not support delete() in amoCRM's API", svc.label),
            ));
        }
        let ids = id_list("ids", ids)?;
        for chunk in ids.chunks(self.batch.max(1)) {
            let body = Value::Array(chunk.iter().map(|id| json!({ "id": id })).collect());
            self.call("DELETE", &svc.path, Some(&body))?;
        }
        Ok(())
    }

    /// `POST /api/v4/{type}/notes/{id}/pin` (or `unpin`).
    pub fn note_pin(&self, svc: &Service, id: &Value, pin: bool) -> Result<()> {
        let action = if pin { "pin" } else { "unpin" };
        if svc.notes_entity().is_none() {
            return Err(Error::argument(
                action,
                format!("{}() has no {action}()", svc.label),
            ));
        }
        let path = format!("{}/{action}", svc.item_path(id)?);
        self.call("POST", &path, None).map(|_| ())
    }
}

// ------------------------------------------------------------------
// Links from the entity's own service (the official library's
// LinkMethodsTrait: `$leads->link($lead, $links)`), beside links($type).

impl Service {
    /// `leads` for leads, contacts, companies and customers: the lists whose
    /// entities link to others from their own service.
    pub fn linkable_entity(&self) -> Option<&str> {
        let e = self.path.strip_prefix("/api/v4/")?;
        ENTITY_TYPES.contains(&e).then_some(e)
    }

    /// The links of one entity, `/api/v4/leads/{id}/links` (`getLinks`).
    pub fn links_of(&self, entity: &Value) -> Result<Service> {
        let e = self
            .linkable_entity()
            .ok_or_else(|| Error::argument("getLinks", format!("{}() has no links", self.label)))?;
        let id = entity_id(entity)?;
        Ok(svc(
            format!("links of {e} {id}"),
            format!("/api/v4/{e}/{id}/links"),
            "links",
            verb::LIST,
        ))
    }
}

/// An entity's id from an id or from the entity itself (with its `id`),
/// as the official library takes the model.
pub fn entity_id(entity: &Value) -> Result<i64> {
    let id = match entity {
        Value::Object(o) => o.get("id").and_then(Value::as_i64),
        other => other.as_i64(),
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| Error::argument("entity", "must be a positive id or an entity with its id"))
}

impl Writer<'_> {
    /// `POST /api/v4/{type}/{id}/link`: the links made, in input order.
    pub fn link_entity(&self, svc: &Service, entity: &Value, links: &Value) -> Result<Vec<Value>> {
        let of = svc.links_of(entity)?;
        let path = format!("{}/link", of.path.trim_end_matches("/links"));
        if items_list(links, "links")?.is_empty() {
            return Err(Error::argument(
                "links",
                "must be a non-empty list of links",
            ));
        }
        self.add_to(&of, &path, links)
    }

    /// `POST /api/v4/{type}/{id}/unlink`.
    pub fn unlink_entity(&self, svc: &Service, entity: &Value, links: &Value) -> Result<()> {
        let of = svc.links_of(entity)?;
        let path = format!("{}/unlink", of.path.trim_end_matches("/links"));
        let list = items_list(links, "links")?;
        if list.is_empty() {
            return Err(Error::argument(
                "links",
                "must be a non-empty list of links",
            ));
        }
        self.call("POST", &path, Some(&Value::Array(list)))
            .map(|_| ())
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    #[test]
    fn offers_follows_amocrm_verbs_and_keeps_class_methods() {
        let users = Service::named("users").unwrap();
        assert!(users.offers("get") && users.offers("getPage") && users.offers("addOne"));
        assert!(
            !users.offers("update") && !users.offers("updateOne") && !users.offers("deleteOne")
        );
        assert!(users.offers("activate"), "a class's own method");
        let calls = Service::named("calls").unwrap();
        assert!(!calls.offers("getPage") && !calls.offers("nextPage") && calls.offers("add"));
        let reasons = Service::named("lossReasons").unwrap();
        assert!(reasons.offers("updateOne") && reasons.offers("update"));
    }

    #[test]
    fn notes_by_parent() {
        let notes = Service::notes("contacts").unwrap();
        assert_eq!(notes.notes_entity(), Some("contacts"));
        let of = notes.notes_of(7).unwrap();
        assert_eq!(of.path, "/api/v4/contacts/7/notes");
        assert_eq!(
            of.notes_entity(),
            None,
            "a parent's notes have no parent of their own"
        );
        assert!(notes.notes_of(0).is_err());
        assert!(Service::named("leads").unwrap().notes_of(1).is_err());
        assert_eq!(
            notes.one_path(&json!({"id": 5, "entity_id": 7})).unwrap(),
            "/api/v4/contacts/7/notes/5"
        );
        assert_eq!(
            notes.one_path(&json!(5)).unwrap(),
            "/api/v4/contacts/notes/5"
        );
        let e = notes.one_path(&json!({"id": 5})).unwrap_err();
        assert!(e.message.contains("`id.entity_id`"), "{}", e.message);
        assert!(notes.one_path(&json!({"id": 5, "entity_id": -1})).is_err());
        // Other services take no parent in the id.
        assert!(Service::named("leads")
            .unwrap()
            .one_path(&json!({"id": 5, "entity_id": 7}))
            .is_err());
    }

    #[test]
    fn id_lists_take_ids_or_entities() {
        assert_eq!(
            id_list("ids", &json!([1, {"id": 2, "name": "x"}])).unwrap(),
            [1, 2]
        );
        for (bad, named) in [
            (json!([]), "`ids`"),
            (json!({}), "`ids`"),
            (json!([1, 0]), "`ids[1]`"),
            (json!([{"name": "x"}]), "`ids[0]`"),
            (json!(["1"]), "`ids[0]`"),
        ] {
            let e = id_list("ids", &bad).unwrap_err();
            assert!(e.message.contains(named), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn neighbour_links_only_on_the_same_host_and_list() {
        let leads = Service::named("leads").unwrap();
        let host = "example.amocrm.ru";
        let ok = |href: &str| neighbour_path(&leads, host, "next", Some(href));
        assert_eq!(
            ok("https://example.amocrm.ru/api/v4/leads?page=2&limit=50").unwrap(),
            Some("/api/v4/leads?page=2&limit=50".into())
        );
        assert_eq!(
            ok("https://EXAMPLE.amocrm.ru/api/v4/leads?page=2").unwrap(),
            Some("/api/v4/leads?page=2".into())
        );
        assert_eq!(
            ok("/api/v4/leads?page=3").unwrap(),
            Some("/api/v4/leads?page=3".into())
        );
        assert_eq!(neighbour_path(&leads, host, "prev", None).unwrap(), None);
        for (href, says) in [
            ("https://evil.example/api/v4/leads?page=2", "another host"),
            (
                "https://example.amocrm.ru:8443/api/v4/leads?page=2",
                "another host",
            ),
            (
                "https://example.amocrm.ru/api/v4/contacts?page=2",
                "not a page of leads()",
            ),
            ("/api/v4/leads/complex", "not a page of leads()"),
        ] {
            let e = ok(href).unwrap_err();
            assert!(e.message.contains("page._links.next.href"), "{}", e.message);
            assert!(e.message.contains(says), "{href}: {}", e.message);
        }
    }

    #[test]
    fn unknown_method_names_method_service_and_methods() {
        let e = unknown_method("leads()", "syncOne", &["get".into(), "getOne".into()]);
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e
            .message
            .contains("leads() has no method syncOne(): its methods are get, getOne"));
    }
}
