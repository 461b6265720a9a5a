//! `AmoClient`: the process's client, its OAuth verbs and its services.

use super::convert::{hashtable_to_json, json_result, zval_to_json};
use super::exceptions::to_php;
use super::services::{
    unknown_client_method, AmoBonusPointsService, AmoChatTemplatesService, AmoCustomersService,
    AmoEntitySubscriptionsService, AmoLinkableService, AmoNotesService, AmoProductsService,
    AmoSourcesService, AmoTalksService, AmoTransactionsService, AmoUsersService,
    AmoWebsiteButtonsService,
};
use super::services::{
    AmoEntityService, AmoLeadsService, AmoLinksService, AmoUnsortedService, AmoWebhooksService,
    AmoWidgetsService, Handle,
};
use super::{configure, core};
use crate::config;
use crate::error::Error;
use crate::services::Service;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::class::RegisteredClass;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::flags::PropertyFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendClassObject, ZendHashTable, Zval};
use ext_php_rs::zend::ClassEntry;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::CStr;

/// The amoCRM client of one account. `AmoClient::getInstance($account)`
/// returns the same object for the whole request (PHP objects cannot outlive
/// it), and every object of an account shares the process's token lifecycle
/// for that account; the HTTP connections are shared by all.
#[php_class]
#[php(name = "AmoClient")]
pub struct AmoClient {
    account: String,
    context_user: Option<i64>,
    /// The request's singletons, by account. PHP resets an internal class's
    /// static properties when a request ends, so none outlives its request.
    #[php(prop, static, flags = PropertyFlags::Private)]
    #[allow(dead_code)] // the field only declares the property; PHP holds its value
    instances: (),
    /// The request's logger (`setLogger()`), reset by PHP when the request
    /// ends like `$instances`.
    #[php(prop, static, flags = PropertyFlags::Private)]
    #[allow(dead_code)]
    logger: (),
}

const INSTANCES: &CStr = c"instances";

/// `AmoClient::$instances`, the array of singletons by account.
fn instances(ce: &ClassEntry) -> Option<&'static mut Zval> {
    // SAFETY: reading a declared static property of our own class; the
    // engine keeps its value alive until the request ends.
    unsafe {
        ext_php_rs::ffi::zend_read_static_property(
            std::ptr::from_ref(ce).cast_mut(),
            INSTANCES.as_ptr(),
            INSTANCES.to_bytes().len(),
            true,
        )
        .as_mut()
    }
}

/// The account's object in `AmoClient::$instances`, if any; it is handed
/// straight back to PHP, which adds a reference.
fn stored_instance(
    ce: &ClassEntry,
    account: &str,
) -> Option<&'static mut ZendClassObject<AmoClient>> {
    let object = instances(ce)?.array_mut()?.get_mut(account)?.object_mut()?;
    ZendClassObject::<AmoClient>::from_zend_obj_mut(object)
}

impl AmoClient {
    fn handle_for(account: &str, context_user: Option<i64>) -> AmoClient {
        AmoClient {
            account: account.to_string(),
            context_user,
            instances: (),
            logger: (),
        }
    }

    fn core(&self) -> PhpResult<std::sync::Arc<crate::client::AmoCore>> {
        core(&self.account).map_err(to_php)
    }
}

#[php_impl]
impl AmoClient {
    /// Not constructible: use AmoClient::getInstance().
    #[php(constructor, vis = "private")]
    pub fn __construct() -> PhpResult<AmoClient> {
        Err(to_php(Error::argument(
            "AmoClient",
            "use AmoClient::getInstance()",
        )))
    }

