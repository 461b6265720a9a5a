//! The PHP binding: a thin layer over [`crate::client::AmoCore`]. It converts
//! PHP values to JSON and back, keeps the process-wide singleton, and maps
//! [`crate::error::Error`] to the `AmoException` family in one place.

// PHP parameter names are camelCase (`withContextUser(int $userId)`), and
// ext-php-rs takes them from the Rust names.
#![allow(non_snake_case)]

mod convert;
mod exceptions;
mod services;

use crate::client::AmoCore;
use crate::config::{self, Config};
use crate::error::Error;
use crate::services::Service;
use convert::{hashtable_to_json, json_result, json_to_array, zval_to_json};
use exceptions::{register_exceptions, to_php};
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef, IniEntryDefs, ModuleEntry};
use ext_php_rs::{info_table_end, info_table_row, info_table_start};
use once_cell::sync::Lazy;
use serde_json::{json, Value};
use services::{
    AmoEntityIterator, AmoEntityService, AmoLeadsService, AmoLinksService, AmoUnsortedService,
    AmoWebhooksService, AmoWidgetsService, Handle,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------- singleton

#[derive(Default)]
struct Global {
    /// What `configure()` was given, once given.
    options: Option<BTreeMap<String, String>>,
    core: Option<Arc<AmoCore>>,
}

static GLOBAL: Lazy<Mutex<Global>> = Lazy::new(|| Mutex::new(Global::default()));

fn global() -> std::sync::MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_lookup(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn resolve(options: &BTreeMap<String, String>) -> crate::error::Result<Config> {
    // ini_values() copies the whole ini table: take it once, not once per key.
    let ini = ExecutorGlobals::get().ini_values();
    let ini_lookup = |key: &str| ini.get(key).cloned().flatten();
    Config::resolve(options, &env_lookup, &ini_lookup)
}

fn core() -> crate::error::Result<Arc<AmoCore>> {
    let mut g = global();
    if let Some(core) = &g.core {
        return Ok(core.clone());
    }
    let config = resolve(&g.options.clone().unwrap_or_default())?;
    let core = Arc::new(AmoCore::new(config));
    g.core = Some(core.clone());
    Ok(core)
}

// ---------------------------------------------------------------- AmoClient

/// The amoCRM client. One per process: `AmoClient::getInstance()` hands out
/// handles to the same token lifecycle and HTTP connections.
#[php_class]
#[php(name = "AmoClient")]
pub struct AmoClient {
    context_user: Option<i64>,
}

#[php_impl]
impl AmoClient {
    /// Returns the process-wide client, creating it on first use from
    /// `configure()`, the environment (AMOCRM_*) and php.ini (amocrm.*).
    pub fn get_instance() -> PhpResult<AmoClient> {
        core().map_err(to_php)?;
        Ok(AmoClient { context_user: None })
    }

    /// Sets configuration keys for this process. Call before first use; a
    /// repeat call with the same options is a no-op, different ones raise
    /// AmoConfigException.
    pub fn configure(options: &ZendHashTable) -> PhpResult<()> {
        let opts = options_from_php(options).map_err(to_php)?;
        // The gateway calls this on every FPM request: the same options
        // again cost no validation.
        if global().core.is_some() && global().options.as_ref() == Some(&opts) {
            return Ok(());
        }
        resolve(&opts).map_err(to_php)?;
        let mut g = global();
        if g.core.is_some() {
            return Err(to_php(Error::config(
                "configure",
                "the client is already in use in this process with other options; configure() applies before first use",
            )));
        }
        g.options = Some(opts);
        Ok(())
    }

    /// The amoCRM consent page to send an admin to.
    #[php(defaults(mode = "\"post_message\""))]
    pub fn authorization_url(&self, state: String, mode: String) -> PhpResult<String> {
        let core = core().map_err(to_php)?;
        core.authorization_url(&state, &mode).map_err(to_php)
    }

    /// Exchanges the callback's `code` for a token pair and stores it.
    /// `referer` must be within allowed_domains; nothing is sent otherwise.
    pub fn exchange_code(&self, code: String, referer: String) -> PhpResult<ZBox<ZendHashTable>> {
        let core = core().map_err(to_php)?;
        json_result(core.exchange_code(&code, &referer))
    }

    /// authorized, mode, base_domain, expires_at, expires_in, updated_at,
    /// refresh_expires_at, token_path — never a token or the secret.
    pub fn token_status(&self) -> PhpResult<ZBox<ZendHashTable>> {
        let core = core().map_err(to_php)?;
        json_result(core.status())
    }

    /// Refreshes now (if `force`, or if the token is within refresh_margin of
    /// expiry) under the cross-process lock; returns the token status.
    #[php(defaults(force = false))]
    pub fn refresh_token(&self, force: bool) -> PhpResult<ZBox<ZendHashTable>> {
        let core = core().map_err(to_php)?;
        json_result(core.refresh(force))
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
        let core = core().map_err(to_php)?;
        let query = query
            .map(hashtable_to_json)
            .transpose()
            .map_err(|e| to_php(Error::config("query", e)))?;
        let body = match body {
            Some(z) if !z.is_null() => {
                Some(zval_to_json(z, 0).map_err(|e| to_php(Error::config("body", e)))?)
            }
            _ => None,
        };
        let answer = core
            .request(
                &method,
                &path,
                query.as_ref(),
                body.as_ref(),
                self.context_user,
            )
            .map_err(to_php)?;
        answer
            .map(|v| json_to_array(&v))
            .transpose()
            .map_err(to_php)
    }

    /// A handle that sends X-Context-User-ID with every request.
    pub fn with_context_user(&self, userId: i64) -> PhpResult<AmoClient> {
        if userId <= 0 {
            return Err(to_php(Error::config(
                "userId",
                "must be a positive amoCRM user id",
            )));
        }
        Ok(AmoClient {
            context_user: Some(userId),
        })
    }

    /// The user id sent as X-Context-User-ID, or null.
    pub fn get_context_user(&self) -> Option<i64> {
        self.context_user
    }

    /// Takes over a token pair from another file's contents (the old
    /// gateway's tokens.json or the official library's format); stores it
    /// atomically under the lock and returns the token status.
    pub fn import_tokens(&self, pair: &ZendHashTable) -> PhpResult<ZBox<ZendHashTable>> {
        let core = core().map_err(to_php)?;
        let json = hashtable_to_json(pair).map_err(|e| to_php(Error::config("tokens", e)))?;
        json_result(core.import_tokens(json.to_string().as_bytes()))
    }

    /// Host-wide counters for monitoring: refreshes, refresh_failures,
    /// api_calls by status, rate_limited (429s), rate_limit_waits,
    /// rate_limit_wait_ms, retries.
    pub fn metrics(&self) -> PhpResult<ZBox<ZendHashTable>> {
        let core = core().map_err(to_php)?;
        json_result(Ok(core.metrics()))
    }

    /// Leads: get, iterate, getOne, add, addOne, update, updateOne, addComplex.
    pub fn leads(&self) -> PhpResult<AmoLeadsService> {
        Ok(AmoLeadsService {
            h: self.handle(Service::named("leads"))?,
        })
    }

    /// Contacts.
    pub fn contacts(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("contacts"))
    }

    /// Companies.
    pub fn companies(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("companies"))
    }

    /// Customers (when the account has customers enabled).
    pub fn customers(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("customers"))
    }

    /// Tasks.
    pub fn tasks(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("tasks"))
    }

    /// Notes of leads, contacts, companies or customers.
    pub fn notes(&self, entityType: String) -> PhpResult<AmoEntityService> {
        self.entity(Service::notes(&entityType))
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

    /// Users of the account (admin only).
    pub fn users(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("users"))
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

    /// Lead sources of the integration.
    pub fn sources(&self) -> PhpResult<AmoEntityService> {
        self.entity(Service::named("sources"))
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

    /// The account, with extra parts such as amojo_id, users_groups, task_types.
    pub fn account(&self, with: Option<&ZendHashTable>) -> PhpResult<ZBox<ZendHashTable>> {
        let core = core().map_err(to_php)?;
        let with = match with {
            Some(w) => hashtable_to_json(w).map_err(|e| to_php(Error::config("with", e)))?,
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

    /// For the test suite: panics inside Rust when AMOCRM_TEST_HOOKS=1 is in
    /// the environment, to prove a panic becomes a PHP \Error.
    pub fn panic_for_test() -> PhpResult<()> {
        if std::env::var("AMOCRM_TEST_HOOKS").as_deref() == Ok("1") {
            panic!("panic requested by AmoClient::panicForTest()");
        }
        Err(to_php(Error::config(
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
            core: core().map_err(to_php)?,
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

// ---------------------------------------------------------------- module

static INI_ENTRIES: IniEntryDefs<17> = IniEntryDefs::new([
    IniEntryDef::new(c"amocrm.client_id", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.client_secret", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.redirect_uri", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.token_path", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.allowed_domains", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.insecure_http", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.refresh_margin", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.connect_timeout", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.timeout", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.long_lived_token", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.base_domain", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.oauth_host", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.rate_limit", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.max_retries", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.retry_backoff_ms", c"", IniEntryPermission::All),
    IniEntryDef::new(c"amocrm.batch_size", c"", IniEntryPermission::All),
    IniEntryDef::end(),
]);

extern "C" fn startup(_ty: i32, mod_num: i32) -> i32 {
    // A panic here would abort PHP: catch it and fail the module instead.
    let ok = std::panic::catch_unwind(|| {
        IniEntryDef::register(INI_ENTRIES.as_slice(), mod_num);
        register_exceptions().is_ok()
    });
    if matches!(ok, Ok(true)) {
        0
    } else {
        -1
    }
}

extern "C" fn module_info(_module: *mut ModuleEntry) {
    let _ = std::panic::catch_unwind(|| {
        info_table_start!();
        info_table_row!("amocrm support", "enabled");
        info_table_row!("version", env!("CARGO_PKG_VERSION"));
        let options = global().options.clone().unwrap_or_default();
        match resolve(&options) {
            Ok(cfg) => {
                for (key, shown, source) in cfg.describe() {
                    let line = if source == "-" {
                        shown
                    } else {
                        format!("{shown} ({source})")
                    };
                    info_table_row!(key, line.as_str());
                }
            }
            Err(e) => info_table_row!("configuration error", e.message.as_str()),
        }
        info_table_end!();
    });
}

#[php_module]
#[php(startup = startup)]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    module
        .class::<AmoClient>()
        .class::<AmoEntityService>()
        .class::<AmoLeadsService>()
        .class::<AmoWebhooksService>()
        .class::<AmoUnsortedService>()
        .class::<AmoLinksService>()
        .class::<AmoWidgetsService>()
        .class::<AmoEntityIterator>()
        .info_function(module_info)
}
