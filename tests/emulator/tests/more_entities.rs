//! The endpoints of issue 11: shapes, 204s, 404s and validation errors of
//! products' settings, transactions, segments, customers' statuses, bonus
//! points, custom field groups, event types, subscriptions, website
//! buttons, chat templates, talks, and a product linked to a lead.

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
    /// An answer with `status` and a HAL JSON body.
    fn json(&self, status: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
        let r = self.call(method, path, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert_eq!(r.content_type(), "application/hal+json");
        r.json()
    }
    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.json(200, method, path, body)
    }
    fn first_id(&self, path: &str, key: &str, body: Value) -> Value {
        self.ok("POST", path, Some(&body))["_embedded"][key][0]["id"].clone()
    }
    /// A customer, a catalog with a price field and an element.
    fn fixture(&self) -> (i64, i64, i64, i64) {
        let cust = self.first_id("/api/v4/customers", "customers", json!([{"name": "C"}]));
        let cat = self.first_id("/api/v4/catalogs", "catalogs", json!([{"name": "Товары"}]));
        let cat = cat.as_i64().unwrap();
        let price = self.first_id(
            &format!("/api/v4/catalogs/{cat}/custom_fields"),
            "custom_fields",
            json!([{"name": "Цена", "type": "price"}]),
        );
        let el = self.first_id(
            &format!("/api/v4/catalogs/{cat}/elements"),
            "elements",
            json!([{"name": "Чайник"}]),
        );
        (
            cust.as_i64().unwrap(),
            cat,
            price.as_i64().unwrap(),
            el.as_i64().unwrap(),
        )
    }
}

