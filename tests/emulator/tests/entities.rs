//! The entity endpoints beyond leads: shapes, ids, 204s, validation.

mod common;

use amocrm_emulator::Emulator;
use common::*;
use serde_json::{json, Value};

struct T {
    emu: Emulator,
    at: String,
}

impl T {
    fn new() -> T {
        let (emu, at) = unlimited();
        T { emu, at }
    }
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        api(&self.emu, method, path, &self.at, body)
    }
    fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None)
    }
    /// A 200 JSON answer.
    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let r = self.call(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        assert_eq!(r.content_type(), "application/hal+json");
        r.json()
    }
    /// The ids of a create answer's `_embedded.{key}`.
    fn create(&self, path: &str, key: &str, body: Value) -> Vec<i64> {
        let j = self.ok("POST", path, Some(&body));
        j["_embedded"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no _embedded.{key}: {j}"))
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect()
    }
    fn with_user(&self, method: &str, path: &str, user: &str, body: Option<&Value>) -> Resp {
        let auth = format!("Bearer {}", self.at);
        let b = body.map(|v| v.to_string()).unwrap_or_default();
        request(
            &self.emu,
            method,
            path,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
                ("X-Context-User-ID", user),
            ],
            b.as_bytes(),
        )
    }
    fn href(&self, path: &str) -> String {
        format!("http://{}/api/v4/{path}", self.emu.referer())
    }
}

