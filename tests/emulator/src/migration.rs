//! Endpoints a team moving from the official PHP library reaches for
//! (issue 11): users activate/deactivate, the customers mode, sources batch
//! delete, note pin/unpin.

use serde_json::{json, Value};

use crate::api::{
    collection, entity_def, find_key, parse_json, validation_error, FieldError, Rq, HAL,
};
use crate::http::Response;

/// Ids from a body `[{"id": 1}, …]` of at most `max` items, each an
/// existing object of `name`; errors name each bad item by its position.
fn body_ids(rq: &Rq, name: &str, max: usize) -> Result<Vec<u64>, Response> {
    let v = parse_json(&rq.req.body)?;
    let list = match v {
        Value::Array(a) if !a.is_empty() && a.len() <= max => a,
        Value::Array(a) if a.len() > max => {
            return Err(validation_error(vec![(
                "0".into(),
                vec![FieldError::new(
                    "TooManyItems",
                    "",
                    format!("No more than {max} items per request"),
                )],
            )]))
        }
        _ => {
            return Err(validation_error(vec![(
                "0".into(),
                vec![FieldError::array("")],
            )]))
        }
    };
    let st = rq.shared.lock();
    let def = entity_def(name);
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    for (i, item) in list.iter().enumerate() {
        match item.get("id").and_then(Value::as_u64) {
            Some(id) if find_key(&st, def, &[], &id.to_string()).is_some() => ids.push(id),
            Some(_) => errors.push((i.to_string(), vec![FieldError::missing("id")])),
            None => errors.push((i.to_string(), vec![FieldError::int("id")])),
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(validation_error(errors))
    }
}

/// `POST /api/v4/users/{activate|deactivate}`: at most 10 users; 204.
pub fn users_action(rq: &Rq, activate: bool) -> Response {
    let ids = match body_ids(rq, "users", 10) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let users = collection(&mut st.collections, entity_def("users"));
    for id in ids {
        if let Some(Value::Object(rights)) =
            users.items.get_mut(&id).and_then(|u| u.get_mut("rights"))
        {
            rights.insert("is_active".into(), json!(activate));
        }
    }
    Response::empty(204)
}

/// `PATCH /api/v4/customers/mode` `{mode: periodicity|segments, is_enabled}`;
/// the account's `customers_mode` follows.
pub fn customers_mode(rq: &Rq) -> Response {
    let v = match parse_json(&rq.req.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut errs = Vec::new();
    let mode = v.get("mode").and_then(Value::as_str);
    match mode {
        Some("periodicity") | Some("segments") => {}
        Some(_) => errs.push(FieldError::choice("mode")),
        None => errs.push(FieldError::blank("mode")),
    }
    let enabled = match v.get("is_enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push(FieldError::bool("is_enabled"));
            true
        }
    };
    if !errs.is_empty() {
        return validation_error(vec![("0".into(), errs)]);
    }
    let mode = mode.unwrap_or_default().to_string();
    let mut st = rq.shared.lock();
    st.customers_mode = if enabled {
        mode.clone()
    } else {
        "disabled".into()
    };
    Response::json(200, HAL, &json!({"mode": mode, "is_enabled": enabled}))
}

/// The account's `customers_mode`: `disabled` until set.
pub fn account_customers_mode(rq: &Rq) -> String {
    let st = rq.shared.lock();
    if st.customers_mode.is_empty() {
        "disabled".into()
    } else {
        st.customers_mode.clone()
    }
}

/// `DELETE /api/v4/sources` with `[{"id": …}]`: all or none; 204.
pub fn sources_delete(rq: &Rq) -> Response {
    let ids = match body_ids(rq, "sources", crate::api::MAX_LIMIT) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut st = rq.shared.lock();
    let sources = collection(&mut st.collections, entity_def("sources"));
    for id in ids {
        sources.items.remove(&id);
    }
    Response::empty(204)
}

/// `POST /api/v4/{type}/notes/{id}/{pin|unpin}`: 204; 404 for a note of
/// another type or none.
pub fn note_pin(rq: &Rq, et: &str, id: &str, pin: bool) -> Response {
    let mut st = rq.shared.lock();
    let def = entity_def("notes");
    let fixed = [("__entity_type", json!(et))];
    let Some(key) = find_key(&st, def, &fixed, id) else {
        return crate::api::not_found();
    };
    if let Some(note) = collection(&mut st.collections, def).items.get_mut(&key) {
        note.insert("is_pinned".into(), json!(pin));
    }
    Response::empty(204)
}
