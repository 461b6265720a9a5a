//! Entity services and the lazy page iterator, as PHP classes. Every method
//! is a one-line delegation to [`crate::services`]; the classes differ only
//! in which verbs amoCRM offers for them.

use super::convert::{hashtable_to_json, json_to_array, null_zval, zval_to_json};
use super::exceptions::to_php;
use crate::client::AmoCore;
use crate::error::Error;
use crate::services::{self, Page, Service, Writer};
use ext_php_rs::boxed::ZBox;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::{ce, ClassEntry};
use serde_json::{json, Value};
use std::sync::Arc;

/// What every service object carries: the process's client, the service,
/// and the handle's context user.
#[derive(Clone)]
pub struct Handle {
    pub core: Arc<AmoCore>,
    pub svc: Service,
    pub ctx: Option<i64>,
}

type Array = PhpResult<ZBox<ZendHashTable>>;

fn arg(name: &str, ht: Option<&ZendHashTable>) -> PhpResult<Value> {
    match ht {
        None => Ok(json!({})),
        Some(ht) => hashtable_to_json(ht).map_err(|e| to_php(Error::argument(name, e))),
    }
}

fn zarg(name: &str, z: &Zval) -> PhpResult<Value> {
    zval_to_json(z, 0).map_err(|e| to_php(Error::argument(name, e)))
}

fn list(items: Vec<Value>) -> Array {
    json_to_array(&Value::Array(items)).map_err(to_php)
}

fn optional(v: Option<Value>) -> PhpResult<Option<ZBox<ZendHashTable>>> {
    v.map(|v| json_to_array(&v)).transpose().map_err(to_php)
}

fn object(v: Option<Value>) -> Array {
    json_to_array(&v.unwrap_or_else(|| json!({}))).map_err(to_php)
}

fn with_list(with: Option<&ZendHashTable>) -> PhpResult<Vec<String>> {
    match arg("with", with)? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(to_php(Error::argument(
                    "with",
                    format!("must be a list of strings, got {other}"),
                ))),
            })
            .collect(),
        Value::Object(o) if o.is_empty() => Ok(Vec::new()),
        _ => Err(to_php(Error::argument("with", "must be a list of strings"))),
    }
}

impl Handle {
    fn writer(&self) -> Writer<'_> {
        Writer {
            core: &self.core,
            ctx: self.ctx,
            batch: self.core.config().batch_size,
        }
    }

    fn get(&self, params: Option<&ZendHashTable>) -> Array {
        services::get(&self.core, &self.svc, &arg("params", params)?, self.ctx).map_err(to_php)
    }

    fn iterate(&self, params: Option<&ZendHashTable>) -> PhpResult<AmoEntityIterator> {
        let params = services::list_query(&arg("params", params)?).map_err(to_php)?;
        Ok(AmoEntityIterator {
            handle: self.clone(),
            params,
            page: ZendHashTable::new(),
            pos: 0,
            key: 0,
            next: None,
        })
    }

    fn get_one(
        &self,
        id: &Zval,
        with: Option<&ZendHashTable>,
    ) -> PhpResult<Option<ZBox<ZendHashTable>>> {
        let id = zarg("id", id)?;
        services::get_one(&self.core, &self.svc, &id, &with_list(with)?, self.ctx).map_err(to_php)
    }

    fn add(&self, items: &ZendHashTable) -> Array {
        list(
            self.writer()
                .add(&self.svc, &arg("items", Some(items))?)
                .map_err(to_php)?,
        )
    }

    fn add_one(&self, item: &ZendHashTable) -> Array {
        let item = arg("item", Some(item))?;
        object(Some(
            self.writer().add_one(&self.svc, &item).map_err(to_php)?,
        ))
    }

    fn update(&self, items: &ZendHashTable) -> Array {
        list(
            self.writer()
                .update(&self.svc, &arg("items", Some(items))?)
                .map_err(to_php)?,
        )
    }

    fn update_one(&self, item: &ZendHashTable) -> Array {
        object(Some(
            self.writer()
                .update_one(&self.svc, &arg("item", Some(item))?)
                .map_err(to_php)?,
        ))
    }

    fn delete_one(&self, id: &Zval) -> PhpResult<()> {
        self.writer()
            .delete_one(&self.svc, &zarg("id", id)?)
            .map_err(to_php)
    }

    /// One request to a path under this service, with this handle's context user.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> PhpResult<Option<Value>> {
        self.writer()
            .call(method, path, body.as_ref())
            .map_err(to_php)
    }

    fn sub_path(&self, id: &str, tail: &str) -> PhpResult<String> {
        let seg = services::id_segment(&Value::String(id.to_string())).map_err(to_php)?;
        Ok(format!("{}/{seg}{tail}", self.svc.path))
    }
}

