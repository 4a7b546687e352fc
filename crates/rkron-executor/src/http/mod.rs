//! The `http` executor: sends one HTTP request and checks the response (Dkron §7.2).
//!
//! Config keys: `method`, `url`, `headers`, `body`, `timeout`, `expectCode`, `expectBody`,
//! `debug`, `tlsNoVerifyPeer`, `tlsCertificateFile`, `tlsCertificateKeyFile`, `tlsRootCAsFile`.
//! The output is the response body; clients are cached per timeout and TLS settings.

mod config;
mod executor;
#[cfg(test)]
mod tests;

pub use config::{ClientSettings, DEFAULT_TIMEOUT, HttpConfig};
pub use executor::{CLIENT_CACHE_CAPACITY, HttpExecutor};
