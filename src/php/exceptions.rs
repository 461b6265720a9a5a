//! The `AmoException` family, registered at start-up as plain classes so
//! that PHP code can construct and subclass them, and the one place where a
//! Rust [`Error`] becomes a PHP exception.

use super::convert::{json_to_zval, null_zval};
use crate::error::{Error, ErrorKind};
use ext_php_rs::args::ArgInfoTables;
use ext_php_rs::builders::{ClassBuilder, ClassProperty, FunctionBuilder};
use ext_php_rs::convert::IntoZval;
use ext_php_rs::flags::{DataType, MethodFlags, PropertyFlags};
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::{ce, ClassEntry, ExecuteData, ExecutorGlobals};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicPtr, Ordering};

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

pub fn register_exceptions() -> ext_php_rs::error::Result<()> {
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
pub fn to_php(err: Error) -> PhpException {
    let ce = ClassEntry::try_find(err.kind.class_name()).unwrap_or_else(ce::exception);
    let exception = PhpException::new(err.message.clone(), i32::from(err.status), ce);
    match build_exception(ce, &err) {
        Ok(obj) => exception.with_object(obj),
        Err(_) => exception,
    }
}