/// An answer as PHP arrays, decoded straight from amoCRM's bytes; a page's
/// list is moved out of the answer (a copy of its outer table only).
impl services::Answer for ZBox<ZendHashTable> {
    fn decode(resp: crate::transport::Response) -> crate::error::Result<Option<Self>> {
        super::decode::response(resp)
    }
    fn take_embedded(&mut self, key: &str) -> Option<Self> {
        let list = self.get_mut("_embedded")?.array_mut()?.get_mut(key)?;
        let list = std::mem::replace(list, Zval::new());
        // A list, as in Rust: a JSON object there is not amoCRM's shape.
        let list = list.array().filter(|a| a.has_sequential_keys())?;
        Some(list.to_owned())
    }
    fn next_href(&self) -> Option<&str> {
        let links = self.get("_links")?.array()?;
        links.get("next")?.array()?.get("href")?.str()
    }
    fn empty_list() -> Self {
        ZendHashTable::new()
    }
}

/// A lazy walk over every entity of a list, one page in memory at a time,
/// following amoCRM's `_links.next`. Use it with foreach.
#[php_class]
#[php(name = "AmoEntityIterator")]
#[php(implements(ce = ce::iterator, stub = "\\Iterator"))]
pub struct AmoEntityIterator {
    handle: Handle,
    params: Value,
    page: ZBox<ZendHashTable>,
    pos: usize,
    key: i64,
    /// The next page's path, when there is one.
    next: Option<String>,
}

impl AmoEntityIterator {
    fn load(&mut self, page: Page<ZBox<ZendHashTable>>) {
        self.page = page.items;
        self.next = page.next;
        self.pos = 0;
    }
}

/// The error every service class's private constructor would raise.
fn not_constructible<T>() -> PhpResult<T> {
    Err(to_php(Error::argument(
        "service",
        "services come from AmoClient::getInstance()->leads() and the like",
    )))
}

#[php_impl]
impl AmoEntityIterator {
    /// Not constructible: iterate() returns it.
    #[php(constructor, vis = "private")]
    pub fn __construct() -> PhpResult<Self> {
        not_constructible()
    }

    /// The current entity.
    pub fn current(&self) -> Zval {
        self.page
            .get_index(self.pos as i64)
            .map(Zval::shallow_clone)
            .unwrap_or_else(null_zval)
    }

    /// The entity's position across all pages, from 0.
    pub fn key(&self) -> i64 {
        self.key
    }

    /// Moves on, fetching the next page when this one is used up.
    pub fn next(&mut self) -> PhpResult<()> {
        self.pos += 1;
        self.key += 1;
        if self.pos >= self.page.len() {
            if let Some(path) = self.next.take() {
                let h = &self.handle;
                let page = services::page_at(&h.core, &h.svc, &path, h.ctx).map_err(to_php)?;
                self.load(page);
            }
        }
        Ok(())
    }

    /// Fetches the first page (again).
    pub fn rewind(&mut self) -> PhpResult<()> {
        let h = &self.handle;
        let page = services::page(&h.core, &h.svc, &self.params, h.ctx).map_err(to_php)?;
        self.key = 0;
        self.load(page);
        Ok(())
    }

    /// Whether there is a current entity.
    pub fn valid(&self) -> bool {
        self.pos < self.page.len()
    }
}

