mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn bearer_check() {
    let (emu, at) = unlimited();
    let expected = json!({
        "title": "Unauthorized",
        "type": "https://httpstatus.es/401",
        "status": 401,
        "detail": "Неверный логин или пароль",
    });
    let r = get(&emu, "/api/v4/account");
    assert_eq!(r.status, 401);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.json(), expected);
    assert_eq!(
        api(&emu, "GET", "/api/v4/account", "garbage", None).json(),
        expected
    );
    let r = request(
        &emu,
        "GET",
        "/api/v4/leads",
        &[("Authorization", &format!("Basic {at}"))],
        b"",
    );
    assert_eq!(r.status, 401);

    let r = api(&emu, "GET", "/api/v4/account", &at, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "application/hal+json");
    let a = r.json();
    assert_eq!(a["id"], 31000001);
    assert_eq!(a["currency_symbol"], "₽");
    assert_eq!(a["current_user_id"], 1001);
    assert_eq!(
        a["_links"]["self"]["href"],
        format!("http://{}/api/v4/account", emu.referer())
    );

    let r = api(&emu, "GET", "/api/v4/unicorns", &at, None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["title"], "Not Found");
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(
        api(&emu, "DELETE", "/api/v4/account", &at, None).status,
        405
    );
    assert_eq!(api(&emu, "DELETE", "/api/v4/leads", &at, None).status, 405);

    emu.advance_clock(86_400);
    assert_eq!(api(&emu, "GET", "/api/v4/account", &at, None).status, 401);

    let s = emu.stats();
    assert_eq!(
        s["api_calls"],
        json!({"200": 1, "401": 4, "404": 1, "405": 2})
    );
}

#[test]
fn leads_create_get_patch() {
    let (emu, at) = unlimited();
    let body = json!([
        {"name": "First", "price": 100, "request_id": "abc"},
        {"name": "Second", "_embedded": {"tags": [{"name": "vip"}]},
         "custom_fields_values": [{"field_id": 1, "values": [{"value": "x"}]}]},
        {"price": 5}
    ]);
    let r = api(&emu, "POST", "/api/v4/leads", &at, Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type(), "application/hal+json");
    let j = r.json();
    let host = format!("http://{}", emu.referer());
    assert_eq!(j["_links"]["self"]["href"], format!("{host}/api/v4/leads"));
    let created = j["_embedded"]["leads"].as_array().unwrap();
    let ids: Vec<i64> = created.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1000001, 1000002, 1000003]);
    let rids: Vec<&str> = created
        .iter()
        .map(|l| l["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(rids, ["abc", "1", "2"]);
    assert_eq!(
        created[0]["_links"]["self"]["href"],
        format!("{host}/api/v4/leads/1000001")
    );

    let l = api(&emu, "GET", "/api/v4/leads/1000002", &at, None).json();
    let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "price",
            "responsible_user_id",
            "group_id",
            "status_id",
            "pipeline_id",
            "loss_reason_id",
            "created_by",
            "updated_by",
            "created_at",
            "updated_at",
            "closed_at",
            "closest_task_at",
            "is_deleted",
            "custom_fields_values",
            "score",
            "account_id",
            "labor_cost",
            "_links",
            "_embedded"
        ]
    );
    assert_eq!(l["name"], "Second");
    assert_eq!(l["price"], 0);
    assert_eq!(l["status_id"], 10001);
    assert_eq!(l["pipeline_id"], 1001);
    assert_eq!(l["responsible_user_id"], 1001);
    assert_eq!(l["_embedded"]["tags"][0]["name"], "vip");
    assert_eq!(l["_embedded"]["companies"], json!([]));
    assert_eq!(l["custom_fields_values"][0]["field_id"], 1);

    let missing = api(&emu, "GET", "/api/v4/leads/42", &at, None);
    assert_eq!(missing.status, 204);
    assert!(missing.body.is_empty());
    assert!(missing.header("content-length").is_none());

    emu.advance_clock(10);
    let p = api(
        &emu,
        "PATCH",
        "/api/v4/leads/1000001",
        &at,
        Some(&json!({"price": 250, "status_id": 142})),
    );
    assert_eq!(p.status, 200, "{}", p.text());
    let pj = p.json();
    assert_eq!(pj["id"], 1000001);
    assert_eq!(pj["request_id"], "0");
    assert_eq!(pj["updated_at"], emu.now());
    let l = api(&emu, "GET", "/api/v4/leads/1000001", &at, None).json();
    assert_eq!(l["price"], 250);
    assert_eq!(l["name"], "First");
    assert_eq!(l["closed_at"], emu.now());

    let p = api(
        &emu,
        "PATCH",
        "/api/v4/leads/999",
        &at,
        Some(&json!({"price": 1})),
    );
    assert_eq!(p.status, 400);
    assert_eq!(p.json()["validation-errors"][0]["errors"][0]["path"], "id");

    let p = api(
        &emu,
        "PATCH",
        "/api/v4/leads",
        &at,
        Some(
            &json!([{"id": 1000002, "name": "Renamed"}, {"id": 1000003, "price": 7, "request_id": "r"}]),
        ),
    );
    assert_eq!(p.status, 200, "{}", p.text());
    let list = p.json()["_embedded"]["leads"].clone();
    assert_eq!(list[0]["id"], 1000002);
    assert_eq!(list[1]["request_id"], "r");
    let p = api(
        &emu,
        "PATCH",
        "/api/v4/leads",
        &at,
        Some(&json!([{"name": "no id"}])),
    );
    assert_eq!(p.status, 400);

    let all = get(&emu, "/_emulator/leads").json();
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[1]["name"], "Renamed");
    assert_eq!(all[2]["price"], 7);
    assert_eq!(emu.leads(), all);
}

