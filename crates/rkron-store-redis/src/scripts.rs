//! The Lua scripts of the store: every write that touches more than one key, and every read that
//! must see one point in time, is one script, so Redis runs it atomically.
//!
//! [`redis::Script`] sends `EVALSHA` and falls back to loading the script when the server does
//! not know it (a restarted server has an empty script cache).
//!
//! Conventions: a script answers a table whose first element is a status word (`ok`, `conflict`,
//! `retry`, `absent`, `fenced`, …). Numbers that Redis stores or answers go through `int`, which
//! formats them as integers (Lua numbers are doubles; `tostring` would switch to exponents).
//! Instants are compared as fixed-width digit strings, never as numbers. Scripts that follow an
//! index (the job names of `{ks}:jobs`) build the job keys from the key prefix they are given;
//! those keys carry the same hash tag, so they live in the same slot as the declared keys.
//!
//! Validation always comes before the first write, so a script that answers a conflict has
//! written nothing. Redis has no rollback: a script that fails halfway through its writes (a key
//! of the wrong type, which only tampering produces) keeps the writes made before the failure.

use std::sync::LazyLock;

use redis::Script;

/// Helpers shared by the scripts, placed before each script's body.
macro_rules! lua_helpers {
    () => {
        r#"
local function int(n)
  return string.format('%d', n)
end

-- The running-index field of the execution `member` of `job` (keyspace.rs: running_field).
local function running_field(job, member)
  return string.sub(member, 1, 20) .. string.format('%010d', #job) .. job .. string.sub(member, 21)
end

-- Stores one execution of `job` and trims the job's oldest executions beyond `retention`.
local function store_execution(runs, exec, out, running, version, stamp,
                               job, member, record, output, is_running, retention)
  redis.call('ZADD', runs, 0, member)
  redis.call('HSET', exec, member, record)
  if output == '' then
    redis.call('HDEL', out, member)
  else
    redis.call('HSET', out, member, output)
  end
  if is_running == '1' then
    redis.call('HSET', running, running_field(job, member), record)
  else
    redis.call('HDEL', running, running_field(job, member))
  end
  local excess = redis.call('ZCARD', runs) - tonumber(retention)
  if excess > 0 then
    local oldest = redis.call('ZRANGE', runs, 0, int(excess - 1))
    for _, old in ipairs(oldest) do
      redis.call('ZREM', runs, old)
      redis.call('HDEL', exec, old)
      redis.call('HDEL', out, old)
      redis.call('HDEL', running, running_field(job, old))
    end
  end
  redis.call('SET', stamp, int(redis.call('INCR', version)))
end

-- Deletes every execution of `job`.
local function delete_executions(runs, exec, out, running, stamp, job)
  for _, member in ipairs(redis.call('ZRANGE', runs, 0, -1)) do
    redis.call('HDEL', running, running_field(job, member))
  end
  redis.call('DEL', runs, exec, out, stamp)
end

-- Reads the jobs `names` as a flat list of name, version, JSON (false when missing).
local function read_jobs(job_prefix, names)
  local reply = {}
  for _, name in ipairs(names) do
    local job = redis.call('HMGET', job_prefix .. name, 'v', 'j')
    table.insert(reply, name)
    table.insert(reply, job[1])
    table.insert(reply, job[2])
  end
  return reply
end
"#
    };
}

fn script(body: &'static str) -> Script {
    Script::new(body)
}

/// `commit_jobs`.
///
/// KEYS: version, jobs, running, ledger, missed, then per op: job, runs, exec, out, stamp.
/// ARGV per op: `put`/`delete`, name, `absent`/`version`/`any`, expected version, job JSON.
/// Answers `{ok}` or `{conflict, name}`.
pub(crate) static COMMIT_JOBS: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local ops = #ARGV / 5
local pending = {}
local next_version = tonumber(redis.call('GET', KEYS[1]) or '0')
for i = 0, ops - 1 do
  local kind, name, expect, wanted = ARGV[i*5+1], ARGV[i*5+2], ARGV[i*5+3], ARGV[i*5+4]
  local current = pending[name]
  if current == nil then
    current = redis.call('HGET', KEYS[5 + i*5 + 1], 'v')
  end
  if (expect == 'absent' and current) or (expect == 'version' and current ~= wanted) then
    return {'conflict', name}
  end
  if kind == 'put' then
    next_version = next_version + 1
    pending[name] = int(next_version)
  else
    pending[name] = false
  end
end
for i = 0, ops - 1 do
  local base = 5 + i*5
  local kind, name = ARGV[i*5+1], ARGV[i*5+2]
  if kind == 'put' then
    local version = int(redis.call('INCR', KEYS[1]))
    redis.call('HSET', KEYS[base+1], 'v', version, 'j', ARGV[i*5+5])
    redis.call('ZADD', KEYS[2], 0, name)
  else
    redis.call('DEL', KEYS[base+1])
    redis.call('ZREM', KEYS[2], name)
    delete_executions(KEYS[base+2], KEYS[base+3], KEYS[base+4], KEYS[3], KEYS[base+5], name)
    redis.call('HDEL', KEYS[4], name)
    redis.call('HDEL', KEYS[5], name)
  end
end
return {'ok'}
"#
    ))
});

