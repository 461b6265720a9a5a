//! `amocrm`: an amoCRM / Kommo client whose token lifecycle needs nobody.
//!
//! Layers, bottom up: [`config`] → [`store`] (token file + lock) → [`oauth`]
//! → [`transport`] (over [`net`]'s per-process client, within [`ratelimit`])
//! → [`client`] (the lifecycle and API calls, retrying as [`policy`] says)
//! → `php` (the ext-php-rs binding, the only module that knows PHP). Beside
//! them: [`host`] (account hosts and the allow-list), [`clock`], [`error`].

pub mod client;
pub mod clock;
pub mod config;
pub mod disposable;
pub mod drive;
pub mod error;
pub mod files;
pub mod history;
pub mod host;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod policy;
pub mod ratelimit;
pub mod redis_conn;
pub mod redis_store;
pub mod region;
pub mod secret;
pub mod services;
pub mod state;
pub mod store;
pub mod token;
pub mod transport;

mod php;