    /// Returns the account's client (`default` unless named): the same object
    /// on every call within a request, made on first use from `configure()`,
    /// the environment (AMOCRM_<ACCOUNT>_*, AMOCRM_*) and php.ini (amocrm.*).
    #[php(optional = account)]
    pub fn get_instance(
        account: Option<String>,
    ) -> PhpResult<&'static mut ZendClassObject<AmoClient>> {
        let account = account.unwrap_or_else(|| config::DEFAULT_ACCOUNT.to_string());
        core(&account).map_err(to_php)?;
        let ce = Self::get_metadata().ce();
        if let Some(existing) = stored_instance(ce, &account) {
            return Ok(existing);
        }
        let object =
            ZendClassObject::new(AmoClient::handle_for(&account, None)).into_zval(false)?;
        let mut table = instances(ce)
            .and_then(|z| z.array())
            .map(ToOwned::to_owned)
            .unwrap_or_default();
        table.insert(account.as_str(), object)?;
        ce.set_static_property(INSTANCES.to_str().unwrap_or("instances"), table)?;
        stored_instance(ce, &account).ok_or_else(|| {
            PhpException::from_message(
                "AmoClient::getInstance(): the instance was not stored".into(),
            )
        })
    }

    /// Sets configuration keys of an account (`default` unless named). New
    /// options take effect at once (the next call uses them); the same
    /// options again, as every FPM request passes them, are a no-op. Invalid
    /// options raise AmoConfigException and leave the client as it was.
    #[php(optional = account)]
    pub fn configure(options: &ZendHashTable, account: Option<String>) -> PhpResult<()> {
        let opts = options_from_php(options).map_err(to_php)?;
        let account = account.unwrap_or_else(|| config::DEFAULT_ACCOUNT.to_string());
        configure(&account, opts).map_err(to_php)
    }

    /// The account this client is for.
    pub fn get_account(&self) -> String {
        self.account.clone()
    }

    /// The amoCRM consent page to send an admin to.
    #[php(defaults(mode = "\"post_message\""))]
    pub fn authorization_url(&self, state: String, mode: String) -> PhpResult<String> {
        let core = self.core()?;
        core.authorization_url(&state, &mode).map_err(to_php)
    }

    /// Exchanges the callback's `code` for a token pair and stores it.
    /// `referer` must be within allowed_domains; nothing is sent otherwise.
    pub fn exchange_code(&self, code: String, referer: String) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        json_result(core.exchange_code(&code, &referer))
    }

    /// Asks amoCRM to send an authorization code for an old API key to the
    /// redirect URI (POST /oauth2/exchange_api_key, answered 202); the code
    /// then arrives at the callback. `accountHost` defaults to the stored
    /// pair's base_domain; it must be within allowed_domains.
    #[php(defaults(accountHost = None))]
    pub fn exchange_api_key(
        &self,
        login: String,
        apiKey: String,
        accountHost: Option<String>,
    ) -> PhpResult<()> {
        let core = self.core()?;
        core.exchange_api_key(&login, &apiKey, accountHost.as_deref())
            .map_err(to_php)
    }

    /// Checks a widget's disposable token (an HS256 JWT signed with the client
    /// secret, for the scheme and host of redirect_uri, not expired) and
    /// returns its claims: token_uuid, client_uuid, account_domain,
    /// account_subdomain, account_id, user_id, is_admin, expires_at.
    pub fn parse_disposable_token(&self, token: String) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        json_result(core.parse_disposable_token(&token))
    }

    /// authorized, mode, base_domain, expires_at, expires_in, updated_at,
    /// refresh_expires_at, token_path — never a token or the secret.
    pub fn token_status(&self) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        json_result(core.status())
    }

    /// Refreshes now (if `force`, or if the token is within refresh_margin of
    /// expiry) under the cross-process lock; returns the token status.
    #[php(defaults(force = false))]
    pub fn refresh_token(&self, force: bool) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        json_result(core.refresh(force))
    }

    /// Refreshes the pair if it is older than `maxAgeDays` (default: the
    /// keepalive_days setting), so that its refresh token never dies unused;
    /// returns the token status.
    pub fn keep_alive(&self, maxAgeDays: Option<i64>) -> PhpResult<ZBox<ZendHashTable>> {
        let days = match maxAgeDays {
            None => None,
            Some(d) if (1..=80).contains(&d) => Some(d as u64),
            Some(_) => {
                return Err(to_php(Error::argument(
                    "maxAgeDays",
                    "must be from 1 to 80 (the refresh token dies after 90 unused days)",
                )))
            }
        };
        let core = self.core()?;
        json_result(core.keep_alive(days))
    }

    /// Sends a request to amoCRM's API (path such as /api/v4/leads) and
    /// returns the decoded JSON, or null for 204.
    #[php(optional = query)]
    pub fn request(
        &self,
        method: String,
        path: String,
        query: Option<&ZendHashTable>,
        body: Option<&Zval>,
    ) -> PhpResult<Option<ZBox<ZendHashTable>>> {
        let core = self.core()?;
        let query = query
            .map(hashtable_to_json)
            .transpose()
            .map_err(|e| to_php(Error::argument("query", e)))?;
        let body = match body {
            Some(z) if !z.is_null() => {
                Some(zval_to_json(z, 0).map_err(|e| to_php(Error::argument("body", e)))?)
            }
            _ => None,
        };
        core.send(
            &method,
            &path,
            query.as_ref(),
            body.as_ref(),
            self.context_user,
        )
        .and_then(super::decode::response)
        .map_err(to_php)
    }

    /// A handle that sends X-Context-User-ID with every request.
    pub fn with_context_user(&self, userId: i64) -> PhpResult<AmoClient> {
        if userId <= 0 {
            return Err(to_php(Error::argument(
                "userId",
                "must be a positive amoCRM user id",
            )));
        }
        Ok(AmoClient::handle_for(&self.account, Some(userId)))
    }

    /// The user id sent as X-Context-User-ID, or null.
    pub fn get_context_user(&self) -> Option<i64> {
        self.context_user
    }

    /// Takes over a token pair from another file's contents (the old
    /// gateway's tokens.json or the official library's format); stores it
    /// atomically under the lock and returns the token status.
    pub fn import_tokens(&self, pair: &ZendHashTable) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        let json = hashtable_to_json(pair).map_err(|e| to_php(Error::argument("tokens", e)))?;
        json_result(core.import_tokens(json.to_string().as_bytes()))
    }

    /// Writes the stored pair to a new token file (0600, atomically; never
    /// over an existing file) for another store or host to import; the
    /// tokens never pass through PHP. Returns the token status.
    pub fn export_tokens(&self, path: String) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        json_result(core.export_tokens(std::path::Path::new(&path)))
    }

    /// Host-wide counters for monitoring: refreshes, refresh_failures,
    /// api_calls by status, rate_limited (429s), rate_limit_waits,
    /// rate_limit_wait_ms, retries.
    pub fn metrics(&self) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        json_result(Ok(core.metrics()))
    }

    /// The admin page's data, host-wide: API calls per minute by status
    /// class over the last 24 hours (only minutes with calls, oldest first)
    /// and the last 20 refreshes (newest first).
    pub fn history(&self) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        json_result(Ok(core.history()))
    }

    /// Sends the extension's log events of this request (every account's)
    /// to `fn(string $level, string $message, array $context)`, e.g. a
    /// PSR-3 logger's `log()`; `null` restores PHP's error log. PHP forgets
    /// it when the request ends: set it on every request.
    pub fn set_logger(logger: Option<super::log::Callable>) -> PhpResult<()> {
        super::log::set_logger(logger.map(|c| c.0))
            .map_err(|e| PhpException::from_message(format!("AmoClient::setLogger(): {e}")))
    }

    /// Leads: get, iterate, getOne, add, addOne, update, updateOne, addComplex.
    pub fn leads(&self) -> PhpResult<AmoLeadsService> {
        Ok(AmoLeadsService {
            h: self.handle(Service::named("leads"))?,
        })
    }

    /// Contacts, with getLinks, link and unlink.
    pub fn contacts(&self) -> PhpResult<AmoLinkableService> {
        Ok(AmoLinkableService {
            h: self.handle(Service::named("contacts"))?,
        })
    }

    /// Companies, with getLinks, link and unlink.
    pub fn companies(&self) -> PhpResult<AmoLinkableService> {
        Ok(AmoLinkableService {
            h: self.handle(Service::named("companies"))?,
        })
    }

    /// Customers (when the account has customers enabled), with setMode.
    pub fn customers(&self) -> PhpResult<AmoCustomersService> {
        Ok(AmoCustomersService {
            h: self.handle(Service::named("customers"))?,
        })
    }

    /// Tasks.
    pub fn tasks(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("tasks"))
    }

    /// Notes of leads, contacts, companies or customers, with getByParentId, pin, unpin.
    pub fn notes(&self, entityType: String) -> PhpResult<AmoNotesService> {
        Ok(AmoNotesService {
            h: self.handle(Service::notes(&entityType))?,
        })
    }

    /// Tags of leads, contacts, companies or customers.
    pub fn tags(&self, entityType: String) -> PhpResult<AmoEntityService> {
        self.entity(Service::tags(&entityType))
    }

    /// Lead pipelines, each with its statuses.
    pub fn pipelines(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("pipelines"))
    }

    /// The statuses of one pipeline.
    pub fn statuses(&self, pipelineId: i64) -> PhpResult<AmoEntityService> {
        self.entity(Service::statuses(pipelineId))
    }

    /// Custom fields of leads, contacts, companies, customers, customers/segments or catalogs/{id}.
    pub fn custom_fields(&self, entityType: String) -> PhpResult<AmoEntityService> {
        self.entity(Service::custom_fields(&entityType))
    }

    /// Reasons for losing a lead.
    pub fn loss_reasons(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("lossReasons"))
    }

    /// Users of the account (admin only), with activate and deactivate.
    pub fn users(&self) -> PhpResult<AmoUsersService> {
        Ok(AmoUsersService {
            h: self.handle(Service::named("users"))?,
        })
    }

    /// User roles.
    pub fn roles(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("roles"))
    }

    /// Webhook subscriptions.
    pub fn webhooks(&self) -> PhpResult<AmoWebhooksService> {
        Ok(AmoWebhooksService {
            h: self.handle(Service::named("webhooks"))?,
        })
    }

    /// Unsorted (incoming) leads.
    pub fn unsorted(&self) -> PhpResult<AmoUnsortedService> {
        Ok(AmoUnsortedService {
            h: self.handle(Service::named("unsorted"))?,
        })
    }

    /// Catalogs (lists).
    pub fn catalogs(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("catalogs"))
    }

    /// The elements of one catalog.
    pub fn catalog_elements(&self, catalogId: i64) -> PhpResult<AmoEntityService> {
        self.entity(Service::catalog_elements(catalogId))
    }

    /// The event log (read only).
    pub fn events(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("events"))
    }

    /// Lead sources of the integration, with batch delete.
    pub fn sources(&self) -> PhpResult<AmoSourcesService> {
        Ok(AmoSourcesService {
            h: self.handle(Service::named("sources"))?,
        })
    }

    /// Links of leads, contacts, companies or customers to other entities.
    pub fn links(&self, entityType: String) -> PhpResult<AmoLinksService> {
        Ok(AmoLinksService {
            h: self.handle(Service::links(&entityType))?,
        })
    }

    /// Call records (add only).
    pub fn calls(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("calls"))
    }

    /// Widgets.
    pub fn widgets(&self) -> PhpResult<AmoWidgetsService> {
        Ok(AmoWidgetsService {
            h: self.handle(Service::named("widgets"))?,
        })
    }

    /// Short links (add only).
    pub fn short_links(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("shortLinks"))
    }

    /// Currencies (read only).
    pub fn currencies(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("currencies"))
    }

    /// Products: settings() and updateSettings() (is_enabled).
    pub fn products(&self) -> PhpResult<AmoProductsService> {
        Ok(AmoProductsService {
            h: self.handle(Service::named("products"))?,
        })
    }

    /// Customers' purchases: get, iterate, getOne, add/addOne/deleteOne per customer.
    pub fn transactions(&self) -> PhpResult<AmoTransactionsService> {
        Ok(AmoTransactionsService {
            h: self.handle(Service::named("transactions"))?,
        })
    }

    /// Customers' segments: get, iterate, getOne, addOne, updateOne, deleteOne.
    pub fn customers_segments(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("customersSegments"))
    }

    /// Customers' statuses: get, iterate, getOne, add, updateOne, deleteOne.
    pub fn customers_statuses(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("customersStatuses"))
    }

    /// Customers' bonus points: earnPoints, redeemPoints.
    pub fn customers_bonus_points(&self) -> PhpResult<AmoBonusPointsService> {
        Ok(AmoBonusPointsService {
            h: self.handle(Service::named("customersBonusPoints"))?,
        })
    }

    /// Custom field groups of leads, contacts, companies, customers or catalogs:{id}.
    pub fn custom_field_groups(&self, entityType: Option<String>) -> PhpResult<AmoEntityService> {
        self.entity(Service::custom_field_groups(entityType.as_deref()))
    }

    /// The event types (read only).
    pub fn event_types(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("eventTypes"))
    }

    /// The users subscribed to a lead or customer: get, iterate, subscribe, unsubscribe.
    pub fn entity_subscriptions(
        &self,
        entityType: String,
        entityId: i64,
    ) -> PhpResult<AmoEntitySubscriptionsService> {
        Ok(AmoEntitySubscriptionsService {
            h: self.handle(Service::entity_subscriptions(&entityType, entityId))?,
        })
    }

    /// Website buttons of sources.
    pub fn website_buttons(&self) -> PhpResult<AmoWebsiteButtonsService> {
        Ok(AmoWebsiteButtonsService {
            h: self.handle(Service::named("websiteButtons"))?,
        })
    }

    /// Chat templates.
    pub fn chat_templates(&self) -> PhpResult<AmoChatTemplatesService> {
        Ok(AmoChatTemplatesService {
            h: self.handle(Service::named("chatTemplates"))?,
        })
    }

    /// Talks: getOne and close.
    pub fn talks(&self) -> PhpResult<AmoTalksService> {
        Ok(AmoTalksService {
            h: self.handle(Service::named("talks"))?,
        })
    }

    /// The account, with extra parts such as amojo_id, users_groups, task_types.
    pub fn account(&self, with: Option<&ZendHashTable>) -> PhpResult<ZBox<ZendHashTable>> {
        let core = self.core()?;
        let with = match with {
            Some(w) => hashtable_to_json(w).map_err(|e| to_php(Error::argument("with", e)))?,
            None => json!([]),
        };
        let query = match with {
            Value::Array(ref w) if w.is_empty() => None,
            with => Some(json!({ "with": with })),
        };
        json_result(
            core.request(
                "GET",
                "/api/v4/account",
                query.as_ref(),
                None,
                self.context_user,
            )
            .and_then(|v| {
                v.ok_or_else(|| {
                    Error::new(
                        crate::error::ErrorKind::Api,
                        "amoCRM answered 204 to GET /api/v4/account",
                    )
                })
            }),
        )
    }

    /// The account's files on its drive host: upload (from disk, in parts),
    /// get, iterate, getOne, updateOne (rename), delete, deleteOne.
    pub fn files(&self) -> PhpResult<super::files::AmoFilesService> {
        Ok(super::files::AmoFilesService { core: self.core()? })
    }

    /// The files of one lead, contact, company or customer: get, add,
    /// addOne, delete, deleteOne (by file uuid).
    pub fn entity_files(
        &self,
        entityType: String,
        entityId: i64,
    ) -> PhpResult<super::files::AmoEntityFilesService> {
        let core = self.core()?;
        crate::drive::EntityFiles::new(&core, &entityType, entityId).map_err(to_php)?;
        Ok(super::files::AmoEntityFilesService {
            core,
            entity_type: entityType,
            entity_id: entityId,
        })
    }

    /// A method or service AmoClient does not have: AmoConfigException
    /// naming it, rather than PHP's \Error.
    pub fn __call(&self, name: String, arguments: &ZendHashTable) -> PhpResult<Zval> {
        let _ = arguments;
        Err(unknown_client_method(Self::get_metadata().ce(), &name))
    }

    /// For the test suite: panics inside Rust when AMOCRM_TEST_HOOKS=1 is in
    /// the environment, to prove a panic becomes a PHP \Error.
    pub fn panic_for_test() -> PhpResult<()> {
        if std::env::var("AMOCRM_TEST_HOOKS").as_deref() == Ok("1") {
            panic!("panic requested by AmoClient::panicForTest()");
        }
        Err(to_php(Error::argument(
            "test_hooks",
            "AMOCRM_TEST_HOOKS=1 is not set",
        )))
    }
}