/// The `validation-errors` paths of a 400 answer, in amoCRM's shape.
fn error_paths(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.content_type(), "application/problem+json");
    let j = r.json();
    assert_eq!(j["title"], "Bad Request");
    assert_eq!(j["type"], "https://httpstatus.es/400");
    assert_eq!(j["detail"], "Request validation failed");
    j["validation-errors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["errors"].as_array().unwrap().clone())
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn product_on_a_lead_keeps_quantity_and_price() {
    let t = T::new();
    let (_, cat, price, el) = t.fixture();
    let lead = t.first_id("/api/v4/leads", "leads", json!([{"name": "L"}]));
    let item = |price_id: i64, quantity: Value| {
        json!([{"to_entity_id": el, "to_entity_type": "catalog_elements",
                "metadata": {"catalog_id": cat, "quantity": quantity, "price_id": price_id}}])
    };
    let path = format!("/api/v4/leads/{lead}/link");
    assert_eq!(
        error_paths(&t.call("POST", &path, Some(&item(price + 1000, json!(2))))),
        ["metadata.price_id"]
    );
    assert_eq!(
        error_paths(&t.call("POST", &path, Some(&item(price, json!(0))))),
        ["metadata.quantity"]
    );
    let linked = t.ok("POST", &path, Some(&item(price, json!(2))));
    let meta = json!({"catalog_id": cat, "quantity": 2, "price_id": price});
    assert_eq!(linked["_embedded"]["links"][0]["metadata"], meta);
    let links = t.ok("GET", &format!("/api/v4/leads/{lead}/links"), None);
    assert_eq!(links["_embedded"]["links"][0]["to_entity_id"], el);
    assert_eq!(links["_embedded"]["links"][0]["metadata"], meta);
    let l = t.ok(
        "GET",
        &format!("/api/v4/leads/{lead}?with=catalog_elements"),
        None,
    );
    assert_eq!(l["_embedded"]["catalog_elements"][0]["metadata"], meta);
}

#[test]
fn transactions_of_a_customer() {
    let t = T::new();
    let (cust, cat, _, el) = t.fixture();
    assert_eq!(t.get("/api/v4/customers/transactions").status, 204);
    let path = format!("/api/v4/customers/{cust}/transactions?accrue_bonus=false");
    let r = t.call("POST", &path, Some(&json!([{"comment": "no price"}])));
    assert_eq!(error_paths(&r), ["price"]);
    let r = t.call(
        "POST",
        &path,
        Some(&json!([{"price": 10, "_embedded": {"catalog_elements": [{"id": el + 99, "metadata": {"catalog_id": cat}}]}}])),
    );
    assert_eq!(error_paths(&r), ["_embedded.catalog_elements.0.id"]);
    let r = t.call(
        "POST",
        &format!("/api/v4/customers/{cust}/transactions?accrue_bonus=maybe"),
        Some(&json!([{"price": 1}])),
    );
    assert_eq!(error_paths(&r), ["accrue_bonus"]);
    assert_eq!(
        t.call(
            "POST",
            "/api/v4/customers/99/transactions",
            Some(&json!([{"price": 1}]))
        )
        .status,
        404
    );

    let created = t.ok(
        "POST",
        &path,
        Some(&json!([
            {"price": 1500, "comment": "Покупка", "request_id": "a",
             "_embedded": {"catalog_elements": [{"id": el, "metadata": {"catalog_id": cat, "quantity": 3}}]}},
            {"price": 500},
        ])),
    );
    let made = created["_embedded"]["transactions"].as_array().unwrap();
    assert_eq!(made[0]["request_id"], "a");
    assert_eq!(made[1]["request_id"], "1");
    let id = made[0]["id"].as_i64().unwrap();
    let one = t.ok(
        "GET",
        &format!("/api/v4/customers/transactions/{id}?with=catalog_elements"),
        None,
    );
    assert_eq!(one["price"], 1500);
    assert_eq!(one["customer_id"], cust);
    assert_eq!(one["_embedded"]["customer"]["id"], cust);
    assert_eq!(
        one["_embedded"]["catalog_elements"],
        json!([{"id": el, "metadata": {"catalog_id": cat, "quantity": 3}}])
    );
    let plain = t.ok("GET", &format!("/api/v4/customers/transactions/{id}"), None);
    assert!(plain["_embedded"].get("catalog_elements").is_none());
    let c = t.ok("GET", &format!("/api/v4/customers/{cust}"), None);
    assert_eq!(
        (&c["ltv"], &c["purchases_count"], &c["average_check"]),
        (&json!(2000), &json!(2), &json!(1000))
    );
    let list = t.ok(
        "GET",
        &format!("/api/v4/customers/{cust}/transactions"),
        None,
    );
    assert_eq!(
        list["_embedded"]["transactions"].as_array().unwrap().len(),
        2
    );

    let other = made[1]["id"].as_i64().unwrap();
    let r = t.call(
        "DELETE",
        &format!("/api/v4/customers/{cust}/transactions/{other}"),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        t.get(&format!("/api/v4/customers/transactions/{other}"))
            .status,
        204
    );
    assert_eq!(
        t.ok("GET", &format!("/api/v4/customers/{cust}"), None)["ltv"],
        1500
    );
    assert_eq!(
        t.call("DELETE", "/api/v4/customers/transactions/1", None)
            .status,
        405
    );
}

#[test]
fn bonus_points_earn_and_redeem() {
    let t = T::new();
    let (cust, ..) = t.fixture();
    let path = format!("/api/v4/customers/{cust}/bonus_points");
    assert_eq!(
        t.ok("POST", &path, Some(&json!({"earn": 100}))),
        json!({"bonus_points": 100})
    );
    assert_eq!(
        t.ok("POST", &path, Some(&json!({"redeem": 40})))["bonus_points"],
        60
    );
    let r = t.call("POST", &path, Some(&json!({"redeem": 61})));
    assert_eq!(error_paths(&r), ["redeem"]);
    assert_eq!(
        error_paths(&t.call("POST", &path, Some(&json!({"earn": -5})))),
        ["earn"]
    );
    assert_eq!(
        error_paths(&t.call("POST", &path, Some(&json!({})))),
        ["earn"]
    );
    assert_eq!(
        t.ok("POST", &path, Some(&json!({"earn": 1})))["bonus_points"],
        61
    );
    let r = t.call(
        "POST",
        "/api/v4/customers/7/bonus_points",
        Some(&json!({"earn": 1})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(t.get(&path).status, 405);
}

#[test]
fn products_settings_make_the_products_catalog() {
    let t = T::new();
    let path = "/api/v4/catalogs/products/settings";
    assert_eq!(t.ok("GET", path, None), json!({"is_enabled": false}));
    assert_eq!(
        error_paths(&t.call("PATCH", path, Some(&json!({"is_enabled": "yes"})))),
        ["is_enabled"]
    );
    assert_eq!(
        t.ok("PATCH", path, Some(&json!({"is_enabled": true}))),
        json!({"is_enabled": true})
    );
    t.ok("PATCH", path, Some(&json!({"is_enabled": true})));
    let cats = t.ok("GET", "/api/v4/catalogs", None);
    let products: Vec<&Value> = cats["_embedded"]["catalogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "products")
        .collect();
    assert_eq!(products.len(), 1, "made once");
    assert_eq!(t.ok("GET", path, None)["is_enabled"], true);
}

#[test]
fn segments_one_object_at_a_time() {
    let t = T::new();
    assert_eq!(t.get("/api/v4/customers/segments").status, 204);
    let r = t.call(
        "POST",
        "/api/v4/customers/segments",
        Some(&json!({"name": "VIP", "color": "123456"})),
    );
    assert_eq!(error_paths(&r), ["color"]);
    let s = t.ok(
        "POST",
        "/api/v4/customers/segments",
        Some(&json!({"name": "VIP", "color": "ff5376"})),
    );
    assert_eq!(s["name"], "VIP");
    assert_eq!(s["customers_count"], 0);
    let id = s["id"].as_i64().unwrap();
    assert_eq!(
        s["_links"]["self"]["href"],
        format!("http://{}/api/v4/customers/segments/{id}", t.emu.referer())
    );
    t.ok(
        "PATCH",
        &format!("/api/v4/customers/segments/{id}"),
        Some(&json!({"name": "Постоянные"})),
    );
    let list = t.ok("GET", "/api/v4/customers/segments", None);
    assert_eq!(list["_embedded"]["segments"][0]["name"], "Постоянные");
    let path = format!("/api/v4/customers/segments/{id}");
    assert_eq!(t.call("DELETE", &path, None).status, 204);
    assert_eq!(t.get(&path).status, 204);
    assert_eq!(t.call("DELETE", &path, None).status, 404);
}

#[test]
fn customers_statuses_are_listed_as_statuses() {
    let t = T::new();
    let made = t.ok(
        "POST",
        "/api/v4/customers/statuses",
        Some(&json!([{"name": "Новый", "sort": 10}])),
    );
    let id = made["_embedded"]["statuses"][0]["id"].as_i64().unwrap();
    let list = t.ok("GET", "/api/v4/customers/statuses", None);
    assert_eq!(list["_embedded"]["statuses"][0]["name"], "Новый");
    assert!(list["_embedded"].get("customers_statuses").is_none());
    assert_eq!(
        error_paths(&t.call(
            "POST",
            "/api/v4/customers/statuses",
            Some(&json!([{"sort": 1}]))
        )),
        ["name"]
    );
    let one = t.ok("GET", &format!("/api/v4/customers/statuses/{id}"), None);
    assert_eq!(one["sort"], 10);
    assert_eq!(
        t.call(
            "PATCH",
            "/api/v4/customers/statuses",
            Some(&json!([{"id": id}]))
        )
        .status,
        405
    );
    // Pipelines' statuses are another list.
    let pipeline = t.ok("GET", "/api/v4/leads/pipelines/1001/statuses", None);
    assert!(pipeline["_embedded"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["id"] != id));
}

#[test]
fn custom_field_groups_have_string_ids() {
    let t = T::new();
    let field = t.first_id(
        "/api/v4/leads/custom_fields",
        "custom_fields",
        json!([{"name": "Адрес", "type": "text"}]),
    );
    let r = t.call(
        "POST",
        "/api/v4/leads/custom_fields/groups",
        Some(&json!([{"name": "Доставка", "fields": [field, 1]}])),
    );
    assert_eq!(error_paths(&r), ["fields.1"]);
    let id = t.first_id(
        "/api/v4/leads/custom_fields/groups",
        "custom_field_groups",
        json!([{"name": "Доставка", "fields": [field]}]),
    );
    let id = id.as_str().expect("a string id").to_string();
    assert!(id.starts_with("leads_"), "{id}");
    let one = t.ok(
        "GET",
        &format!("/api/v4/leads/custom_fields/groups/{id}"),
        None,
    );
    assert_eq!(one["entity_type"], "leads");
    assert_eq!(one["fields"], json!([field]));
    assert_eq!(t.get("/api/v4/contacts/custom_fields/groups").status, 204);
    assert_eq!(
        t.get("/api/v4/catalogs/999/custom_fields/groups").status,
        404
    );
    let path = format!("/api/v4/leads/custom_fields/groups/{id}");
    assert_eq!(t.call("DELETE", &path, None).status, 204);
    assert_eq!(t.get(&path).status, 204);
    // The fields themselves are still where they were.
    assert_eq!(
        t.get(&format!("/api/v4/leads/custom_fields/{field}"))
            .status,
        200
    );
}

#[test]
fn event_types_are_a_paged_list() {
    let t = T::new();
    let page = t.ok("GET", "/api/v4/events/types?limit=3", None);
    let types = page["_embedded"]["events_types"].as_array().unwrap();
    assert_eq!(types.len(), 3);
    assert_eq!(
        types[0],
        json!({"key": "lead_added", "type": 1, "lang": "Новая сделка"})
    );
    assert!(page["_links"]["next"]["href"].is_string());
    assert_eq!(t.get("/api/v4/events/types?page=99").status, 204);
    assert_eq!(
        t.call("POST", "/api/v4/events/types", Some(&json!([])))
            .status,
        405
    );
}

#[test]
fn subscriptions_of_a_lead() {
    let t = T::new();
    let lead = t.first_id("/api/v4/leads", "leads", json!([{"name": "L"}]));
    let path = format!("/api/v4/leads/{lead}/subscriptions");
    assert_eq!(t.get(&path).status, 204);
    assert_eq!(
        error_paths(&t.call("POST", &path, Some(&json!([{"user_id": 4242}])))),
        ["user_id"]
    );
    let after = t.ok(
        "POST",
        &path,
        Some(&json!([{"user_id": 1001}, {"user_id": 1002}])),
    );
    assert_eq!(
        after["_embedded"]["subscriptions"],
        json!([{"subscriber_id": 1001, "type": "user"}, {"subscriber_id": 1002, "type": "user"}])
    );
    assert_eq!(t.call("DELETE", &format!("{path}/1002"), None).status, 204);
    assert_eq!(t.call("DELETE", &format!("{path}/1002"), None).status, 404);
    let list = t.ok("GET", &path, None);
    assert_eq!(
        list["_embedded"]["subscriptions"].as_array().unwrap().len(),
        1
    );
    assert_eq!(t.get("/api/v4/leads/42/subscriptions").status, 404);
    assert_eq!(t.get("/api/v4/contacts/1/subscriptions").status, 404);
}

#[test]
fn website_buttons_and_their_script() {
    let t = T::new();
    let r = t.call(
        "POST",
        "/api/v4/website_buttons",
        Some(&json!({"pipeline_id": 77})),
    );
    assert_eq!(error_paths(&r), ["pipeline_id"]);
    let made = t.json(
        202,
        "POST",
        "/api/v4/website_buttons",
        Some(&json!({"pipeline_id": 1001, "trusted_websites": ["example.com"], "name": "Кнопка"})),
    );
    let sid = made["source_id"].as_i64().unwrap();
    assert_eq!(made["trusted_websites"], json!(["example.com"]));
    let path = format!("/api/v4/website_buttons/{sid}");
    let plain = t.ok("GET", &path, None);
    assert!(plain.get("script").is_none());
    assert_eq!(plain["creation_status"], "created");
    let scripted = t.ok("GET", &format!("{path}?with=scripts"), None);
    assert!(scripted["script"].as_str().unwrap().starts_with("<script"));
    assert_eq!(
        error_paths(&t.call("PATCH", &path, Some(&json!({})))),
        ["trusted_websites.add"]
    );
    let updated = t.ok(
        "PATCH",
        &path,
        Some(&json!({"trusted_websites": {"add": ["shop.example.com"]}, "name": "Чат"})),
    );
    assert_eq!(updated["name"], "Чат");
    assert_eq!(
        updated["trusted_websites"],
        json!(["example.com", "shop.example.com"])
    );
    assert_eq!(
        t.call("POST", &format!("{path}/online_chat"), None).status,
        202
    );
    assert_eq!(t.ok("GET", &path, None)["has_online_chat"], true);
    assert_eq!(
        t.call("POST", "/api/v4/website_buttons/5/online_chat", None)
            .status,
        404
    );
}

#[test]
fn chat_templates_and_reviews() {
    let t = T::new();
    let base = "/api/v4/chats/templates";
    assert_eq!(
        error_paths(&t.call("POST", base, Some(&json!([{"name": "x"}])))),
        ["content"]
    );
    let made = t.ok(
        "POST",
        base,
        Some(&json!([{"name": "Привет", "content": "Здравствуйте"}, {"name": "W", "content": "Hi", "type": "waba"}])),
    );
    let ids: Vec<i64> = made["_embedded"]["chat_templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect();
    let r = t.call("POST", &format!("{base}/{}/review", ids[0]), None);
    assert_eq!(error_paths(&r), ["type"]);
    let reviews = t.ok("POST", &format!("{base}/{}/review", ids[1]), None);
    let review = &reviews["_embedded"]["reviews"][0];
    assert_eq!(review["status"], "review");
    let rid = review["id"].as_i64().unwrap();
    let path = format!("{base}/{}/review/{rid}", ids[1]);
    assert_eq!(
        error_paths(&t.call("POST", &path, Some(&json!({"status": "maybe"})))),
        ["status"]
    );
    let set = t.ok(
        "POST",
        &path,
        Some(&json!({"status": "rejected", "reject_reason": "Слишком коротко"})),
    );
    assert_eq!(set["reject_reason"], "Слишком коротко");
    let one = t.ok("GET", &format!("{base}/{}?with=reviews", ids[1]), None);
    assert_eq!(one["_embedded"]["reviews"][0]["status"], "rejected");
    assert!(t
        .ok("GET", &format!("{base}/{}", ids[1]), None)
        .get("_embedded")
        .is_none());
    assert_eq!(
        error_paths(&t.call("DELETE", base, Some(&json!([{"id": ids[0]}, {"id": 5}])))),
        ["id"]
    );
    assert_eq!(
        t.call(
            "DELETE",
            base,
            Some(&json!([{"id": ids[0]}, {"id": ids[1]}]))
        )
        .status,
        204
    );
    assert_eq!(t.get(base).status, 204);
}

#[test]
fn talks_one_and_close() {
    let t = T::new();
    let talk = t.ok("GET", "/api/v4/talks/32000001", None);
    assert_eq!(talk["is_in_work"], true);
    assert_eq!(talk["origin"], "telegram");
    let r = t.get("/api/v4/talks/5");
    assert_eq!(r.status, 404);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(
        error_paths(&t.call(
            "POST",
            "/api/v4/talks/32000001/close",
            Some(&json!({"force_close": "yes"}))
        )),
        ["force_close"]
    );
    let r = t.call(
        "POST",
        "/api/v4/talks/32000001/close",
        Some(&json!({"force_close": true})),
    );
    assert_eq!(r.status, 202);
    assert_eq!(
        t.ok("GET", "/api/v4/talks/32000001", None)["is_in_work"],
        false
    );
    assert_eq!(
        t.ok("GET", "/api/v4/talks/32000002", None)["is_in_work"],
        true
    );
    assert_eq!(t.call("POST", "/api/v4/talks/5/close", None).status, 404);
    assert_eq!(t.get("/api/v4/talks").status, 404);
}
