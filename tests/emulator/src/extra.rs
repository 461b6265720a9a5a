//! API endpoints that are not plain collections: account, leads/complex,
//! unsorted, tags, links, webhooks, calls, widgets, short links, currencies.

use serde_json::{json, Map, Value};

use crate::api::{
    bad_request, batch_items, collection, entity_def, exists, find_key, get_obj, get_one, insert,
    list, not_found, page_answer, paginate, parse_json, parse_object, problem, render, request_id,
    update, validation_error, Cx, FieldError, Obj, Rq, Rx, Scope, Vx, HAL, MAX_LIMIT,
};
use crate::entities::{
    self as ent, add_link, apply_cfv, cf_values, contact_validate, drop_links, first_status,
    lead_validate, linkable, linked, main_pipeline, obj, remove_link, same_phone, status_exists,
    unsorted_status, COMPANIES, CONTACTS, LEADS, NOTES, UNSORTED, WEBHOOKS, WIDGETS,
};
use crate::http::Response;
use crate::oauth::{ACCOUNT_ID, USER_ID};
use crate::state::State;
use crate::util::{random_bytes, random_hex};

fn ok(v: Value) -> Response {
    Response::json(200, HAL, &v)
}

/// Errors of a nested item, with their paths under `prefix`.
fn prefixed(errs: Vec<FieldError>, prefix: &str) -> Vec<FieldError> {
    errs.into_iter()
        .map(|mut e| {
            e.path = if e.path.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{}", e.path)
            };
            e
        })
        .collect()
}

fn cx<'a>(st: &'a mut State, rq: &Rq) -> Cx<'a> {
    Cx {
        st,
        now: rq.shared.now(),
        user: rq.user,
        creating: true,
    }
}

fn vx(st: &State) -> Vx<'_> {
    Vx {
        st,
        existing: None,
        fixed: &[],
    }
}

fn id_link(rq: &Rq, ty: &str, id: u64) -> Value {
    json!({"id": id, "_links": rq.href(&format!("{ty}/{id}"))})
}

// ---------------------------------------------------------------- account

pub fn account(rq: &Rq) -> Response {
    let shared = rq.shared;
    let with = rq.with();
    let has = |w: &str| with.iter().any(|x| x == w);
    let mut body = ent::obj(json!({
        "id": ACCOUNT_ID,
        "name": "Emulated account",
        "subdomain": "emulator",
        "created_at": shared.started_at,
        "created_by": 0,
        "updated_at": shared.started_at,
        "updated_by": 0,
        "current_user_id": rq.user.unwrap_or(USER_ID),
        "country": "RU",
        "currency": "RUB",
        "currency_symbol": "₽",
        "customers_mode": crate::migration::account_customers_mode(rq),
        "is_unsorted_on": true,
        "mobile_feature_version": 0,
        "is_loss_reason_enabled": true,
        "is_helpbot_enabled": false,
        "is_technical_account": false,
        "contact_name_display_order": 1,
        "amojo_id": shared.amojo_id,
    }));
    if has("amojo_rights") {
        body.insert(
            "amojo_rights".into(),
            json!({"can_direct": true, "can_create_groups": true}),
        );
    }
    if has("version") {
        body.insert("version".into(), json!(22));
    }
    if has("is_api_filter_enabled") {
        body.insert("is_api_filter_enabled".into(), json!(true));
    }
    if has("drive_url") {
        body.insert("drive_url".into(), json!(crate::drive::drive_url(shared)));
    }
    body.insert("_links".into(), rq.href("account"));
    let mut emb = Map::new();
    if has("users_groups") {
        emb.insert(
            "users_groups".into(),
            json!([{"id": 0, "name": "Отдел продаж", "uuid": null}]),
        );
    }
    if has("task_types") {
        emb.insert(
            "task_types".into(),
            json!([
                {"id": 1, "name": "Связаться", "color": null, "icon_id": null, "code": "FOLLOW_UP"},
                {"id": 2, "name": "Встреча", "color": null, "icon_id": null, "code": "MEETING"}
            ]),
        );
    }
    if has("datetime_settings") {
        emb.insert(
            "datetime_settings".into(),
            json!({
                "date_pattern": "d.m.Y H:i",
                "short_date_pattern": "d.m.Y",
                "short_time_pattern": "H:i",
                "date_format": "d.m.Y",
                "time_format": "H:i:s",
                "timezone": "Europe/Moscow",
                "timezone_offset": "+03:00",
            }),
        );
    }
    if has("entity_names") {
        let names = |one: &str, few: &str, many: &str, gender: &str| json!({"ru": {"gender": gender, "plural_form": {"dative": many, "default": many, "genitive": many, "accusative": few, "instrumental": many, "prepositional": many}, "singular_form": {"dative": one, "default": one, "genitive": one, "accusative": one, "instrumental": one, "prepositional": one}}});
        emb.insert(
            "entity_names".into(),
            json!({"leads": names("Сделка", "Сделки", "Сделки", "f")}),
        );
    }
    if has("invoices_settings") {
        emb.insert(
            "invoices_settings".into(),
            json!({"lang": "ru", "invoices_catalog_id": null, "is_enabled": false}),
        );
    }
    if !emb.is_empty() {
        body.insert("_embedded".into(), Value::Object(emb));
    }
    ok(Value::Object(body))
}

// ---------------------------------------------------------------- leads/complex

const COMPLEX_MAX: usize = 50;

/// `_embedded.{key}` of an item: absent → empty; at most `max`.
fn nested<'a>(o: &'a Obj, key: &str, max: usize, errs: &mut Vec<FieldError>) -> Vec<&'a Obj> {
    let path = format!("_embedded.{key}");
    match o.get("_embedded").and_then(|e| e.get(key)) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => {
            if list.len() > max {
                errs.push(FieldError::new(
                    "Count",
                    path.clone(),
                    format!("This collection should contain {max} element or less."),
                ));
            }
            let mut out = Vec::new();
            for (i, x) in list.iter().enumerate() {
                match x.as_object() {
                    Some(x) => out.push(x),
                    None => errs.push(FieldError::object(format!("{path}.{i}"))),
                }
            }
            out
        }
        Some(_) => {
            errs.push(FieldError::array(path));
            Vec::new()
        }
    }
}

/// The item without `_embedded.{keys}`.
fn without(o: &Obj, keys: &[&str]) -> Obj {
    let mut o = o.clone();
    if let Some(Value::Object(e)) = o.get_mut("_embedded") {
        for k in keys {
            e.remove(*k);
        }
    }
    o
}