/// `put_execution`.
///
/// KEYS: runs, exec, out, running, version, stamp.
/// ARGV: job, member, record, output, running (`1`/`0`), retention. Answers `{ok}`.
pub(crate) static PUT_EXECUTION: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
store_execution(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
                ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return {'ok'}
"#
    ))
});

/// The read half of `finish_execution`.
///
/// KEYS: job, runs, exec, stamp. ARGV: the group's record prefix.
/// Answers `{}` when the job is absent, else `{version, JSON, stamp, {members}, {member,
/// record, …}}` with every execution member of the job and the members and records of the group.
pub(crate) static FINISH_READ: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local job = redis.call('HMGET', KEYS[1], 'v', 'j')
if not job[1] then
  return {}
end
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
local group = {}
local prefix = ARGV[1]
for _, member in ipairs(members) do
  local record = redis.call('HGET', KEYS[3], member)
  if record and string.sub(record, 1, #prefix) == prefix then
    table.insert(group, member)
    table.insert(group, record)
  end
end
return {job[1], job[2] or '', redis.call('GET', KEYS[4]) or '', members, group}
"#
    ))
});

/// The write half of `finish_execution`: stores the execution and the updated job if neither
/// the job nor its executions changed since the read.
///
/// KEYS: job, runs, exec, out, running, version, stamp.
/// ARGV: expected version, expected stamp (empty: none), job JSON, job name, member, record,
/// output, running (`1`/`0`), retention.
/// Answers `{ok, version}`, `{absent}` or `{retry}`.
pub(crate) static FINISH_WRITE: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local current = redis.call('HGET', KEYS[1], 'v')
if not current then
  return {'absent'}
end
if current ~= ARGV[1] or (redis.call('GET', KEYS[7]) or '') ~= ARGV[2] then
  return {'retry'}
end
store_execution(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
local version = int(redis.call('INCR', KEYS[6]))
redis.call('HSET', KEYS[1], 'v', version, 'j', ARGV[3])
return {'ok', version}
"#
    ))
});

/// `delete_executions`.
///
/// KEYS: runs, exec, out, running, stamp. ARGV: job. Answers `{ok}`.
pub(crate) static DELETE_EXECUTIONS: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
delete_executions(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1])
return {'ok'}
"#
    ))
});