/// A service class: `list` gives get and iterate, `crud` adds getOne, add,
/// addOne, update, updateOne and deleteOne, `linkable` adds getLinks, link
/// and unlink; `$extra` are the class's own.
macro_rules! service_class {
    (linkable $name:ident, $php:literal, $doc:literal, { $($extra:tt)* }) => {
        service_class!(crud $name, $php, $doc, {
            /// The links of one entity (an id, or the entity with its id); [] on 204.
            pub fn get_links(&self, entity: &Zval, params: Option<&ZendHashTable>) -> Array {
                self.h.get_links(entity, params)
            }

            /// Links one entity to others: items of to_entity_id, to_entity_type, metadata.
            pub fn link(&self, entity: &Zval, links: &ZendHashTable) -> Array {
                self.h.link(entity, links)
            }

            /// Removes links of one entity: the same items as link().
            pub fn unlink(&self, entity: &Zval, links: &ZendHashTable) -> PhpResult<()> {
                self.h.unlink(entity, links)
            }

            $($extra)*
        });
    };
    (crud $name:ident, $php:literal, $doc:literal, { $($extra:tt)* }) => {
        service_class!(list $name, $php, $doc, {
            /// One entity by id, or null when amoCRM answers 204.
            pub fn get_one(&self, id: &Zval, with: Option<&ZendHashTable>) -> PhpResult<Option<ZBox<ZendHashTable>>> {
                self.h.get_one(id, with)
            }

            /// Creates entities, in batches of batch_size; results in input order.
            pub fn add(&self, items: &ZendHashTable) -> Array {
                self.h.add(items)
            }

            /// Creates one entity.
            pub fn add_one(&self, item: &ZendHashTable) -> Array {
                self.h.add_one(item)
            }

            /// Updates entities (each with its id), in batches; results in input order.
            pub fn update(&self, items: &ZendHashTable) -> Array {
                self.h.update(items)
            }

            /// Updates one entity (with its id).
            pub fn update_one(&self, item: &ZendHashTable) -> Array {
                self.h.update_one(item)
            }

            /// Deletes one entity where amoCRM allows it.
            pub fn delete_one(&self, id: &Zval) -> PhpResult<()> {
                self.h.delete_one(id)
            }

            $($extra)*
        });
    };
    (list $name:ident, $php:literal, $doc:literal, { $($extra:tt)* }) => {
        #[doc = $doc]
        #[php_class]
        #[php(name = $php)]
        pub struct $name {
            pub(crate) h: Handle,
        }

        #[php_impl]
        impl $name {
            /// Not constructible: AmoClient's methods return services.
            #[php(constructor, vis = "private")]
            pub fn __construct() -> PhpResult<Self> {
                not_constructible()
            }

            /// One page of entities (the list inside `_embedded`); [] on 204.
            pub fn get(&self, params: Option<&ZendHashTable>) -> Array {
                self.h.get(params)
            }

            /// Every entity across all pages, fetched lazily page by page.
            pub fn iterate(&self, params: Option<&ZendHashTable>) -> PhpResult<AmoEntityIterator> {
                self.h.iterate(params)
            }

            /// One page as amoCRM answered it (_page, _links, _total_items, _embedded); null on 204.
            pub fn get_page(&self, params: Option<&ZendHashTable>) -> PhpResult<Option<ZBox<ZendHashTable>>> {
                self.h.get_page(params)
            }

            /// The page after a page from getPage()/nextPage(), or null when it is the last.
            pub fn next_page(&self, page: &ZendHashTable) -> PhpResult<Option<ZBox<ZendHashTable>>> {
                self.h.neighbour_page(page, "next")
            }

            /// The page before a page from getPage()/nextPage(), or null when it is the first.
            pub fn prev_page(&self, page: &ZendHashTable) -> PhpResult<Option<ZBox<ZendHashTable>>> {
                self.h.neighbour_page(page, "prev")
            }

            /// A method this service does not have: AmoConfigException naming it
            /// and the service's methods, rather than PHP's \Error.
            pub fn __call(&self, name: String, arguments: &ZendHashTable) -> PhpResult<Zval> {
                let _ = arguments;
                use ext_php_rs::class::RegisteredClass;
                Err(unknown_method(Self::get_metadata().ce(), &self.h.svc, &name))
            }

            $($extra)*
        }
    };
}

service_class!(crud AmoEntityService, "AmoEntityService", "An amoCRM entity list with the official library's verbs.", {});

service_class!(linkable AmoLeadsService, "AmoLeadsService", "Leads, with leads/complex.", {
        /// Leads with their contact and company in one call (leads/complex).
        pub fn add_complex(&self, items: &ZendHashTable) -> Array {
            list(
                self.h
                    .writer()
                    .add_complex(&arg("items", Some(items))?)
                    .map_err(to_php)?,
            )
        }

        /// One lead with its contact and company (leads/complex).
        pub fn add_one_complex(&self, item: &ZendHashTable) -> Array {
            let items = Value::Array(vec![arg("item", Some(item))?]);
            let mut got = self.h.writer().add_complex(&items).map_err(to_php)?;
            object(got.pop())
        }
});