/// Check nested contacts/companies: an `id` must exist, otherwise the item
/// is validated as a new entity.
fn check_nested(
    list: &[&Obj],
    key: &str,
    st: &State,
    validate: fn(&Obj, &Vx) -> Vec<FieldError>,
    errs: &mut Vec<FieldError>,
) {
    for (j, c) in list.iter().enumerate() {
        let p = format!("_embedded.{key}.{j}");
        match c.get("id").filter(|v| !v.is_null()) {
            Some(id) => match id.as_u64() {
                Some(id) if exists(st, key, id) => {}
                Some(_) => errs.push(FieldError::missing(format!("{p}.id"))),
                None => errs.push(FieldError::int(format!("{p}.id"))),
            },
            None => errs.extend(prefixed(validate(c, &vx(st)), &p)),
        }
    }
}

/// A stored contact with one of the phones or emails of a new one.
fn duplicate_contact(st: &State, item: &Obj) -> Option<u64> {
    let mut tmp = Map::new();
    apply_cfv(&mut tmp, item, st, "contacts", true);
    let phones = cf_values(&tmp, "PHONE");
    let emails = cf_values(&tmp, "EMAIL");
    if phones.is_empty() && emails.is_empty() {
        return None;
    }
    st.collections
        .get("contacts")?
        .items
        .iter()
        .find_map(|(id, c)| {
            let hit = cf_values(c, "PHONE")
                .iter()
                .any(|p| phones.iter().any(|q| same_phone(p, q)))
                || cf_values(c, "EMAIL").iter().any(|e| {
                    emails
                        .iter()
                        .any(|q| !q.trim().is_empty() && q.trim().eq_ignore_ascii_case(e.trim()))
                });
            hit.then_some(*id)
        })
}

pub fn complex(rq: &Rq) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, COMPLEX_MAX) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rid = request_id(item, i);
        let Some(o) = item.as_object() else {
            errors.push((rid, vec![FieldError::object("")]));
            continue;
        };
        let mut errs = lead_validate(&without(o, &["contacts", "companies"]), &vx(&st));
        let contacts = nested(o, "contacts", 1, &mut errs);
        let companies = nested(o, "companies", 1, &mut errs);
        check_nested(&contacts, "contacts", &st, contact_validate, &mut errs);
        check_nested(
            &companies,
            "companies",
            &st,
            ent::company_validate,
            &mut errs,
        );
        if !errs.is_empty() {
            errors.push((rid, errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let mut cx = cx(&mut st, rq);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let empty = Map::new();
        let o = item.as_object().unwrap_or(&empty);
        let mut ignore = Vec::new();
        let contact = nested(o, "contacts", 1, &mut ignore).into_iter().next();
        let company = nested(o, "companies", 1, &mut ignore).into_iter().next();
        let mut merged = false;
        let contact_id = contact.map(|c| match c.get("id").and_then(Value::as_u64) {
            Some(id) => id,
            None => match duplicate_contact(cx.st, c) {
                Some(id) => {
                    merged = true;
                    id
                }
                None => insert(&mut cx, &CONTACTS, &[], c),
            },
        });
        let company_id = company.map(|c| match c.get("id").and_then(Value::as_u64) {
            Some(id) => id,
            None => insert(&mut cx, &COMPANIES, &[], c),
        });
        let lead = without(o, &["contacts", "companies", "metadata", "source"]);
        let lead_id = insert(&mut cx, &LEADS, &[], &lead);
        if let Some(c) = contact_id {
            add_link(
                cx.st,
                ("leads", lead_id),
                ("contacts", c),
                &json!({"main_contact": true}),
            );
        }
        if let Some(co) = company_id {
            add_link(cx.st, ("leads", lead_id), ("companies", co), &Value::Null);
            if let Some(c) = contact_id {
                if linked(cx.st, "contacts", c, "companies").is_empty() {
                    add_link(cx.st, ("contacts", c), ("companies", co), &Value::Null);
                }
            }
        }
        out.push(json!({
            "id": lead_id,
            "contact_id": contact_id,
            "company_id": company_id,
            "request_id": [request_id(item, i)],
            "merged": merged,
        }));
    }
    ok(Value::Array(out))
}

// ---------------------------------------------------------------- unsorted

fn pending() -> Vec<(&'static str, Value)> {
    vec![("__state", json!("pending"))]
}

pub fn unsorted(rq: &Rq, m: &str, rest: &[&str]) -> Response {
    let sc = Scope::new("unsorted", "leads/unsorted", pending());
    match (m, rest) {
        ("GET", []) => list(rq, &sc),
        (_, []) => crate::api::method_not_allowed("GET"),
        ("POST", [cat @ ("forms" | "sip")]) => unsorted_create(rq, cat),
        (_, ["forms" | "sip"]) => crate::api::method_not_allowed("POST"),
        ("GET", ["summary"]) => unsorted_summary(rq),
        (_, ["summary"]) => crate::api::method_not_allowed("GET"),
        ("GET", [uid]) => get_one(rq, &sc, uid),
        (_, [_]) => crate::api::method_not_allowed("GET"),
        ("POST", [uid, "accept"]) => unsorted_accept(rq, uid),
        (_, [_, "accept"]) => crate::api::method_not_allowed("POST"),
        ("DELETE", [uid, "decline"]) => unsorted_decline(rq, uid),
        (_, [_, "decline"]) => crate::api::method_not_allowed("DELETE"),
        ("POST", [uid, "link"]) => unsorted_link(rq, uid),
        (_, [_, "link"]) => crate::api::method_not_allowed("POST"),
        _ => not_found(),
    }
}

/// Metadata each category needs.
fn metadata_required(cat: &str) -> &'static [&'static str] {
    match cat {
        "forms" => &["form_id", "form_name", "form_page", "form_sent_at"],
        _ => &["uniq", "duration", "service_code", "phone"],
    }
}

