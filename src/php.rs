//! The PHP binding: a thin layer over [`crate::client::AmoCore`]. It converts
//! PHP values to JSON and back, keeps the process-wide singleton, and maps
//! [`crate::error::Error`] to the `AmoException` family in one place.

// PHP parameter names are camelCase (`withContextUser(int $userId)`), and
// ext-php-rs takes them from the Rust names.
#![allow(non_snake_case)]

use crate::client::AmoCore;
use crate::config::{self, Config};
use crate::error::{Error, ErrorKind};
use ext_php_rs::args::ArgInfoTables;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::builders::{ClassBuilder, ClassProperty, FunctionBuilder};
use ext_php_rs::convert::IntoZval;
use ext_php_rs::flags::{DataType, IniEntryPermission, MethodFlags, PropertyFlags};
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::{
    ce, ClassEntry, ExecuteData, ExecutorGlobals, IniEntryDef, IniEntryDefs, ModuleEntry,
};
use ext_php_rs::{info_table_end, info_table_row, info_table_start};
use once_cell::sync::Lazy;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicPtr, Ordering};
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

fn ini_lookup(key: &str) -> Option<String> {
    ExecutorGlobals::get()
        .ini_values()
        .get(key)
        .cloned()
        .flatten()
}

fn resolve(options: &BTreeMap<String, String>) -> crate::error::Result<Config> {
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
        resolve(&opts).map_err(to_php)?;
        let mut g = global();
        if g.core.is_some() && g.options.as_ref() != Some(&opts) {
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

fn json_result(r: crate::error::Result<Value>) -> PhpResult<ZBox<ZendHashTable>> {
    r.and_then(|v| json_to_array(&v)).map_err(to_php)
}

/// A JSON object or list as a PHP array; amoCRM never answers a bare scalar.
fn json_to_array(v: &Value) -> crate::error::Result<ZBox<ZendHashTable>> {
    match v {
        Value::Array(_) | Value::Object(_) => Ok(json_to_hashtable(v)),
        _ => Err(Error::new(
            ErrorKind::Api,
            format!("amoCRM answered a bare JSON {v} where an object or a list was expected"),
        )
        .with_title("Unexpected answer")),
    }
}

fn null_zval() -> Zval {
    let mut z = Zval::new();
    z.set_null();
    z
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

// ---------------------------------------------------------------- JSON <-> PHP

const MAX_DEPTH: usize = 128;

fn hashtable_to_json(ht: &ZendHashTable) -> Result<Value, String> {
    array_to_json(ht, 0)
}

fn array_to_json(ht: &ZendHashTable, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    if ht.has_sequential_keys() {
        let mut out = Vec::with_capacity(ht.len());
        for v in ht.values() {
            out.push(zval_to_json(v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    let mut out = Map::with_capacity(ht.len());
    for (k, v) in ht.iter() {
        out.insert(k.to_string(), zval_to_json(v, depth + 1)?);
    }
    Ok(Value::Object(out))
}

fn zval_to_json(z: &Zval, depth: usize) -> Result<Value, String> {
    if z.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = z.bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = z.long() {
        return Ok(Value::from(n));
    }
    if let Some(f) = z.double() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| "NAN and INF cannot be sent as JSON".to_string());
    }
    if let Some(s) = z.str() {
        return Ok(Value::String(s.to_string()));
    }
    if z.is_string() {
        return Err("a string is not valid UTF-8".into());
    }
    if let Some(ht) = z.array() {
        return array_to_json(ht, depth);
    }
    if z.is_reference() {
        if let Some(inner) = z.reference() {
            return zval_to_json(inner, depth);
        }
    }
    Err(format!(
        "a value of type {} cannot be sent as JSON; pass arrays and scalars",
        z.get_type()
    ))
}

fn json_to_zval(v: &Value) -> Zval {
    let mut z = Zval::new();
    match v {
        Value::Null => z.set_null(),
        Value::Bool(b) => z.set_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => z.set_long(i),
            None => z.set_double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => {
            if z.set_string(s, false).is_err() {
                z.set_null();
            }
        }
        Value::Array(_) | Value::Object(_) => z.set_hashtable(json_to_hashtable(v)),
    }
    z
}

fn json_to_hashtable(v: &Value) -> ZBox<ZendHashTable> {
    match v {
        Value::Array(items) => {
            let mut ht = ZendHashTable::with_capacity(items.len() as u32);
            for item in items {
                let _ = ht.push(json_to_zval(item));
            }
            ht
        }
        Value::Object(map) => {
            let mut ht = ZendHashTable::with_capacity(map.len() as u32);
            for (k, item) in map {
                // Numeric keys become integer keys, as with json_decode().
                let _ = ht.insert(k.as_str(), json_to_zval(item));
            }
            ht
        }
        _ => ZendHashTable::new(),
    }
}

// ---------------------------------------------------------------- exceptions

/// The exception family, registered at start-up as plain classes so that PHP
/// code can construct and subclass them.
const SUBCLASSES: &[ErrorKind] = &[
    ErrorKind::Auth,
    ErrorKind::Validation,
    ErrorKind::RateLimit,
    ErrorKind::Transport,
    ErrorKind::Config,
    ErrorKind::Storage,
    ErrorKind::Api,
];

static BASE_CE: AtomicPtr<ClassEntry> = AtomicPtr::new(std::ptr::null_mut());

fn base_ce() -> &'static ClassEntry {
    // Set by the registration callback before any subclass is registered.
    unsafe { &*BASE_CE.load(Ordering::Acquire) }
}

fn null_default() -> Option<Box<dyn FnOnce() -> ext_php_rs::error::Result<Zval>>> {
    Some(Box::new(|| Ok(null_zval())))
}

fn protected_prop(name: &str) -> ClassProperty {
    ClassProperty {
        name: name.to_string(),
        flags: PropertyFlags::Protected,
        default: null_default(),
        docs: &[],
        ty: None,
        nullable: true,
        readonly: false,
        default_stub: Some("null".into()),
    }
}

fn getter(
    name: &str,
    handler: extern "C" fn(&mut ExecuteData, &mut Zval),
    ret: DataType,
) -> FunctionBuilder<'static> {
    FunctionBuilder::new(name, handler).returns(ret, false, false)
}

fn register_exceptions() -> ext_php_rs::error::Result<()> {
    ClassBuilder::new("AmoException")
        .extends((ce::exception, "\\Exception"))
        .property(protected_prop("title"))
        .property(protected_prop("description"))
        .property(protected_prop("errorCode"))
        .property(protected_prop("validationErrors"))
        .property(protected_prop("lastRequestInfo"))
        .method(
            getter("getTitle", exc_get_title, DataType::String),
            MethodFlags::Public,
        )
        .method(
            getter("getDescription", exc_get_description, DataType::String),
            MethodFlags::Public,
        )
        .method(
            getter("getErrorCode", exc_get_error_code, DataType::Long),
            MethodFlags::Public,
        )
        .method(
            getter(
                "getValidationErrors",
                exc_get_validation_errors,
                DataType::Array,
            ),
            MethodFlags::Public,
        )
        .method(
            getter(
                "getLastRequestInfo",
                exc_get_last_request_info,
                DataType::Array,
            ),
            MethodFlags::Public,
        )
        .registration(|ce: &'static mut ClassEntry, _: ArgInfoTables| {
            BASE_CE.store(ce, Ordering::Release);
        })
        .register()?;
    for kind in SUBCLASSES {
        ClassBuilder::new(kind.class_name())
            .extends((base_ce, "AmoException"))
            .registration(|_, _| {})
            .register()?;
    }
    Ok(())
}

fn this_property<'a>(ex: &'a mut ExecuteData, name: &str) -> Option<&'a Zval> {
    let this = ex.get_self()?;
    this.get_property::<&Zval>(name)
        .ok()
        .filter(|z| !z.is_null())
}

