//! PHP's `#[\SensitiveParameter]` on the parameters that take a secret:
//! `AmoClient::configure()`'s options (the client secret, a long-lived
//! token), `importTokens()`'s pair, `exchangeCode()`'s code,
//! `exchangeApiKey()`'s API key and `parseDisposableToken()`'s token. A stack
//! trace (an exception's, `debug_backtrace()`'s) then holds a
//! `SensitiveParameterValue` in their place, so `var_dump($e)`, `print_r`,
//! `var_export` and `serialize` of an exception show no secret even where
//! `zend.exception_ignore_args` is off (`php -n`, php.ini-development).
//!
//! ext-php-rs cannot declare a parameter attribute, and it registers the
//! classes after the module's start-up function has run, so the attributes
//! are added once per process, at its first request, as PHP's own
//! `zend_add_parameter_attribute()` does for `hash_hmac()`'s key.

use ext_php_rs::ffi::{zend_function, zend_hash_str_find_ptr_lc, zend_string, HashTable};
use ext_php_rs::types::ZendStr;
use ext_php_rs::zend::ClassEntry;
use std::ffi::c_void;
use std::sync::Once;

/// zend_attributes.h: the attribute is allocated for the life of the process,
/// as the internal function it belongs to.
const ZEND_ATTRIBUTE_PERSISTENT: u32 = 1 << 0;

extern "C" {
    fn zend_add_attribute(
        attributes: *mut *mut HashTable,
        name: *mut zend_string,
        argc: u32,
        flags: u32,
        offset: u32,
        lineno: u32,
    ) -> *mut c_void;
}

/// (class, method in lower case, parameter counted from 0)
const SENSITIVE: &[(&str, &str, u32)] = &[
    ("AmoClient", "configure", 0),
    ("AmoClient", "importtokens", 0),
    ("AmoClient", "exchangecode", 0),
    ("AmoClient", "exchangeapikey", 1),
    ("AmoClient", "parsedisposabletoken", 0),
];

static MARKED: Once = Once::new();

/// Marks the parameters; runs at the first request start-up of the process.
pub fn mark_sensitive_parameters() {
    MARKED.call_once(|| {
        // Persistent, like the functions; never freed (one small string).
        let name = ZendStr::new("SensitiveParameter", true).into_raw();
        for (class, method, param) in SENSITIVE {
            let Some(ce) = ClassEntry::try_find(class) else {
                continue;
            };
            // SAFETY: the class's function table lives as long as the
            // process; the entry found is a zend_function; the attribute
            // table of an internal function is persistent (flag above).
            unsafe {
                let f = zend_hash_str_find_ptr_lc(
                    &ce.function_table,
                    method.as_ptr().cast(),
                    method.len(),
                )
                .cast::<zend_function>();
                if f.is_null() {
                    continue;
                }
                // zend_add_parameter_attribute(): parameters count from 1 there.
                zend_add_attribute(
                    &mut (*f).common.attributes,
                    name,
                    0,
                    ZEND_ATTRIBUTE_PERSISTENT,
                    param + 1,
                    0,
                );
            }
        }
    });
}
