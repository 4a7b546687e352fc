//! The Consul keyspace of the Consul store: key layout and record encoding.
//!
//! Every key starts with `<ks>/`, the configured keyspace (default `rkron`) and a slash, so two
//! keyspaces never see each other's keys, even when one name is a prefix of the other (`rkron`,
//! `rkron2`). A keyspace nested in another (`rkron/jobs`) would collide with it: do not nest.
//!
//! | key                                       | value                                              |
//! |-------------------------------------------|----------------------------------------------------|
//! | `<ks>/jobs/<job>`                         | job JSON; the key's `ModifyIndex` is its version   |
//! | `<ks>/executions/<job>/<started>/<node>`  | execution JSON without output (¹)                  |
//! | `<ks>/outputs/<job>/<started>/<node>`     | output, UTF-8 (no key when the output is empty)    |
//! | `<ks>/running/<job>/<started>/<node>`     | execution JSON without output, while unfinished    |
//! | `<ks>/meta/<setting>`                     | setting value, UTF-8                               |
//! | `<ks>/ledger/<job>`                       | latest fired scheduled instant, Unix nanos, decimal|
//! | `<ks>/missed/<job>`                       | missed fires JSON `{"total":n,"recent":[nanos…]}`  |
//! | `<ks>/leader`                             | lease record JSON `{"holder":…,"expires_at_ms":…}` (²) |
//!
//! (¹) The output lives under `outputs/` so listings and trimming never read it.
//! (²) Its `CreateIndex` is the fencing token: Consul's Raft index only grows, and a new tenure
//! creates the key anew (the previous record is deleted first), so each tenure's token is
//! greater than every earlier one. Renewals rewrite the record with `cas`, which moves its
//! `ModifyIndex` but keeps its `CreateIndex`, hence the token.
//!
//! `<started>` is the execution's `started_at` as Unix nanoseconds with the sign bit flipped, in
//! 16 lower-case hex digits: key order is time order, before 1970 included, so a prefix read
//! lists a job's executions by `started_at`, then node (Consul answers keys sorted).
//!
//! In the per-job prefixes (`executions/`, `outputs/`, `running/`) the job name is followed by a
//! `/`, so the prefix of `foo` never reaches `foobar` or `foo-bar` (`delete-tree` of that prefix
//! deletes exactly one job's history); and `%` and `/` in a name are escaped as `%25` and `%2F`.
//! Valid job names (`\p{Ll}`, digits, `_`, `-`) contain neither, so for them the segment is the
//! name itself. Exact keys (`jobs/`, `ledger/`, `missed/`) hold the name as is.

use rkron_store::StoreError;
pub(crate) use rkron_store::kv::*;
use serde::{Deserialize, Serialize};

/// Returns `key` with `prefix` removed.
pub(crate) fn strip<'a>(key: &'a str, prefix: &str) -> Result<&'a str, StoreError> {
    key.strip_prefix(prefix)
        .ok_or_else(|| corrupt(key, format!("not under {prefix}")))
}

/// The lease record stored at the leader key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    /// The holder's node name.
    pub(crate) holder: String,
    /// Expiry as Unix milliseconds of the writer's wall clock.
    pub(crate) expires_at_ms: i64,
}

/// Encodes a lease record.
pub(crate) fn encode_lease(record: &LeaseRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|error| StoreError::Backend(format!("encoding the lease record: {error}")))
}

/// Decodes the lease record stored at `key`.
pub(crate) fn decode_lease(key: &str, bytes: &[u8]) -> Result<LeaseRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(key, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_outside_the_prefix_is_corrupt() {
        assert!(matches!(
            strip("x/a", "y/"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
