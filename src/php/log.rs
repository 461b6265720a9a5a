//! Where the core's events go in PHP: PHP's own error log (the `error_log`
//! setting; php-fpm's log when it is unset), or the callable given to
//! `AmoClient::setLogger()` for the request — `fn (string $level, string
//! $message, array $context)`, so a PSR-3 logger plugs in.
//!
//! The callable lives in a private static property of `AmoClient`, which
//! PHP resets when the request ends: no PHP value outlives its request, and
//! under php-fpm each request sets its own logger.
//!
//! The callable must not break the amoCRM call it reports on: an exception
//! it throws is caught and cleared, and that event goes to the error log,
//! with a line saying so. A call of `AmoClient` from inside the callable is
//! refused (the core may hold the token lock). A fatal error inside it
//! (which ends the request in PHP) ends the request at the next `AmoClient`
//! call, once the core has let go of its locks.

use super::convert::json_to_zval;
use crate::log::{line, Event, Sink};
use ext_php_rs::class::RegisteredClass;
use ext_php_rs::convert::{FromZval, IntoZvalDyn};
use ext_php_rs::flags::DataType;
use ext_php_rs::types::Zval;
use ext_php_rs::zend::{ClassEntry, ExecutorGlobals};
use serde_json::Value;
use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr, CString};

extern "C" {
    /// PHP's error log: the `error_log` file or syslog, else the SAPI's log
    /// (php-fpm's, the CLI's stderr). main/main.c, PHPAPI.
    fn php_log_err_with_severity(message: *const c_char, syslog_type: c_int);
    /// Drops the pending exception. Zend/zend_exceptions.c, ZEND_API.
    fn zend_clear_exception();
    /// Whether an exception is `exit()`'s unwinding. ZEND_API since PHP 8.0.
    fn zend_is_unwind_exit(ex: *const ext_php_rs::ffi::zend_object) -> bool;
}

thread_local! {
    /// Set in the PHP thread at request start-up: the only thread that may
    /// call into the engine.
    static PHP_THREAD: Cell<bool> = const { Cell::new(false) };
    /// The callable is running: events it causes go to the error log.
    static IN_LOGGER: Cell<bool> = const { Cell::new(false) };
    /// The callable hit a fatal error: the request ends at the next
    /// `AmoClient` call.
    static BAILED_OUT: Cell<bool> = const { Cell::new(false) };
}

const LOGGER: &CStr = c"logger";

/// A new request: this thread is PHP's, and no logger is running.
pub fn request_startup() {
    PHP_THREAD.with(|t| t.set(true));
    IN_LOGGER.with(|t| t.set(false));
    BAILED_OUT.with(|t| t.set(false));
}

/// Called first by every `AmoClient` call that reaches the core: refuses a
/// call from inside the logger, and ends a request whose logger hit a fatal
/// error (no Rust lock is held here).
pub fn check_entry() -> crate::error::Result<()> {
    if BAILED_OUT.with(|b| b.replace(false)) {
        // SAFETY: the engine's bailout, as PHP's own fatal error would have
        // done inside the logger; nothing of the core is held here.
        unsafe { ext_php_rs::zend::bailout() }
    }
    if IN_LOGGER.with(Cell::get) {
        return Err(crate::error::Error::argument(
            "logger",
            "the callable given to AmoClient::setLogger() must not call AmoClient (the call it reports on may hold the token lock)",
        ));
    }
    Ok(())
}

/// A PHP value that is callable: makes `setLogger()`'s parameter `?callable`.
pub struct Callable<'a>(pub &'a Zval);

impl<'a> FromZval<'a> for Callable<'a> {
    const TYPE: DataType = DataType::Callable;

    fn from_zval(zval: &'a Zval) -> Option<Self> {
        zval.is_callable().then_some(Callable(zval))
    }
}

fn class() -> &'static ClassEntry {
    super::client::AmoClient::get_metadata().ce()
}

/// The logger of this request, if one is set.
fn logger() -> Option<&'static Zval> {
    // SAFETY: reading a declared static property of our own class; the
    // engine keeps its value alive until the request ends.
    let z = unsafe {
        ext_php_rs::ffi::zend_read_static_property(
            std::ptr::from_ref(class()).cast_mut(),
            LOGGER.as_ptr(),
            LOGGER.to_bytes().len(),
            true,
        )
        .as_ref()?
    };
    let z = z.indirect().unwrap_or(z);
    (!z.is_null()).then_some(z)
}

/// `AmoClient::setLogger()`: the callable for the rest of the request, or
/// `null` for PHP's error log.
pub fn set_logger(callable: Option<&Zval>) -> ext_php_rs::error::Result<()> {
    let value = match callable {
        Some(z) => z.shallow_clone(),
        None => {
            let mut z = Zval::new();
            z.set_null();
            z
        }
    };
    class().set_static_property(LOGGER.to_str().unwrap_or("logger"), value)
}

/// One line to PHP's error log, at a syslog priority.
fn error_log_at(text: &str, syslog: c_int) {
    if !PHP_THREAD.with(Cell::get) {
        // Not the engine's thread: PHP's logger is not ours to call here.
        eprintln!("{text}");
        return;
    }
    let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
    // SAFETY: a NUL-terminated string, in the PHP thread.
    unsafe { php_log_err_with_severity(text.as_ptr(), syslog) }
}

/// The sink of every core the binding makes.
pub struct PhpSink;

impl Sink for PhpSink {
    fn log(&self, event: &Event) {
        let to_error_log = || error_log_at(&line(event), event.level.syslog());
        // An exception already pending (exit() in an earlier call of the
        // logger) would not let the callable run.
        if !PHP_THREAD.with(Cell::get)
            || IN_LOGGER.with(Cell::get)
            || BAILED_OUT.with(Cell::get)
            || ExecutorGlobals::has_exception()
        {
            return to_error_log();
        }
        let Some(callable) = logger() else {
            return to_error_log();
        };
        let level = event.level.name().to_string();
        let message = event.message.clone();
        let context = json_to_zval(&Value::Object(event.context.clone()));
        IN_LOGGER.with(|t| t.set(true));
        let called = ext_php_rs::zend::try_catch(std::panic::AssertUnwindSafe(|| {
            let params: Vec<&dyn IntoZvalDyn> = vec![&level, &message, &context];
            callable.try_call(params).map(drop)
        }));
        IN_LOGGER.with(|t| t.set(false));
        let failed = match called {
            Ok(Ok(())) => return,
            Ok(Err(_)) => match ExecutorGlobals::get().exception() {
                // exit() inside the logger: let it unwind the request.
                // SAFETY: a live exception object of the engine.
                Some(ex) if unsafe { zend_is_unwind_exit(std::ptr::from_ref(ex)) } => {
                    return to_error_log();
                }
                Some(ex) => {
                    let class = ex.get_class_name().unwrap_or_else(|_| "Exception".into());
                    // SAFETY: in the PHP thread, with an exception pending.
                    unsafe { zend_clear_exception() };
                    format!("threw {class}")
                }
                None => "could not be called".to_string(),
            },
            Err(_) => {
                BAILED_OUT.with(|b| b.set(true));
                "ended in a fatal error (the request ends at the next AmoClient call)".to_string()
            }
        };
        to_error_log();
        let account = event
            .context
            .get("account")
            .and_then(Value::as_str)
            .unwrap_or("?");
        error_log_at(
            &format!(
                "amocrm[{account}] warning: the logger set with AmoClient::setLogger() {failed}; the event above went to the error log instead"
            ),
            4,
        );
    }
}
