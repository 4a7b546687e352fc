//! The etcd keyspace of the etcd store: key layout and record encoding.
//!
//! Every key starts with `<ks>/`, the configured keyspace (default `rkron`) and a slash, so two
//! keyspaces never see each other's keys, even when one name is a prefix of the other (`rkron`,
//! `rkron2`). A keyspace nested in another (`rkron/jobs`) would collide with it: do not nest.
//!
//! | key                                       | value                                              |
//! |-------------------------------------------|----------------------------------------------------|
//! | `<ks>/jobs/<job>`                         | job JSON; the key's `mod_revision` is its version  |
//! | `<ks>/executions/<job>/<started>/<node>`  | execution JSON without output (¹)                  |
//! | `<ks>/outputs/<job>/<started>/<node>`     | output, UTF-8 (no key when the output is empty)    |
//! | `<ks>/running/<job>/<started>/<node>`     | execution JSON without output, while unfinished    |
//! | `<ks>/meta/<setting>`                     | setting value, UTF-8                               |
//! | `<ks>/ledger/<job>`                       | latest fired scheduled instant, Unix nanos, decimal|
//! | `<ks>/missed/<job>`                       | missed fires JSON `{"total":n,"recent":[nanos…]}`  |
//! | `<ks>/leader`                             | holder's node name, on an etcd lease (²)           |
//!
//! (¹) The output lives under `outputs/` so listings and trimming never read it.
//! (²) Its `create_revision` is the fencing token: etcd revisions only grow, and a new tenure
//! creates the key anew, so each tenure's token is greater than every earlier one.
//!
//! `<started>` is the execution's `started_at` as Unix nanoseconds with the sign bit flipped, in
//! 16 lower-case hex digits: byte order is time order, before 1970 included, so a range read
//! lists a job's executions by `started_at`, then node. No execution count is stored: a range
//! read answers how many keys a job's prefix holds.
//!
//! In the per-job prefixes (`executions/`, `outputs/`, `running/`) the job name is followed by a
//! `/`, so the prefix of `foo` never reaches `foobar` or `foo-bar`; and `%` and `/` in a name are
//! escaped as `%25` and `%2F`. Valid job names (`\p{Ll}`, digits, `_`, `-`) contain neither,
//! so for them the segment is the name itself. Exact keys (`jobs/`, `ledger/`, `missed/`) hold
//! the name as is.

use rkron_store::StoreError;
pub(crate) use rkron_store::kv::*;

/// Returns `key` with `prefix` removed, as text.
pub(crate) fn strip<'a>(key: &'a [u8], prefix: &str) -> Result<&'a str, StoreError> {
    let rest = key
        .strip_prefix(prefix.as_bytes())
        .ok_or_else(|| corrupt(String::from_utf8_lossy(key), format!("not under {prefix}")))?;
    std::str::from_utf8(rest).map_err(|error| corrupt(String::from_utf8_lossy(key), error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_outside_the_prefix_is_corrupt() {
        assert!(matches!(
            strip(b"x/a", "y/"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