fn unsorted_create(rq: &Rq, cat: &str) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, MAX_LIMIT) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rid = request_id(item, i);
        let Some(o) = item.as_object() else {
            errors.push((rid, vec![FieldError::object("")]));
            continue;
        };
        let mut errs = Vec::new();
        for f in ["source_uid", "source_name"] {
            match o.get(f) {
                Some(Value::String(s)) if !s.trim().is_empty() => {}
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    errs.push(FieldError::blank(f))
                }
                Some(_) => errs.push(FieldError::string(f)),
            }
        }
        match o.get("pipeline_id") {
            None | Some(Value::Null) => {}
            Some(p) => match p.as_u64() {
                Some(p) if exists(&st, "pipelines", p) => {}
                Some(_) => errs.push(FieldError::missing("pipeline_id")),
                None => errs.push(FieldError::int("pipeline_id")),
            },
        }
        if o.get("created_at")
            .is_some_and(|c| !c.is_null() && c.as_i64().is_none())
        {
            errs.push(FieldError::int("created_at"));
        }
        match o.get("metadata") {
            Some(Value::Object(md)) => {
                for f in metadata_required(cat) {
                    if md.get(*f).is_none_or(|v| v.is_null() || v == "") {
                        errs.push(FieldError::blank(format!("metadata.{f}")));
                    }
                }
            }
            None | Some(Value::Null) => errs.push(FieldError::blank("metadata")),
            Some(_) => errs.push(FieldError::object("metadata")),
        }
        let leads = nested(o, "leads", 1, &mut errs);
        let contacts = nested(o, "contacts", MAX_LIMIT, &mut errs);
        let companies = nested(o, "companies", 1, &mut errs);
        for (j, l) in leads.iter().enumerate() {
            let l = without(l, &["contacts", "companies"]);
            errs.extend(prefixed(
                lead_validate(&l, &vx(&st)),
                &format!("_embedded.leads.{j}"),
            ));
        }
        check_nested(&contacts, "contacts", &st, contact_validate, &mut errs);
        check_nested(
            &companies,
            "companies",
            &st,
            ent::company_validate,
            &mut errs,
        );
        if !errs.is_empty() {
            errors.push((rid, errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let now = rq.shared.now();
    let mut cx = cx(&mut st, rq);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let empty = Map::new();
        let o = item.as_object().unwrap_or(&empty);
        let mut ignore = Vec::new();
        let pipeline = o
            .get("pipeline_id")
            .and_then(Value::as_u64)
            .or_else(|| main_pipeline(cx.st))
            .unwrap_or(ent::DEFAULT_PIPELINE_ID as u64);
        let status = unsorted_status(cx.st, pipeline).or_else(|| first_status(cx.st, pipeline));
        let mut lead = nested(o, "leads", 1, &mut ignore)
            .first()
            .map(|l| without(l, &["contacts", "companies"]))
            .unwrap_or_default();
        lead.insert("pipeline_id".into(), json!(pipeline));
        if let Some(s) = status {
            lead.insert("status_id".into(), json!(s));
        }
        let lead_id = insert(&mut cx, &LEADS, &[], &lead);
        let mut contact_ids = Vec::new();
        for c in nested(o, "contacts", MAX_LIMIT, &mut ignore) {
            let id = match c.get("id").and_then(Value::as_u64) {
                Some(id) => id,
                None => {
                    let id = insert(&mut cx, &CONTACTS, &[], c);
                    if let Some(stored) = collection(&mut cx.st.collections, &CONTACTS)
                        .items
                        .get_mut(&id)
                    {
                        stored.insert("is_unsorted".into(), json!(true));
                    }
                    id
                }
            };
            add_link(cx.st, ("leads", lead_id), ("contacts", id), &Value::Null);
            contact_ids.push(id);
        }
        let mut company_ids = Vec::new();
        for c in nested(o, "companies", 1, &mut ignore) {
            let id = match c.get("id").and_then(Value::as_u64) {
                Some(id) => id,
                None => insert(&mut cx, &COMPANIES, &[], c),
            };
            add_link(cx.st, ("leads", lead_id), ("companies", id), &Value::Null);
            company_ids.push(id);
        }
        let uid = random_hex(20);
        let created_at = o.get("created_at").and_then(Value::as_i64).unwrap_or(now);
        let col = collection(&mut cx.st.collections, &UNSORTED);
        let key = col.next_id;
        col.next_id += 1;
        col.items.insert(
            key,
            obj(json!({
                "uid": uid,
                "source_uid": o.get("source_uid"),
                "source_name": o.get("source_name"),
                "category": cat,
                "pipeline_id": pipeline,
                "created_at": created_at,
                "metadata": o.get("metadata"),
                "account_id": ACCOUNT_ID,
                "_links": null,
                "_embedded": {"leads": [lead_id], "contacts": contact_ids, "companies": company_ids},
                "__state": "pending",
                "__sorted_at": null,
            })),
        );
        out.push(json!({
            "uid": uid,
            "account_id": ACCOUNT_ID,
            "request_id": request_id(item, i),
            "_embedded": {
                "leads": [id_link(rq, "leads", lead_id)],
                "contacts": contact_ids.iter().map(|c| id_link(rq, "contacts", *c)).collect::<Vec<_>>(),
                "companies": company_ids.iter().map(|c| id_link(rq, "companies", *c)).collect::<Vec<_>>(),
            },
        }));
    }
    ok(json!({
        "_total_items": out.len(),
        "_page": 1,
        "_page_count": 1,
        "_links": rq.href(&format!("leads/unsorted/{cat}")),
        "_embedded": {"unsorted": out},
    }))
}

/// The pending unsorted item with this uid: (key, object).
fn pending_item(st: &State, uid: &str) -> Option<(u64, Obj)> {
    let key = find_key(st, &UNSORTED, &pending(), uid)?;
    get_obj(st, &UNSORTED, key).map(|o| (key, o.clone()))
}

fn ids_of(o: &Obj, key: &str) -> Vec<u64> {
    o.get("_embedded")
        .and_then(|e| e.get(key))
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn sort_out(st: &mut State, key: u64, state: &str, now: i64) {
    if let Some(o) = collection(&mut st.collections, &UNSORTED)
        .items
        .get_mut(&key)
    {
        o.insert("__state".into(), json!(state));
        o.insert("__sorted_at".into(), json!(now));
    }
}

fn sorted_answer(
    rq: &Rq,
    uid: &str,
    leads: &[u64],
    contacts: &[u64],
    companies: &[u64],
) -> Response {
    let mut emb = Map::new();
    emb.insert(
        "leads".into(),
        Value::Array(leads.iter().map(|id| id_link(rq, "leads", *id)).collect()),
    );
    emb.insert(
        "contacts".into(),
        Value::Array(
            contacts
                .iter()
                .map(|id| id_link(rq, "contacts", *id))
                .collect(),
        ),
    );
    if !companies.is_empty() {
        emb.insert(
            "companies".into(),
            Value::Array(
                companies
                    .iter()
                    .map(|id| id_link(rq, "companies", *id))
                    .collect(),
            ),
        );
    }
    ok(json!({
        "uid": uid,
        "_links": rq.href(&format!("leads/unsorted/{uid}")),
        "_embedded": emb,
    }))
}

/// A sorted-out item's answer in amoCRM's full shape: `uid`, `account_id`,
/// `pipeline_id`, `category`, `created_at`, and `accepted_at` or
/// `declined_at`, beside `_embedded` and `_links`.
fn sorted_answer_full(
    rq: &Rq,
    item: &Obj,
    outcome: &str,
    ids: (&[u64], &[u64], &[u64]),
) -> Response {
    let uid = item.get("uid").and_then(Value::as_str).unwrap_or_default();
    let mut answer = sorted_answer(rq, uid, ids.0, ids.1, ids.2);
    if let Ok(Value::Object(mut b)) = serde_json::from_slice::<Value>(&answer.body) {
        b.insert("account_id".into(), json!(ACCOUNT_ID));
        for k in ["pipeline_id", "category", "created_at"] {
            b.insert(k.into(), item.get(k).cloned().unwrap_or(Value::Null));
        }
        b.insert(format!("{outcome}_at"), json!(rq.shared.now()));
        answer = ok(Value::Object(b));
    }
    answer
}

fn check_user(b: &Obj, st: &State, errs: &mut Vec<FieldError>) {
    match b.get("user_id") {
        None | Some(Value::Null) => {}
        Some(u) => match u.as_u64() {
            Some(u) if exists(st, "users", u) => {}
            Some(_) => errs.push(FieldError::missing("user_id")),
            None => errs.push(FieldError::int("user_id")),
        },
    }
}

fn unsorted_accept(rq: &Rq, uid: &str) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let Some((key, item)) = pending_item(&st, uid) else {
        return not_found();
    };
    let pipeline = item.get("pipeline_id").and_then(Value::as_u64).unwrap_or(0);
    let mut errs = Vec::new();
    check_user(&b, &st, &mut errs);
    match b.get("status_id") {
        None | Some(Value::Null) => {}
        Some(s) => match s.as_i64() {
            Some(s)
                if status_exists(&st, pipeline, s) && Some(s) != unsorted_status(&st, pipeline) => {
            }
            Some(_) => errs.push(FieldError::missing("status_id")),
            None => errs.push(FieldError::int("status_id")),
        },
    }
    if !errs.is_empty() {
        return validation_error(vec![("0".into(), errs)]);
    }
    let leads = ids_of(&item, "leads");
    let contacts = ids_of(&item, "contacts");
    let companies = ids_of(&item, "companies");
    let status = b
        .get("status_id")
        .and_then(Value::as_i64)
        .or_else(|| first_status(&st, pipeline));
    let mut patch = Map::new();
    if let Some(s) = status {
        patch.insert("status_id".into(), json!(s));
        patch.insert("pipeline_id".into(), json!(pipeline));
    }
    if let Some(u) = b.get("user_id").and_then(Value::as_i64) {
        patch.insert("responsible_user_id".into(), json!(u));
    }
    let now = rq.shared.now();
    let mut cx = cx(&mut st, rq);
    for id in &leads {
        update(&mut cx, &LEADS, *id, &patch);
    }
    for id in &contacts {
        if let Some(c) = collection(&mut cx.st.collections, &CONTACTS)
            .items
            .get_mut(id)
        {
            c.insert("is_unsorted".into(), json!(false));
        }
    }
    sort_out(cx.st, key, "accepted", now);
    sorted_answer_full(rq, &item, "accepted", (&leads, &contacts, &companies))
}

fn unsorted_decline(rq: &Rq, uid: &str) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let Some((key, item)) = pending_item(&st, uid) else {
        return not_found();
    };
    let mut errs = Vec::new();
    check_user(&b, &st, &mut errs);
    if !errs.is_empty() {
        return validation_error(vec![("0".into(), errs)]);
    }
    let leads = ids_of(&item, "leads");
    let contacts = ids_of(&item, "contacts");
    let companies = ids_of(&item, "companies");
    // What the unsorted item created goes away with it.
    for (ty, ids) in [
        ("leads", &leads),
        ("contacts", &contacts),
        ("companies", &companies),
    ] {
        for id in ids {
            let unsorted_only = ty == "leads"
                || get_obj(&st, entity_def(ty), *id).is_some_and(|c| {
                    ty == "companies" || c.get("is_unsorted") == Some(&json!(true))
                });
            if unsorted_only {
                collection(&mut st.collections, entity_def(ty))
                    .items
                    .remove(id);
                drop_links(&mut st, ty, *id);
            }
        }
    }
    sort_out(&mut st, key, "declined", rq.shared.now());
    sorted_answer_full(rq, &item, "declined", (&leads, &contacts, &companies))
}

