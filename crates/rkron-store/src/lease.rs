//! Leadership leases: who may schedule and dispatch, with a fencing token per tenure.

use std::time::Duration;

use tokio::time::Instant;

/// A leadership lease: its holder (a server's node name) and its fencing token.
///
/// Tokens strictly increase across tenures, so a write carrying an older token than the
/// current lease's comes from a deposed leader.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The node name of the holder.
    pub holder: String,
    /// The fencing token of this tenure.
    pub token: u64,
}

/// The lease logic of stores that live in one process (memory, embedded): expiry on the
/// process's monotonic clock, tokens from a counter the store may persist.
#[derive(Debug, Default)]
pub struct LocalLease {
    current: Option<(Lease, Instant)>,
    /// The last token handed out.
    last_token: u64,
}

impl LocalLease {
    /// A lease state whose next token is greater than `last_token`.
    pub fn starting_after(last_token: u64) -> Self {
        Self {
            current: None,
            last_token,
        }
    }

    /// The last token handed out.
    pub fn last_token(&self) -> u64 {
        self.last_token
    }

    /// The current, unexpired lease.
    pub fn current(&self) -> Option<&Lease> {
        match &self.current {
            Some((lease, expires)) if Instant::now() < *expires => Some(lease),
            _ => None,
        }
    }

    /// See [`crate::Store::acquire_lease`].
    pub fn acquire(&mut self, holder: &str, ttl: Duration) -> Option<Lease> {
        let expires = Instant::now() + ttl;
        match self.current().cloned() {
            Some(lease) if lease.holder == holder => {
                self.current = Some((lease.clone(), expires));
                Some(lease)
            }
            Some(_) => None,
            None => {
                self.last_token += 1;
                let lease = Lease {
                    holder: holder.to_owned(),
                    token: self.last_token,
                };
                self.current = Some((lease.clone(), expires));
                Some(lease)
            }
        }
    }

    /// See [`crate::Store::renew_lease`].
    pub fn renew(&mut self, lease: &Lease, ttl: Duration) -> bool {
        if self.current() == Some(lease) {
            self.current = Some((lease.clone(), Instant::now() + ttl));
            true
        } else {
            false
        }
    }

    /// See [`crate::Store::release_lease`].
    pub fn release(&mut self, lease: &Lease) {
        if self.current() == Some(lease) {
            self.current = None;
        }
    }

    /// Whether `token` is the current, unexpired lease's.
    pub fn is_current(&self, token: u64) -> bool {
        self.current().is_some_and(|lease| lease.token == token)
    }
}