/// The `validation-errors` paths of a 400 answer.
fn error_paths(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.content_type(), "application/problem+json");
    let j = r.json();
    assert_eq!(j["detail"], "Request validation failed");
    j["validation-errors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["errors"].as_array().unwrap().clone())
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn list_ids(j: &Value, key: &str) -> Vec<i64> {
    j["_embedded"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn contacts_with_phones_and_search() {
    let t = T::new();
    let company = t.create(
        "/api/v4/companies",
        "companies",
        json!([{"name": "ООО Ромашка"}]),
    );
    assert_eq!(company, [3000001]);
    let j = t.ok(
        "POST",
        "/api/v4/contacts",
        Some(&json!([
            {"first_name": "Иван", "last_name": "Петров", "request_id": "c1",
             "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": "+7 (912) 345-67-89", "enum_code": "WORK"}]},
                {"field_code": "EMAIL", "values": [{"value": "ivan@example.com"}]}],
             "_embedded": {"tags": [{"name": "vip"}], "companies": [{"id": 3000001}]}},
            {"name": "Second"}
        ])),
    );
    let created = j["_embedded"]["contacts"].as_array().unwrap();
    assert_eq!(created[0]["id"], 2000001);
    assert_eq!(created[0]["request_id"], "c1");
    assert_eq!(created[1]["request_id"], "1");
    assert_eq!(
        created[0]["_links"]["self"]["href"],
        t.href("contacts/2000001")
    );

    let c = t.ok("GET", "/api/v4/contacts/2000001", None);
    assert_eq!(c["name"], "Иван Петров");
    assert_eq!(c["first_name"], "Иван");
    assert_eq!(c["responsible_user_id"], 1001);
    assert_eq!(c["account_id"], 31000001);
    let phone = &c["custom_fields_values"][0];
    assert_eq!(phone["field_code"], "PHONE");
    assert_eq!(phone["field_name"], "Телефон");
    assert_eq!(phone["field_type"], "multitext");
    assert!(phone["field_id"].as_i64().unwrap() >= 10_000_001);
    assert_eq!(phone["values"][0]["enum_code"], "WORK");
    assert!(phone["values"][0]["enum_id"].is_i64());
    assert_eq!(
        c["custom_fields_values"][1]["values"][0]["enum_code"],
        "WORK"
    );
    assert_eq!(c["_embedded"]["tags"][0]["name"], "vip");
    assert_eq!(c["_embedded"]["companies"][0]["id"], 3000001);

    // Find a contact by phone (any formatting) or email.
    for q in [
        "89123456789",
        "%2B79123456789",
        "345-67",
        "ivan%40example",
        "петров",
    ] {
        let j = t.ok("GET", &format!("/api/v4/contacts?query={q}"), None);
        assert_eq!(list_ids(&j, "contacts"), [2000001], "query {q}");
    }
    assert_eq!(t.get("/api/v4/contacts?query=79990000000").status, 204);
    let missing = t.get("/api/v4/contacts/2000099");
    assert_eq!(missing.status, 204);
    assert!(missing.body.is_empty());

    // PATCH one answers a bare object; other custom fields stay.
    let p = t.ok(
        "PATCH",
        "/api/v4/contacts/2000001",
        Some(&json!({"custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "new@example.com"}]}]})),
    );
    assert_eq!(p["id"], 2000001);
    assert!(p.get("_embedded").is_none());
    let c = t.ok("GET", "/api/v4/contacts/2000001", None);
    assert_eq!(c["custom_fields_values"].as_array().unwrap().len(), 2);
    assert_eq!(
        c["custom_fields_values"][1]["values"][0]["value"],
        "new@example.com"
    );
    let b = t.ok(
        "PATCH",
        "/api/v4/contacts",
        Some(&json!([{"id": 2000002, "name": "Renamed"}])),
    );
    assert_eq!(b["_embedded"]["contacts"][0]["id"], 2000002);
    // An unknown field code is refused.
    let r = t.call(
        "POST",
        "/api/v4/contacts",
        Some(&json!([{"custom_fields_values": [{"field_code": "NOPE", "values": []}]}])),
    );
    assert_eq!(error_paths(&r), ["custom_fields_values.0.field_code"]);

    // Companies and customers.
    let co = t.ok("GET", "/api/v4/companies/3000001?with=contacts", None);
    assert_eq!(co["name"], "ООО Ромашка");
    assert_eq!(co["_embedded"]["contacts"][0]["id"], 2000001);
    let cu = t.create(
        "/api/v4/customers",
        "customers",
        json!([{"name": "Постоянный", "next_price": 500, "next_date": 1700000000}]),
    );
    assert_eq!(cu, [4000001]);
    let cu = t.ok("GET", "/api/v4/customers/4000001", None);
    assert_eq!(cu["next_price"], 500);
    assert_eq!(cu["_embedded"]["segments"], json!([]));
    let j = t.ok("GET", "/api/v4/customers?filter[id][]=4000001", None);
    assert_eq!(j["_page"], 1);
    assert_eq!(list_ids(&j, "customers"), [4000001]);
    assert_eq!(t.call("DELETE", "/api/v4/contacts", None).status, 405);
}

#[test]
fn tasks_require_text_and_deadline() {
    let t = T::new();
    let lead = t.create("/api/v4/leads", "leads", json!([{"name": "L"}]))[0];
    let r = t.call(
        "POST",
        "/api/v4/tasks",
        Some(&json!([{"entity_type": "leads"}])),
    );
    assert_eq!(error_paths(&r), ["text", "complete_till", "entity_id"]);
    let r = t.call(
        "POST",
        "/api/v4/tasks",
        Some(&json!([{"text": "x", "complete_till": 1, "entity_type": "leads", "entity_id": 5}])),
    );
    assert_eq!(error_paths(&r), ["entity_id"]);
    let ids = t.create(
        "/api/v4/tasks",
        "tasks",
        json!([
            {"text": "Позвонить", "complete_till": 1800000000, "entity_type": "leads", "entity_id": lead},
            {"text": "Встретиться", "complete_till": 1800000000, "task_type_id": 2}
        ]),
    );
    assert_eq!(ids, [5000001, 5000002]);
    let task = t.ok("GET", "/api/v4/tasks/5000001", None);
    assert_eq!(task["task_type_id"], 1);
    assert_eq!(task["is_completed"], false);
    assert_eq!(task["entity_type"], "leads");
    assert_eq!(task["entity_id"], lead);
    let p = t.ok(
        "PATCH",
        "/api/v4/tasks/5000001",
        Some(&json!({"is_completed": true, "result": {"text": "Дозвонился"}})),
    );
    assert_eq!(p["id"], 5000001);
    let task = t.ok("GET", "/api/v4/tasks/5000001", None);
    assert_eq!(task["is_completed"], true);
    assert_eq!(task["result"]["text"], "Дозвонился");
    assert_eq!(task["text"], "Позвонить");

    let j = t.ok("GET", "/api/v4/tasks?filter[is_completed]=1", None);
    assert_eq!(list_ids(&j, "tasks"), [5000001]);
    let j = t.ok("GET", "/api/v4/tasks?filter[is_completed]=0", None);
    assert_eq!(list_ids(&j, "tasks"), [5000002]);
    let j = t.ok(
        "GET",
        &format!("/api/v4/tasks?filter[entity_type]=leads&filter[entity_id][]={lead}"),
        None,
    );
    assert_eq!(list_ids(&j, "tasks"), [5000001]);
    assert_eq!(t.get("/api/v4/tasks?filter[entity_id][]=1").status, 204);
}

#[test]
fn notes_per_entity() {
    let t = T::new();
    let lead = t.create("/api/v4/leads", "leads", json!([{}]))[0];
    let contact = t.create("/api/v4/contacts", "contacts", json!([{"name": "C"}]))[0];
    let r = t.call(
        "POST",
        &format!("/api/v4/leads/{lead}/notes"),
        Some(&json!([{"note_type": "common", "params": {}}])),
    );
    assert_eq!(error_paths(&r), ["params.text"]);
    let r = t.call(
        "POST",
        "/api/v4/leads/notes",
        Some(&json!([{"note_type": "common", "params": {"text": "x"}}, {"entity_id": 42, "note_type": "bogus"}])),
    );
    assert_eq!(error_paths(&r), ["entity_id", "entity_id", "note_type"]);
    // The path's entity wins over an `entity_id` in the item.
    let ids = t.create(
        &format!("/api/v4/leads/{lead}/notes"),
        "notes",
        json!([{"note_type": "common", "entity_id": 1, "params": {"text": "Первая"}}]),
    );
    assert_eq!(ids, [6000001]);
    let ids = t.create(
        "/api/v4/contacts/notes",
        "notes",
        json!([{"entity_id": contact, "note_type": "call_in",
                "params": {"uniq": "u1", "duration": 60, "source": "pbx", "phone": "+79000000000"}}]),
    );
    assert_eq!(ids, [6000002]);
    let n = t.ok("GET", "/api/v4/leads/notes/6000001", None);
    assert_eq!(n["entity_id"], lead);
    assert_eq!(n["note_type"], "common");
    assert_eq!(n["params"]["text"], "Первая");
    assert!(n.get("__entity_type").is_none());
    assert_eq!(n["_links"]["self"]["href"], t.href("leads/notes/6000001"));
    // A lead's note is not a contact's note.
    assert_eq!(t.get("/api/v4/contacts/notes/6000001").status, 204);
    assert_eq!(
        t.get(&format!("/api/v4/leads/{}/notes", lead + 1)).status,
        204
    );
    let j = t.ok("GET", &format!("/api/v4/leads/{lead}/notes"), None);
    assert_eq!(list_ids(&j, "notes"), [6000001]);
    let j = t.ok(
        "GET",
        "/api/v4/contacts/notes?filter[note_type]=call_in",
        None,
    );
    assert_eq!(list_ids(&j, "notes"), [6000002]);
    t.ok(
        "PATCH",
        "/api/v4/leads/notes/6000001",
        Some(&json!({"params": {"text": "Исправлено"}})),
    );
    let b = t.ok(
        "PATCH",
        "/api/v4/leads/notes",
        Some(&json!([{"id": 6000001, "params": {"text": "Снова"}}])),
    );
    assert_eq!(b["_embedded"]["notes"][0]["id"], 6000001);
    assert_eq!(
        t.ok("GET", &format!("/api/v4/leads/{lead}/notes/6000001"), None)["params"]["text"],
        "Снова"
    );
}

#[test]
fn tags_dictionary() {
    let t = T::new();
    let j = t.ok(
        "POST",
        "/api/v4/leads/tags",
        Some(&json!([{"name": "горячий", "color": "#ff0000"}, {"name": "холодный"}])),
    );
    let tags = j["_embedded"]["tags"].as_array().unwrap();
    assert_eq!(tags[0]["id"], 7000001);
    assert_eq!(tags[0]["color"], "#ff0000");
    assert_eq!(tags[1]["request_id"], "1");
    // The same name again is the same tag.
    let j = t.ok(
        "POST",
        "/api/v4/leads/tags",
        Some(&json!([{"name": "горячий"}])),
    );
    assert_eq!(j["_embedded"]["tags"][0]["id"], 7000001);
    let j = t.ok("GET", "/api/v4/leads/tags?filter[name]=холодный", None);
    assert_eq!(list_ids(&j, "tags"), [7000002]);
    let j = t.ok("GET", "/api/v4/leads/tags?query=хол", None);
    assert_eq!(list_ids(&j, "tags"), [7000002]);
    assert_eq!(t.get("/api/v4/contacts/tags").status, 204);
    let r = t.call(
        "POST",
        "/api/v4/leads/tags",
        Some(&json!([{"color": "#fff"}])),
    );
    assert_eq!(error_paths(&r), ["name"]);
    // Leads use the dictionary.
    let lead = t.create(
        "/api/v4/leads",
        "leads",
        json!([{"_embedded": {"tags": [{"id": 7000001}, {"name": "новый"}]}}]),
    )[0];
    let l = t.ok("GET", &format!("/api/v4/leads/{lead}"), None);
    assert_eq!(l["_embedded"]["tags"][0]["name"], "горячий");
    assert_eq!(l["_embedded"]["tags"][1]["id"], 7000003);
}

#[test]
fn pipelines_and_statuses() {
    let t = T::new();
    let j = t.ok("GET", "/api/v4/leads/pipelines", None);
    let p = &j["_embedded"]["pipelines"][0];
    assert_eq!(p["id"], 1001);
    assert_eq!(p["name"], "Воронка");
    assert_eq!(p["is_main"], true);
    assert_eq!(p["_links"]["self"]["href"], t.href("leads/pipelines/1001"));
    let statuses: Vec<i64> = list_ids(p, "statuses");
    for s in [10001, 10002, 142, 143] {
        assert!(statuses.contains(&s), "{statuses:?}");
    }
    let won = &p["_embedded"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 142)
        .unwrap()
        .clone();
    assert_eq!(won["name"], "Успешно реализовано");
    assert_eq!(won["pipeline_id"], 1001);
    assert_eq!(won["is_editable"], false);

    let ids = t.create(
        "/api/v4/leads/pipelines",
        "pipelines",
        json!([{"name": "Вторая", "sort": 20,
                "_embedded": {"statuses": [{"name": "Новый"}, {"name": "В работе", "color": "#fffeb2"}]}}]),
    );
    let pid = ids[0];
    assert_eq!(pid, 8000001);
    let p = t.ok("GET", &format!("/api/v4/leads/pipelines/{pid}"), None);
    let st = list_ids(&p, "statuses");
    assert_eq!(st, [9000001, 9000002, 142, 143]);
    assert_eq!(p["is_main"], false);
    let r = t.call(
        "POST",
        "/api/v4/leads/pipelines",
        Some(&json!([{"_embedded": {"statuses": [{}]}}])),
    );
    assert_eq!(error_paths(&r), ["name", "_embedded.statuses.0.name"]);

    let path = format!("/api/v4/leads/pipelines/{pid}/statuses");
    let j = t.ok("GET", &path, None);
    assert_eq!(list_ids(&j, "statuses"), [9000001, 9000002, 142, 143]);
    let ids = t.create(&path, "statuses", json!([{"name": "Счёт", "sort": 30}]));
    assert_eq!(ids, [9000003]);
    let s = t.ok(
        "PATCH",
        &format!("{path}/9000003"),
        Some(&json!({"name": "Счёт выставлен"})),
    );
    assert_eq!(s["id"], 9000003);
    assert_eq!(
        t.ok("GET", &format!("{path}/9000003"), None)["name"],
        "Счёт выставлен"
    );
    assert_eq!(
        t.ok("GET", &format!("{path}/142"), None)["_links"]["self"]["href"],
        t.href(&format!("leads/pipelines/{pid}/statuses/142"))
    );
    assert_eq!(t.get(&format!("{path}/10001")).status, 204);
    assert_eq!(t.call("DELETE", &format!("{path}/142"), None).status, 400);
    assert_eq!(
        t.call("DELETE", &format!("{path}/9000003"), None).status,
        204
    );
    assert_eq!(t.get(&format!("{path}/9000003")).status, 204);
    assert_eq!(t.get("/api/v4/leads/pipelines/5/statuses").status, 404);

    // Leads check their status and pipeline.
    let r = t.call(
        "POST",
        "/api/v4/leads",
        Some(&json!([{"status_id": 9000001, "pipeline_id": 1001}])),
    );
    assert_eq!(error_paths(&r), ["status_id"]);
    let r = t.call("POST", "/api/v4/leads", Some(&json!([{"status_id": 777}])));
    assert_eq!(error_paths(&r), ["status_id"]);
    let r = t.call(
        "POST",
        "/api/v4/leads",
        Some(&json!([{"pipeline_id": 999, "status_id": 142}])),
    );
    assert_eq!(error_paths(&r), ["status_id"]);
    let lead = t.create("/api/v4/leads", "leads", json!([{"pipeline_id": pid}]))[0];
    let l = t.ok("GET", &format!("/api/v4/leads/{lead}"), None);
    assert_eq!(l["status_id"], 9000001);
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"status_id": 9000002})),
    );
    // The same pipeline again keeps the status.
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"pipeline_id": pid})),
    );
    assert_eq!(
        t.ok("GET", &format!("/api/v4/leads/{lead}"), None)["status_id"],
        9000002
    );
    // Another pipeline without a status: its first status.
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"pipeline_id": 1001})),
    );
    assert_eq!(
        t.ok("GET", &format!("/api/v4/leads/{lead}"), None)["status_id"],
        10001
    );
    let lead = t.create("/api/v4/leads", "leads", json!([{"status_id": 9000002}]))[0];
    assert_eq!(
        t.ok("GET", &format!("/api/v4/leads/{lead}"), None)["pipeline_id"],
        pid
    );

    // Make it the main one, then delete the old one.
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/pipelines/{pid}"),
        Some(&json!({"is_main": true, "name": "Главная"})),
    );
    assert_eq!(
        t.ok("GET", "/api/v4/leads/pipelines/1001", None)["is_main"],
        false
    );
    assert_eq!(
        t.call("DELETE", &format!("/api/v4/leads/pipelines/{pid}"), None)
            .status,
        400
    );
    let d = t.call("DELETE", "/api/v4/leads/pipelines/1001", None);
    assert_eq!(d.status, 204);
    assert!(d.body.is_empty());
    assert_eq!(t.get("/api/v4/leads/pipelines/1001").status, 204);
    assert_eq!(
        t.call("DELETE", "/api/v4/leads/pipelines/1001", None)
            .status,
        404
    );
    assert_eq!(t.call("PUT", "/api/v4/leads/pipelines", None).status, 405);
}