fn unsorted_link(rq: &Rq, uid: &str) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let Some((key, item)) = pending_item(&st, uid) else {
        return not_found();
    };
    let mut errs = Vec::new();
    check_user(&b, &st, &mut errs);
    let target = match b.get("link") {
        Some(Value::Object(l)) => {
            match l.get("entity_type").and_then(Value::as_str) {
                Some("leads") => {}
                Some(_) => errs.push(FieldError::choice("link.entity_type")),
                None => errs.push(FieldError::blank("link.entity_type")),
            }
            match l.get("entity_id").and_then(Value::as_u64) {
                Some(id) if exists(&st, "leads", id) => Some(id),
                Some(_) => {
                    errs.push(FieldError::missing("link.entity_id"));
                    None
                }
                None => {
                    errs.push(FieldError::blank("link.entity_id"));
                    None
                }
            }
        }
        Some(_) => {
            errs.push(FieldError::object("link"));
            None
        }
        None => {
            errs.push(FieldError::blank("link"));
            None
        }
    };
    let Some(target) = target.filter(|_| errs.is_empty()) else {
        return validation_error(vec![("0".into(), errs)]);
    };
    let contacts = ids_of(&item, "contacts");
    let companies = ids_of(&item, "companies");
    for id in ids_of(&item, "leads") {
        collection(&mut st.collections, &LEADS).items.remove(&id);
        drop_links(&mut st, "leads", id);
    }
    for c in &contacts {
        add_link(&mut st, ("leads", target), ("contacts", *c), &Value::Null);
        if let Some(o) = collection(&mut st.collections, &CONTACTS).items.get_mut(c) {
            o.insert("is_unsorted".into(), json!(false));
        }
    }
    for c in &companies {
        add_link(&mut st, ("leads", target), ("companies", *c), &Value::Null);
    }
    sort_out(&mut st, key, "accepted", rq.shared.now());
    sorted_answer_full(rq, &item, "accepted", (&[target], &contacts, &companies))
}