service_class!(
    list AmoWebhooksService,
    "AmoWebhooksService",
    "Webhook subscriptions (admin only; at most 100).",
    {
        /// Subscribes a destination URL to events such as add_lead, status_lead.
        pub fn subscribe(&self, destination: String, settings: &ZendHashTable) -> Array {
            let body =
                json!({ "destination": destination, "settings": arg("settings", Some(settings))? });
            object(self.h.call("POST", &self.h.svc.path, Some(body))?)
        }

        /// Removes the subscription of a destination URL.
        pub fn unsubscribe(&self, destination: String) -> PhpResult<()> {
            self.h.call(
                "DELETE",
                &self.h.svc.path,
                Some(json!({ "destination": destination })),
            )?;
            Ok(())
        }
    }
);

service_class!(
    list AmoUnsortedService,
    "AmoUnsortedService",
    "Incoming leads awaiting acceptance (\"Неразобранное\").",
    {
        /// One unsorted item by uid, or null.
        pub fn get_one(
            &self,
            uid: &Zval,
            with: Option<&ZendHashTable>,
        ) -> PhpResult<Option<ZBox<ZendHashTable>>> {
            self.h.get_one(uid, with)
        }

        /// Adds form submissions as unsorted leads.
        pub fn add_forms(&self, items: &ZendHashTable) -> Array {
            let path = format!("{}/forms", self.h.svc.path);
            list(
                self.h
                    .writer()
                    .add_to(&self.h.svc, &path, &arg("items", Some(items))?)
                    .map_err(to_php)?,
            )
        }

        /// Adds calls as unsorted leads.
        pub fn add_sip(&self, items: &ZendHashTable) -> Array {
            let path = format!("{}/sip", self.h.svc.path);
            list(
                self.h
                    .writer()
                    .add_to(&self.h.svc, &path, &arg("items", Some(items))?)
                    .map_err(to_php)?,
            )
        }

        /// Accepts an unsorted item: it becomes a lead (params: user_id, status_id).
        pub fn accept(&self, uid: String, params: Option<&ZendHashTable>) -> Array {
            object(self.h.call(
                "POST",
                &self.h.sub_path(&uid, "/accept")?,
                Some(arg("params", params)?),
            )?)
        }

        /// Declines an unsorted item (params: user_id).
        pub fn decline(&self, uid: String, params: Option<&ZendHashTable>) -> Array {
            object(self.h.call(
                "DELETE",
                &self.h.sub_path(&uid, "/decline")?,
                Some(arg("params", params)?),
            )?)
        }

        /// Links an unsorted item to an existing entity (params: link.entity_id, link.entity_type).
        pub fn link(&self, uid: String, params: &ZendHashTable) -> Array {
            object(self.h.call(
                "POST",
                &self.h.sub_path(&uid, "/link")?,
                Some(arg("params", Some(params))?),
            )?)
        }

        /// Counts by category and outcome (params: filter).
        pub fn summary(&self, params: Option<&ZendHashTable>) -> Array {
            let query = services::list_query(&arg("params", params)?).map_err(to_php)?;
            let path = format!("{}/summary", self.h.svc.path);
            object(
                self.h
                    .core
                    .request("GET", &path, Some(&query), None, self.h.ctx)
                    .map_err(to_php)?,
            )
        }
    }
);

service_class!(
    list AmoLinksService,
    "AmoLinksService",
    "Links between entities (a lead's contacts, a contact's catalog elements, …).",
    {
        /// Links entities: items of entity_id, to_entity_id, to_entity_type, metadata.
        pub fn link(&self, items: &ZendHashTable) -> Array {
            let path = format!("{}/link", self.entity_path());
            list(
                self.h
                    .writer()
                    .add_to(&self.h.svc, &path, &arg("items", Some(items))?)
                    .map_err(to_php)?,
            )
        }

        /// Removes links: the same items as link().
        pub fn unlink(&self, items: &ZendHashTable) -> PhpResult<()> {
            let path = format!("{}/unlink", self.entity_path());
            self.h
                .call("POST", &path, Some(arg("items", Some(items))?))?;
            Ok(())
        }
    }
);