#[test]
fn custom_fields_per_entity() {
    let t = T::new();
    let j = t.ok("GET", "/api/v4/contacts/custom_fields", None);
    let codes: Vec<&str> = j["_embedded"]["custom_fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"PHONE") && codes.contains(&"EMAIL"),
        "{codes:?}"
    );
    let phone = &j["_embedded"]["custom_fields"][0];
    assert_eq!(phone["type"], "multitext");
    assert_eq!(phone["entity_type"], "contacts");
    assert_eq!(phone["enums"][0]["value"], "WORK");
    let j = t.ok(
        "GET",
        "/api/v4/leads/custom_fields?filter[code]=UTM_SOURCE",
        None,
    );
    let utm = &j["_embedded"]["custom_fields"][0];
    assert_eq!(utm["name"], "utm_source");
    assert_eq!(utm["type"], "text");
    let utm_id = utm["id"].as_i64().unwrap();

    let r = t.call(
        "POST",
        "/api/v4/leads/custom_fields",
        Some(&json!([{"name": "x", "type": "weird"}, {"type": "text"}])),
    );
    assert_eq!(error_paths(&r), ["type", "name"]);
    let j = t.ok(
        "POST",
        "/api/v4/leads/custom_fields",
        Some(
            &json!([{"name": "Источник", "type": "select", "code": "SRC",
                      "enums": [{"value": "Сайт"}, {"value": "Звонок"}]}]),
        ),
    );
    let id = j["_embedded"]["custom_fields"][0]["id"].as_i64().unwrap();
    let f = t.ok("GET", &format!("/api/v4/leads/custom_fields/{id}"), None);
    assert_eq!(f["enums"][1]["value"], "Звонок");
    let enum_id = f["enums"][1]["id"].as_i64().unwrap();
    assert_eq!(
        t.get(&format!("/api/v4/contacts/custom_fields/{id}"))
            .status,
        204
    );

    // Leads take values by code or id; enums by id.
    let lead = t.create(
        "/api/v4/leads",
        "leads",
        json!([{"custom_fields_values": [
            {"field_code": "UTM_SOURCE", "values": [{"value": "yandex"}]},
            {"field_id": id, "values": [{"enum_id": enum_id}]}]}]),
    )[0];
    let l = t.ok("GET", &format!("/api/v4/leads/{lead}"), None);
    assert_eq!(l["custom_fields_values"][0]["field_id"], utm_id);
    assert_eq!(l["custom_fields_values"][0]["values"][0]["value"], "yandex");
    assert_eq!(l["custom_fields_values"][1]["values"][0]["value"], "Звонок");

    let p = t.ok(
        "PATCH",
        &format!("/api/v4/leads/custom_fields/{id}"),
        Some(&json!({"name": "Канал"})),
    );
    assert_eq!(p["id"], id);
    t.ok(
        "PATCH",
        "/api/v4/leads/custom_fields",
        Some(&json!([{"id": id, "sort": 5}])),
    );
    assert_eq!(
        t.ok("GET", &format!("/api/v4/leads/custom_fields/{id}"), None)["sort"],
        5
    );
    assert_eq!(
        t.call("DELETE", &format!("/api/v4/leads/custom_fields/{id}"), None)
            .status,
        204
    );
    assert_eq!(
        t.call(
            "DELETE",
            &format!("/api/v4/contacts/custom_fields/{}", phone["id"]),
            None
        )
        .status,
        400
    );
    // Catalogs have fields too.
    let cat = t.create("/api/v4/catalogs", "catalogs", json!([{"name": "Товары"}]))[0];
    let ids = t.create(
        &format!("/api/v4/catalogs/{cat}/custom_fields"),
        "custom_fields",
        json!([{"name": "Артикул", "type": "text", "code": "SKU"}]),
    );
    assert_eq!(ids.len(), 1);
    assert_eq!(t.get("/api/v4/catalogs/1/custom_fields").status, 404);
}

