"""Makes moto's DynamoDB model atomic and its transactions cheap, for rkron's store tests.

The tests start moto_server with this directory on PYTHONPATH; Python imports `sitecustomize`
at start-up. It changes no answer DynamoDB would give. It fixes two ways moto departs from
DynamoDB that the store's tests run into:

1. Atomicity. moto serves each request on its own thread and does not serialize its DynamoDB
   model, so two concurrent conditional writes of one item can both pass their conditions (a
   lost update), and a cancelled transaction restores a snapshot over writes made meanwhile.
   DynamoDB applies each write and each transaction atomically. Here every DynamoDB request
   runs under one lock.
2. Cost. moto prepares to undo a TransactWriteItems by deep-copying every table it names, so a
   transaction takes time proportional to the whole table: 9 s for 99 puts once the table holds
   5,000 items. Here a transaction checks every condition first and writes nothing unless all
   hold, and keeps copies of only the items it writes, to undo them if a write fails.
"""

import copy
import sys
import threading

from moto.dynamodb import responses
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

MARKER = "rkron: moto DynamoDB patched (serialized requests, item-level transaction undo)"

_LOCK = threading.RLock()
_original_call_action = responses.DynamoHandler.call_action
_KINDS = ("ConditionCheck", "Put", "Delete", "Update")
_MAX_ITEMS = 100


def _serialized_call_action(self):
    with _LOCK:
        return _original_call_action(self)


def _plan(backend, transact_items):
    """Answers (kind, op, table, key, hash, range) per item; refuses what DynamoDB refuses."""
    if len(transact_items) > _MAX_ITEMS:
        raise TooManyTransactionsException()
    plans = []
    seen = set()
    for entry in transact_items:
        if len(entry) != 1:
            raise TransactWriteSingleOpException()
        ((kind, op),) = entry.items()
        if kind not in _KINDS:
            raise ValueError("Unsupported transaction operation")
        table = backend.get_table(op["TableName"])
        if kind == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        hash_key, range_key = backend.get_keys_value(table, key)
        identity = (op["TableName"], hash_key, range_key)
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        plans.append((kind, op, table, key, hash_key, range_key))
    return plans


def _condition_holds(op, current):
    condition = op.get("ConditionExpression")
    if condition is None:
        return True
    expression = get_filter_expression(
        condition,
        op.get("ExpressionAttributeNames"),
        op.get("ExpressionAttributeValues"),
    )
    return expression.expr(current)


def _restore(table, hash_key, range_key, item):
    table.delete_item(hash_key, range_key)
    if item is not None:
        if range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


def _apply(backend, kind, op, key):
    names = op.get("ExpressionAttributeNames")
    values = op.get("ExpressionAttributeValues")
    if kind == "Put":
        backend.put_item(op["TableName"], op["Item"])
    elif kind == "Delete":
        backend.delete_item(op["TableName"], key)
    else:
        backend.update_item(
            op["TableName"],
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
            condition_expression=op.get("ConditionExpression"),
        )


def _transact_write_items(self, transact_items):
    plans = _plan(self, transact_items)
    # Every condition is checked against the state before the transaction: items are distinct,
    # so no write of the transaction changes what another item's condition sees.
    reasons = []
    for kind, op, table, key, hash_key, range_key in plans:
        current = table.get_item(hash_key, range_key)
        if _condition_holds(op, current):
            reasons.append((None, None, None))
            continue
        old = None
        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None:
            old = current.to_json()["Attributes"]
        reasons.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    saved = []
    for index, (kind, op, table, key, hash_key, range_key) in enumerate(plans):
        if kind == "ConditionCheck":
            continue
        saved.append(
            (table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key)))
        )
        try:
            _apply(self, kind, op, key)
        except Exception as error:
            for undo in reversed(saved):
                _restore(*undo)
            failed = [(None, None, None)] * len(plans)
            failed[index] = (type(error).__name__, str(error), None)
            raise TransactionCanceledException(failed) from error


responses.DynamoHandler.call_action = _serialized_call_action
DynamoDBBackend.transact_write_items = _transact_write_items
print(MARKER, file=sys.stderr, flush=True)
