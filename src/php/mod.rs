//! The PHP binding: a thin layer over [`crate::client::AmoCore`]. It converts
//! PHP values to JSON and back, keeps the process-wide core, and maps
//! [`crate::error::Error`] to the `AmoException` family in one place. One
//! file per PHP class: `client` (AmoClient), `services` (the service classes
//! and the iterator), `exceptions` (the exception family).

// PHP parameter names are camelCase (`withContextUser(int $userId)`), and
// ext-php-rs takes them from the Rust names.
#![allow(non_snake_case)]

mod client;
mod convert;
mod decode;
mod exceptions;
mod files;
mod log;
mod sensitive;
mod services;

use crate::client::AmoCore;
use crate::config::{self, Config, Sources};
use client::AmoClient;
use exceptions::register_exceptions;
use ext_php_rs::ffi::zend_ini_entry;
use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef, ModuleEntry};
use ext_php_rs::{info_table_end, info_table_row, info_table_start};
use once_cell::sync::Lazy;
use services::{
    AmoCustomersService, AmoLinkableService, AmoNotesService, AmoSourcesService, AmoUsersService,
};
use services::{
    AmoEntityIterator, AmoEntityService, AmoLeadsService, AmoLinksService, AmoUnsortedService,
    AmoWebhooksService, AmoWidgetsService,
};
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------- the core

/// One account's core and what it was built from. Rebuilt when the
/// effective options change: by `configure()` at once, and for the
/// environment and php.ini at the next request that uses the client.
#[derive(Default)]
struct Account {
    /// What `configure()` was last given for this account.
    options: BTreeMap<String, String>,
    /// The raw values the core was built from.
    sources: Option<Sources>,
    core: Option<Arc<AmoCore>>,
    /// The request in which `sources` were last compared with the effective ones.
    checked_in: u64,
}

/// Every account this process has used; nothing is shared between them
/// but the process (and its HTTP client).
#[derive(Default)]
struct Global {
    accounts: BTreeMap<String, Account>,
}

static GLOBAL: Lazy<Mutex<Global>> = Lazy::new(|| Mutex::new(Global::default()));

/// Counts PHP requests (module request start-up), so that the sources are
/// looked up once per request rather than once per call.
static REQUEST: AtomicU64 = AtomicU64::new(1);

fn global() -> std::sync::MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_lookup(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// One php.ini value, read from the engine's table without copying it.
pub(crate) fn ini_lookup(key: &str) -> Option<String> {
    let eg = ExecutorGlobals::get();
    // SAFETY: the ini table is set up at engine start-up and lives as long
    // as the process; its entries are `zend_ini_entry` pointers.
    unsafe {
        let table = eg.ini_directives.as_ref()?;
        let entry = table.get(key)?.ptr::<zend_ini_entry>()?.as_ref()?;
        let value = entry.value.as_ref()?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }
}

fn sources(account: &str, options: &BTreeMap<String, String>) -> crate::error::Result<Sources> {
    Config::sources(account, options, &env_lookup, &ini_lookup)
}

/// An account's core, rebuilt when the effective options differ from the
/// ones it was built from (checked once per request).
fn core(account: &str) -> crate::error::Result<Arc<AmoCore>> {
    log::check_entry()?;
    let request = REQUEST.load(Ordering::Relaxed);
    let mut g = global();
    if let Some(a) = g.accounts.get(account) {
        if let (Some(core), true) = (&a.core, a.checked_in == request) {
            return Ok(core.clone());
        }
    }
    let options = g
        .accounts
        .get(account)
        .map(|a| a.options.clone())
        .unwrap_or_default();
    let current = sources(account, &options)?;
    let a = g.accounts.entry(account.to_string()).or_default();
    if let (Some(core), Some(built_from)) = (&a.core, &a.sources) {
        if *built_from == current {
            let core = core.clone();
            a.checked_in = request;
            return Ok(core);
        }
    }
    let core = Arc::new(AmoCore::open_with_sink(
        Config::from_sources(current.clone())?,
        Arc::new(log::PhpSink),
    )?);
    a.core = Some(core.clone());
    a.sources = Some(current);
    a.checked_in = request;
    Ok(core)
}

/// `AmoClient::configure()`: new options take effect at once; the same
/// options again (every FPM request passes them) cost one comparison.
fn configure(account: &str, options: BTreeMap<String, String>) -> crate::error::Result<()> {
    config::check_account(account)?;
    let mut g = global();
    if g.accounts
        .get(account)
        .is_some_and(|a| a.options == options)
    {
        return Ok(());
    }
    // Validate before accepting: invalid options leave the client as it was.
    Config::from_sources(sources(account, &options)?)?;
    let a = g.accounts.entry(account.to_string()).or_default();
    a.options = options;
    a.checked_in = 0;
    Ok(())
}

// ---------------------------------------------------------------- module

/// The php.ini entries, one per configuration key: `amocrm.<key>`.
fn ini_entries() -> &'static [IniEntryDef] {
    let leak = |s: String| -> &'static CStr {
        Box::leak(
            CString::new(s)
                .expect("key names hold no NUL")
                .into_boxed_c_str(),
        )
    };
    let mut entries: Vec<IniEntryDef> = config::KEYS
        .iter()
        .map(|k| {
            IniEntryDef::new(
                leak(format!("amocrm.{}", k.name)),
                c"",
                IniEntryPermission::All,
            )
        })
        .collect();
    entries.push(IniEntryDef::end());
    Box::leak(entries.into_boxed_slice())
}