#[test]
fn loss_reasons_users_roles() {
    let t = T::new();
    assert_eq!(t.get("/api/v4/leads/loss_reasons").status, 204);
    let ids = t.create(
        "/api/v4/leads/loss_reasons",
        "loss_reasons",
        json!([{"name": "Дорого"}, {"name": "Пропал"}]),
    );
    assert_eq!(ids, [11000001, 11000002]);
    let lr = t.ok("GET", "/api/v4/leads/loss_reasons/11000001", None);
    assert_eq!(lr["name"], "Дорого");
    assert_eq!(
        lr["_links"]["self"]["href"],
        t.href("leads/loss_reasons/11000001")
    );
    assert_eq!(
        t.call("DELETE", "/api/v4/leads/loss_reasons/11000001", None)
            .status,
        204
    );
    assert_eq!(t.get("/api/v4/leads/loss_reasons/11000001").status, 204);
    // A loss reason is renamed with PATCH /leads/loss_reasons/{id}
    // (the official library's updateOne); there is no batch PATCH.
    let patched = t.ok(
        "PATCH",
        "/api/v4/leads/loss_reasons/11000002",
        Some(&json!({"name": "Ушёл к конкуренту"})),
    );
    assert_eq!(patched["id"], 11000002);
    let lr = t.ok("GET", "/api/v4/leads/loss_reasons/11000002", None);
    assert_eq!(lr["name"], "Ушёл к конкуренту");
    let j = t.ok("GET", "/api/v4/leads/loss_reasons", None);
    assert_eq!(j["_total_items"], 1);
    assert_eq!(j["_page_count"], 1);
    assert_eq!(
        t.call("PATCH", "/api/v4/leads/loss_reasons", Some(&json!([])))
            .status,
        405
    );

    let j = t.ok("GET", "/api/v4/users", None);
    assert_eq!(list_ids(&j, "users"), [1001, 1002]);
    let admin = &j["_embedded"]["users"][0];
    assert_eq!(admin["name"], "Администратор");
    assert_eq!(admin["rights"]["is_admin"], true);
    assert_eq!(j["_embedded"]["users"][1]["rights"]["is_admin"], false);

    let role = t.create(
        "/api/v4/roles",
        "roles",
        json!([{"name": "Продажи", "rights": {"mail_access": false}}]),
    )[0];
    assert_eq!(role, 13000001);
    t.ok(
        "PATCH",
        "/api/v4/roles/13000001",
        Some(&json!({"name": "Отдел продаж"})),
    );
    assert_eq!(
        t.ok("GET", "/api/v4/roles/13000001", None)["name"],
        "Отдел продаж"
    );
    let r = t.call(
        "POST",
        "/api/v4/users",
        Some(&json!([{"name": "Новый", "email": "admin@emulator.local"}, {"name": "x"}])),
    );
    assert_eq!(error_paths(&r), ["email", "email"]);
    let u = t.create(
        "/api/v4/users",
        "users",
        json!([{"name": "Новый", "email": "new@emulator.local", "rights": {"role_id": role, "group_id": 0}}]),
    )[0];
    assert_eq!(u, 12000001);
    let user = t.ok("GET", "/api/v4/users/12000001?with=role,group", None);
    assert_eq!(user["_embedded"]["roles"][0]["id"], role);
    assert_eq!(user["_embedded"]["groups"][0]["id"], 0);
    let user = t.ok("GET", "/api/v4/users/12000001", None);
    assert!(user.get("_embedded").is_none());
    let r = t.ok("GET", "/api/v4/roles/13000001?with=users", None);
    assert_eq!(r["_embedded"]["users"][0]["id"], 12000001);
    assert_eq!(t.call("DELETE", "/api/v4/roles/13000001", None).status, 204);
    assert_eq!(
        t.ok("GET", "/api/v4/users/12000001", None)["rights"]["role_id"],
        Value::Null
    );
    assert_eq!(t.get("/api/v4/users/5").status, 204);
}