macro_rules! exc_getter {
    ($fn:ident, $prop:literal, |$z:ident, $rv:ident| $set:expr, |$rv2:ident| $default:expr) => {
        extern "C" fn $fn(ex: &mut ExecuteData, retval: &mut Zval) {
            ext_php_rs::zend::run_handler(AssertUnwindSafe(|| {
                let $rv = &mut *retval;
                match this_property(ex, $prop) {
                    Some($z) => $set,
                    None => {
                        let $rv2 = $rv;
                        $default
                    }
                }
            }));
        }
    };
}

exc_getter!(
    exc_get_title,
    "title",
    |z, rv| {
        let _ = rv.set_string(&z.string().unwrap_or_default(), false);
    },
    |rv| {
        let _ = rv.set_string("", false);
    }
);
exc_getter!(
    exc_get_description,
    "description",
    |z, rv| {
        let _ = rv.set_string(&z.string().unwrap_or_default(), false);
    },
    |rv| {
        let _ = rv.set_string("", false);
    }
);
exc_getter!(
    exc_get_validation_errors,
    "validationErrors",
    |z, rv| {
        *rv = z.shallow_clone();
    },
    |rv| {
        rv.set_hashtable(ZendHashTable::new());
    }
);
exc_getter!(
    exc_get_last_request_info,
    "lastRequestInfo",
    |z, rv| {
        *rv = z.shallow_clone();
    },
    |rv| {
        rv.set_hashtable(ZendHashTable::new());
    }
);