extern "C" fn startup(_ty: i32, mod_num: i32) -> i32 {
    // A panic here would abort PHP: catch it and fail the module instead.
    let ok = std::panic::catch_unwind(|| {
        IniEntryDef::register(ini_entries(), mod_num);
        if forks_workers() {
            preload_tls();
        }
        register_exceptions().is_ok()
    });
    if matches!(ok, Ok(true)) {
        0
    } else {
        -1
    }
}

/// Whether this SAPI starts its request workers by forking after module
/// start-up (php-fpm, Apache's prefork handler, php-cgi's children).
fn forks_workers() -> bool {
    let name = ext_php_rs::zend::SapiModule::get().name;
    if name.is_null() {
        return false;
    }
    // SAFETY: the SAPI's name is a static C string.
    let name = unsafe { std::ffi::CStr::from_ptr(name) };
    matches!(
        name.to_bytes(),
        b"fpm-fcgi" | b"apache2handler" | b"cgi-fcgi" | b"litespeed"
    )
}

/// Parses the trust store for the configured `ca_file` in the parent, so
/// that every forked worker inherits it parsed instead of reading it again
/// on its first HTTPS request.
fn preload_tls() {
    let cfg = sources(config::DEFAULT_ACCOUNT, &Default::default()).and_then(Config::from_sources);
    match cfg {
        Ok(cfg) if cfg.insecure_http => {}
        Ok(cfg) => crate::net::preload_tls(cfg.ca_file.as_deref()),
        Err(_) => crate::net::preload_tls(None),
    }
}

extern "C" fn request_startup(_ty: i32, _mod_num: i32) -> i32 {
    REQUEST.fetch_add(1, Ordering::Relaxed);
    log::request_startup();
    let _ = std::panic::catch_unwind(sensitive::mark_sensitive_parameters);
    0
}

extern "C" fn module_info(_module: *mut ModuleEntry) {
    let _ = std::panic::catch_unwind(|| {
        info_table_start!();
        info_table_row!("amocrm support", "enabled");
        info_table_row!("version", env!("CARGO_PKG_VERSION"));
        let options = global()
            .accounts
            .get(config::DEFAULT_ACCOUNT)
            .map(|a| a.options.clone())
            .unwrap_or_default();
        match sources(config::DEFAULT_ACCOUNT, &options).and_then(Config::from_sources) {
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
        .class::<services::AmoProductsService>()
        .class::<services::AmoTransactionsService>()
        .class::<services::AmoBonusPointsService>()
        .class::<services::AmoEntitySubscriptionsService>()
        .class::<services::AmoWebsiteButtonsService>()
        .class::<services::AmoChatTemplatesService>()
        .class::<services::AmoTalksService>()
        .class::<AmoEntityIterator>()
        .class::<files::AmoFilesService>()
        .class::<files::AmoEntityFilesService>()
        .class::<files::AmoFilesIterator>()
        .class::<AmoUsersService>()
        .class::<AmoCustomersService>()
        .class::<AmoSourcesService>()
        .class::<AmoNotesService>()
        .class::<AmoLinkableService>()
        .request_startup_function(request_startup)
        .info_function(module_info)
}