fn unsorted_summary(rq: &Rq) -> Response {
    let pairs = rq.req.query_pairs();
    let mut from = None;
    let mut to = None;
    let mut pipelines: Vec<String> = Vec::new();
    for (k, v) in &pairs {
        match k.as_str() {
            "filter[created_at][from]" => from = v.parse::<i64>().ok(),
            "filter[created_at][to]" => to = v.parse::<i64>().ok(),
            "filter[pipeline_id]" | "filter[pipeline_id][]" => {
                pipelines.extend(v.split(',').map(|s| s.trim().to_string()))
            }
            _ => {}
        }
    }
    let st = rq.shared.lock();
    let mut total = 0;
    let mut accepted = 0;
    let mut declined = 0;
    let mut sort_time = 0i64;
    let mut categories = ent::obj(json!({"forms": 0, "sip": 0, "chats": 0, "mail": 0}));
    for o in st
        .collections
        .get("unsorted")
        .map(|c| c.items.values().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let created = o.get("created_at").and_then(Value::as_i64).unwrap_or(0);
        if from.is_some_and(|f| created < f) || to.is_some_and(|t| created > t) {
            continue;
        }
        let p = o
            .get("pipeline_id")
            .map(Value::to_string)
            .unwrap_or_default();
        if !pipelines.is_empty() && !pipelines.contains(&p) {
            continue;
        }
        total += 1;
        if let Some(c) = o.get("category").and_then(Value::as_str) {
            let n = categories.get(c).and_then(Value::as_u64).unwrap_or(0);
            categories.insert(c.into(), json!(n + 1));
        }
        match o.get("__state").and_then(Value::as_str) {
            Some("accepted") => accepted += 1,
            Some("declined") => declined += 1,
            _ => continue,
        }
        let sorted = o
            .get("__sorted_at")
            .and_then(Value::as_i64)
            .unwrap_or(created);
        sort_time += (sorted - created).max(0);
    }
    let done = accepted + declined;
    ok(json!({
        "total": total,
        "accepted": accepted,
        "declined": declined,
        "average_sort_time": if done > 0 { sort_time / done } else { 0 },
        "categories": categories,
        "_links": rq.href("leads/unsorted/summary"),
    }))
}

// ---------------------------------------------------------------- tags

pub fn tags_create(rq: &Rq, et: &str) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, MAX_LIMIT) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut errs = Vec::new();
        match item.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                errs.push(FieldError::blank("name"))
            }
            Some(_) => errs.push(FieldError::string("name")),
        }
        if item
            .get("color")
            .is_some_and(|c| !c.is_null() && !c.is_string())
        {
            errs.push(FieldError::string("color"));
        }
        if !item.is_object() {
            errs = vec![FieldError::object("")];
        }
        if !errs.is_empty() {
            errors.push((request_id(item, i), errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let mut st = rq.shared.lock();
    let out: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = item["name"].as_str().unwrap_or("").trim().to_string();
            let t = ent::tag_by_name(&mut st, et, &name, item.get("color"));
            json!({
                "id": t["id"],
                "name": t["name"],
                "color": t["color"],
                "request_id": request_id(item, i),
                "_links": rq.href(&format!("{et}/tags/{}", t["id"])),
            })
        })
        .collect();
    ok(json!({
        "_links": rq.href(&format!("{et}/tags")),
        "_embedded": {"tags": out},
    }))
}

// ---------------------------------------------------------------- links

fn link_json(et: &str, id: u64, to_type: &str, to_id: u64, meta: &Value) -> Value {
    json!({
        "entity_id": id,
        "entity_type": et,
        "to_entity_id": to_id,
        "to_entity_type": to_type,
        "metadata": meta,
    })
}

pub fn links_list(rq: &Rq, et: &str, id: Option<u64>) -> Response {
    let pairs = rq.req.query_pairs();
    let (page, limit) = match crate::api::page_limit(&pairs) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut ids: Vec<u64> = id.into_iter().collect();
    let mut to_ids: Vec<u64> = Vec::new();
    let mut to_types: Vec<String> = Vec::new();
    for (k, v) in &pairs {
        let vals = v.split(',').map(str::trim).filter(|s| !s.is_empty());
        match k.as_str() {
            "filter[entity_id]" | "filter[entity_id][]" if id.is_none() => {
                ids.extend(vals.filter_map(|s| s.parse::<u64>().ok()))
            }
            "filter[to_entity_id]" | "filter[to_entity_id][]" => {
                to_ids.extend(vals.filter_map(|s| s.parse::<u64>().ok()))
            }
            "filter[to_entity_type]" | "filter[to_entity_type][]" => {
                to_types.extend(vals.map(str::to_string))
            }
            _ => {}
        }
    }
    let st = rq.shared.lock();
    let mut all = Vec::new();
    for l in &st.links {
        let sides = [
            (&l.from_type, l.from_id, &l.to_type, l.to_id),
            (&l.to_type, l.to_id, &l.from_type, l.from_id),
        ];
        for (a, ai, b, bi) in sides {
            if a == et
                && (ids.is_empty() || ids.contains(&ai))
                && (to_ids.is_empty() || to_ids.contains(&bi))
                && (to_types.is_empty() || to_types.iter().any(|t| t == b))
            {
                all.push(link_json(et, ai, b, bi, &l.metadata));
            }
        }
    }
    drop(st);
    let path = match id {
        Some(i) => format!("{et}/{i}/links"),
        None => format!("{et}/links"),
    };
    let (slice, next) = paginate(all, page, limit);
    page_answer(rq, &path, "links", slice, next, page, limit)
}

/// Validated link items: (entity_id, to_type, to_id, metadata).
type LinkItem = (u64, String, u64, Value);