extern "C" fn exc_get_error_code(ex: &mut ExecuteData, retval: &mut Zval) {
    ext_php_rs::zend::run_handler(AssertUnwindSafe(|| {
        // The HTTP status when the extension threw it; otherwise the code
        // given to the constructor.
        let code = this_property(ex, "errorCode")
            .and_then(Zval::long)
            .or_else(|| this_property(ex, "code").and_then(Zval::long))
            .unwrap_or(0);
        retval.set_long(code);
    }));
}

/// Runs `f` as if inside AmoException's own code, so that its protected
/// properties (and Exception's) may be written.
fn in_exception_scope<R>(f: impl FnOnce() -> R) -> R {
    let previous = {
        let mut eg = ExecutorGlobals::get_mut();
        let prev = eg.fake_scope;
        eg.fake_scope = base_ce() as *const ClassEntry as *mut _;
        prev
    };
    let r = f();
    ExecutorGlobals::get_mut().fake_scope = previous;
    r
}

fn build_exception(ce: &'static ClassEntry, err: &Error) -> ext_php_rs::error::Result<Zval> {
    let mut obj = ZendObject::new(ce);
    in_exception_scope(|| -> ext_php_rs::error::Result<()> {
        obj.set_property("message", err.message.as_str())?;
        obj.set_property("code", i64::from(err.status))?;
        obj.set_property("title", err.title.as_str())?;
        obj.set_property("description", err.description.as_str())?;
        obj.set_property("errorCode", i64::from(err.status))?;
        if let Some(v) = &err.validation_errors {
            obj.set_property("validationErrors", json_to_zval(v))?;
        }
        if let Some(info) = &err.request {
            let mut ht = ZendHashTable::new();
            ht.insert("method", info.method.as_str())?;
            ht.insert("url", info.url.as_str())?;
            ht.insert("status", i64::from(info.status))?;
            match &info.request_id {
                Some(id) => ht.insert("request_id", id.as_str())?,
                None => ht.insert("request_id", null_zval())?,
            }
            obj.set_property("lastRequestInfo", ht)?;
        }
        Ok(())
    })?;
    obj.into_zval(false)
}

/// The one place where a Rust error becomes a PHP exception.
fn to_php(err: Error) -> PhpException {
    let ce = ClassEntry::try_find(err.kind.class_name()).unwrap_or_else(ce::exception);
    let exception = PhpException::new(err.message.clone(), i32::from(err.status), ce);
    match build_exception(ce, &err) {
        Ok(obj) => exception.with_object(obj),
        Err(_) => exception,
    }
}

// ---------------------------------------------------------------- module

static INI_ENTRIES: IniEntryDefs<13> = IniEntryDefs::new([
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
    module.class::<AmoClient>().info_function(module_info)
}