#[test]
fn context_user() {
    let t = T::new();
    t.emu.reset_stats();
    let r = t.with_user(
        "POST",
        "/api/v4/leads",
        "1002",
        Some(&json!([{"name": "От менеджера"}])),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["_embedded"]["leads"][0]["id"].as_i64().unwrap();
    let l = t.ok("GET", &format!("/api/v4/leads/{id}"), None);
    assert_eq!(l["created_by"], 1002);
    assert_eq!(l["updated_by"], 1002);
    assert_eq!(l["responsible_user_id"], 1002);
    let r = t.with_user(
        "PATCH",
        &format!("/api/v4/leads/{id}"),
        "1001",
        Some(&json!({"price": 5})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        t.ok("GET", &format!("/api/v4/leads/{id}"), None)["updated_by"],
        1001
    );
    // Without the header nothing changes.
    let plain = t.create("/api/v4/leads", "leads", json!([{}]))[0];
    assert_eq!(
        t.ok("GET", &format!("/api/v4/leads/{plain}"), None)["created_by"],
        0
    );

    let r = t.with_user("GET", "/api/v4/leads", "999", None);
    assert_eq!(r.status, 403);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.json()["detail"], "User not found");
    assert_eq!(t.with_user("GET", "/api/v4/leads", "abc", None).status, 403);
    // Webhooks are for admins.
    assert_eq!(
        t.with_user("GET", "/api/v4/webhooks", "1002", None).status,
        403
    );
    assert_eq!(
        t.with_user("GET", "/api/v4/webhooks", "1001", None).status,
        204
    );
    let s = t.emu.stats();
    assert_eq!(s["context_user_requests"], 6);
}

#[test]
fn webhooks_subscribe_and_unsubscribe() {
    let t = T::new();
    assert_eq!(t.get("/api/v4/webhooks").status, 204);
    let body =
        json!({"destination": "https://example.com/hook", "settings": ["add_lead", "status_lead"]});
    let r = t.call("POST", "/api/v4/webhooks", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.content_type(), "application/hal+json");
    let w = r.json();
    assert_eq!(w["id"], 19000001);
    assert_eq!(w["destination"], "https://example.com/hook");
    assert_eq!(w["settings"], json!(["add_lead", "status_lead"]));
    assert_eq!(w["disabled"], false);
    assert!(w["created_at"].is_i64());
    assert!(w["sort"].is_i64());
    // The same destination again changes the settings.
    let r = t.call(
        "POST",
        "/api/v4/webhooks",
        Some(&json!({"destination": "https://example.com/hook", "settings": ["add_contact"]})),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["id"], 19000001);
    assert_eq!(r.json()["settings"], json!(["add_contact"]));
    let r = t.call(
        "POST",
        "/api/v4/webhooks",
        Some(&json!({"destination": "http://other.example/h", "settings": ["add_task"]})),
    );
    assert_eq!(r.status, 201);
    let j = t.ok("GET", "/api/v4/webhooks", None);
    assert_eq!(j["_embedded"]["webhooks"].as_array().unwrap().len(), 2);
    let j = t.ok(
        "GET",
        "/api/v4/webhooks?filter[destination]=http%3A%2F%2Fother.example%2Fh",
        None,
    );
    assert_eq!(list_ids(&j, "webhooks"), [19000002]);

    for (bad, path) in [
        (
            json!({"destination": "ftp://x.example", "settings": ["add_lead"]}),
            "destination",
        ),
        (
            json!({"destination": "not a url", "settings": ["add_lead"]}),
            "destination",
        ),
        (
            json!({"destination": "https://x.example", "settings": []}),
            "settings",
        ),
        (
            json!({"destination": "https://x.example", "settings": ["bogus"]}),
            "settings.0",
        ),
    ] {
        let r = t.call("POST", "/api/v4/webhooks", Some(&bad));
        assert_eq!(error_paths(&r), [path], "{bad}");
    }

    let r = t.call(
        "DELETE",
        "/api/v4/webhooks",
        Some(&json!({"destination": "https://example.com/hook"})),
    );
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    let r = t.call(
        "DELETE",
        "/api/v4/webhooks",
        Some(&json!({"destination": "https://example.com/hook"})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.content_type(), "application/problem+json");

    // At most 100 per account.
    for i in 0..99 {
        let r = t.call(
            "POST",
            "/api/v4/webhooks",
            Some(
                &json!({"destination": format!("https://h{i}.example/"), "settings": ["add_lead"]}),
            ),
        );
        assert_eq!(r.status, 201, "{i}: {}", r.text());
    }
    let r = t.call(
        "POST",
        "/api/v4/webhooks",
        Some(&json!({"destination": "https://one-too-many.example/", "settings": ["add_lead"]})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        t.call("PATCH", "/api/v4/webhooks", Some(&json!({}))).status,
        405
    );
}

#[test]
fn unsorted_accept_decline_link_summary() {
    let t = T::new();
    let forms = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| {
                    json!({
                        "source_uid": format!("form-{i}"),
                        "source_name": "Сайт",
                        "metadata": {"form_id": "f1", "form_name": "Заявка", "form_page": "https://site.example",
                                     "form_sent_at": 1700000000, "ip": "127.0.0.1"},
                        "_embedded": {
                            "leads": [{"name": format!("Заявка {i}"), "price": 100}],
                            "contacts": [{"name": format!("Клиент {i}")}]
                        }
                    })
                })
                .collect(),
        )
    };
    let r = t.call(
        "POST",
        "/api/v4/leads/unsorted/forms",
        Some(&json!([{"source_name": "x", "metadata": {}}])),
    );
    assert_eq!(
        error_paths(&r),
        [
            "source_uid",
            "metadata.form_id",
            "metadata.form_name",
            "metadata.form_page",
            "metadata.form_sent_at"
        ]
    );
    let j = t.ok("POST", "/api/v4/leads/unsorted/forms", Some(&forms(3)));
    assert_eq!(j["_total_items"], 3);
    let items = j["_embedded"]["unsorted"].as_array().unwrap().clone();
    let uid = |i: usize| items[i]["uid"].as_str().unwrap().to_string();
    assert!(uid(0).len() >= 20);
    assert_eq!(items[1]["request_id"], "1");
    let lead0 = items[0]["_embedded"]["leads"][0]["id"].as_i64().unwrap();
    let contact0 = items[0]["_embedded"]["contacts"][0]["id"].as_i64().unwrap();
    let l = t.ok("GET", &format!("/api/v4/leads/{lead0}?with=contacts"), None);
    assert_eq!(l["status_id"], 10000, "unsorted status");
    assert_eq!(l["name"], "Заявка 0");
    assert_eq!(l["_embedded"]["contacts"][0]["id"], contact0);

    let j = t.ok("GET", "/api/v4/leads/unsorted", None);
    assert_eq!(j["_embedded"]["unsorted"].as_array().unwrap().len(), 3);
    let one = t.ok("GET", &format!("/api/v4/leads/unsorted/{}", uid(0)), None);
    assert_eq!(one["uid"], uid(0));
    assert_eq!(one["category"], "forms");
    assert_eq!(one["source_uid"], "form-0");
    assert_eq!(one["_embedded"]["leads"][0]["id"], lead0);
    assert!(one.get("__state").is_none());
    assert_eq!(
        one["_links"]["self"]["href"],
        t.href(&format!("leads/unsorted/{}", uid(0)))
    );

    // Accept: a normal lead.
    let r = t.call(
        "POST",
        &format!("/api/v4/leads/unsorted/{}/accept", uid(0)),
        Some(&json!({"user_id": 42, "status_id": 10002})),
    );
    assert_eq!(error_paths(&r), ["user_id"]);
    let a = t.ok(
        "POST",
        &format!("/api/v4/leads/unsorted/{}/accept", uid(0)),
        Some(&json!({"user_id": 1002, "status_id": 10002})),
    );
    assert_eq!(a["uid"], uid(0));
    assert_eq!(a["_embedded"]["leads"][0]["id"], lead0);
    assert_eq!(a["_embedded"]["contacts"][0]["id"], contact0);
    let l = t.ok("GET", &format!("/api/v4/leads/{lead0}"), None);
    assert_eq!(l["status_id"], 10002);
    assert_eq!(l["responsible_user_id"], 1002);
    assert_eq!(
        t.get(&format!("/api/v4/leads/unsorted/{}", uid(0))).status,
        204
    );
    assert_eq!(
        t.call(
            "POST",
            &format!("/api/v4/leads/unsorted/{}/accept", uid(0)),
            Some(&json!({}))
        )
        .status,
        404
    );

    // Decline: the lead and the new contact go.
    let lead1 = items[1]["_embedded"]["leads"][0]["id"].as_i64().unwrap();
    let d = t.ok(
        "DELETE",
        &format!("/api/v4/leads/unsorted/{}/decline", uid(1)),
        Some(&json!({"user_id": 1001})),
    );
    assert_eq!(d["uid"], uid(1));
    assert_eq!(d["_embedded"]["leads"][0]["id"], lead1);
    assert_eq!(t.get(&format!("/api/v4/leads/{lead1}")).status, 204);

    // Link: the contact joins an existing lead.
    let contact2 = items[2]["_embedded"]["contacts"][0]["id"].as_i64().unwrap();
    let r = t.call(
        "POST",
        &format!("/api/v4/leads/unsorted/{}/link", uid(2)),
        Some(&json!({"link": {"entity_id": 5, "entity_type": "leads"}})),
    );
    assert_eq!(error_paths(&r), ["link.entity_id"]);
    let k = t.ok(
        "POST",
        &format!("/api/v4/leads/unsorted/{}/link", uid(2)),
        Some(&json!({"user_id": 1001, "link": {"entity_id": lead0, "entity_type": "leads"}})),
    );
    assert_eq!(k["_embedded"]["leads"][0]["id"], lead0);
    let l = t.ok("GET", &format!("/api/v4/leads/{lead0}?with=contacts"), None);
    let cs = list_ids(&l, "contacts");
    assert_eq!(cs, [contact0, contact2]);

    // SIP.
    let j = t.ok(
        "POST",
        "/api/v4/leads/unsorted/sip",
        Some(&json!([{"source_uid": "pbx", "source_name": "АТС",
                       "metadata": {"uniq": "call-1", "duration": 30, "service_code": "pbx", "phone": "+79001112233",
                                    "called_at": 1700000000, "from": "client"}}])),
    );
    assert_eq!(j["_embedded"]["unsorted"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.get("/api/v4/leads/unsorted?filter[category]=sip").status,
        200
    );
    assert_eq!(
        t.get("/api/v4/leads/unsorted?filter[category]=mail").status,
        204
    );

    let s = t.ok("GET", "/api/v4/leads/unsorted/summary", None);
    assert_eq!(s["total"], 4);
    assert_eq!(s["accepted"], 2);
    assert_eq!(s["declined"], 1);
    assert!(s["average_sort_time"].is_i64());
    assert_eq!(s["categories"]["forms"], 3);
    assert_eq!(s["categories"]["sip"], 1);
    assert_eq!(t.get("/api/v4/leads/unsorted/nope").status, 204);
    assert_eq!(
        t.call("POST", "/api/v4/leads/unsorted/nope/accept", None)
            .status,
        404
    );
}

#[test]
fn catalogs_and_elements() {
    let t = T::new();
    let cat = t.create(
        "/api/v4/catalogs",
        "catalogs",
        json!([{"name": "Товары", "type": "products"}]),
    )[0];
    assert_eq!(cat, 14000001);
    let c = t.ok("GET", &format!("/api/v4/catalogs/{cat}"), None);
    assert_eq!(c["type"], "products");
    assert_eq!(c["can_add_elements"], true);
    t.ok(
        "PATCH",
        "/api/v4/catalogs",
        Some(&json!([{"id": cat, "name": "Каталог"}])),
    );
    assert_eq!(
        t.ok("GET", &format!("/api/v4/catalogs/{cat}"), None)["name"],
        "Каталог"
    );
    let r = t.call("POST", "/api/v4/catalogs", Some(&json!([{"type": "x"}])));
    assert_eq!(error_paths(&r), ["name", "type"]);

    let path = format!("/api/v4/catalogs/{cat}/elements");
    assert_eq!(t.get(&path).status, 204);
    let ids = t.create(
        &path,
        "elements",
        json!([{"name": "Чайник"}, {"name": "Кружка"}]),
    );
    assert_eq!(ids, [15000001, 15000002]);
    let e = t.ok("GET", &format!("{path}/15000001"), None);
    assert_eq!(e["catalog_id"], cat);
    assert_eq!(
        e["_links"]["self"]["href"],
        t.href(&format!("catalogs/{cat}/elements/15000001"))
    );
    t.ok(
        "PATCH",
        &format!("{path}/15000002"),
        Some(&json!({"name": "Чашка"})),
    );
    let j = t.ok("GET", &format!("{path}?query=чаш"), None);
    assert_eq!(list_ids(&j, "elements"), [15000002]);
    let r = t.call("POST", &path, Some(&json!([{}])));
    assert_eq!(error_paths(&r), ["name"]);
    assert_eq!(t.get("/api/v4/catalogs/999/elements").status, 404);
    assert_eq!(
        t.call(
            "POST",
            "/api/v4/catalogs/999/elements",
            Some(&json!([{"name": "x"}]))
        )
        .status,
        404
    );
}

#[test]
fn events_are_recorded() {
    let t = T::new();
    let before = t.emu.now();
    let lead = t.create("/api/v4/leads", "leads", json!([{"name": "E"}]))[0];
    t.create("/api/v4/contacts", "contacts", json!([{"name": "C"}]));
    t.create("/api/v4/companies", "companies", json!([{"name": "Co"}]));
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"status_id": 10002})),
    );
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"price": 3})),
    );
    let j = t.ok("GET", "/api/v4/events", None);
    let ev = j["_embedded"]["events"].as_array().unwrap();
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "lead_added",
            "contact_added",
            "company_added",
            "lead_status_changed"
        ]
    );
    let id = ev[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("01") && id.len() == 26, "{id}");
    assert_eq!(ev[0]["entity_id"], lead);
    assert_eq!(ev[0]["entity_type"], "lead");
    assert_eq!(ev[0]["account_id"], 31000001);
    assert_eq!(ev[3]["value_before"][0]["lead_status"]["id"], 10001);
    assert_eq!(ev[3]["value_after"][0]["lead_status"]["id"], 10002);
    assert_eq!(ev[3]["value_after"][0]["lead_status"]["pipeline_id"], 1001);
    assert_eq!(
        ev[0]["_embedded"]["entity"]["_links"]["self"]["href"],
        t.href(&format!("leads/{lead}"))
    );
    let one = t.ok("GET", &format!("/api/v4/events/{id}"), None);
    assert_eq!(one["type"], "lead_added");
    assert_eq!(t.get("/api/v4/events/01nope").status, 204);

    let j = t.ok(
        "GET",
        "/api/v4/events?filter[type]=lead_status_changed",
        None,
    );
    assert_eq!(j["_embedded"]["events"].as_array().unwrap().len(), 1);
    let j = t.ok("GET", "/api/v4/events?filter[entity][]=contact", None);
    assert_eq!(j["_embedded"]["events"][0]["type"], "contact_added");
    let j = t.ok(
        "GET",
        &format!("/api/v4/events?filter[created_at][from]={before}"),
        None,
    );
    assert_eq!(j["_embedded"]["events"].as_array().unwrap().len(), 4);
    assert_eq!(
        t.get(&format!(
            "/api/v4/events?filter[created_at][from]={}",
            before + 1000
        ))
        .status,
        204
    );
    assert_eq!(
        t.call("POST", "/api/v4/events", Some(&json!([{}]))).status,
        405
    );
    assert_eq!(t.emu.entities("events").as_array().unwrap().len(), 4);
}