fn link_items(
    rq: &Rq,
    st: &State,
    et: &str,
    id: Option<u64>,
    strict: bool,
) -> Result<Vec<LinkItem>, Response> {
    let v = parse_json(&rq.req.body)?;
    let items = batch_items(&v, MAX_LIMIT)?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(o) = item.as_object() else {
            errors.push((request_id(item, i), vec![FieldError::object("")]));
            continue;
        };
        let mut errs = Vec::new();
        let eid = id.or_else(|| o.get("entity_id").and_then(Value::as_u64));
        match eid {
            None => errs.push(FieldError::blank("entity_id")),
            Some(e) if strict && !exists(st, et, e) => errs.push(FieldError::missing("entity_id")),
            _ => {}
        }
        let to_type = o.get("to_entity_type").and_then(Value::as_str);
        match to_type {
            None => errs.push(FieldError::blank("to_entity_type")),
            Some(t) if !linkable(et, t) => errs.push(FieldError::choice("to_entity_type")),
            _ => {}
        }
        let meta = o.get("metadata").cloned().unwrap_or(Value::Null);
        if !meta.is_null() && !meta.is_object() {
            errs.push(FieldError::object("metadata"));
        }
        let to_id = o.get("to_entity_id").and_then(Value::as_u64);
        match (to_id, to_type) {
            (None, _) => errs.push(FieldError::blank("to_entity_id")),
            (Some(t), Some("catalog_elements")) if strict => {
                match meta.get("catalog_id").and_then(Value::as_u64) {
                    None => errs.push(FieldError::blank("metadata.catalog_id")),
                    Some(c) => {
                        let ok = get_obj(st, entity_def("elements"), t)
                            .is_some_and(|e| e.get("catalog_id") == Some(&json!(c)));
                        if !ok {
                            errs.push(FieldError::missing("to_entity_id"));
                        }
                    }
                }
            }
            (Some(t), Some(ty)) if strict && linkable(et, ty) && !exists(st, ty, t) => {
                errs.push(FieldError::missing("to_entity_id"))
            }
            _ => {}
        }
        if strict && to_type == Some("catalog_elements") {
            check_product_metadata(st, &meta, &mut errs);
        }
        if errs.is_empty() {
            out.push((
                eid.unwrap_or(0),
                to_type.unwrap_or("").to_string(),
                to_id.unwrap_or(0),
                meta,
            ));
        } else {
            errors.push((request_id(item, i), errs));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(validation_error(errors))
    }
}

/// A product's link: `quantity` a positive number, `price_id` a price
/// field of the element's catalog.
fn check_product_metadata(st: &State, meta: &Value, errs: &mut Vec<FieldError>) {
    if let Some(q) = meta.get("quantity").filter(|q| !q.is_null()) {
        if q.as_f64().is_none_or(|q| q <= 0.0) {
            errs.push(FieldError::new(
                "InvalidValue",
                "metadata.quantity",
                "This value should be positive.",
            ));
        }
    }
    if let Some(p) = meta.get("price_id").filter(|p| !p.is_null()) {
        let scope = meta
            .get("catalog_id")
            .and_then(Value::as_u64)
            .map(|c| json!(format!("catalogs/{c}")));
        let is_price = p
            .as_u64()
            .and_then(|p| get_obj(st, entity_def("custom_fields"), p))
            .is_some_and(|f| {
                f.get("type") == Some(&json!("price")) && f.get("__scope") == scope.as_ref()
            });
        if !is_price {
            errs.push(FieldError::missing("metadata.price_id"));
        }
    }
}

pub fn link(rq: &Rq, et: &str, id: Option<u64>) -> Response {
    let mut st = rq.shared.lock();
    let items = match link_items(rq, &st, et, id, true) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let out: Vec<Value> = items
        .iter()
        .map(|(eid, to_type, to_id, meta)| {
            let stored = add_link(&mut st, (et, *eid), (to_type, *to_id), meta);
            link_json(et, *eid, to_type, *to_id, &stored)
        })
        .collect();
    let path = match id {
        Some(i) => format!("{et}/{i}/link"),
        None => format!("{et}/link"),
    };
    ok(json!({
        "_total_items": out.len(),
        "_links": rq.href(&path),
        "_embedded": {"links": out},
    }))
}

pub fn unlink(rq: &Rq, et: &str, id: Option<u64>) -> Response {
    let mut st = rq.shared.lock();
    let items = match link_items(rq, &st, et, id, false) {
        Ok(i) => i,
        Err(r) => return r,
    };
    for (eid, to_type, to_id, _) in &items {
        remove_link(&mut st, (et, *eid), (to_type, *to_id));
    }
    Response::empty(204)
}

// ---------------------------------------------------------------- webhooks

pub const WEBHOOK_EVENTS: &[&str] = &[
    "add_lead",
    "update_lead",
    "delete_lead",
    "restore_lead",
    "status_lead",
    "responsible_lead",
    "note_lead",
    "add_contact",
    "update_contact",
    "delete_contact",
    "restore_contact",
    "responsible_contact",
    "note_contact",
    "add_company",
    "update_company",
    "delete_company",
    "restore_company",
    "responsible_company",
    "note_company",
    "add_customer",
    "update_customer",
    "delete_customer",
    "responsible_customer",
    "note_customer",
    "add_task",
    "update_task",
    "delete_task",
    "responsible_task",
    "add_unsorted",
    "delete_unsorted",
    "add_talk",
    "update_talk",
    "add_message",
    "add_chat_template_review",
    "update_chat_template_review",
];

/// At most this many webhooks per account.
pub const MAX_WEBHOOKS: usize = 100;

