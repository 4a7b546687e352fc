//! Reading the replies of Redis commands and of the store's scripts, without panicking on
//! shapes the store did not expect.

use redis::Value;
use rkron_store::StoreError;

fn unexpected(what: &str, value: &Value) -> StoreError {
    StoreError::Backend(format!("unexpected reply to {what}: {value:?}"))
}

/// An array reply's elements.
pub(crate) fn array(what: &str, value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(unexpected(what, &other)),
    }
}

/// A string reply's bytes; `None` for nil (and for Lua's `false`).
pub(crate) fn bytes(what: &str, value: Value) -> Result<Option<Vec<u8>>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        Value::SimpleString(text) => Ok(Some(text.into_bytes())),
        Value::Okay => Ok(Some(b"OK".to_vec())),
        Value::Int(number) => Ok(Some(number.to_string().into_bytes())),
        Value::VerbatimString { text, .. } => Ok(Some(text.into_bytes())),
        other => Err(unexpected(what, &other)),
    }
}

/// A string reply that must be present.
pub(crate) fn required_bytes(what: &str, value: Value) -> Result<Vec<u8>, StoreError> {
    bytes(what, value)?.ok_or_else(|| unexpected(what, &Value::Nil))
}

/// An integer reply (or a string holding one).
pub(crate) fn integer(what: &str, value: Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(number) => Ok(number),
        Value::BulkString(ref bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| unexpected(what, &value)),
        other => Err(unexpected(what, &other)),
    }
}

/// A `u64` carried as a string or integer reply.
pub(crate) fn unsigned(what: &str, value: Value) -> Result<u64, StoreError> {
    let text = required_bytes(what, value)?;
    std::str::from_utf8(&text)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::Backend(format!("unexpected number in reply to {what}")))
}

/// A script reply `{status, …}`: the status word and the rest.
pub(crate) fn status(what: &str, value: Value) -> Result<(String, Vec<Value>), StoreError> {
    let mut items = array(what, value)?.into_iter();
    let word = match items.next() {
        Some(first) => required_bytes(what, first)?,
        None => return Err(StoreError::Backend(format!("empty reply to {what}"))),
    };
    let word = String::from_utf8(word)
        .map_err(|_| StoreError::Backend(format!("unexpected status in reply to {what}")))?;
    Ok((word, items.collect()))
}

/// A field and its value.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// A hash reply (`HGETALL`) as field and value pairs, in RESP2 (flat array) or RESP3 (map).
pub(crate) fn pairs(what: &str, value: Value) -> Result<Vec<Pair>, StoreError> {
    let flat = match value {
        Value::Map(entries) => entries
            .into_iter()
            .flat_map(|(field, value)| [field, value])
            .collect(),
        other => array(what, other)?,
    };
    if !flat.len().is_multiple_of(2) {
        return Err(StoreError::Backend(format!(
            "odd number of elements in reply to {what}"
        )));
    }
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        pairs.push((required_bytes(what, field)?, required_bytes(what, value)?));
    }
    Ok(pairs)
}

/// Asserts that a reply has the expected status word, for scripts that answer only `{ok}`.
pub(crate) fn expect_ok(what: &str, value: Value) -> Result<(), StoreError> {
    match status(what, value)? {
        (word, _) if word == "ok" => Ok(()),
        (word, _) => Err(StoreError::Backend(format!(
            "unexpected status {word} in reply to {what}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_shapes_are_errors_not_panics() {
        assert!(array("x", Value::Int(1)).is_err());
        assert!(status("x", Value::Array(vec![])).is_err());
        assert!(status("x", Value::Array(vec![Value::Array(vec![])])).is_err());
        assert!(pairs("x", Value::Array(vec![Value::Nil])).is_err());
        assert!(integer("x", Value::BulkString(b"a".to_vec())).is_err());
        assert!(unsigned("x", Value::BulkString(b"-1".to_vec())).is_err());
        assert_eq!(
            pairs(
                "x",
                Value::Map(vec![(
                    Value::BulkString(b"f".to_vec()),
                    Value::BulkString(b"v".to_vec())
                )])
            )
            .unwrap(),
            vec![(b"f".to_vec(), b"v".to_vec())]
        );
        assert_eq!(bytes("x", Value::Nil).unwrap(), None);
        assert_eq!(unsigned("x", Value::Int(7)).unwrap(), 7);
    }
}