#[test]
fn sources_crud() {
    let t = T::new();
    let r = t.call(
        "POST",
        "/api/v4/sources",
        Some(&json!([{"name": "x"}, {"external_id": "e"}])),
    );
    assert_eq!(error_paths(&r), ["external_id", "name"]);
    let r = t.call(
        "POST",
        "/api/v4/sources",
        Some(&json!([{"name": "x", "external_id": "e", "pipeline_id": 7}])),
    );
    assert_eq!(error_paths(&r), ["pipeline_id"]);
    let ids = t.create(
        "/api/v4/sources",
        "sources",
        json!([{"name": "Сайт", "external_id": "site"}, {"name": "Бот", "external_id": "bot", "default": true}]),
    );
    assert_eq!(ids, [17000001, 17000002]);
    let s = t.ok("GET", "/api/v4/sources/17000001", None);
    assert_eq!(s["pipeline_id"], 1001);
    assert_eq!(s["external_id"], "site");
    t.ok(
        "PATCH",
        "/api/v4/sources/17000001",
        Some(&json!({"name": "Лендинг"})),
    );
    t.ok(
        "PATCH",
        "/api/v4/sources",
        Some(&json!([{"id": 17000001, "default": true}])),
    );
    assert_eq!(
        t.ok("GET", "/api/v4/sources/17000002", None)["default"],
        false
    );
    assert_eq!(
        t.call("DELETE", "/api/v4/sources/17000001", None).status,
        204
    );
    assert_eq!(t.get("/api/v4/sources/17000001").status, 204);
    let j = t.ok("GET", "/api/v4/sources", None);
    assert_eq!(list_ids(&j, "sources"), [17000002]);
}