fn valid_destination(d: &str) -> bool {
    url::Url::parse(d).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

fn destination_errors(b: &Obj, errs: &mut Vec<FieldError>) -> Option<String> {
    match b.get("destination") {
        Some(Value::String(d)) if valid_destination(d) => Some(d.clone()),
        Some(Value::String(d)) if d.trim().is_empty() => {
            errs.push(FieldError::blank("destination"));
            None
        }
        Some(Value::String(_)) => {
            errs.push(FieldError::new(
                "InvalidValue",
                "destination",
                "This value is not a valid URL.",
            ));
            None
        }
        None | Some(Value::Null) => {
            errs.push(FieldError::blank("destination"));
            None
        }
        Some(_) => {
            errs.push(FieldError::string("destination"));
            None
        }
    }
}

fn webhook_key(st: &State, destination: &str) -> Option<u64> {
    st.collections.get("webhooks").and_then(|c| {
        c.items
            .iter()
            .find(|(_, w)| w.get("destination").and_then(Value::as_str) == Some(destination))
            .map(|(k, _)| *k)
    })
}

pub fn webhooks(rq: &Rq, m: &str) -> Response {
    match m {
        "GET" => list(rq, &Scope::plain("webhooks")),
        "POST" => webhook_subscribe(rq),
        _ => webhook_unsubscribe(rq),
    }
}

fn webhook_subscribe(rq: &Rq) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut errs = Vec::new();
    let destination = destination_errors(&b, &mut errs);
    let mut settings: Vec<String> = Vec::new();
    match b.get("settings") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, s) in list.iter().enumerate() {
                match s.as_str() {
                    Some(e) if WEBHOOK_EVENTS.contains(&e) => {
                        if !settings.iter().any(|x| x == e) {
                            settings.push(e.to_string());
                        }
                    }
                    _ => errs.push(FieldError::choice(format!("settings.{i}"))),
                }
            }
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            errs.push(FieldError::blank("settings"))
        }
        Some(_) => errs.push(FieldError::array("settings")),
    }
    if b.get("sort")
        .is_some_and(|s| !s.is_null() && s.as_i64().is_none())
    {
        errs.push(FieldError::int("sort"));
    }
    let Some(destination) = destination.filter(|_| errs.is_empty()) else {
        return validation_error(vec![("0".into(), errs)]);
    };
    let now = rq.shared.now();
    let mut st = rq.shared.lock();
    let key = match webhook_key(&st, &destination) {
        Some(k) => {
            if let Some(w) = collection(&mut st.collections, &WEBHOOKS).items.get_mut(&k) {
                w.insert("settings".into(), json!(settings));
                w.insert("updated_at".into(), json!(now));
                w.insert("disabled".into(), json!(false));
                if let Some(s) = b.get("sort").filter(|s| s.is_i64()) {
                    w.insert("sort".into(), s.clone());
                }
            }
            k
        }
        None => {
            let col = collection(&mut st.collections, &WEBHOOKS);
            if col.items.len() >= MAX_WEBHOOKS {
                return bad_request(&format!("An account has at most {MAX_WEBHOOKS} webhooks"));
            }
            let id = col.next_id;
            col.next_id += 1;
            let sort = b
                .get("sort")
                .filter(|s| s.is_i64())
                .cloned()
                .unwrap_or(json!(col.items.len() + 1));
            col.items.insert(
                id,
                obj(json!({
                    "id": id,
                    "destination": destination,
                    "created_at": now,
                    "updated_at": now,
                    "account_id": ACCOUNT_ID,
                    "created_by": rq.user.unwrap_or(USER_ID),
                    "sort": sort,
                    "disabled": false,
                    "settings": settings,
                })),
            );
            id
        }
    };
    let rx = Rx {
        st: &st,
        with: &[],
        referer: &rq.shared.referer,
    };
    match get_obj(&st, &WEBHOOKS, key) {
        Some(w) => Response::json(201, HAL, &render(&WEBHOOKS, w, &rx)),
        None => not_found(),
    }
}

fn webhook_unsubscribe(rq: &Rq) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut errs = Vec::new();
    let destination = match b.get("destination") {
        Some(Value::String(d)) if !d.trim().is_empty() => Some(d.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            errs.push(FieldError::blank("destination"));
            None
        }
        Some(_) => {
            errs.push(FieldError::string("destination"));
            None
        }
    };
    let Some(destination) = destination else {
        return validation_error(vec![("0".into(), errs)]);
    };
    let mut st = rq.shared.lock();
    match webhook_key(&st, &destination) {
        Some(k) => {
            collection(&mut st.collections, &WEBHOOKS).items.remove(&k);
            Response::empty(204)
        }
        None => problem(404, "Not Found", "Webhook not found"),
    }
}

// ---------------------------------------------------------------- calls

const CALL_SPEC: &[(&str, bool)] = &[
    ("direction", true),
    ("phone", true),
    ("source", true),
    ("uniq", false),
    ("link", false),
    ("call_result", false),
];

fn find_by_phone(st: &State, phone: &str) -> Option<(&'static str, u64)> {
    for ty in ["contacts", "companies"] {
        let hit = st.collections.get(ty).and_then(|c| {
            c.items
                .iter()
                .find(|(_, o)| cf_values(o, "PHONE").iter().any(|p| same_phone(p, phone)))
                .map(|(id, _)| *id)
        });
        if let Some(id) = hit {
            return Some((ty, id));
        }
    }
    None
}

