//! Secrets (client secret, access and refresh tokens) wrapped so that a `{:?}`
//! in an error message or a log line can never print them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A secret string. `Debug` prints `Secret([redacted])`; the value is reached
/// only through [`Secret::expose`]. Shared, not copied, when cloned: a
/// token travels from the cached pair to every request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The secret itself: call only where it goes on the wire or to disk.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("def50200abcdef");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.expose(), "def50200abcdef");
    }
}