service_class!(
    list AmoWidgetsService,
    "AmoWidgetsService",
    "Widgets of the account, by code.",
    {
        /// One widget by its code, or null.
        pub fn get_by_code(&self, code: String) -> PhpResult<Option<ZBox<ZendHashTable>>> {
            optional(self.h.call("GET", &self.h.sub_path(&code, "")?, None)?)
        }

        /// Installs a widget with its settings.
        pub fn install(&self, code: String, settings: Option<&ZendHashTable>) -> Array {
            object(self.h.call(
                "POST",
                &self.h.sub_path(&code, "")?,
                Some(arg("settings", settings)?),
            )?)
        }

        /// Uninstalls a widget.
        pub fn uninstall(&self, code: String) -> PhpResult<()> {
            self.h.call("DELETE", &self.h.sub_path(&code, "")?, None)?;
            Ok(())
        }
    }
);

impl AmoLinksService {
    /// `/api/v4/leads` for `/api/v4/leads/links`: link and unlink live there.
    fn entity_path(&self) -> &str {
        self.h
            .svc
            .path
            .strip_suffix("/links")
            .unwrap_or(&self.h.svc.path)
    }
}

service_class!(
    list AmoProductsService,
    "AmoProductsService",
    "Products (the account's products catalog): its settings only.",
    {
        /// The products settings: is_enabled.
        pub fn settings(&self) -> PhpResult<Option<ZBox<ZendHashTable>>> {
            let path = format!("{}/settings", self.h.svc.path);
            optional(self.h.call("GET", &path, None)?)
        }

        /// Turns products on or off: ['is_enabled' => true]; returns the settings.
        pub fn update_settings(&self, settings: &ZendHashTable) -> Array {
            let body = arg("settings", Some(settings))?;
            if !body.get("is_enabled").is_some_and(Value::is_boolean) {
                return Err(to_php(Error::argument(
                    "settings.is_enabled",
                    "must be true or false",
                )));
            }
            let path = format!("{}/settings", self.h.svc.path);
            object(self.h.call("PATCH", &path, Some(body))?)
        }
    }
);

service_class!(
    list AmoTransactionsService,
    "AmoTransactionsService",
    "Customers' purchases (transactions): listed for all, added and deleted per customer.",
    {
        /// One transaction by id (with: catalog_elements), or null.
        pub fn get_one(&self, id: &Zval, with: Option<&ZendHashTable>) -> PhpResult<Option<ZBox<ZendHashTable>>> {
            self.h.get_one(id, with)
        }

        /// Adds purchases to a customer (each with its price; comment,
        /// completed_at, _embedded.catalog_elements, next_price, next_date);
        /// accrueBonus as the official library (default true).
        #[php(defaults(accrueBonus = true))]
        pub fn add(&self, customerId: i64, items: &ZendHashTable, accrueBonus: bool) -> Array {
            list(
                self.h
                    .writer()
                    .add_transactions(&self.h.svc, customerId, &arg("items", Some(items))?, accrueBonus)
                    .map_err(to_php)?,
            )
        }

        /// Adds one purchase to a customer.
        #[php(defaults(accrueBonus = true))]
        pub fn add_one(&self, customerId: i64, item: &ZendHashTable, accrueBonus: bool) -> Array {
            let items = Value::Array(vec![arg("item", Some(item))?]);
            let mut got = self
                .h
                .writer()
                .add_transactions(&self.h.svc, customerId, &items, accrueBonus)
                .map_err(to_php)?;
            object(got.pop())
        }

        /// Deletes one purchase of a customer.
        pub fn delete_one(&self, customerId: i64, transactionId: i64) -> PhpResult<()> {
            self.h
                .writer()
                .delete_transaction(customerId, transactionId)
                .map_err(to_php)
        }
    }
);

service_class!(
    list AmoBonusPointsService,
    "AmoBonusPointsService",
    "Customers' bonus points: earn and redeem.",
    {
        /// Adds points to a customer; returns the new balance.
        pub fn earn_points(&self, customerId: i64, points: i64) -> PhpResult<Option<i64>> {
            self.h
                .writer()
                .bonus_points(customerId, "earn", points)
                .map_err(to_php)
        }

        /// Takes points from a customer (not more than the balance); returns the new balance.
        pub fn redeem_points(&self, customerId: i64, points: i64) -> PhpResult<Option<i64>> {
            self.h
                .writer()
                .bonus_points(customerId, "redeem", points)
                .map_err(to_php)
        }
    }
);