#[test]
fn leads_validation() {
    let (emu, at) = unlimited();
    let r = api(
        &emu,
        "POST",
        "/api/v4/leads",
        &at,
        Some(&json!([{"price": "100"}])),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(
        r.json(),
        json!({
            "validation-errors": [{"request_id": "0", "errors": [{
                "code": "InvalidType", "path": "price",
                "detail": "This value should be of type int."}]}],
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        })
    );
    let r = api(
        &emu,
        "POST",
        "/api/v4/leads",
        &at,
        Some(&json!({"name": "x"})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["detail"], "Request validation failed");
    let r = api(
        &emu,
        "POST",
        "/api/v4/leads",
        &at,
        Some(&json!([{"name": "ok"}, 5])),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["validation-errors"][0]["request_id"], "1");
    let auth = format!("Bearer {at}");
    let r = request(
        &emu,
        "POST",
        "/api/v4/leads",
        &[("Authorization", &auth)],
        b"[{",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], 400);
    let many: Vec<Value> = (0..251).map(|i| json!({"name": format!("l{i}")})).collect();
    let r = api(
        &emu,
        "POST",
        "/api/v4/leads",
        &at,
        Some(&Value::Array(many)),
    );
    assert_eq!(r.status, 400);
    // Nothing was stored by any of them.
    assert_eq!(emu.leads(), json!([]));
    let ok: Vec<Value> = (0..250).map(|i| json!({"name": format!("l{i}")})).collect();
    assert_eq!(
        api(&emu, "POST", "/api/v4/leads", &at, Some(&Value::Array(ok))).status,
        200
    );
}

#[test]
fn leads_list_pages_filters() {
    let (emu, at) = unlimited();
    let items: Vec<Value> = (1..=5)
        .map(|i| json!({"name": format!("Deal {i}"), "price": i * 10}))
        .collect();
    assert_eq!(
        api(
            &emu,
            "POST",
            "/api/v4/leads",
            &at,
            Some(&Value::Array(items))
        )
        .status,
        200
    );
    let host = format!("http://{}", emu.referer());

    let p1 = api(&emu, "GET", "/api/v4/leads?limit=2", &at, None);
    assert_eq!(p1.status, 200);
    assert_eq!(p1.content_type(), "application/hal+json");
    let j = p1.json();
    assert_eq!(j["_page"], 1);
    assert_eq!(j["_embedded"]["leads"].as_array().unwrap().len(), 2);
    assert_eq!(
        j["_links"]["self"]["href"],
        format!("{host}/api/v4/leads?page=1&limit=2")
    );
    assert_eq!(
        j["_links"]["next"]["href"],
        format!("{host}/api/v4/leads?page=2&limit=2")
    );
    assert!(j["_links"].get("prev").is_none());
    let lead = &j["_embedded"]["leads"][0];
    assert_eq!(lead["id"], 1000001);
    assert_eq!(lead["account_id"], 31000001);
    assert_eq!(lead["custom_fields_values"], Value::Null);
    assert_eq!(
        lead["_links"]["self"]["href"],
        format!("{host}/api/v4/leads/1000001")
    );

    let j = api(&emu, "GET", "/api/v4/leads?limit=2&page=3", &at, None).json();
    assert_eq!(j["_page"], 3);
    assert_eq!(j["_embedded"]["leads"].as_array().unwrap().len(), 1);
    assert!(j["_links"].get("next").is_none());
    assert_eq!(
        j["_links"]["prev"]["href"],
        format!("{host}/api/v4/leads?page=2&limit=2")
    );

    let empty = api(&emu, "GET", "/api/v4/leads?limit=2&page=4", &at, None);
    assert_eq!(empty.status, 204);
    assert!(empty.body.is_empty());

    let j = api(&emu, "GET", "/api/v4/leads", &at, None).json();
    assert_eq!(j["_embedded"]["leads"].as_array().unwrap().len(), 5);

    let ids = |j: &Value| -> Vec<i64> {
        j["_embedded"]["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect()
    };
    let j = api(
        &emu,
        "GET",
        "/api/v4/leads?filter[id][]=1000002&filter[id][]=1000004",
        &at,
        None,
    )
    .json();
    assert_eq!(ids(&j), [1000002, 1000004]);
    let j = api(
        &emu,
        "GET",
        "/api/v4/leads?filter%5Bid%5D=1000003",
        &at,
        None,
    )
    .json();
    assert_eq!(ids(&j), [1000003]);
    let j = api(&emu, "GET", "/api/v4/leads?query=deal%205", &at, None).json();
    assert_eq!(ids(&j), [1000005]);
    let j = api(
        &emu,
        "GET",
        "/api/v4/leads?order[id]=desc&limit=3",
        &at,
        None,
    )
    .json();
    assert_eq!(ids(&j), [1000005, 1000004, 1000003]);
    let j = api(
        &emu,
        "GET",
        "/api/v4/leads?filter[price][from]=20&filter[price][to]=40",
        &at,
        None,
    )
    .json();
    assert_eq!(ids(&j), [1000002, 1000003, 1000004]);
    assert_eq!(
        api(&emu, "GET", "/api/v4/leads?query=nothing", &at, None).status,
        204
    );
    assert_eq!(
        api(&emu, "GET", "/api/v4/leads?filter[id]=7", &at, None).status,
        204
    );

    let r = api(&emu, "GET", "/api/v4/leads?limit=251", &at, None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["validation-errors"][0]["errors"][0]["path"],
        "limit"
    );
    assert_eq!(
        api(&emu, "GET", "/api/v4/leads?limit=250", &at, None).status,
        200
    );
    assert_eq!(
        api(&emu, "GET", "/api/v4/leads?page=0", &at, None).status,
        400
    );
}
