//! The services added for issue 11: products' settings, customers'
//! transactions, segments, statuses and bonus points, custom field groups,
//! event types, entity subscriptions, website buttons, chat templates and
//! talks. Entity defs for the collections, handlers for the rest.

use serde_json::{json, Value};

use crate::api::{
    batch_items, collection, create, delete_one, exists, find_key, get_obj, get_one, list,
    method_not_allowed, not_found, page_answer, page_limit, paginate, parse_json, parse_object,
    patch_batch, patch_one, render, request_id, scalar_string, validation_error, Cx, EntityDef,
    FieldError, Obj, Rq, Rx, Scope, Vx, HAL, MAX_LIMIT,
};
use crate::entities::{
    apply_cfv, bare_template, check_cfv, check_fields, copy_fields, delete_ok, name_search,
    no_apply, no_decorate, no_search, no_validate, obj, required, Spec, K,
};
use crate::http::Response;
use crate::oauth::ACCOUNT_ID;
use crate::state::{Collection, State};

fn ok(status: u16, v: Value) -> Response {
    Response::json(status, HAL, &v)
}

fn drop_links_field(o: &mut Obj, _: &Rx) {
    o.remove("_links");
}

/// The answer with `_embedded.{from}` renamed `_embedded.{to}`: customers'
/// statuses are stored apart from pipelines' but amoCRM calls both `statuses`.
fn rekey(mut resp: Response, from: &str, to: &str) -> Response {
    if let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(&resp.body) {
        if let Some(Value::Object(e)) = v.get_mut("_embedded") {
            if let Some(list) = e.remove(from) {
                e.insert(to.into(), list);
            }
        }
        resp.body = serde_json::to_vec(&Value::Object(v)).unwrap_or_default();
    }
    resp
}

// ---------------------------------------------------------------- segments

/// The colours amoCRM offers for a segment.
pub const SEGMENT_COLORS: &[&str] = &[
    "10599d", "2176ff", "006acc", "07a0c3", "247ba0", "177e89", "046e8f", "598381", "0c7c59",
    "495f41", "00a44b", "08605f", "bf2600", "06d6a0", "e14945", "79b473", "ae003f", "a2ad59",
    "cd0f53", "8e936d", "832161", "2e5339", "bf126f", "6f7c12", "ff5376", "dd1c1a", "bb304e",
    "631d76", "9d2b32", "4a001f", "b118c8", "6a0f49", "6610f2", "b38a58", "8963ba", "4b3666",
    "932f6d", "6b2d5c", "6461a0", "4f517d",
];

const SEGMENT_SPEC: Spec = &[
    ("name", K::Str),
    ("color", K::Str),
    ("available_products_price_types", K::Arr),
];

