//! What a team moving from the official PHP library needs the emulator to
//! answer as amoCRM does (issue 11): the verbs beyond CRUD, page totals,
//! catalog types, category and chained-list fields, enum codes, clearing
//! tags, and the full answers of custom fields and unsorted accept.

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
    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let r = self.call(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        r.json()
    }
    fn status(&self, method: &str, path: &str, body: Value) -> u16 {
        self.call(method, path, Some(&body)).status
    }
    fn create(&self, path: &str, key: &str, body: Value) -> Vec<Value> {
        self.ok("POST", path, Some(&body))["_embedded"][key]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
    fn error_paths(&self, method: &str, path: &str, body: Value) -> Vec<String> {
        let r = self.call(method, path, Some(&body));
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
        let j = r.json();
        assert_eq!(j["title"], "Bad Request");
        j["validation-errors"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| v["errors"].as_array().unwrap().clone())
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn users_activate_and_deactivate() {
    let t = T::new();
    let active = |t: &T| t.ok("GET", "/api/v4/users/1002", None)["rights"]["is_active"].clone();
    assert_eq!(active(&t), true);
    assert_eq!(
        t.status("POST", "/api/v4/users/deactivate", json!([{"id": 1002}])),
        204
    );
    assert_eq!(active(&t), false);
    assert_eq!(
        t.status("POST", "/api/v4/users/activate", json!([{"id": 1002}])),
        204
    );
    assert_eq!(active(&t), true);
    // An unknown user, a bad id, more than ten: refused, nothing changes.
    assert_eq!(
        t.error_paths(
            "POST",
            "/api/v4/users/deactivate",
            json!([{"id": 1002}, {"id": 99}])
        ),
        ["id"]
    );
    assert_eq!(active(&t), true);
    let eleven: Vec<Value> = (0..11).map(|_| json!({"id": 1002})).collect();
    assert_eq!(
        t.status("POST", "/api/v4/users/deactivate", json!(eleven)),
        400
    );
    assert_eq!(t.call("GET", "/api/v4/users/activate", None).status, 405);
}

#[test]
fn customers_mode_follows_into_the_account() {
    let t = T::new();
    let mode = |t: &T| t.ok("GET", "/api/v4/account", None)["customers_mode"].clone();
    assert_eq!(mode(&t), "disabled");
    let j = t.ok(
        "PATCH",
        "/api/v4/customers/mode",
        Some(&json!({"mode": "segments", "is_enabled": true})),
    );
    assert_eq!(j, json!({"mode": "segments", "is_enabled": true}));
    assert_eq!(mode(&t), "segments");
    let j = t.ok(
        "PATCH",
        "/api/v4/customers/mode",
        Some(&json!({"mode": "periodicity", "is_enabled": false})),
    );
    assert_eq!(j["is_enabled"], false);
    assert_eq!(mode(&t), "disabled");
    assert_eq!(
        t.error_paths(
            "PATCH",
            "/api/v4/customers/mode",
            json!({"mode": "dynamic"})
        ),
        ["mode"]
    );
}

#[test]
fn sources_are_deleted_in_batches() {
    let t = T::new();
    let made = t.create(
        "/api/v4/sources",
        "sources",
        json!([{"name": "a", "external_id": "a"}, {"name": "b", "external_id": "b"},
               {"name": "c", "external_id": "c"}]),
    );
    let id = |i: usize| made[i]["id"].clone();
    // One unknown id: nothing is deleted.
    assert_eq!(
        t.error_paths(
            "DELETE",
            "/api/v4/sources",
            json!([{"id": id(0)}, {"id": 1}])
        ),
        ["id"]
    );
    assert_eq!(t.ok("GET", "/api/v4/sources", None)["_total_items"], 3);
    assert_eq!(
        t.status(
            "DELETE",
            "/api/v4/sources",
            json!([{"id": id(0)}, {"id": id(1)}])
        ),
        204
    );
    let j = t.ok("GET", "/api/v4/sources", None);
    assert_eq!(j["_total_items"], 1);
    assert_eq!(j["_embedded"]["sources"][0]["id"], id(2));
}

#[test]
fn notes_are_pinned_and_unpinned() {
    let t = T::new();
    let lead = t.create("/api/v4/leads", "leads", json!([{"name": "x"}]))[0]["id"].clone();
    let note = t.create(
        "/api/v4/leads/notes",
        "notes",
        json!([{"entity_id": lead, "note_type": "common", "params": {"text": "hi"}}]),
    )[0]["id"]
        .clone();
    let pinned =
        |t: &T| t.ok("GET", &format!("/api/v4/leads/notes/{note}"), None)["is_pinned"].clone();
    assert_eq!(pinned(&t), false);
    assert_eq!(
        t.call("POST", &format!("/api/v4/leads/notes/{note}/pin"), None)
            .status,
        204
    );
    assert_eq!(pinned(&t), true);
    // Under its parent too.
    let by_parent = t.ok("GET", &format!("/api/v4/leads/{lead}/notes/{note}"), None);
    assert_eq!(by_parent["is_pinned"], true);
    assert_eq!(
        t.call("POST", &format!("/api/v4/leads/notes/{note}/unpin"), None)
            .status,
        204
    );
    assert_eq!(pinned(&t), false);
    // A note of leads is not a note of contacts.
    assert_eq!(
        t.call("POST", &format!("/api/v4/contacts/notes/{note}/pin"), None)
            .status,
        404
    );
}

#[test]
fn counted_lists_carry_total_items_and_page_count() {
    let t = T::new();
    for i in 0..5 {
        t.create(
            "/api/v4/leads/custom_fields",
            "custom_fields",
            json!([{"name": format!("f{i}"), "type": "text"}]),
        );
        t.create("/api/v4/leads", "leads", json!([{"name": format!("l{i}")}]));
    }
    let p2 = t.ok("GET", "/api/v4/leads/custom_fields?limit=2&page=2", None);
    assert_eq!(p2["_total_items"], 10, "5 seeded utm fields and 5 new");
    assert_eq!(p2["_page_count"], 5);
    assert_eq!(p2["_page"], 2);
    let links = &p2["_links"];
    assert!(links["next"]["href"].as_str().unwrap().contains("page=3"));
    assert!(links["prev"]["href"].as_str().unwrap().contains("page=1"));
    let users = t.ok("GET", "/api/v4/users", None);
    assert_eq!(users["_total_items"], 2);
    // Leads are not counted for you.
    let leads = t.ok("GET", "/api/v4/leads?limit=2", None);
    assert!(leads.get("_total_items").is_none());
    assert!(leads["_links"]["next"].is_object());
}

#[test]
fn catalog_types_one_invoices_and_one_products_list() {
    let t = T::new();
    let made = t.create(
        "/api/v4/catalogs",
        "catalogs",
        json!([{"name": "Товары", "type": "products"}, {"name": "Счета", "type": "invoices",
                "can_add_elements": false, "can_link_multiple": false}]),
    );
    let inv = t.ok("GET", &format!("/api/v4/catalogs/{}", made[1]["id"]), None);
    assert_eq!(inv["type"], "invoices");
    assert_eq!(inv["can_add_elements"], false);
    assert_eq!(inv["can_link_multiple"], false);
    assert_eq!(
        t.error_paths(
            "POST",
            "/api/v4/catalogs",
            json!([{"name": "Ещё товары", "type": "products"}])
        ),
        ["type"]
    );
    t.create(
        "/api/v4/catalogs",
        "catalogs",
        json!([{"name": "A"}, {"name": "B", "type": "regular"}]),
    );
    // The type is set once.
    t.ok(
        "PATCH",
        &format!("/api/v4/catalogs/{}", made[0]["id"]),
        Some(&json!({"type": "regular"})),
    );
    let p = t.ok("GET", &format!("/api/v4/catalogs/{}", made[0]["id"]), None);
    assert_eq!(p["type"], "products");
}

#[test]
fn custom_field_post_answers_full_fields_with_nested_chained_lists_and_enum_codes() {
    let t = T::new();
    let cats = t.create(
        "/api/v4/catalogs",
        "catalogs",
        json!([{"name": "Марки"}, {"name": "Модели"}]),
    );
    let (c1, c2) = (cats[0]["id"].clone(), cats[1]["id"].clone());
    let fields = t.create(
        "/api/v4/leads/custom_fields",
        "custom_fields",
        json!([
            {"name": "Категория", "type": "category", "request_id": "cat",
             "nested": [{"value": "Авто", "request_id": "a"},
                        {"value": "Легковые", "parent_request_id": "a"},
                        {"value": "Мото"}]},
            {"name": "Цвет", "type": "select",
             "enums": [{"value": "Красный", "code": "RED", "sort": 1}, {"value": "Синий", "sort": 2}]},
            {"name": "Марка и модель", "type": "chained_list",
             "chained_lists": [{"title": "Марка", "catalog_id": c1, "parent_catalog_id": 0},
                               {"title": "Модель", "catalog_id": c2, "parent_catalog_id": c1}]},
        ]),
    );
    // Whole objects, each with its request_id.
    let cat = &fields[0];
    assert_eq!(cat["request_id"], "cat");
    assert_eq!(cat["name"], "Категория");
    assert_eq!(cat["type"], "category");
    assert_eq!(fields[1]["request_id"], "1");
    let nested = cat["nested"].as_array().unwrap();
    assert_eq!(nested.len(), 3);
    assert_eq!(nested[0]["parent_id"], Value::Null);
    assert_eq!(nested[1]["parent_id"], nested[0]["id"]);
    assert_eq!(nested[1]["value"], "Легковые");
    assert!(nested[2]["id"].as_u64().unwrap() > 0);
    let enums = fields[1]["enums"].as_array().unwrap();
    assert_eq!(enums[0]["code"], "RED");
    assert_eq!(enums[1]["code"], Value::Null);
    let chained = fields[2]["chained_lists"].as_array().unwrap();
    assert_eq!(chained[1]["catalog_id"], c2);
    assert_eq!(chained[1]["parent_catalog_id"], c1);
    assert_eq!(chained[0]["title"], "Марка");
    // GET agrees with the POST answer.
    let got = t.ok(
        "GET",
        &format!("/api/v4/leads/custom_fields/{}", cat["id"]),
        None,
    );
    assert_eq!(got["nested"], cat["nested"]);

    // A select value by its enum's code carries that code back.
    let color = fields[1]["id"].clone();
    let lead = t.create(
        "/api/v4/leads",
        "leads",
        json!([{"name": "x", "custom_fields_values": [
            {"field_id": color, "values": [{"enum_code": "RED"}]}]}]),
    )[0]["id"]
        .clone();
    let l = t.ok("GET", &format!("/api/v4/leads/{lead}"), None);
    let v = &l["custom_fields_values"][0]["values"][0];
    assert_eq!(v["value"], "Красный");
    assert_eq!(v["enum_id"], enums[0]["id"]);
    assert_eq!(v["enum_code"], "RED");
    // A phone's enum_code is its type (WORK, MOB).
    let c = t.create(
        "/api/v4/contacts",
        "contacts",
        json!([{"name": "c", "custom_fields_values": [{"field_code": "PHONE",
            "values": [{"value": "+79001234567", "enum_code": "MOB"}]}]}]),
    )[0]["id"]
        .clone();
    let c = t.ok("GET", &format!("/api/v4/contacts/{c}"), None);
    assert_eq!(
        c["custom_fields_values"][0]["values"][0]["enum_code"],
        "MOB"
    );

    // nested on a text field, chained_lists naming no catalog: refused.
    assert_eq!(
        t.error_paths(
            "POST",
            "/api/v4/leads/custom_fields",
            json!([{"name": "t", "type": "text", "nested": [{"value": "x"}]},
                   {"name": "c", "type": "chained_list",
                    "chained_lists": [{"title": "x", "catalog_id": 1}]}])
        ),
        ["nested", "chained_lists.0.catalog_id"]
    );
}

#[test]
fn embedded_tags_null_clears_an_entitys_tags() {
    let t = T::new();
    let lead = t.create(
        "/api/v4/leads",
        "leads",
        json!([{"name": "x", "_embedded": {"tags": [{"name": "a"}, {"name": "b"}]}}]),
    )[0]["id"]
        .clone();
    let tags = |t: &T| {
        t.ok("GET", &format!("/api/v4/leads/{lead}"), None)["_embedded"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(tags(&t), ["a", "b"]);
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"tags_to_delete": [{"name": "a"}], "tags_to_add": [{"name": "c"}]})),
    );
    assert_eq!(tags(&t), ["b", "c"]);
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"_embedded": {"tags": null}})),
    );
    assert!(tags(&t).is_empty());
    // Without _embedded.tags the tags stay.
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"tags_to_add": [{"name": "d"}]})),
    );
    t.ok(
        "PATCH",
        &format!("/api/v4/leads/{lead}"),
        Some(&json!({"name": "y", "_embedded": {}})),
    );
    assert_eq!(tags(&t), ["d"]);
}