service_class!(
    list AmoEntitySubscriptionsService,
    "AmoEntitySubscriptionsService",
    "The users subscribed to one lead or customer.",
    {
        /// Subscribes users (by id); returns the subscriptions after it.
        pub fn subscribe(&self, userIds: &ZendHashTable) -> Array {
            let ids = match arg("userIds", Some(userIds))? {
                Value::Array(ids) if !ids.is_empty() => ids,
                _ => return Err(to_php(Error::argument("userIds", "must be a non-empty list of user ids"))),
            };
            let mut body = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                match id.as_i64() {
                    Some(u) if u > 0 => body.push(json!({ "user_id": u })),
                    _ => {
                        return Err(to_php(Error::argument(
                            &format!("userIds[{i}]"),
                            format!("must be a positive user id, got {id}"),
                        )))
                    }
                }
            }
            let mut answer = self.h.call("POST", &self.h.svc.path, Some(Value::Array(body)))?;
            let items = answer
                .as_mut()
                .and_then(|a| services::Answer::take_embedded(a, "subscriptions"))
                .unwrap_or_else(|| json!([]));
            json_to_array(&items).map_err(to_php)
        }

        /// Unsubscribes one user.
        pub fn unsubscribe(&self, userId: i64) -> PhpResult<()> {
            if userId <= 0 {
                return Err(to_php(Error::argument("userId", "must be a positive user id")));
            }
            let path = format!("{}/{userId}", self.h.svc.path);
            self.h.call("DELETE", &path, None)?;
            Ok(())
        }
    }
);

service_class!(
    list AmoWebsiteButtonsService,
    "AmoWebsiteButtonsService",
    "Website buttons (sources' chat buttons); getOne($sourceId, ['scripts']) has the script.",
    {
        /// One button by its source id (with: scripts, deleted), or null.
        pub fn get_one(&self, sourceId: &Zval, with: Option<&ZendHashTable>) -> PhpResult<Option<ZBox<ZendHashTable>>> {
            self.h.get_one(sourceId, with)
        }

        /// Creates a button: pipeline_id, trusted_websites, is_used_in_app, name;
        /// returns source_id, trusted_websites, name (amoCRM finishes it asynchronously).
        pub fn create_async(&self, params: &ZendHashTable) -> Array {
            let body = arg("params", Some(params))?;
            if body.get("pipeline_id").and_then(Value::as_i64).is_none_or(|p| p <= 0) {
                return Err(to_php(Error::argument("params.pipeline_id", "is missing or not a positive id")));
            }
            object(self.h.call("POST", &self.h.svc.path, Some(body))?)
        }

        /// Adds trusted websites (params: trusted_websites.add) or renames (name).
        pub fn update_async(&self, sourceId: i64, params: &ZendHashTable) -> Array {
            if sourceId <= 0 {
                return Err(to_php(Error::argument("sourceId", "must be a positive id")));
            }
            let body = arg("params", Some(params))?;
            let path = format!("{}/{sourceId}", self.h.svc.path);
            object(self.h.call("PATCH", &path, Some(body))?)
        }

        /// Adds an online chat to the button's source.
        pub fn add_online_chat_async(&self, sourceId: i64) -> PhpResult<()> {
            if sourceId <= 0 {
                return Err(to_php(Error::argument("sourceId", "must be a positive id")));
            }
            let path = format!("{}/{sourceId}/online_chat", self.h.svc.path);
            self.h.writer().act("POST", &path, None).map_err(to_php)
        }
    }
);

service_class!(
    crud AmoChatTemplatesService,
    "AmoChatTemplatesService",
    "Chat templates, with WhatsApp review.",
    {
        /// Deletes several templates by id.
        pub fn delete(&self, ids: &ZendHashTable) -> PhpResult<()> {
            let ids = match arg("ids", Some(ids))? {
                Value::Array(ids) if !ids.is_empty() => ids,
                _ => return Err(to_php(Error::argument("ids", "must be a non-empty list of template ids"))),
            };
            let mut body = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                match id.as_i64() {
                    Some(t) if t > 0 => body.push(json!({ "id": t })),
                    _ => {
                        return Err(to_php(Error::argument(
                            &format!("ids[{i}]"),
                            format!("must be a positive template id, got {id}"),
                        )))
                    }
                }
            }
            self.h.call("DELETE", &self.h.svc.path, Some(Value::Array(body)))?;
            Ok(())
        }

        /// Sends a WhatsApp template to review; returns its reviews.
        pub fn send_on_review(&self, templateId: i64) -> Array {
            if templateId <= 0 {
                return Err(to_php(Error::argument("templateId", "must be a positive id")));
            }
            let path = format!("{}/{templateId}/review", self.h.svc.path);
            let mut answer = self.h.call("POST", &path, None)?;
            let items = answer
                .as_mut()
                .and_then(|a| services::Answer::take_embedded(a, "reviews"))
                .unwrap_or_else(|| json!([]));
            json_to_array(&items).map_err(to_php)
        }

        /// Sets a review's status (draft, review, rejected, approved, paused) and reject_reason.
        pub fn update_review_status(&self, templateId: i64, reviewId: i64, review: &ZendHashTable) -> Array {
            if templateId <= 0 || reviewId <= 0 {
                let name = if templateId <= 0 { "templateId" } else { "reviewId" };
                return Err(to_php(Error::argument(name, "must be a positive id")));
            }
            let path = format!("{}/{templateId}/review/{reviewId}", self.h.svc.path);
            object(self.h.call("POST", &path, Some(arg("review", Some(review))?))?)
        }
    }
);