#[test]
fn links_between_entities() {
    let t = T::new();
    let lead = t.create("/api/v4/leads", "leads", json!([{"name": "L"}]))[0];
    let c1 = t.create("/api/v4/contacts", "contacts", json!([{"name": "A"}]))[0];
    let c2 = t.create("/api/v4/contacts", "contacts", json!([{"name": "B"}]))[0];
    let co = t.create("/api/v4/companies", "companies", json!([{"name": "Co"}]))[0];
    let cat = t.create("/api/v4/catalogs", "catalogs", json!([{"name": "K"}]))[0];
    let el = t.create(
        &format!("/api/v4/catalogs/{cat}/elements"),
        "elements",
        json!([{"name": "E"}]),
    )[0];

    assert_eq!(t.get("/api/v4/leads/links").status, 204);
    let r = t.call(
        "POST",
        "/api/v4/leads/link",
        Some(
            &json!([{"entity_id": lead, "to_entity_id": 1, "to_entity_type": "contacts"},
                     {"entity_id": lead, "to_entity_id": c1, "to_entity_type": "tasks"}]),
        ),
    );
    assert_eq!(error_paths(&r), ["to_entity_id", "to_entity_type"]);
    let j = t.ok(
        "POST",
        "/api/v4/leads/link",
        Some(&json!([
            {"entity_id": lead, "to_entity_id": c1, "to_entity_type": "contacts"},
            {"entity_id": lead, "to_entity_id": c2, "to_entity_type": "contacts", "metadata": {"main_contact": true}},
            {"entity_id": lead, "to_entity_id": co, "to_entity_type": "companies"},
            {"entity_id": lead, "to_entity_id": el, "to_entity_type": "catalog_elements",
             "metadata": {"quantity": 2, "catalog_id": cat}}
        ])),
    );
    let links = j["_embedded"]["links"].as_array().unwrap();
    assert_eq!(links.len(), 4);
    assert_eq!(links[0]["entity_type"], "leads");
    assert_eq!(links[0]["to_entity_type"], "contacts");
    assert_eq!(links[1]["metadata"]["main_contact"], true);
    assert_eq!(links[3]["metadata"]["quantity"], 2);

    let l = t.ok("GET", &format!("/api/v4/leads/{lead}?with=contacts"), None);
    assert_eq!(list_ids(&l, "contacts"), [c1, c2]);
    assert_eq!(l["_embedded"]["contacts"][0]["is_main"], false);
    assert_eq!(l["_embedded"]["contacts"][1]["is_main"], true);
    assert_eq!(l["_embedded"]["companies"][0]["id"], co);
    let l = t.ok("GET", &format!("/api/v4/leads/{lead}"), None);
    assert!(l["_embedded"].get("contacts").is_none());
    let j = t.ok(
        "GET",
        &format!("/api/v4/leads?with=contacts&filter[id]={lead}"),
        None,
    );
    assert_eq!(
        j["_embedded"]["leads"][0]["_embedded"]["contacts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let j = t.ok(
        "GET",
        &format!("/api/v4/leads/links?filter[entity_id][]={lead}&filter[to_entity_type]=contacts"),
        None,
    );
    assert_eq!(j["_embedded"]["links"].as_array().unwrap().len(), 2);
    let j = t.ok("GET", &format!("/api/v4/contacts/{c1}/links"), None);
    assert_eq!(j["_embedded"]["links"][0]["to_entity_id"], lead);
    assert_eq!(j["_embedded"]["links"][0]["entity_id"], c1);
    // The other side sees it too.
    let c = t.ok("GET", &format!("/api/v4/contacts/{c1}?with=leads"), None);
    assert_eq!(c["_embedded"]["leads"][0]["id"], lead);

    let r = t.call(
        "POST",
        &format!("/api/v4/leads/{lead}/unlink"),
        Some(&json!([{"to_entity_id": c1, "to_entity_type": "contacts"}])),
    );
    assert_eq!(r.status, 204);
    let r = t.call(
        "POST",
        "/api/v4/leads/unlink",
        Some(&json!([{"entity_id": lead, "to_entity_id": co, "to_entity_type": "companies"}])),
    );
    assert_eq!(r.status, 204);
    let l = t.ok("GET", &format!("/api/v4/leads/{lead}?with=contacts"), None);
    assert_eq!(list_ids(&l, "contacts"), [c2]);
    assert_eq!(l["_embedded"]["companies"], json!([]));
    let j = t.ok(
        "POST",
        &format!("/api/v4/contacts/{c1}/link"),
        Some(&json!([{"to_entity_id": co, "to_entity_type": "companies"}])),
    );
    assert_eq!(j["_embedded"]["links"][0]["entity_id"], c1);
    assert_eq!(t.emu.links().as_array().unwrap().len(), 3);
    assert_eq!(t.get("/api/v4/leads/link").status, 405);
}

#[test]
fn calls_attach_to_the_contact_by_phone() {
    let t = T::new();
    let c = t.create(
        "/api/v4/contacts",
        "contacts",
        json!([{"name": "Звонящий", "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": "+7 900 111-22-33"}]}]}]),
    )[0];
    let r = t.call("POST", "/api/v4/calls", Some(&json!([{"phone": "1"}])));
    assert_eq!(error_paths(&r), ["direction", "source", "duration"]);
    let j = t.ok(
        "POST",
        "/api/v4/calls",
        Some(&json!([
            {"direction": "inbound", "phone": "89001112233", "duration": 65, "source": "pbx",
             "uniq": "c-1", "link": "https://pbx.example/rec/1.mp3", "call_status": 4, "created_by": 1001},
            {"direction": "outbound", "phone": "+79990000000", "duration": 0, "source": "pbx"}
        ])),
    );
    let calls = j["_embedded"]["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["entity_id"], c);
    assert_eq!(calls[0]["entity_type"], "contacts");
    assert_eq!(calls[0]["request_id"], "0");
    let note_id = calls[0]["id"].as_i64().unwrap();
    let errs = j["_embedded"]["errors"].as_array().unwrap();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["request_id"], "1");
    let n = t.ok(
        "GET",
        &format!("/api/v4/contacts/{c}/notes/{note_id}"),
        None,
    );
    assert_eq!(n["note_type"], "call_in");
    assert_eq!(n["params"]["duration"], 65);
    assert_eq!(n["params"]["uniq"], "c-1");
    assert_eq!(n["created_by"], 1001);
}

