//! Calls to the DynamoDB table: one deadline per call, errors mapped onto [`StoreError`], paged
//! queries, batches and transactions. Every read is strongly consistent.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest,
    KeySchemaElement, KeyType, KeysAndAttributes, Put, ReturnValue, ScalarAttributeType, Select,
    TableStatus, TransactWriteItem, WriteRequest,
};
use rkron_store::StoreError;

use crate::keys::{Item, Key, PK, SK, text};

/// DynamoDB's limit on the items of one `TransactWriteItems`.
pub(crate) const MAX_TRANSACT_ITEMS: usize = 100;

/// DynamoDB's limit on the keys of one `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;

/// DynamoDB's limit on the writes of one `BatchWriteItem`.
const MAX_BATCH_WRITE: usize = 25;

/// Attempts at a batch whose items DynamoDB left unprocessed (throttling).
const BATCH_ATTEMPTS: u32 = 8;

/// How long a new table may take to become active.
const TABLE_ACTIVE_WITHIN: Duration = Duration::from_secs(120);

/// Error codes that mean "try again later": throttling, capacity and service-side failures.
const UNAVAILABLE_CODES: [&str; 9] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Cancellation reason codes of a transaction that mean "try again later".
const UNAVAILABLE_REASONS: [&str; 3] = [
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// A condition, update or key expression with its values; the names (`#name`) it uses are
/// found in the text and mapped to the attribute of the same name.
#[derive(Debug, Clone)]
pub(crate) struct Expression {
    text: String,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    /// An expression without values.
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            values: HashMap::new(),
        }
    }

    /// Adds the value of placeholder `placeholder` (`:name`).
    pub(crate) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// The attribute names of the `#name` placeholders in `texts`.
    fn names(texts: &[&str]) -> Option<HashMap<String, String>> {
        let mut names = HashMap::new();
        for text in texts {
            let mut rest = *text;
            while let Some(at) = rest.find('#') {
                let tail = &rest[at + 1..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                names.insert(format!("#{name}"), name.to_owned());
                rest = &tail[end..];
            }
        }
        (!names.is_empty()).then_some(names)
    }

    fn values_with(&self, other: Option<&Self>) -> Option<HashMap<String, AttributeValue>> {
        let mut values = self.values.clone();
        if let Some(other) = other {
            values.extend(other.values.clone());
        }
        (!values.is_empty()).then_some(values)
    }
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// Creates or replaces an item.
    Put {
        item: Item,
        condition: Option<Expression>,
    },
    /// Deletes an item (deleting a missing item is no error).
    Delete {
        key: Key,
        condition: Option<Expression>,
    },
    /// Checks a condition on an item without writing it.
    Check { key: Key, condition: Expression },
}

impl Write {
    /// An unconditional delete.
    pub(crate) fn delete(key: Key) -> Self {
        Self::Delete {
            key,
            condition: None,
        }
    }

    /// An unconditional put.
    pub(crate) fn put(item: Item) -> Self {
        Self::Put {
            item,
            condition: None,
        }
    }
}

/// Why a single-item call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The condition of the write did not hold; nothing was written.
    ConditionFailed,
    /// Any other failure.
    Store(StoreError),
}

impl From<StoreError> for CallError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Why a transaction failed; nothing was written.
#[derive(Debug)]
pub(crate) enum TransactError {
    /// These writes' conditions did not hold (indexes in the transaction).
    ConditionFailed(Vec<usize>),
    /// Another transaction touched one of the items at the same time: try again.
    Contended,
    /// Any other failure.
    Store(StoreError),
}

impl From<StoreError> for TransactError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// A `Query` of one partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<'a> {
    /// The partition.
    pub(crate) pk: &'a str,
    /// Only the items whose sort key comes strictly after this one.
    pub(crate) after: Option<&'a str>,
    /// Reads only these attributes besides the key (`None`: every attribute).
    pub(crate) attributes: Option<&'a [&'a str]>,
    /// At most this many items.
    pub(crate) limit: Option<usize>,
}

impl<'a> Query<'a> {
    /// Every item of partition `pk`.
    pub(crate) fn partition(pk: &'a str) -> Self {
        Self {
            pk,
            after: None,
            attributes: None,
            limit: None,
        }
    }

    /// Reads only `attributes` besides the key.
    pub(crate) fn only(self, attributes: &'a [&'a str]) -> Self {
        Self {
            attributes: Some(attributes),
            ..self
        }
    }
}

/// One DynamoDB table, through one client.
pub(crate) struct Table {
    client: Client,
    name: String,
    /// Where the table lives (endpoint or region), for messages.
    place: String,
    timeout: Duration,
}