service_class!(
    list AmoTalksService,
    "AmoTalksService",
    "Talks (conversations of chats): one by id, and close.",
    {
        /// One talk by id.
        pub fn get_one(&self, talkId: &Zval, with: Option<&ZendHashTable>) -> PhpResult<Option<ZBox<ZendHashTable>>> {
            self.h.get_one(talkId, with)
        }

        /// Closes a talk; forceClose skips the NPS bot.
        #[php(defaults(forceClose = false))]
        pub fn close(&self, talkId: i64, forceClose: bool) -> PhpResult<()> {
            if talkId <= 0 {
                return Err(to_php(Error::argument("talkId", "must be a positive id")));
            }
            let path = format!("{}/{talkId}/close", self.h.svc.path);
            self.h
                .writer()
                .act("POST", &path, Some(&json!({ "force_close": forceClose })))
                .map_err(to_php)
        }
    }
);
// ------------------------------------------------------------------
// Migration from the official library (issue 11): pages with their
// metadata, unknown methods, and the services with verbs of their own.

impl Handle {
    fn get_page(&self, params: Option<&ZendHashTable>) -> PhpResult<Option<ZBox<ZendHashTable>>> {
        services::page_as_is(&self.core, &self.svc, &arg("params", params)?, self.ctx)
            .map_err(to_php)
    }

    /// The `rel` (next, prev) neighbour of a page, null when it has none.
    fn neighbour_page(
        &self,
        page: &ZendHashTable,
        rel: &str,
    ) -> PhpResult<Option<ZBox<ZendHashTable>>> {
        let href = page
            .get("_links")
            .and_then(Zval::array)
            .and_then(|l| l.get(rel))
            .and_then(Zval::array)
            .and_then(|l| l.get("href"))
            .and_then(Zval::str);
        if href.is_none() {
            return Ok(None);
        }
        let base = self.core.fresh_pair().map_err(to_php)?.base_domain;
        let Some(path) = services::neighbour_path(&self.svc, &base, rel, href).map_err(to_php)?
        else {
            return Ok(None);
        };
        services::page_as_is_at(&self.core, &path, self.ctx).map_err(to_php)
    }
}