/// `list_executions`.
///
/// KEYS: runs, exec, out. ARGV: with output (`1`/`0`).
/// Answers a flat list of member, record (false if missing) and, with output, the output.
pub(crate) static LIST_EXECUTIONS: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local reply = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  table.insert(reply, member)
  table.insert(reply, redis.call('HGET', KEYS[2], member))
  if ARGV[1] == '1' then
    table.insert(reply, redis.call('HGET', KEYS[3], member))
  end
end
return reply
"#
    ))
});

/// `jobs_page`.
///
/// KEYS: jobs. ARGV: job key prefix, first rank, last rank (inclusive), `1` to read any.
/// Answers `{total, name, version, JSON, …}`.
pub(crate) static JOBS_PAGE: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local total = redis.call('ZCARD', KEYS[1])
local names = {}
if ARGV[4] == '1' then
  names = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3])
end
return {total, read_jobs(ARGV[1], names)}
"#
    ))
});

/// `jobs_after`.
///
/// KEYS: jobs. ARGV: job key prefix, `ZRANGEBYLEX` minimum, limit.
/// Answers `{name, version, JSON, …}`.
pub(crate) static JOBS_AFTER: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local names = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, ARGV[3])
return read_jobs(ARGV[1], names)
"#
    ))
});

/// `record_fires`, fenced.
///
/// KEYS: leader, ledger. ARGV: fence, then job and encoded instant pairs.
/// Answers `{ok}` or `{fenced}`.
pub(crate) static RECORD_FIRES: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local lease = redis.call('GET', KEYS[1])
if not lease or string.match(lease, '^(%d+) ') ~= ARGV[1] then
  return {'fenced'}
end
for i = 2, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[2], ARGV[i])
  if not current or ARGV[i+1] > current then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
  end
end
return {'ok'}
"#
    ))
});

/// The read half of `record_missed`.
///
/// KEYS: job, missed. ARGV: job. Answers `{exists (0/1), record or false}`.
pub(crate) static MISSED_READ: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
return {redis.call('EXISTS', KEYS[1]), redis.call('HGET', KEYS[2], ARGV[1])}
"#
    ))
});

/// The write half of `record_missed`: replaces the record if the job exists and the record is
/// still the one read.
///
/// KEYS: job, missed. ARGV: job, `1` if a record was read, the record read, the new record.
/// Answers `{ok}`, `{absent}` or `{retry}`.
pub(crate) static MISSED_WRITE: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'absent'}
end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if (ARGV[2] == '1' and current ~= ARGV[3]) or (ARGV[2] ~= '1' and current) then
  return {'retry'}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return {'ok'}
"#
    ))
});

/// `acquire_lease`.
///
/// KEYS: leader, epoch. ARGV: holder, TTL in milliseconds.
/// Answers `{ok, token}` (a new tenure), `{held, token}` (renewed), `{taken}` or `{corrupt}`.
/// A new token is the next epoch, raised to the server clock in microseconds if it lags behind
/// (about 1.8e15 today: exact in Lua's doubles, which hold integers up to 9e15, until 2255).
pub(crate) static ACQUIRE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        lua_helpers!(),
        r#"
local current = redis.call('GET', KEYS[1])
if current then
  local token, holder = string.match(current, '^(%d+) (.*)$')
  if not token then
    return {'corrupt'}
  end
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {'held', token}
  end
  return {'taken'}
end
local token = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
if token < floor then
  token = floor
  redis.call('SET', KEYS[2], int(token))
end
token = int(token)
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return {'ok', token}
"#
    ))
});

/// `renew_lease`.
///
/// KEYS: leader. ARGV: `<token> <holder>`, TTL in milliseconds. Answers 1 if renewed, else 0.
pub(crate) static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// `release_lease`.
///
/// KEYS: leader. ARGV: `<token> <holder>`. Answers 1 if released, else 0.
pub(crate) static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#,
    )
});

/// Connection check: records the layout version in a new keyspace and answers the stored one.
///
/// KEYS: layout. ARGV: this build's layout version.
pub(crate) static INIT_LAYOUT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"#,
    )
});