impl fmt::Debug for Table {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Table")
            .field("name", &self.name)
            .field("place", &self.place)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The projection expression of the key and `attributes`.
fn projection(attributes: &[&str]) -> String {
    let mut text = format!("#{PK}, #{SK}");
    for attribute in attributes {
        text.push_str(", #");
        text.push_str(attribute);
    }
    text
}

fn build_error(what: &str, error: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("building a DynamoDB {what} request: {error}"))
}

/// Converts a count DynamoDB reports.
fn count_of(count: i32) -> usize {
    usize::try_from(count).unwrap_or(0)
}

impl Table {
    /// The table `name` through `client`, every call bounded by `timeout`.
    pub(crate) fn new(client: Client, name: String, place: String, timeout: Duration) -> Self {
        Self {
            client,
            name,
            place,
            timeout,
        }
    }

    /// The table's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Where the table lives.
    pub(crate) fn place(&self) -> &str {
        &self.place
    }

    /// The deadline of one call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one call under the deadline. The SDK's futures are large (hundreds of kilobytes in
    /// debug builds), so each goes on the heap rather than on the caller's stack.
    async fn bounded<T, E>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<Result<T, SdkError<E>>, StoreError> {
        tokio::time::timeout(self.timeout, Box::pin(call))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "{what}: no answer from DynamoDB ({}) within {:?}",
                    self.place, self.timeout
                ))
            })
    }

    /// Runs one call under the deadline and maps its error.
    async fn send<T, E>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<T, CallError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.bounded(what, call)
            .await?
            .map_err(|error| self.classify(what, &error))
    }

    /// Maps a failed call onto the store's errors.
    fn classify<E>(&self, what: &str, error: &SdkError<E>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let detail = DisplayErrorContext(error);
        match error {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => CallError::Store(StoreError::Unavailable(format!(
                "{what}: DynamoDB ({}) cannot be reached: {detail}",
                self.place
            ))),
            SdkError::ServiceError(service) => {
                let code = error.code().unwrap_or("unknown");
                let message = error.message().unwrap_or_default();
                if code == "ConditionalCheckFailedException" {
                    CallError::ConditionFailed
                } else if UNAVAILABLE_CODES.contains(&code)
                    || service.raw().status().is_server_error()
                {
                    CallError::Store(StoreError::Unavailable(format!(
                        "{what}: DynamoDB ({}) answered {code}: {message}",
                        self.place
                    )))
                } else if code == "ResourceNotFoundException" {
                    CallError::Store(StoreError::Backend(format!(
                        "{what}: table {} does not exist at {}: {message}",
                        self.name, self.place
                    )))
                } else {
                    CallError::Store(StoreError::Backend(format!(
                        "{what}: DynamoDB ({}) refused the request: {code}: {message}",
                        self.place
                    )))
                }
            }
            _ => CallError::Store(StoreError::Backend(format!("{what}: {detail}"))),
        }
    }

    /// Runs a call whose condition failing is an error too.
    async fn send_plain<T, E>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<T, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match self.send(what, call).await {
            Ok(output) => Ok(output),
            Err(CallError::ConditionFailed) => Err(StoreError::Backend(format!(
                "{what}: unexpected condition failure"
            ))),
            Err(CallError::Store(error)) => Err(error),
        }
    }

    /// Checks that the table exists with the store's key schema, creating it when `create` and
    /// it is missing, and waits until it is active.
    pub(crate) async fn ensure(&self, create: bool) -> Result<(), StoreError> {
        let what = "describing the table";
        let described = self
            .bounded(
                what,
                self.client.describe_table().table_name(&self.name).send(),
            )
            .await?;
        let description = match described {
            Ok(output) => output.table,
            Err(error) if error.code() == Some("ResourceNotFoundException") => {
                if !create {
                    return Err(StoreError::Backend(format!(
                        "table {} does not exist at {}: create it (key pk: string, sk: string) \
                         or let the store create it",
                        self.name, self.place
                    )));
                }
                self.create().await?;
                None
            }
            Err(error) => {
                return Err(match self.classify(what, &error) {
                    CallError::Store(error) => error,
                    CallError::ConditionFailed => StoreError::Backend(what.to_owned()),
                });
            }
        };
        if let Some(description) = &description {
            let schema: Vec<(&str, &KeyType)> = description
                .key_schema()
                .iter()
                .map(|element| (element.attribute_name(), element.key_type()))
                .collect();
            if schema != [(PK, &KeyType::Hash), (SK, &KeyType::Range)] {
                return Err(StoreError::Backend(format!(
                    "table {} at {} has the key schema {schema:?}; the store needs {PK} (hash) \
                     and {SK} (range), both strings",
                    self.name, self.place
                )));
            }
            if description.table_status() == Some(&TableStatus::Active) {
                return Ok(());
            }
        }
        self.wait_active().await
    }

    async fn create(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|error| build_error("CreateTable", error))
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(|error| build_error("CreateTable", error))
        };
        let request = self
            .client
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send();
        match self.bounded("creating the table", request).await? {
            Ok(_) => {
                tracing::info!(table = %self.name, place = %self.place, "created the DynamoDB table");
                Ok(())
            }
            // Another server created it meanwhile.
            Err(error) if error.code() == Some("ResourceInUseException") => Ok(()),
            Err(error) => Err(match self.classify("creating the table", &error) {
                CallError::Store(error) => error,
                CallError::ConditionFailed => StoreError::Backend("creating the table".to_owned()),
            }),
        }
    }

    async fn wait_active(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_WITHIN;
        let mut pause = Duration::from_millis(50);
        loop {
            let output = self
                .send_plain(
                    "waiting for the table",
                    self.client.describe_table().table_name(&self.name).send(),
                )
                .await?;
            let status = output
                .table
                .as_ref()
                .and_then(|t| t.table_status().cloned());
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "table {} at {} is not active after {TABLE_ACTIVE_WITHIN:?} (status {status:?})",
                    self.name, self.place
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Reads one item (`attributes`: only those besides the key).
    pub(crate) async fn get(
        &self,
        key: &Key,
        attributes: Option<&[&str]>,
    ) -> Result<Option<Item>, StoreError> {
        let mut request = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key.to_item()))
            .consistent_read(true);
        if let Some(attributes) = attributes {
            request = request
                .projection_expression(projection(attributes))
                .set_expression_attribute_names(Expression::names(&[&projection(attributes)]));
        }
        let output = self.send_plain("reading an item", request.send()).await?;
        Ok(output.item)
    }

    /// Writes one item, if `condition` holds.
    pub(crate) async fn put(
        &self,
        item: Item,
        condition: Option<&Expression>,
    ) -> Result<(), CallError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item));
        if let Some(condition) = condition {
            request = request
                .condition_expression(&condition.text)
                .set_expression_attribute_names(Expression::names(&[&condition.text]))
                .set_expression_attribute_values(condition.values_with(None));
        }
        self.send("writing an item", request.send()).await?;
        Ok(())
    }

    /// Updates one item with `update`, if `condition` holds; answers the updated attributes.
    pub(crate) async fn update(
        &self,
        key: &Key,
        update: &Expression,
        condition: Option<&Expression>,
    ) -> Result<Item, CallError> {
        let mut texts = vec![update.text.as_str()];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key.to_item()))
            .update_expression(&update.text)
            .return_values(ReturnValue::UpdatedNew);
        if let Some(condition) = condition {
            texts.push(&condition.text);
            request = request.condition_expression(&condition.text);
        }
        let output = self
            .send(
                "updating an item",
                request
                    .set_expression_attribute_names(Expression::names(&texts))
                    .set_expression_attribute_values(update.values_with(condition))
                    .send(),
            )
            .await?;
        Ok(output.attributes.unwrap_or_default())
    }

    /// Reads the items of a partition in sort-key order, page by page.
    pub(crate) async fn query(&self, query: Query<'_>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let remaining = query.limit.map(|limit| limit - items.len());
            if remaining == Some(0) {
                break;
            }
            let (page, next) = self.query_page(query, start, remaining, false).await?;
            items.extend(page.items.unwrap_or_default());
            match next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        Ok(items)
    }

    /// Counts the items of partition `pk`.
    pub(crate) async fn count(&self, pk: &str) -> Result<usize, StoreError> {
        let query = Query::partition(pk);
        let mut total = 0;
        let mut start: Option<Item> = None;
        loop {
            let (page, next) = self.query_page(query, start, None, true).await?;
            total += count_of(page.count);
            match next {
                Some(next) => start = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// The sort key of the `position`th item (from 1) of partition `pk`, reading keys only.
    pub(crate) async fn nth_key(
        &self,
        pk: &str,
        position: usize,
    ) -> Result<Option<String>, StoreError> {
        let query = Query {
            limit: Some(position),
            ..Query::partition(pk).only(&[])
        };
        let keys = self.query(query).await?;
        if keys.len() < position {
            return Ok(None);
        }
        keys.last()
            .map(Key::of)
            .transpose()
            .map(|key| key.map(|key| key.sk))
    }

    async fn query_page(
        &self,
        query: Query<'_>,
        start: Option<Item>,
        limit: Option<usize>,
        count_only: bool,
    ) -> Result<
        (
            aws_sdk_dynamodb::operation::query::QueryOutput,
            Option<Item>,
        ),
        StoreError,
    > {
        let mut condition = Expression::new(format!("#{PK} = :pk")).value(":pk", text(query.pk));
        if let Some(after) = query.after {
            condition = Expression::new(format!("{} AND #{SK} > :after", condition.text))
                .value(":pk", text(query.pk))
                .value(":after", text(after));
        }
        let mut texts = vec![condition.text.clone()];
        let mut request = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression(&condition.text)
            .consistent_read(true)
            .set_exclusive_start_key(start);
        if count_only {
            request = request.select(Select::Count);
        } else if let Some(attributes) = query.attributes {
            let projected = projection(attributes);
            request = request.projection_expression(&projected);
            texts.push(projected);
        }
        if let Some(limit) = limit {
            request = request.limit(i32::try_from(limit).unwrap_or(i32::MAX));
        }
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut output = self
            .send_plain(
                "querying",
                request
                    .set_expression_attribute_names(Expression::names(&texts))
                    .set_expression_attribute_values(condition.values_with(None))
                    .send(),
            )
            .await?;
        let next = output
            .last_evaluated_key
            .take()
            .filter(|key| !key.is_empty());
        Ok((output, next))
    }

    /// Reads the items at `keys` (`attributes`: only those besides the key); absent items are
    /// absent from the answer.
    pub(crate) async fn batch_get(
        &self,
        keys: &[Key],
        attributes: Option<&[&str]>,
    ) -> Result<HashMap<Key, Item>, StoreError> {
        let mut unique: Vec<&Key> = keys.iter().collect();
        unique.sort_unstable();
        unique.dedup();
        let mut found = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(MAX_BATCH_GET) {
            let mut pending: Vec<Item> = chunk.iter().map(|key| key.to_item()).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt == BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(format!(
                        "reading items: DynamoDB ({}) kept {} keys unprocessed",
                        self.place,
                        pending.len()
                    )));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                attempt += 1;
                let mut request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true);
                if let Some(attributes) = attributes {
                    let projected = projection(attributes);
                    request = request
                        .set_expression_attribute_names(Expression::names(&[&projected]))
                        .projection_expression(projected);
                }
                let request = request
                    .build()
                    .map_err(|error| build_error("BatchGetItem", error))?;
                let mut output = self
                    .send_plain(
                        "reading items",
                        self.client
                            .batch_get_item()
                            .request_items(&self.name, request)
                            .send(),
                    )
                    .await?;
                let items = output
                    .responses
                    .take()
                    .and_then(|mut responses| responses.remove(&self.name))
                    .unwrap_or_default();
                for item in items {
                    found.insert(Key::of(&item)?, item);
                }
                if let Some(mut unprocessed) = output.unprocessed_keys.take()
                    && let Some(left) = unprocessed.remove(&self.name)
                {
                    pending = left.keys;
                }
            }
        }
        Ok(found)
    }

    /// Deletes the items at `keys`, in batches, in order (a batch is not atomic, but a later
    /// batch starts only after the earlier ones are done).
    pub(crate) async fn batch_delete(&self, keys: &[Key]) -> Result<(), StoreError> {
        for chunk in keys.chunks(MAX_BATCH_WRITE) {
            let mut unique: Vec<&Key> = chunk.iter().collect();
            unique.sort_unstable();
            unique.dedup();
            let mut pending = unique
                .into_iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.to_item()))
                        .build()
                        .map(|delete| WriteRequest::builder().delete_request(delete).build())
                        .map_err(|error| build_error("BatchWriteItem", error))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt == BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(format!(
                        "deleting items: DynamoDB ({}) kept {} writes unprocessed",
                        self.place,
                        pending.len()
                    )));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                attempt += 1;
                let mut output = self
                    .send_plain(
                        "deleting items",
                        self.client
                            .batch_write_item()
                            .request_items(&self.name, std::mem::take(&mut pending))
                            .send(),
                    )
                    .await?;
                if let Some(mut unprocessed) = output.unprocessed_items.take()
                    && let Some(left) = unprocessed.remove(&self.name)
                {
                    pending = left;
                }
            }
        }
        Ok(())
    }

    fn transact_item(&self, write: Write) -> Result<TransactWriteItem, StoreError> {
        let error = |error| build_error("TransactWriteItems", error);
        let builder = TransactWriteItem::builder();
        Ok(match write {
            Write::Put { item, condition } => {
                let mut put = Put::builder().table_name(&self.name).set_item(Some(item));
                if let Some(condition) = condition {
                    put = put
                        .set_expression_attribute_names(Expression::names(&[&condition.text]))
                        .set_expression_attribute_values(condition.values_with(None))
                        .condition_expression(condition.text);
                }
                builder.put(put.build().map_err(error)?).build()
            }
            Write::Delete { key, condition } => {
                let mut delete = Delete::builder()
                    .table_name(&self.name)
                    .set_key(Some(key.to_item()));
                if let Some(condition) = condition {
                    delete = delete
                        .set_expression_attribute_names(Expression::names(&[&condition.text]))
                        .set_expression_attribute_values(condition.values_with(None))
                        .condition_expression(condition.text);
                }
                builder.delete(delete.build().map_err(error)?).build()
            }
            Write::Check { key, condition } => {
                let check = ConditionCheck::builder()
                    .table_name(&self.name)
                    .set_key(Some(key.to_item()))
                    .set_expression_attribute_names(Expression::names(&[&condition.text]))
                    .set_expression_attribute_values(condition.values_with(None))
                    .condition_expression(condition.text)
                    .build()
                    .map_err(error)?;
                builder.condition_check(check).build()
            }
        })
    }

    /// Applies `writes` in one transaction: all of them or, when a condition fails, none.
    pub(crate) async fn transact(&self, writes: Vec<Write>) -> Result<(), TransactError> {
        if writes.is_empty() {
            return Ok(());
        }
        if writes.len() > MAX_TRANSACT_ITEMS {
            return Err(TransactError::Store(StoreError::Backend(format!(
                "a transaction of {} items exceeds DynamoDB's limit of {MAX_TRANSACT_ITEMS}",
                writes.len()
            ))));
        }
        let items = writes
            .into_iter()
            .map(|write| self.transact_item(write))
            .collect::<Result<Vec<_>, _>>()?;
        let what = "writing a transaction";
        let request = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send();
        let Err(error) = self.bounded(what, request).await? else {
            return Ok(());
        };
        let reasons: Option<Vec<String>> = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Some(
                cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|reason| reason.code().unwrap_or("None").to_owned())
                    .collect(),
            ),
            _ => None,
        };
        let Some(reasons) = reasons else {
            return Err(match self.classify(what, &error) {
                CallError::Store(StoreError::Unavailable(_))
                    if matches!(
                        error.code(),
                        Some("TransactionConflictException" | "TransactionInProgressException")
                    ) =>
                {
                    TransactError::Contended
                }
                CallError::Store(error) => TransactError::Store(error),
                CallError::ConditionFailed => TransactError::ConditionFailed(Vec::new()),
            });
        };
        let failed: Vec<usize> = reasons
            .iter()
            .enumerate()
            .filter(|(_, code)| *code == "ConditionalCheckFailed")
            .map(|(index, _)| index)
            .collect();
        if !failed.is_empty() {
            return Err(TransactError::ConditionFailed(failed));
        }
        if reasons.iter().any(|code| code == "TransactionConflict") {
            return Err(TransactError::Contended);
        }
        let codes: Vec<&str> = reasons
            .iter()
            .map(String::as_str)
            .filter(|code| *code != "None")
            .collect();
        let message = error.message().unwrap_or_default();
        if codes.iter().any(|code| UNAVAILABLE_REASONS.contains(code)) {
            return Err(TransactError::Store(StoreError::Unavailable(format!(
                "{what}: DynamoDB ({}) cancelled it: {codes:?}: {message}",
                self.place
            ))));
        }
        Err(TransactError::Store(StoreError::Backend(format!(
            "{what}: DynamoDB ({}) cancelled it: {codes:?}: {message}",
            self.place
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_expressions() {
        let names = Expression::names(&[
            "attribute_not_exists(#pk) OR #ver < :v",
            "#token = :t AND #expires_at > :now",
        ])
        .unwrap();
        let mut found: Vec<(&str, &str)> = names
            .iter()
            .map(|(placeholder, name)| (placeholder.as_str(), name.as_str()))
            .collect();
        found.sort_unstable();
        assert_eq!(
            found,
            [
                ("#expires_at", "expires_at"),
                ("#pk", "pk"),
                ("#token", "token"),
                ("#ver", "ver"),
            ]
        );
        assert!(Expression::names(&["SET x = :v"]).is_none());
        assert_eq!(projection(&["at"]), "#pk, #sk, #at");
    }
}