#[test]
fn widgets_short_links_currencies_account() {
    let t = T::new();
    let j = t.ok("GET", "/api/v4/widgets", None);
    assert_eq!(j["_embedded"]["widgets"][0]["code"], "amo_emulator_widget");
    let w = t.ok("GET", "/api/v4/widgets/amo_emulator_widget", None);
    assert_eq!(w["is_active_in_account"], false);
    assert_eq!(
        w["_links"]["self"]["href"],
        t.href("widgets/amo_emulator_widget")
    );
    assert_eq!(t.get("/api/v4/widgets/nope").status, 204);
    let w = t.ok(
        "POST",
        "/api/v4/widgets/amo_emulator_widget",
        Some(&json!({"api_key": "k-1"})),
    );
    assert_eq!(w["is_active_in_account"], true);
    assert_eq!(w["settings"]["api_key"], "k-1");
    assert_eq!(
        t.call("POST", "/api/v4/widgets/nope", Some(&json!({})))
            .status,
        404
    );
    assert_eq!(
        t.call("DELETE", "/api/v4/widgets/amo_emulator_widget", None)
            .status,
        204
    );
    assert_eq!(
        t.ok("GET", "/api/v4/widgets/amo_emulator_widget", None)["is_active_in_account"],
        false
    );
    assert_eq!(t.call("DELETE", "/api/v4/widgets/nope", None).status, 404);

    let c = t.create("/api/v4/contacts", "contacts", json!([{"name": "C"}]))[0];
    let r = t.call(
        "POST",
        "/api/v4/short_links",
        Some(&json!([{"url": "nope", "metadata": {"entity_type": "leads", "entity_id": 1}}])),
    );
    assert_eq!(
        error_paths(&r),
        ["url", "metadata.entity_type", "metadata.entity_id"]
    );
    let j = t.ok(
        "POST",
        "/api/v4/short_links",
        Some(&json!([{"url": "https://shop.example/p/1", "metadata": {"entity_type": "contacts", "entity_id": c}}])),
    );
    let sl = &j["_embedded"]["short_links"][0];
    let url = sl["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://emulator.amo.sh/") && url.len() == 30,
        "{url}"
    );
    assert_eq!(sl["metadata"]["entity_id"], c);
    assert_eq!(t.get("/api/v4/short_links").status, 405);

    let j = t.ok("GET", "/api/v4/currencies", None);
    let codes: Vec<&str> = j["_embedded"]["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["RUB", "USD", "EUR"]);
    assert_eq!(j["_embedded"]["currencies"][0]["symbol"], "₽");
    assert_eq!(t.get("/api/v4/currencies?page=2").status, 204);

    let a = t.ok("GET", "/api/v4/account", None);
    assert!(a.get("_embedded").is_none());
    assert!(a["amojo_id"].is_string());
    let a = t.ok(
        "GET",
        "/api/v4/account?with=amojo_id,users_groups,task_types,datetime_settings,version",
        None,
    );
    assert_eq!(a["_embedded"]["users_groups"][0]["id"], 0);
    assert_eq!(a["_embedded"]["task_types"][0]["id"], 1);
    assert_eq!(a["_embedded"]["task_types"][0]["code"], "FOLLOW_UP");
    assert_eq!(
        a["_embedded"]["datetime_settings"]["timezone"],
        "Europe/Moscow"
    );
    assert!(a["version"].is_i64());
}

#[test]
fn leads_complex_answers_a_bare_array_and_merges() {
    let t = T::new();
    let phone = json!([{"field_code": "PHONE", "values": [{"value": "+79123334455"}]}]);
    let body = json!([
        {"name": "Сделка 1", "price": 10, "request_id": "r1",
         "_embedded": {"contacts": [{"first_name": "Анна", "custom_fields_values": phone}],
                       "companies": [{"name": "ООО"}],
                       "tags": [{"name": "сайт"}]}},
        {"name": "Сделка 2"}
    ]);
    let r = t.call("POST", "/api/v4/leads/complex", Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    let items = a.as_array().expect("a bare array");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], 1000001);
    assert_eq!(items[0]["contact_id"], 2000001);
    assert_eq!(items[0]["company_id"], 3000001);
    assert_eq!(items[0]["request_id"], json!(["r1"]));
    assert_eq!(items[0]["merged"], false);
    assert_eq!(items[1]["request_id"], json!(["1"]));
    assert_eq!(items[1]["contact_id"], Value::Null);
    let l = t.ok("GET", "/api/v4/leads/1000001?with=contacts", None);
    assert_eq!(l["_embedded"]["contacts"][0]["id"], 2000001);
    assert_eq!(l["_embedded"]["contacts"][0]["is_main"], true);
    assert_eq!(l["_embedded"]["companies"][0]["id"], 3000001);
    assert_eq!(l["_embedded"]["tags"][0]["name"], "сайт");
    let c = t.ok("GET", "/api/v4/contacts/2000001", None);
    assert_eq!(c["_embedded"]["companies"][0]["id"], 3000001);

    // The same phone, formatted differently: the contact is reused.
    let again = json!([{"name": "Сделка 3", "_embedded": {"contacts": [{"name": "Анна П.",
        "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": "8 (912) 333-44-55"}]}]}]}}]);
    let a = t.ok("POST", "/api/v4/leads/complex", Some(&again));
    assert_eq!(a[0]["contact_id"], 2000001);
    assert_eq!(a[0]["merged"], true);
    assert_eq!(t.emu.entities("contacts").as_array().unwrap().len(), 1);
    // And by email.
    t.ok(
        "PATCH",
        "/api/v4/contacts/2000001",
        Some(&json!({"custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "anna@example.com"}]}]})),
    );
    let by_mail = json!([{"_embedded": {"contacts": [{"custom_fields_values":
        [{"field_code": "EMAIL", "values": [{"value": "ANNA@example.com"}]}]}]}}]);
    assert_eq!(
        t.ok("POST", "/api/v4/leads/complex", Some(&by_mail))[0]["merged"],
        true
    );

    // Limits and validation.
    let two = json!([{"_embedded": {"contacts": [{"name": "a"}, {"name": "b"}]}}]);
    let r = t.call("POST", "/api/v4/leads/complex", Some(&two));
    assert_eq!(error_paths(&r), ["_embedded.contacts"]);
    let bad =
        json!([{"price": "x", "_embedded": {"contacts": [{"name": 5}], "companies": [{"id": 1}]}}]);
    let r = t.call("POST", "/api/v4/leads/complex", Some(&bad));
    assert_eq!(
        error_paths(&r),
        [
            "price",
            "_embedded.contacts.0.name",
            "_embedded.companies.0.id"
        ]
    );
    let many: Vec<Value> = (0..51).map(|i| json!({"name": format!("l{i}")})).collect();
    let r = t.call("POST", "/api/v4/leads/complex", Some(&Value::Array(many)));
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type(), "application/problem+json");
    let fifty: Vec<Value> = (0..50).map(|i| json!({"name": format!("l{i}")})).collect();
    assert_eq!(
        t.ok("POST", "/api/v4/leads/complex", Some(&Value::Array(fifty)))
            .as_array()
            .unwrap()
            .len(),
        50
    );
    assert_eq!(t.get("/api/v4/leads/complex").status, 405);
}

#[test]
fn batches_over_250_and_unknown_paths() {
    let t = T::new();
    let many: Vec<Value> = (0..251).map(|i| json!({"name": format!("c{i}")})).collect();
    let r = t.call("POST", "/api/v4/contacts", Some(&Value::Array(many)));
    assert_eq!(r.status, 400);
    assert!(t.emu.entities("contacts").as_array().unwrap().is_empty());
    assert_eq!(t.get("/api/v4/contacts?limit=251").status, 400);
    for p in [
        "/api/v4/leads/pipelines/x",
        "/api/v4/tasks/notes",
        "/api/v4/unicorns/notes",
        "/api/v4/leads/unsorted/a/b/c",
        "/api/v4/catalogs/abc/elements",
    ] {
        let r = t.get(p);
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(r.content_type(), "application/problem+json");
    }
    assert_eq!(get(&t.emu, "/_emulator/entities/unicorns").status, 404);
    assert_eq!(
        get(&t.emu, "/_emulator/entities/pipelines").json()[0]["id"],
        1001
    );
}