/// The public methods of a class as PHP spells them, from its function table.
fn public_methods(ce: &ClassEntry) -> Vec<String> {
    let mut out = Vec::new();
    for (_, zv) in ce.function_table.iter() {
        // SAFETY: a class's function table holds zend_function pointers that
        // live as long as the class.
        let Some(f) = (unsafe { zv.ptr::<ext_php_rs::ffi::zend_function>() }) else {
            continue;
        };
        let (flags, name) = unsafe { ((*f).common.fn_flags, (*f).common.function_name) };
        if flags & ext_php_rs::ffi::ZEND_ACC_PUBLIC == 0 || name.is_null() {
            continue;
        }
        // SAFETY: non-null, and a function's name lives as long as the function.
        if let Ok(name) = unsafe { &*name }.as_str() {
            if !name.starts_with("__") {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The exception for a method a service class lacks: names the method,
/// the service and the methods this service offers.
fn unknown_method(ce: &ClassEntry, svc: &Service, method: &str) -> PhpException {
    let offered: Vec<String> = public_methods(ce)
        .into_iter()
        .filter(|m| svc.offers(m))
        .collect();
    let owner = if svc.label.contains('(') {
        svc.label.clone()
    } else {
        format!("{}()", svc.label)
    };
    to_php(services::unknown_method(&owner, method, &offered))
}

/// A method a class without a [`Service`] (files, entity files) does not
/// have: names it, the owner, and every public method of the class.
pub(crate) fn unknown_method_of(ce: &ClassEntry, owner: &str, method: &str) -> PhpException {
    to_php(services::unknown_method(owner, method, &public_methods(ce)))
}

/// An AmoClient method that does not exist: names it and lists the client's methods.
pub(crate) fn unknown_client_method(ce: &ClassEntry, method: &str) -> PhpException {
    to_php(Error::argument(
        "method",
        format!(
            "AmoClient has no service or method {method}(): its methods are {}",
            public_methods(ce).join(", ")
        ),
    ))
}

service_class!(crud AmoUsersService, "AmoUsersService", "Users of the account (admin only), with activate and deactivate.", {
        /// Activates users (ids, or users with their id); ten per request.
        pub fn activate(&self, userIds: &ZendHashTable) -> PhpResult<()> {
            self.h
                .writer()
                .users_action(&self.h.svc, "activate", &arg("userIds", Some(userIds))?)
                .map_err(to_php)
        }

        /// Deactivates users (ids, or users with their id); ten per request.
        pub fn deactivate(&self, userIds: &ZendHashTable) -> PhpResult<()> {
            self.h
                .writer()
                .users_action(&self.h.svc, "deactivate", &arg("userIds", Some(userIds))?)
                .map_err(to_php)
        }
});

service_class!(linkable AmoCustomersService, "AmoCustomersService", "Customers, with the account's customers mode.", {
        /// Switches customers on in a mode (periodicity, segments) or off;
        /// returns the mode amoCRM now has, or null when customers are off.
        #[php(defaults(isEnabled = true))]
        pub fn set_mode(&self, mode: String, isEnabled: bool) -> PhpResult<Option<String>> {
            self.h
                .writer()
                .set_customers_mode(&mode, isEnabled)
                .map_err(to_php)
        }
});

service_class!(crud AmoSourcesService, "AmoSourcesService", "Lead sources of the integration, with batch delete.", {
        /// Deletes sources (ids, or sources with their id) in batches.
        pub fn delete(&self, ids: &ZendHashTable) -> PhpResult<()> {
            self.h
                .writer()
                .delete_batch(&self.h.svc, &arg("ids", Some(ids))?)
                .map_err(to_php)
        }
});

service_class!(crud AmoNotesService, "AmoNotesService", "Notes of one entity type, by parent, pinned or not.", {
        /// The notes of one entity (GET /api/v4/{type}/{id}/notes); [] on 204.
        pub fn get_by_parent_id(&self, parentId: i64, params: Option<&ZendHashTable>) -> Array {
            let svc = self.h.svc.notes_of(parentId).map_err(to_php)?;
            services::get(&self.h.core, &svc, &arg("params", params)?, self.h.ctx).map_err(to_php)
        }

        /// Pins a note to the top of its entity's feed.
        pub fn pin(&self, id: &Zval) -> PhpResult<()> {
            self.h
                .writer()
                .note_pin(&self.h.svc, &zarg("id", id)?, true)
                .map_err(to_php)
        }

        /// Unpins a note.
        pub fn unpin(&self, id: &Zval) -> PhpResult<()> {
            self.h
                .writer()
                .note_pin(&self.h.svc, &zarg("id", id)?, false)
                .map_err(to_php)
        }
});

/// `getLinks`, `link` and `unlink` on an entity's own service, as the
/// official library has them (leads, contacts, companies, customers).
impl Handle {
    fn get_links(&self, entity: &Zval, params: Option<&ZendHashTable>) -> Array {
        let svc = self
            .svc
            .links_of(&zarg("entity", entity)?)
            .map_err(to_php)?;
        services::get(&self.core, &svc, &arg("params", params)?, self.ctx).map_err(to_php)
    }

    fn link(&self, entity: &Zval, links: &ZendHashTable) -> Array {
        list(
            self.writer()
                .link_entity(
                    &self.svc,
                    &zarg("entity", entity)?,
                    &arg("links", Some(links))?,
                )
                .map_err(to_php)?,
        )
    }

    fn unlink(&self, entity: &Zval, links: &ZendHashTable) -> PhpResult<()> {
        self.writer()
            .unlink_entity(
                &self.svc,
                &zarg("entity", entity)?,
                &arg("links", Some(links))?,
            )
            .map_err(to_php)
    }
}

service_class!(linkable AmoLinkableService, "AmoLinkableService", "Contacts or companies, with their links.", {});