pub const SEGMENTS: EntityDef = EntityDef {
    name: "segments",
    first_id: 24_000_001,
    max_batch: 1,
    filter_fields: &["id", "name", "created_at", "updated_at"],
    filter_alias: &[],
    id_field: "id",
    template: |id, now| {
        obj(json!({
            "id": id, "name": "", "created_at": now, "updated_at": now, "color": "10599d",
            "available_products_price_types": [], "customers_count": 0,
            "custom_fields_values": null, "account_id": ACCOUNT_ID, "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, SEGMENT_SPEC, &mut errs);
        required(item, "name", vx, &mut errs);
        if let Some(c) = item.get("color").and_then(Value::as_str) {
            if !SEGMENT_COLORS.contains(&c) {
                errs.push(FieldError::choice("color"));
            }
        }
        check_cfv(item, vx.st, "customers/segments", &mut errs);
        errs
    },
    apply: |o, item, cx| {
        copy_fields(o, item, SEGMENT_SPEC);
        apply_cfv(o, item, cx.st, "customers/segments", cx.creating);
    },
    search: name_search,
    decorate: no_decorate,
    self_path: Some(|o| format!("customers/segments/{}", o["id"])),
    on_delete: delete_ok,
    event: None,
};

/// `POST /customers/segments`: one segment as a bare object; the answer is
/// the segment.
fn segment_create(rq: &Rq) -> Response {
    let item = match parse_object(&rq.req.body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let rid = request_id(&Value::Object(item.clone()), 0);
    let mut st = rq.shared.lock();
    let errs = (SEGMENTS.validate)(
        &item,
        &Vx {
            st: &st,
            existing: None,
            fixed: &[],
        },
    );
    if !errs.is_empty() {
        return validation_error(vec![(rid, errs)]);
    }
    let mut cx = Cx {
        st: &mut st,
        now: rq.shared.now(),
        user: rq.user,
        creating: true,
    };
    let id = crate::api::insert(&mut cx, &SEGMENTS, &[], &item);
    let rx = Rx {
        st: &st,
        with: &[],
        referer: &rq.shared.referer,
    };
    let Some(o) = get_obj(&st, &SEGMENTS, id) else {
        return not_found();
    };
    let mut out = render(&SEGMENTS, o, &rx);
    out["request_id"] = json!(rid);
    ok(200, out)
}

pub fn segments(rq: &Rq, m: &str, rest: &[&str]) -> Response {
    let sc = || Scope::new("segments", "customers/segments", vec![]);
    match rest {
        [] => match m {
            "GET" => list(rq, &sc()),
            "POST" => segment_create(rq),
            _ => method_not_allowed("GET, POST"),
        },
        [id] if id.parse::<u64>().is_ok() => match m {
            "GET" => get_one(rq, &sc(), id),
            "PATCH" => patch_one(rq, &sc(), id),
            "DELETE" => delete_one(rq, &sc(), id),
            _ => method_not_allowed("GET, PATCH, DELETE"),
        },
        _ => not_found(),
    }
}

// ---------------------------------------------------------------- customers' statuses

const CUSTOMER_STATUS_SPEC: Spec = &[("name", K::Str), ("sort", K::Int), ("color", K::Str)];

pub const CUSTOMER_STATUSES: EntityDef = EntityDef {
    name: "customers_statuses",
    first_id: 25_000_001,
    max_batch: 100,
    filter_fields: &["id", "name", "sort", "type"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        obj(json!({
            "id": id, "name": "", "sort": 0, "is_default": false, "color": "#fffeb2",
            "type": 0, "conditions": [], "account_id": ACCOUNT_ID, "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, CUSTOMER_STATUS_SPEC, &mut errs);
        required(item, "name", vx, &mut errs);
        errs
    },
    apply: |o, item, _| copy_fields(o, item, CUSTOMER_STATUS_SPEC),
    search: name_search,
    decorate: no_decorate,
    self_path: Some(|o| format!("customers/statuses/{}", o["id"])),
    on_delete: |_, o| {
        if o.get("is_default") == Some(&json!(true)) {
            Err(crate::api::bad_request(
                "The default status cannot be deleted",
            ))
        } else {
            Ok(())
        }
    },
    event: None,
};

pub fn customer_statuses(rq: &Rq, m: &str, rest: &[&str]) -> Response {
    let sc = || Scope::new("customers_statuses", "customers/statuses", vec![]);
    let r = match rest {
        [] => match m {
            "GET" => list(rq, &sc()),
            "POST" => create(rq, &sc()),
            _ => method_not_allowed("GET, POST"),
        },
        [id] if id.parse::<u64>().is_ok() => match m {
            "GET" => get_one(rq, &sc(), id),
            "PATCH" => patch_one(rq, &sc(), id),
            "DELETE" => delete_one(rq, &sc(), id),
            _ => method_not_allowed("GET, PATCH, DELETE"),
        },
        _ => not_found(),
    };
    rekey(r, "customers_statuses", "statuses")
}

// ---------------------------------------------------------------- transactions

pub const TRANSACTIONS: EntityDef = EntityDef {
    name: "transactions",
    first_id: 26_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &[
        "id",
        "customer_id",
        "created_at",
        "updated_at",
        "completed_at",
    ],
    filter_alias: &[],
    id_field: "id",
    template: |id, now| {
        obj(json!({
            "id": id, "comment": null, "price": 0, "completed_at": now, "customer_id": 0,
            "created_by": 0, "updated_by": 0, "created_at": now, "updated_at": now,
            "is_deleted": false, "account_id": ACCOUNT_ID, "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, TRANSACTION_SPEC, &mut errs);
        match item.get("price") {
            None | Some(Value::Null) => errs.push(FieldError::blank("price")),
            Some(p) if p.as_i64().is_none_or(|p| p < 0) => errs.push(FieldError::new(
                "InvalidValue",
                "price",
                "This value should be a non-negative integer.",
            )),
            _ => {}
        }
        check_elements(item, vx.st, &mut errs);
        errs
    },
    apply: |o, item, _| {
        copy_fields(o, item, TRANSACTION_SPEC);
        if let Some(Value::Array(els)) = item
            .get("_embedded")
            .and_then(|e| e.get("catalog_elements"))
        {
            let els: Vec<Value> = els
                .iter()
                .map(|e| {
                    json!({
                        "id": e["id"],
                        "metadata": {
                            "catalog_id": e["metadata"]["catalog_id"],
                            "quantity": e["metadata"].get("quantity").cloned().unwrap_or(json!(1)),
                        },
                    })
                })
                .collect();
            o.insert("_embedded".into(), json!({ "catalog_elements": els }));
        }
    },
    search: no_search,
    decorate: |o, rx| {
        let els = o
            .get_mut("_embedded")
            .and_then(Value::as_object_mut)
            .and_then(|e| e.remove("catalog_elements"));
        let cid = o.get("customer_id").cloned().unwrap_or(Value::Null);
        let e = o.entry("_embedded").or_insert_with(|| json!({}));
        e["customer"] = json!({"id": cid, "_links": rx.href(&format!("customers/{cid}"))});
        if rx.with("catalog_elements") {
            e["catalog_elements"] = els.unwrap_or(json!([]));
        }
    },
    self_path: Some(|o| format!("customers/transactions/{}", o["id"])),
    on_delete: delete_ok,
    event: None,
};

const TRANSACTION_SPEC: Spec = &[
    ("price", K::Int),
    ("comment", K::Str),
    ("completed_at", K::Int),
    ("next_price", K::Int),
    ("next_date", K::Int),
    ("metadata", K::Obj),
];

/// `_embedded.catalog_elements`: each `{id, metadata: {catalog_id, quantity}}`
/// of an existing element of that catalog.
fn check_elements(item: &Obj, st: &State, errs: &mut Vec<FieldError>) {
    let Some(els) = item
        .get("_embedded")
        .and_then(|e| e.get("catalog_elements"))
    else {
        return;
    };
    let Some(els) = els.as_array() else {
        errs.push(FieldError::array("_embedded.catalog_elements"));
        return;
    };
    for (i, e) in els.iter().enumerate() {
        let path = format!("_embedded.catalog_elements.{i}");
        let (Some(id), Some(cat)) = (
            e.get("id").and_then(Value::as_u64),
            e.pointer("/metadata/catalog_id").and_then(Value::as_u64),
        ) else {
            errs.push(FieldError::blank(format!("{path}.id")));
            continue;
        };
        let found = get_obj(st, crate::api::entity_def("elements"), id)
            .is_some_and(|el| el.get("catalog_id") == Some(&json!(cat)));
        if !found {
            errs.push(FieldError::missing(format!("{path}.id")));
        }
        if let Some(q) = e.pointer("/metadata/quantity") {
            if q.as_f64().is_none_or(|q| q <= 0.0) {
                errs.push(FieldError::new(
                    "InvalidValue",
                    format!("{path}.metadata.quantity"),
                    "This value should be positive.",
                ));
            }
        }
    }
}

/// A customer's `ltv`, `purchases_count` and `average_check` after a
/// purchase of `price` (negative: one taken back).
fn account_purchase(st: &mut State, customer: u64, price: i64, count: i64) {
    let def = crate::api::entity_def("customers");
    if let Some(c) = collection(&mut st.collections, def)
        .items
        .get_mut(&customer)
    {
        let ltv = c.get("ltv").and_then(Value::as_i64).unwrap_or(0) + price;
        let n = c
            .get("purchases_count")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + count;
        c.insert("ltv".into(), json!(ltv.max(0)));
        c.insert("purchases_count".into(), json!(n.max(0)));
        c.insert(
            "average_check".into(),
            json!(if n > 0 { ltv.max(0) / n } else { 0 }),
        );
    }
}

/// `/customers/transactions[/{id}]` and `/customers/{id}/transactions[/{id}]`.
pub fn transactions(rq: &Rq, m: &str, customer: Option<u64>, rest: &[&str]) -> Response {
    if let Some(c) = customer {
        if !exists(&rq.shared.lock(), "customers", c) {
            return not_found();
        }
    }
    let sc = match customer {
        Some(c) => Scope::new(
            "transactions",
            format!("customers/{c}/transactions"),
            vec![("customer_id", json!(c))],
        ),
        None => Scope::new("transactions", "customers/transactions", vec![]),
    };
    match (rest, customer) {
        ([], _) if m == "GET" => list(rq, &sc),
        ([], Some(c)) if m == "POST" => transactions_add(rq, &sc, c),
        ([], Some(_)) => method_not_allowed("GET, POST"),
        ([], None) => method_not_allowed("GET"),
        ([id], _) if id.parse::<u64>().is_ok() => match (m, customer) {
            ("GET", _) => get_one(rq, &sc, id),
            ("DELETE", Some(c)) => {
                let price = {
                    let st = rq.shared.lock();
                    find_key(&st, sc.def, &sc.fixed, id)
                        .and_then(|k| get_obj(&st, sc.def, k))
                        .and_then(|o| o.get("price").and_then(Value::as_i64))
                };
                let r = delete_one(rq, &sc, id);
                if r.status == 204 {
                    account_purchase(&mut rq.shared.lock(), c, -price.unwrap_or(0), -1);
                }
                r
            }
            ("DELETE", None) => method_not_allowed("GET"),
            _ => method_not_allowed("GET, DELETE"),
        },
        _ => not_found(),
    }
}

fn transactions_add(rq: &Rq, sc: &Scope, customer: u64) -> Response {
    let accrue = rq
        .req
        .query_pairs()
        .into_iter()
        .find(|(k, _)| k == "accrue_bonus")
        .map(|(_, v)| v);
    if accrue
        .as_deref()
        .is_some_and(|v| !matches!(v, "true" | "false" | "1" | "0"))
    {
        return validation_error(vec![("0".into(), vec![FieldError::bool("accrue_bonus")])]);
    }
    let prices: Vec<i64> = match parse_json(&rq.req.body) {
        Ok(v) => match batch_items(&v, MAX_LIMIT) {
            Ok(items) => items
                .iter()
                .map(|i| i.get("price").and_then(Value::as_i64).unwrap_or(0))
                .collect(),
            Err(r) => return r,
        },
        Err(r) => return r,
    };
    let r = create(rq, sc);
    if r.status == 200 {
        let mut st = rq.shared.lock();
        for p in prices {
            account_purchase(&mut st, customer, p, 1);
        }
    }
    r
}

// ---------------------------------------------------------------- bonus points

/// `POST /customers/{id}/bonus_points` with `{"earn": n}` or `{"redeem": n}`.
pub fn bonus_points(rq: &Rq, customer: u64) -> Response {
    let body = match parse_object(&rq.req.body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let def = crate::api::entity_def("customers");
    let Some(c) = collection(&mut st.collections, def)
        .items
        .get_mut(&customer)
    else {
        return not_found();
    };
    let balance = c.get("__bonus_points").and_then(Value::as_i64).unwrap_or(0);
    let (key, sign) = match (body.get("earn"), body.get("redeem")) {
        (Some(_), None) => ("earn", 1),
        (None, Some(_)) => ("redeem", -1),
        (None, None) => {
            return validation_error(vec![("0".into(), vec![FieldError::blank("earn")])])
        }
        (Some(_), Some(_)) => {
            return validation_error(vec![(
                "0".into(),
                vec![FieldError::new(
                    "InvalidValue",
                    "redeem",
                    "Pass either earn or redeem, not both.",
                )],
            )])
        }
    };
    let n = match body[key].as_i64() {
        Some(n) if n > 0 => n,
        _ => {
            return validation_error(vec![(
                "0".into(),
                vec![FieldError::new(
                    "InvalidValue",
                    key,
                    "This value should be a positive integer.",
                )],
            )])
        }
    };
    if sign < 0 && n > balance {
        return validation_error(vec![(
            "0".into(),
            vec![FieldError::new(
                "InvalidValue",
                "redeem",
                format!("Not enough bonus points: the customer has {balance}."),
            )],
        )]);
    }
    let now = balance + sign * n;
    c.insert("__bonus_points".into(), json!(now));
    ok(200, json!({ "bonus_points": now }))
}

// ---------------------------------------------------------------- products

/// `GET|PATCH /catalogs/products/settings`. Turning products on makes the
/// account's products catalog (type `products`) if there is none.
pub fn products_settings(rq: &Rq, m: &str) -> Response {
    let mut st = rq.shared.lock();
    let enabled = settings(&mut st)
        .get("is_enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match m {
        "GET" => ok(200, json!({ "is_enabled": enabled })),
        "PATCH" => {
            let body = match parse_object(&rq.req.body) {
                Ok(o) => o,
                Err(r) => return r,
            };
            let Some(on) = body.get("is_enabled") else {
                return validation_error(vec![("0".into(), vec![FieldError::blank("is_enabled")])]);
            };
            let Some(on) = on.as_bool() else {
                return validation_error(vec![("0".into(), vec![FieldError::bool("is_enabled")])]);
            };
            settings(&mut st).insert("is_enabled".into(), json!(on));
            if on {
                let def = crate::api::entity_def("catalogs");
                let has = st.collections.get("catalogs").is_some_and(|c| {
                    c.items
                        .values()
                        .any(|o| o.get("type") == Some(&json!("products")))
                });
                if !has {
                    let mut cx = Cx {
                        st: &mut st,
                        now: rq.shared.now(),
                        user: rq.user,
                        creating: true,
                    };
                    let item = obj(json!({"name": "Товары", "type": "products"}));
                    crate::api::insert(&mut cx, def, &[], &item);
                }
            }
            ok(200, json!({ "is_enabled": on }))
        }
        _ => method_not_allowed("GET, PATCH"),
    }
}

fn settings(st: &mut State) -> &mut Obj {
    st.collections
        .entry("products_settings")
        .or_default()
        .items
        .entry(1)
        .or_insert_with(|| obj(json!({ "is_enabled": false })))
}

// ---------------------------------------------------------------- custom field groups

pub const CF_GROUPS: EntityDef = EntityDef {
    name: "custom_field_groups",
    first_id: 27_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "name", "sort"],
    filter_alias: &[],
    id_field: "id",
    template: |id, _| {
        obj(json!({
            "id": id, "name": "", "sort": 0, "is_predefined": false, "entity_type": "",
            "fields": [], "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(
            item,
            &[("name", K::Str), ("sort", K::Int), ("fields", K::Arr)],
            &mut errs,
        );
        required(item, "name", vx, &mut errs);
        if let Some(Value::Array(fields)) = item.get("fields") {
            for (i, f) in fields.iter().enumerate() {
                match f.as_u64() {
                    Some(id) if exists(vx.st, "custom_fields", id) => {}
                    Some(_) => errs.push(FieldError::missing(format!("fields.{i}"))),
                    None => errs.push(FieldError::int(format!("fields.{i}"))),
                }
            }
        }
        errs
    },
    apply: |o, item, _| {
        copy_fields(
            o,
            item,
            &[("name", K::Str), ("sort", K::Int), ("fields", K::Arr)],
        );
        // amoCRM's group ids are strings: `{entity type}_{number}`.
        if let Some(Value::Number(n)) = o.get("id").cloned() {
            let et = o
                .get("__scope")
                .and_then(Value::as_str)
                .unwrap_or("")
                .replace('/', "_");
            o.insert("id".into(), json!(format!("{et}_{n}")));
        }
    },
    search: name_search,
    decorate: no_decorate,
    self_path: Some(|o| {
        format!(
            "{}/custom_fields/groups/{}",
            o.get("__scope").and_then(Value::as_str).unwrap_or(""),
            o.get("id").and_then(scalar_string).unwrap_or_default()
        )
    }),
    on_delete: |_, o| {
        if o.get("is_predefined") == Some(&json!(true)) {
            Err(crate::api::bad_request(
                "A predefined group cannot be deleted",
            ))
        } else {
            Ok(())
        }
    },
    event: None,
};

/// `/{scope}/custom_fields/groups[/{id}]`.
pub fn cf_groups(rq: &Rq, m: &str, scope: &str, entity_type: &str, rest: &[&str]) -> Response {
    let sc = Scope::new(
        "custom_field_groups",
        format!("{scope}/custom_fields/groups"),
        vec![
            ("__scope", json!(scope)),
            ("entity_type", json!(entity_type)),
        ],
    );
    match rest {
        [] => match m {
            "GET" => list(rq, &sc),
            "POST" => create(rq, &sc),
            _ => method_not_allowed("GET, POST"),
        },
        [id] => match m {
            "GET" => get_one(rq, &sc, id),
            "PATCH" => patch_one(rq, &sc, id),
            "DELETE" => delete_one(rq, &sc, id),
            _ => method_not_allowed("GET, PATCH, DELETE"),
        },
        _ => not_found(),
    }
}

// ---------------------------------------------------------------- event types

/// The event types the emulator records or amoCRM commonly lists, with
/// their numeric type and Russian label.
const EVENT_TYPES: &[(&str, i64, &str)] = &[
    ("lead_added", 1, "Новая сделка"),
    ("lead_deleted", 2, "Сделка удалена"),
    ("lead_restored", 3, "Сделка восстановлена"),
    ("lead_status_changed", 4, "Изменение этапа продажи"),
    ("lead_linked", 5, "Прикрепление сделки"),
    ("lead_unlinked", 6, "Открепление сделки"),
    ("contact_added", 7, "Новый контакт"),
    ("contact_deleted", 8, "Контакт удален"),
    ("contact_restored", 9, "Контакт восстановлен"),
    ("company_added", 12, "Новая компания"),
    ("company_deleted", 13, "Компания удалена"),
    ("customer_added", 17, "Новый покупатель"),
    ("customer_deleted", 18, "Покупатель удален"),
    ("task_added", 24, "Новая задача"),
    ("task_deleted", 25, "Задача удалена"),
    ("task_completed", 26, "Завершение задачи"),
    ("incoming_chat_message", 40, "Входящее сообщение"),
    ("outgoing_chat_message", 41, "Исходящее сообщение"),
    ("talk_created", 44, "Новая беседа"),
    ("talk_closed", 45, "Беседа закрыта"),
    ("entity_tag_added", 52, "Теги добавлены"),
    ("entity_tag_deleted", 53, "Теги убраны"),
    ("transaction_added", 60, "Добавлена покупка"),
];

pub fn event_types(rq: &Rq) -> Response {
    let (page, limit) = match page_limit(&rq.req.query_pairs()) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let all: Vec<Value> = EVENT_TYPES
        .iter()
        .map(|(key, ty, lang)| json!({"key": key, "type": ty, "lang": lang}))
        .collect();
    let (slice, next) = paginate(all, page, limit);
    page_answer(rq, "events/types", "events_types", slice, next, page, limit)
}

// ---------------------------------------------------------------- subscriptions

pub const SUBSCRIPTIONS: EntityDef = EntityDef {
    name: "subscriptions",
    first_id: 28_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["subscriber_id", "type"],
    filter_alias: &[],
    id_field: "subscriber_id",
    template: |_, _| obj(json!({"subscriber_id": 0, "type": "user"})),
    validate: no_validate,
    apply: no_apply,
    search: no_search,
    decorate: drop_links_field,
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

/// `/{leads|customers}/{id}/subscriptions[/{user_id}]`: GET the list, POST
/// `[{"user_id": n}, …]` to subscribe users, DELETE one user's.
pub fn subscriptions(rq: &Rq, m: &str, et: &str, id: u64, rest: &[&str]) -> Response {
    if !exists(&rq.shared.lock(), et, id) {
        return not_found();
    }
    let fixed = vec![("__entity_type", json!(et)), ("__entity_id", json!(id))];
    let sc = Scope::new(
        "subscriptions",
        format!("{et}/{id}/subscriptions"),
        fixed.clone(),
    );
    match (rest, m) {
        ([], "GET") => list(rq, &sc),
        ([], "POST") => subscribe(rq, &sc),
        ([], _) => method_not_allowed("GET, POST"),
        ([user], "DELETE") => {
            let mut st = rq.shared.lock();
            let Some(key) = find_key(&st, sc.def, &sc.fixed, user) else {
                return not_found();
            };
            collection(&mut st.collections, sc.def).items.remove(&key);
            Response::empty(204)
        }
        ([_], _) => method_not_allowed("DELETE"),
        _ => not_found(),
    }
}

fn subscribe(rq: &Rq, sc: &Scope) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, MAX_LIMIT) {
        Ok(i) => i.clone(),
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let mut errors = Vec::new();
    let mut users = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get("user_id").and_then(Value::as_u64) {
            Some(u) if exists(&st, "users", u) => users.push(u),
            Some(_) => errors.push((request_id(item, i), vec![FieldError::missing("user_id")])),
            None => errors.push((request_id(item, i), vec![FieldError::blank("user_id")])),
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    for u in users {
        if find_key(&st, sc.def, &sc.fixed, &u.to_string()).is_some() {
            continue;
        }
        let col = collection(&mut st.collections, sc.def);
        let key = col.next_id;
        col.next_id += 1;
        let mut o = obj(json!({"subscriber_id": u, "type": "user"}));
        for (k, v) in &sc.fixed {
            o.insert((*k).into(), v.clone());
        }
        col.items.insert(key, o);
    }
    drop(st);
    list(rq, sc)
}

// ---------------------------------------------------------------- website buttons

pub const WEBSITE_BUTTONS: EntityDef = EntityDef {
    name: "website_buttons",
    first_id: 29_000_001,
    max_batch: 1,
    filter_fields: &["source_id", "pipeline_id"],
    filter_alias: &[],
    id_field: "source_id",
    template: bare_template,
    validate: no_validate,
    apply: no_apply,
    search: name_search,
    decorate: |o, rx| {
        if !rx.with("scripts") {
            o.remove("script");
        }
    },
    self_path: Some(|o| format!("website_buttons/{}", o["source_id"])),
    on_delete: delete_ok,
    event: None,
};

fn websites(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.as_str() {
                Some(s) if !s.trim().is_empty() => Some(s.to_string()),
                _ => {
                    errs.push(FieldError::string(format!("{path}.{i}")));
                    None
                }
            })
            .collect(),
        Some(_) => {
            errs.push(FieldError::array(path));
            Vec::new()
        }
    }
}

fn button_script(button_id: u64) -> String {
    format!(
        "<script>(function(a,m,o,c,r,m2){{a[m]={{id:\"{button_id}\",hash:\"emulated\",locale:\"ru\"}};}})(window,\"amoSocialButtonConfig\");</script>"
    )
}

/// `/website_buttons[/{source_id}[/online_chat]]`.
pub fn website_buttons(rq: &Rq, m: &str, rest: &[&str]) -> Response {
    let sc = || Scope::plain("website_buttons");
    match (rest, m) {
        ([], "GET") => list(rq, &sc()),
        ([], "POST") => button_create(rq),
        ([], _) => method_not_allowed("GET, POST"),
        ([id], "GET") => get_one(rq, &sc(), id),
        ([id], "PATCH") => button_update(rq, id),
        ([_], _) => method_not_allowed("GET, PATCH"),
        ([id, "online_chat"], "POST") => {
            let mut st = rq.shared.lock();
            let Some(b) = id.parse::<u64>().ok().and_then(|k| {
                collection(&mut st.collections, &WEBSITE_BUTTONS)
                    .items
                    .get_mut(&k)
            }) else {
                return not_found();
            };
            b.insert("has_online_chat".into(), json!(true));
            Response::empty(202)
        }
        ([_, "online_chat"], _) => method_not_allowed("POST"),
        _ => not_found(),
    }
}

fn button_create(rq: &Rq) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let mut errs = Vec::new();
    check_fields(
        &b,
        &[
            ("pipeline_id", K::Int),
            ("is_used_in_app", K::Bool),
            ("name", K::Str),
        ],
        &mut errs,
    );
    match b.get("pipeline_id").and_then(Value::as_u64) {
        None => errs.push(FieldError::blank("pipeline_id")),
        Some(p) if !exists(&st, "pipelines", p) => errs.push(FieldError::missing("pipeline_id")),
        _ => {}
    }
    let sites = websites(b.get("trusted_websites"), "trusted_websites", &mut errs);
    if !errs.is_empty() {
        return validation_error(vec![("0".into(), errs)]);
    }
    let col = collection(&mut st.collections, &WEBSITE_BUTTONS);
    let id = col.next_id;
    col.next_id += 1;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("Кнопка на сайт {id}"));
    let button_id = id + 1_000_000;
    col.items.insert(
        id,
        obj(json!({
            "source_id": id, "account_id": ACCOUNT_ID, "name": name, "button_id": button_id,
            "is_duplication_control_enabled": false, "pipeline_id": b["pipeline_id"],
            "creation_status": "created", "is_deleted": false,
            "trusted_websites": sites, "is_used_in_app": b.get("is_used_in_app").cloned().unwrap_or(json!(false)),
            "script": button_script(button_id), "_links": null,
        })),
    );
    ok(
        202,
        json!({"source_id": id, "trusted_websites": sites, "name": name}),
    )
}

fn button_update(rq: &Rq, id: &str) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut errs = Vec::new();
    check_fields(
        &b,
        &[("name", K::Str), ("trusted_websites", K::Obj)],
        &mut errs,
    );
    let add = websites(
        b.get("trusted_websites").and_then(|t| t.get("add")),
        "trusted_websites.add",
        &mut errs,
    );
    if add.is_empty() && b.get("name").is_none_or(Value::is_null) && errs.is_empty() {
        errs.push(FieldError::blank("trusted_websites.add"));
    }
    if !errs.is_empty() {
        return validation_error(vec![("0".into(), errs)]);
    }
    let mut st = rq.shared.lock();
    let Some(o) = id.parse::<u64>().ok().and_then(|k| {
        collection(&mut st.collections, &WEBSITE_BUTTONS)
            .items
            .get_mut(&k)
    }) else {
        return not_found();
    };
    if let Some(Value::Array(sites)) = o.get_mut("trusted_websites") {
        for s in add {
            if !sites.contains(&json!(s)) {
                sites.push(json!(s));
            }
        }
    }
    if let Some(n) = b.get("name").and_then(Value::as_str) {
        o.insert("name".into(), json!(n));
    }
    let o = o.clone();
    let rx = Rx {
        st: &st,
        with: &[],
        referer: &rq.shared.referer,
    };
    ok(200, render(&WEBSITE_BUTTONS, &o, &rx))
}

// ---------------------------------------------------------------- chat templates

const TEMPLATE_SPEC: Spec = &[
    ("name", K::Str),
    ("content", K::Str),
    ("buttons", K::Arr),
    ("is_editable", K::Bool),
    ("external_id", K::Str),
    ("attachment", K::Obj),
    ("type", K::Str),
    ("waba_header", K::Str),
    ("waba_footer", K::Str),
    ("waba_category", K::Str),
    ("waba_language", K::Str),
    ("waba_examples", K::Obj),
];

pub const CHAT_TEMPLATES: EntityDef = EntityDef {
    name: "chat_templates",
    first_id: 30_000_001,
    max_batch: MAX_LIMIT,
    filter_fields: &["id", "external_id", "type", "created_at", "updated_at"],
    filter_alias: &[],
    id_field: "id",
    template: |id, now| {
        obj(json!({
            "id": id, "account_id": ACCOUNT_ID, "name": "", "content": "", "buttons": [],
            "attachment": null, "is_editable": true, "external_id": null, "type": "amocrm",
            "created_at": now, "updated_at": now, "_links": null,
        }))
    },
    validate: |item, vx| {
        let mut errs = Vec::new();
        check_fields(item, TEMPLATE_SPEC, &mut errs);
        required(item, "name", vx, &mut errs);
        required(item, "content", vx, &mut errs);
        if let Some(t) = item.get("type").and_then(Value::as_str) {
            if !matches!(t, "amocrm" | "waba") {
                errs.push(FieldError::choice("type"));
            }
        }
        if let Some(Some(e)) = vx.existing.map(|e| e.get("is_editable")) {
            if e == &json!(false) {
                errs.push(FieldError::new(
                    "NotEditable",
                    "",
                    "This template cannot be edited.",
                ));
            }
        }
        errs
    },
    apply: |o, item, _| copy_fields(o, item, TEMPLATE_SPEC),
    search: name_search,
    decorate: |o, rx| {
        if !rx.with("reviews") {
            o.remove("_embedded");
        } else if !o.contains_key("_embedded") {
            o.insert("_embedded".into(), json!({ "reviews": [] }));
        }
    },
    self_path: None,
    on_delete: delete_ok,
    event: None,
};

const REVIEW_STATUSES: &[&str] = &["draft", "review", "rejected", "approved", "paused"];

/// `/chats/templates[/{id}[/review[/{review_id}]]]`.
pub fn chat_templates(rq: &Rq, m: &str, rest: &[&str]) -> Response {
    let sc = || Scope::new("chat_templates", "chats/templates", vec![]);
    match (rest, m) {
        ([], "GET") => list(rq, &sc()),
        ([], "POST") => create(rq, &sc()),
        ([], "PATCH") => patch_batch(rq, &sc()),
        ([], "DELETE") => templates_delete(rq),
        ([], _) => method_not_allowed("GET, POST, PATCH, DELETE"),
        ([id], "GET") => get_one(rq, &sc(), id),
        ([id], "PATCH") => patch_one(rq, &sc(), id),
        ([id], "DELETE") => delete_one(rq, &sc(), id),
        ([_], _) => method_not_allowed("GET, PATCH, DELETE"),
        ([id, "review"], "POST") => send_on_review(rq, id),
        ([_, "review"], _) => method_not_allowed("POST"),
        ([id, "review", rid], "POST") => review_status(rq, id, rid),
        ([_, "review", _], _) => method_not_allowed("POST"),
        _ => not_found(),
    }
}

fn templates_delete(rq: &Rq) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, MAX_LIMIT) {
        Ok(i) => i.clone(),
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get("id").and_then(Value::as_u64) {
            Some(id) if exists(&st, "chat_templates", id) => keys.push(id),
            Some(_) => errors.push((request_id(item, i), vec![FieldError::missing("id")])),
            None => errors.push((request_id(item, i), vec![FieldError::blank("id")])),
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let col = collection(&mut st.collections, &CHAT_TEMPLATES);
    for k in keys {
        col.items.remove(&k);
    }
    Response::empty(204)
}

fn review_counter(st: &mut State) -> u64 {
    let c = st
        .collections
        .entry("chat_template_reviews")
        .or_insert_with(|| Collection {
            next_id: 31_000_001,
            ..Collection::default()
        });
    let id = c.next_id;
    c.next_id += 1;
    id
}

/// A WhatsApp (`waba`) template goes to review once per WhatsApp source;
/// an `amocrm` template has nothing to review.
fn send_on_review(rq: &Rq, id: &str) -> Response {
    let mut st = rq.shared.lock();
    let Some(key) = id
        .parse::<u64>()
        .ok()
        .filter(|k| exists(&st, "chat_templates", *k))
    else {
        return not_found();
    };
    let is_waba =
        get_obj(&st, &CHAT_TEMPLATES, key).and_then(|o| o.get("type")) == Some(&json!("waba"));
    if !is_waba {
        return validation_error(vec![("0".into(), vec![FieldError::choice("type")])]);
    }
    let sources: Vec<u64> = st
        .collections
        .get("sources")
        .map(|c| c.items.keys().copied().collect())
        .unwrap_or_default();
    let targets: Vec<Option<u64>> = if sources.is_empty() {
        vec![None]
    } else {
        sources.into_iter().map(Some).collect()
    };
    let mut reviews = Vec::new();
    for s in targets {
        let rid = review_counter(&mut st);
        reviews.push(json!({"id": rid, "source_id": s, "status": "review", "reject_reason": null}));
    }
    let col = collection(&mut st.collections, &CHAT_TEMPLATES);
    if let Some(o) = col.items.get_mut(&key) {
        o.insert("_embedded".into(), json!({ "reviews": reviews }));
    }
    ok(200, json!({"_embedded": {"reviews": reviews}}))
}

fn review_status(rq: &Rq, id: &str, rid: &str) -> Response {
    let body = match parse_object(&rq.req.body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut errs = Vec::new();
    check_fields(
        &body,
        &[("status", K::Str), ("reject_reason", K::Str)],
        &mut errs,
    );
    match body.get("status").and_then(Value::as_str) {
        None => errs.push(FieldError::blank("status")),
        Some(s) if !REVIEW_STATUSES.contains(&s) => errs.push(FieldError::choice("status")),
        _ => {}
    }
    if !errs.is_empty() {
        return validation_error(vec![("0".into(), errs)]);
    }
    let mut st = rq.shared.lock();
    let col = collection(&mut st.collections, &CHAT_TEMPLATES);
    let Some(o) = id.parse::<u64>().ok().and_then(|k| col.items.get_mut(&k)) else {
        return not_found();
    };
    let Some(Value::Array(reviews)) = o.get_mut("_embedded").and_then(|e| e.get_mut("reviews"))
    else {
        return not_found();
    };
    let Some(r) = reviews
        .iter_mut()
        .find(|r| r.get("id").and_then(scalar_string).as_deref() == Some(rid))
    else {
        return not_found();
    };
    r["status"] = body["status"].clone();
    r["reject_reason"] = body.get("reject_reason").cloned().unwrap_or(Value::Null);
    ok(200, r.clone())
}

// ---------------------------------------------------------------- talks

pub const TALKS: EntityDef = EntityDef {
    name: "talks",
    first_id: 32_000_001,
    max_batch: 1,
    filter_fields: &["talk_id"],
    filter_alias: &[],
    id_field: "talk_id",
    template: bare_template,
    validate: no_validate,
    apply: no_apply,
    search: no_search,
    decorate: |o, rx| {
        if let Some(c) = o.get("contact_id").and_then(Value::as_u64) {
            o.insert(
                "_embedded".into(),
                json!({"contacts": [{"id": c, "_links": rx.href(&format!("contacts/{c}"))}]}),
            );
        }
    },
    self_path: Some(|o| format!("talks/{}", o["talk_id"])),
    on_delete: delete_ok,
    event: None,
};

/// `GET /talks/{id}` (404 when there is none) and `POST /talks/{id}/close`.
pub fn talks(rq: &Rq, m: &str, rest: &[&str]) -> Response {
    match (rest, m) {
        ([id], "GET") => {
            let r = get_one(rq, &Scope::plain("talks"), id);
            if r.status == 204 {
                crate::api::problem(404, "Not Found", "Talk not found")
            } else {
                r
            }
        }
        ([_], _) => method_not_allowed("GET"),
        ([id, "close"], "POST") => {
            let body = match parse_object(&rq.req.body) {
                Ok(o) => o,
                Err(r) => return r,
            };
            let mut errs = Vec::new();
            check_fields(&body, &[("force_close", K::Bool)], &mut errs);
            if !errs.is_empty() {
                return validation_error(vec![("0".into(), errs)]);
            }
            let now = rq.shared.now();
            let mut st = rq.shared.lock();
            let Some(t) = id
                .parse::<u64>()
                .ok()
                .and_then(|k| collection(&mut st.collections, &TALKS).items.get_mut(&k))
            else {
                return crate::api::problem(404, "Not Found", "Talk not found");
            };
            t.insert("is_in_work".into(), json!(false));
            t.insert("updated_at".into(), json!(now));
            Response::empty(202)
        }
        ([_, "close"], _) => method_not_allowed("POST"),
        _ => not_found(),
    }
}

/// Talks exist only where chats (amojo) made them: the emulator's account
/// starts with two open ones, about the seeded contact when there is one.
pub fn seed(st: &mut State) {
    let contact = st
        .collections
        .get("contacts")
        .and_then(|c| c.items.keys().next().copied());
    let col = collection(&mut st.collections, &TALKS);
    for (i, origin) in ["telegram", "viber"].iter().enumerate() {
        let id = col.next_id;
        col.next_id += 1;
        col.items.insert(
            id,
            obj(json!({
                "talk_id": id, "created_at": 1_700_000_000 + i as i64, "updated_at": 1_700_000_000 + i as i64,
                "rate": 0, "contact_id": contact, "chat_id": format!("emulated-chat-{id}"),
                "entity_id": null, "entity_type": null, "is_in_work": true, "is_read": false,
                "origin": origin, "missed_at": null, "account_id": ACCOUNT_ID, "_links": null,
            })),
        );
    }
}