#[test]
fn unsorted_accept_and_decline_answer_the_full_shape() {
    let t = T::new();
    let form = |i: usize| {
        json!({
            "source_uid": format!("f{i}"), "source_name": "Сайт",
            "metadata": {"form_id": "f", "form_name": "Заявка", "form_page": "https://site.example",
                         "form_sent_at": 1700000000, "ip": "127.0.0.1"},
            "_embedded": {"leads": [{"name": "Заявка"}], "contacts": [{"name": "Клиент"}],
                          "companies": [{"name": "ООО"}]}
        })
    };
    let items = t.create(
        "/api/v4/leads/unsorted/forms",
        "unsorted",
        json!([form(0), form(1)]),
    );
    let uid = |i: usize| items[i]["uid"].as_str().unwrap().to_string();
    let one = t.ok("GET", &format!("/api/v4/leads/unsorted/{}", uid(0)), None);
    let a = t.ok(
        "POST",
        &format!("/api/v4/leads/unsorted/{}/accept", uid(0)),
        Some(&json!({})),
    );
    assert_eq!(a["uid"], uid(0));
    assert_eq!(a["account_id"], one["account_id"]);
    assert!(a["account_id"].as_i64().unwrap() > 0);
    assert_eq!(a["pipeline_id"], one["pipeline_id"]);
    assert_eq!(a["category"], "forms");
    assert_eq!(a["created_at"], one["created_at"]);
    assert!(a["accepted_at"].as_i64().unwrap() >= one["created_at"].as_i64().unwrap());
    for key in ["leads", "contacts", "companies"] {
        let e = &a["_embedded"][key][0];
        assert!(e["id"].as_i64().unwrap() > 0, "{key}");
        assert!(e["_links"]["self"]["href"].as_str().unwrap().contains(key));
    }
    let d = t.ok(
        "DELETE",
        &format!("/api/v4/leads/unsorted/{}/decline", uid(1)),
        Some(&json!({})),
    );
    assert!(d["declined_at"].as_i64().is_some());
    assert!(d.get("accepted_at").is_none());
    assert_eq!(d["category"], "forms");
}
