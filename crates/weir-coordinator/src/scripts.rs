//! The claim protocol's Lua scripts: each one step, atomic on the Redis server.
//!
//! Every script gets the job's six keys in the order of [`crate::JobKeys::all`] (meta, next,
//! leases, owners, done, dirs) and ends by refreshing every key's TTL, so a job's keys live as long as
//! some worker touches them and expire `key_ttl` after the last one stopped. Every script that
//! finds no `meta` key answers `-2` ("the job is unknown here"): Redis lost it (restart without
//! persistence, eviction, expiry) and the caller must rebuild it from its durable state first.
//! Time is the Redis server's (`TIME`), so workers' clocks never have to agree.

/// Shared prelude: `now` in ms (server clock) and the TTL refresh.
const PRELUDE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function touch(ttl)
  for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
"#;

/// INIT: ARGV = identity, total, ttl_ms, directory token, then the row groups already done
/// there. Creates the job unless it exists; answers `{1}` created, `{0}` existed with the same
/// identity, `{-1, stored}` existed with another identity. A finished job seen for the first
/// time from a directory (token unknown) that holds no part is started over: its keys outlived
/// the output directory they describe (it was removed), and a new directory must not inherit
/// "done" for parts it does not have.
const INIT: &str = r#"
local stored = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[3])
if stored then
  if stored ~= ARGV[1] then return {-1, stored} end
  local known = redis.call('SISMEMBER', KEYS[6], ARGV[4]) == 1
  local finished = redis.call('SCARD', KEYS[5]) >= tonumber(ARGV[2])
  if known or (not finished) or #ARGV > 4 then
    redis.call('SADD', KEYS[6], ARGV[4])
    touch(ttl)
    return {0}
  end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], 0)
redis.call('SADD', KEYS[6], ARGV[4])
for i = 5, #ARGV do redis.call('SADD', KEYS[5], ARGV[i]) end
touch(ttl)
return {1}
"#;

/// CLAIM: ARGV = worker, lease_ms, ttl_ms, total. First an expired lease (take-over: `{1, rg,
/// previous owner}`), else the next row group never claimed and not done (`{0, rg}`), else
/// `{-1, leases outstanding, ms until the earliest expires}` (wait), or `{-3}` when every row
/// group is done.
const CLAIM: &str = r#"
if not redis.call('GET', KEYS[1]) then return {-2} end
local worker, lease, ttl, total = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local result
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1)
if #expired > 0 then
  local rg = expired[1]
  local previous = redis.call('HGET', KEYS[4], rg) or ''
  redis.call('ZADD', KEYS[3], now + lease, rg)
  redis.call('HSET', KEYS[4], rg, worker)
  result = {1, tonumber(rg), previous}
else
  while true do
    local rg = redis.call('INCR', KEYS[2]) - 1
    if rg >= total then
      redis.call('SET', KEYS[2], total)
      if redis.call('SCARD', KEYS[5]) >= total then
        result = {-3}
      else
        local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
        local wait = 0
        if #first > 0 then wait = math.max(0, tonumber(first[2]) - now) end
        result = {-1, redis.call('ZCARD', KEYS[3]), wait}
      end
      break
    end
    local key = tostring(rg)
    if redis.call('SISMEMBER', KEYS[5], key) == 0 and not redis.call('ZSCORE', KEYS[3], key) then
      redis.call('ZADD', KEYS[3], now + lease, key)
      redis.call('HSET', KEYS[4], key, worker)
      result = {0, rg}
      break
    end
  end
end
touch(ttl)
return result
"#;

/// RENEW: ARGV = worker, lease_ms, ttl_ms, then the row groups held. Extends each lease the
/// worker owns — or that nobody owns (Redis came back empty and the job was rebuilt: the holder
/// takes its claim back) — and answers the row groups it lost (done, or owned by another).
const RENEW: &str = r#"
if not redis.call('GET', KEYS[1]) then return {-2} end
local worker, lease, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lost = {0}
for i = 4, #ARGV do
  local rg = ARGV[i]
  local owner = redis.call('HGET', KEYS[4], rg)
  if redis.call('SISMEMBER', KEYS[5], rg) == 1 then
    table.insert(lost, tonumber(rg))
  elseif (not owner) or owner == worker then
    redis.call('ZADD', KEYS[3], now + lease, rg)
    redis.call('HSET', KEYS[4], rg, worker)
  else
    table.insert(lost, tonumber(rg))
  end
end
touch(ttl)
return lost
"#;

/// COMPLETE: ARGV = ttl_ms, row group. Marks it done (whoever holds its lease) and answers
/// `{1, row groups done}`.
const COMPLETE: &str = r#"
if not redis.call('GET', KEYS[1]) then return {-2} end
local rg = ARGV[2]
redis.call('SADD', KEYS[5], rg)
redis.call('ZREM', KEYS[3], rg)
redis.call('HDEL', KEYS[4], rg)
touch(tonumber(ARGV[1]))
return {1, redis.call('SCARD', KEYS[5])}
"#;

/// RELEASE: ARGV = worker, ttl_ms, then row groups. Gives back the worker's unfinished claims
/// (a stopping worker): each lease is set to expire at once, so the next claim takes it over.
const RELEASE: &str = r#"
if not redis.call('GET', KEYS[1]) then return {-2} end
for i = 3, #ARGV do
  local rg = ARGV[i]
  if redis.call('HGET', KEYS[4], rg) == ARGV[1] then
    redis.call('ZADD', KEYS[3], 0, rg)
    redis.call('HDEL', KEYS[4], rg)
  end
end
touch(tonumber(ARGV[2]))
return {1}
"#;

/// STATUS: no ARGV. `{1, done, leased}`.
const STATUS: &str = r#"
if not redis.call('GET', KEYS[1]) then return {-2} end
return {1, redis.call('SCARD', KEYS[5]), redis.call('ZCARD', KEYS[3])}
"#;

/// The compiled scripts (each `EVALSHA`, reloaded by the client after a restart's `NOSCRIPT`).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) init: redis::Script,
    pub(crate) claim: redis::Script,
    pub(crate) renew: redis::Script,
    pub(crate) complete: redis::Script,
    pub(crate) release: redis::Script,
    pub(crate) status: redis::Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with = |body: &str| redis::Script::new(&format!("{PRELUDE}{body}"));
        Self {
            init: with(INIT),
            claim: with(CLAIM),
            renew: with(RENEW),
            complete: with(COMPLETE),
            release: with(RELEASE),
            status: with(STATUS),
        }
    }
}