pub fn calls(rq: &Rq) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, MAX_LIMIT) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(o) = item.as_object() else {
            errors.push((request_id(item, i), vec![FieldError::object("")]));
            continue;
        };
        let mut errs = Vec::new();
        for (f, req) in CALL_SPEC {
            match o.get(*f) {
                Some(Value::String(s)) if !s.trim().is_empty() || !req => {}
                None | Some(Value::Null) | Some(Value::String(_)) if *req => {
                    errs.push(FieldError::blank(*f))
                }
                None | Some(Value::Null) => {}
                Some(_) => errs.push(FieldError::string(*f)),
            }
        }
        if let Some(d) = o.get("direction").and_then(Value::as_str) {
            if !d.trim().is_empty() && !matches!(d, "inbound" | "outbound") {
                errs.push(FieldError::choice("direction"));
            }
        }
        match o.get("duration") {
            Some(d) if d.as_u64().is_some() => {}
            None | Some(Value::Null) => errs.push(FieldError::blank("duration")),
            Some(_) => errs.push(FieldError::int("duration")),
        }
        if let Some(s) = o.get("call_status").filter(|s| !s.is_null()) {
            if !s.as_i64().is_some_and(|s| (1..=7).contains(&s)) {
                errs.push(FieldError::choice("call_status"));
            }
        }
        for f in [
            "created_by",
            "responsible_user_id",
            "created_at",
            "updated_at",
        ] {
            if o.get(f)
                .is_some_and(|v| !v.is_null() && v.as_i64().is_none())
            {
                errs.push(FieldError::int(f));
            }
        }
        if !errs.is_empty() {
            errors.push((request_id(item, i), errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let mut st = rq.shared.lock();
    let mut cx = cx(&mut st, rq);
    let mut calls = Vec::new();
    let mut errs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let empty = Map::new();
        let o = item.as_object().unwrap_or(&empty);
        let phone = o.get("phone").and_then(Value::as_str).unwrap_or("");
        let rid = request_id(item, i);
        let Some((ty, eid)) = find_by_phone(cx.st, phone) else {
            errs.push(json!({
                "request_id": rid,
                "title": "Not Found",
                "status": 404,
                "detail": format!("No contact or company has the phone {phone}"),
            }));
            continue;
        };
        let note_type = if o.get("direction").and_then(Value::as_str) == Some("outbound") {
            "call_out"
        } else {
            "call_in"
        };
        let mut params = Map::new();
        for f in [
            "uniq",
            "duration",
            "source",
            "link",
            "phone",
            "call_result",
            "call_status",
        ] {
            if let Some(v) = o.get(f).filter(|v| !v.is_null()) {
                params.insert(f.into(), v.clone());
            }
        }
        params
            .entry("uniq")
            .or_insert_with(|| json!(crate::util::uuid_like()));
        let mut note = ent::obj(json!({"note_type": note_type, "params": params}));
        for f in [
            "created_by",
            "responsible_user_id",
            "created_at",
            "updated_at",
        ] {
            if let Some(v) = o.get(f).filter(|v| v.is_i64()) {
                note.insert(f.into(), v.clone());
            }
        }
        let fixed = [("__entity_type", json!(ty)), ("entity_id", json!(eid))];
        let id = insert(&mut cx, &NOTES, &fixed, &note);
        calls.push(json!({
            "id": id,
            "entity_id": eid,
            "entity_type": ty,
            "account_id": ACCOUNT_ID,
            "request_id": rid,
            "_links": rq.href(&format!("{ty}/notes/{id}")),
        }));
    }
    ok(json!({
        "_total_items": calls.len(),
        "_links": rq.href("calls"),
        "_embedded": {"calls": calls, "errors": errs},
    }))
}

// ---------------------------------------------------------------- widgets

fn widget_key(st: &State, code: &str) -> Option<u64> {
    find_key(st, &WIDGETS, &[], code)
}

pub fn widget_install(rq: &Rq, code: &str) -> Response {
    let b = match parse_object(&rq.req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let Some(key) = widget_key(&st, code) else {
        return problem(404, "Not Found", "Widget not found");
    };
    let mut errs = Vec::new();
    if let Some(w) = get_obj(&st, &WIDGETS, key) {
        for f in w
            .get("settings_template")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let k = f.get("key").and_then(Value::as_str).unwrap_or("");
            if f.get("is_required") == Some(&json!(true))
                && b.get(k).is_none_or(|v| v.is_null() || v == "")
            {
                errs.push(FieldError::blank(k));
            }
        }
    }
    if !errs.is_empty() {
        return validation_error(vec![("0".into(), errs)]);
    }
    if let Some(w) = collection(&mut st.collections, &WIDGETS)
        .items
        .get_mut(&key)
    {
        w.insert("is_active_in_account".into(), json!(true));
        let settings = if b.is_empty() {
            json!([])
        } else {
            Value::Object(b)
        };
        w.insert("settings".into(), settings);
    }
    let rx = Rx {
        st: &st,
        with: &[],
        referer: &rq.shared.referer,
    };
    match get_obj(&st, &WIDGETS, key) {
        Some(w) => ok(render(&WIDGETS, w, &rx)),
        None => not_found(),
    }
}

pub fn widget_uninstall(rq: &Rq, code: &str) -> Response {
    let mut st = rq.shared.lock();
    let Some(key) = widget_key(&st, code) else {
        return problem(404, "Not Found", "Widget not found");
    };
    if let Some(w) = collection(&mut st.collections, &WIDGETS)
        .items
        .get_mut(&key)
    {
        w.insert("is_active_in_account".into(), json!(false));
        w.insert("settings".into(), json!([]));
    }
    Response::empty(204)
}

// ---------------------------------------------------------------- short links

fn short_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes(6)
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub fn short_links(rq: &Rq) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let items = match batch_items(&v, MAX_LIMIT) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(o) = item.as_object() else {
            errors.push((request_id(item, i), vec![FieldError::object("")]));
            continue;
        };
        let mut errs = Vec::new();
        match o.get("url") {
            Some(Value::String(u)) if valid_destination(u) => {}
            Some(Value::String(_)) => errs.push(FieldError::new(
                "InvalidValue",
                "url",
                "This value is not a valid URL.",
            )),
            None | Some(Value::Null) => errs.push(FieldError::blank("url")),
            Some(_) => errs.push(FieldError::string("url")),
        }
        match o.get("metadata") {
            Some(Value::Object(m)) => {
                match m.get("entity_type").and_then(Value::as_str) {
                    Some("contacts") => {}
                    Some(_) => errs.push(FieldError::choice("metadata.entity_type")),
                    None => errs.push(FieldError::blank("metadata.entity_type")),
                }
                match m.get("entity_id").and_then(Value::as_u64) {
                    Some(id) if exists(&st, "contacts", id) => {}
                    Some(_) => errs.push(FieldError::missing("metadata.entity_id")),
                    None => errs.push(FieldError::blank("metadata.entity_id")),
                }
            }
            None | Some(Value::Null) => errs.push(FieldError::blank("metadata")),
            Some(_) => errs.push(FieldError::object("metadata")),
        }
        if !errs.is_empty() {
            errors.push((request_id(item, i), errs));
        }
    }
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let def = entity_def("short_links");
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let short = format!("https://emulator.amo.sh/{}", short_code());
        let col = collection(&mut st.collections, def);
        let id = col.next_id;
        col.next_id += 1;
        col.items.insert(
            id,
            obj(json!({
                "id": id,
                "url": short,
                "original_url": item.get("url"),
                "metadata": item.get("metadata"),
                "account_id": ACCOUNT_ID,
            })),
        );
        out.push(json!({
            "url": short,
            "metadata": item.get("metadata"),
            "account_id": ACCOUNT_ID,
            "request_id": request_id(item, i),
        }));
    }
    ok(json!({
        "_total_items": out.len(),
        "_links": rq.href("short_links"),
        "_embedded": {"short_links": out},
    }))
}

// ---------------------------------------------------------------- currencies

pub fn currencies(rq: &Rq) -> Response {
    let (page, limit) = match crate::api::page_limit(&rq.req.query_pairs()) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let all = vec![
        json!({"code": "RUB", "name": "Российский рубль", "symbol": "₽"}),
        json!({"code": "USD", "name": "Доллар США", "symbol": "$"}),
        json!({"code": "EUR", "name": "Евро", "symbol": "€"}),
    ];
    let (slice, next) = paginate(all, page, limit);
    page_answer(rq, "currencies", "currencies", slice, next, page, limit)
}