/// configure()'s array as strings; lists (allowed_domains) become comma-separated.
fn options_from_php(options: &ZendHashTable) -> crate::error::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (key, value) in options.iter() {
        let key = key.to_string();
        let text = if let Some(s) = value.str() {
            s.to_string()
        } else if let Some(b) = value.bool() {
            if b { "1" } else { "0" }.to_string()
        } else if let Some(n) = value.long() {
            n.to_string()
        } else if value.is_null() {
            String::new()
        } else if let Some(list) = value.array() {
            let mut parts = Vec::new();
            for v in list.values() {
                parts.push(
                    v.str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::config(&key, "a list may hold strings only"))?,
                );
            }
            parts.join(",")
        } else {
            return Err(Error::config(&key, "expected a string, int or bool"));
        };
        out.insert(key, text);
    }
    config::check_keys(&out)?;
    Ok(out)
}

impl AmoClient {
    fn handle(&self, svc: crate::error::Result<Service>) -> PhpResult<Handle> {
        Ok(Handle {
            core: self.core()?,
            svc: svc.map_err(to_php)?,
            ctx: self.context_user,
        })
    }

    fn entity(&self, svc: crate::error::Result<Service>) -> PhpResult<AmoEntityService> {
        Ok(AmoEntityService {
            h: self.handle(svc)?,
        })
    }
}
