//! The three Lua scripts: admit, release, renew. Each is one round trip and touches only one
//! endpoint's keys (one hash tag, so one Redis Cluster slot); expiry uses the server's `TIME`.
//!
//! KEYS, for all three: `[1]` the lease set (sorted set: member = `worker:lease`, score = expiry
//! in server microseconds), `[2]` the endpoint's meta hash (learned cap, hold, successes,
//! cooldown-until, header-observed budgets, GCRA theoretical arrival times), `[3]` the recently
//! released set (members released in the last lease TTL, so a renewal racing a release does
//! not bring the lease back). The admit script also uses `[4]` the workers seen (sorted set:
//! worker id → expiry, 2 s after its last try) and `[5]` the workers waiting for a slot (worker
//! id → expiry, 250 ms after its last refusal): together the fair share.

use redis::Script;
use std::sync::LazyLock;

/// Shared Lua helpers, prepended to each script.
const PRELUDE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
"#;

/// Admit: ARGV = member, lease_ttl_ms, static_cap, configured rpm (0 = none), configured tpm,
/// tokens, key_ttl_ms, learned-limit margin in permille, slow-start cap, worker id, leases this
/// worker holds on the endpoint.
/// Returns {status, wait_us, in_flight, learned_cap (0 = none), rpm (0), tpm (0)}; status 0 =
/// admitted, 1 = cooling down, 2 = cap full, 3 = request budget, 4 = token budget, 5 = over
/// its fair share while another worker waits, 6 = admitted with a request slot booked
/// `wait_us` ahead (ARGV[12]: the longest booking, ms).
///
/// Fair share: while any other worker waits for a slot, a worker holding `ceil(cap / workers
/// seen)` or more is refused, so a freed slot goes to the waiter instead of back to the worker
/// that freed it (without it one of three workers got a fifth of the slots).
const ADMIT: &str = r#"
local lease_ttl = tonumber(ARGV[2]) * 1000
local key_ttl = tonumber(ARGV[7])
local margin = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
local n = redis.call('ZCARD', KEYS[1])
local m = redis.call('HMGET', KEYS[2], 'cap', 'cool', 'rpm', 'tpm', 'tat_r', 'tat_t', 'ss')
local cap = tonumber(ARGV[3])
local learned = tonumber(m[1])
if not m[7] then
  -- A fresh endpoint: a shared slow start (all workers together open at the slow-start cap
  -- and grow by one per success until the first concurrency 429).
  learned = math.min(cap, tonumber(ARGV[9]))
  redis.call('HSET', KEYS[2], 'cap', learned, 'ss', 1)
end
if learned and learned < cap then cap = learned end
local function tightest(cfg, obs)
  local lim = nil
  if cfg > 0 then lim = cfg end
  if obs then
    local o = math.floor(obs * (1000 - margin) / 1000)
    if o < 1 then o = 1 end
    if not lim or o < lim then lim = o end
  end
  return lim
end
local rpm = tightest(tonumber(ARGV[4]), tonumber(m[3]))
local tpm = tightest(tonumber(ARGV[5]), tonumber(m[4]))
local function answer(status, wait)
  redis.call('HSET', KEYS[2], 'seen', fmt(now))
  redis.call('PEXPIRE', KEYS[2], key_ttl)
  return {status, wait, n, learned or 0, rpm or 0, tpm or 0}
end
local worker = ARGV[10]
local held = tonumber(ARGV[11])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', fmt(now))
redis.call('ZADD', KEYS[4], fmt(now + 2000000), worker)
redis.call('PEXPIRE', KEYS[4], key_ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', fmt(now))
local function refuse_waiting(status)
  redis.call('ZADD', KEYS[5], fmt(now + 250000), worker)
  redis.call('PEXPIRE', KEYS[5], key_ttl)
  return answer(status, 0)
end
local cool = tonumber(m[2]) or 0
if cool > now then return answer(1, cool - now) end
if n >= cap then return refuse_waiting(2) end
local waiting = redis.call('ZCARD', KEYS[5])
if redis.call('ZSCORE', KEYS[5], worker) then waiting = waiting - 1 end
if waiting > 0 then
  local workers = redis.call('ZCARD', KEYS[4])
  if held >= math.ceil(cap / workers) then return answer(5, 0) end
end
local tat_r = tonumber(m[5]) or 0
local tat_t = tonumber(m[6]) or 0
local tokens = tonumber(ARGV[6])
-- Requests: GCRA with a burst of two (tolerance one interval), so a worker waking a little
-- late for its slot does not lose it (two pacers in series at one rate, the local ledger and
-- this, lost a third of the rate with a burst of one).
local t_r = 0
if rpm then t_r = math.ceil(60000000 / rpm) end
-- A request slot at most `book_max` away is booked now (the lease starts then: status 6 with
-- the wait), so a budget-paced admission is one round trip, and slots go out in booking order.
local booked = 0
if rpm and tat_r - now > t_r then
  booked = tat_r - t_r - now
  if booked > tonumber(ARGV[12]) * 1000 then return answer(3, booked) end
end
if tpm and tokens > 0 and tat_t > now then return answer(4, tat_t - now) end
if rpm then
  redis.call('HSET', KEYS[2], 'tat_r', fmt(math.max(tat_r, now) + t_r))
end
if tpm and tokens > 0 then
  redis.call('HSET', KEYS[2], 'tat_t', fmt(math.max(tat_t, now) + math.ceil(tokens * 60000000 / tpm)))
end
redis.call('ZADD', KEYS[1], fmt(now + booked + lease_ttl), ARGV[1])
redis.call('PEXPIRE', KEYS[1], key_ttl)
redis.call('ZREM', KEYS[5], worker)
n = n + 1
if booked > 0 then return answer(6, booked) end
return answer(0, 0)
"#;

/// Release: ARGV = member, outcome (0 success, 1 concurrency 429, 2 window 429, 3 other),
/// retry_after_ms (0 = none), observed rpm (0), observed tpm (0), key_ttl_ms, cap hold ms,
/// static cap, lease_ttl_ms. Returns {removed, in_flight, learned_cap (0 = none)}.
const RELEASE: &str = r#"
local key_ttl = tonumber(ARGV[6])
local lease_ttl = tonumber(ARGV[9])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], fmt(now + lease_ttl * 1000), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
redis.call('PEXPIRE', KEYS[3], 2 * lease_ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
local n = redis.call('ZCARD', KEYS[1])
local outcome = tonumber(ARGV[2])
local static = tonumber(ARGV[8])
local m = redis.call('HMGET', KEYS[2], 'cap', 'hold', 'cool', 'rpm', 'tpm', 'ss')
local cap = tonumber(m[1])
if outcome == 0 and cap and m[6] == '1' then
  if cap + 1 >= static then
    redis.call('HDEL', KEYS[2], 'cap', 'succ')
    redis.call('HSET', KEYS[2], 'ss', 0)
    cap = nil
  else
    cap = cap + 1
    redis.call('HSET', KEYS[2], 'cap', cap)
  end
elseif outcome == 0 and cap then
  if now >= (tonumber(m[2]) or 0) then
    local s = redis.call('HINCRBY', KEYS[2], 'succ', 1)
    if s >= cap then
      if cap + 1 >= static then
        redis.call('HDEL', KEYS[2], 'cap', 'succ')
        cap = nil
      else
        cap = cap + 1
        redis.call('HSET', KEYS[2], 'cap', cap, 'succ', 0)
      end
    end
  end
elseif outcome == 1 then
  local new = n
  local cur = cap or static
  if new > cur then new = cur end
  if new < 1 then new = 1 end
  cap = new
  redis.call('HSET', KEYS[2], 'cap', new, 'succ', 0, 'ss', 0, 'hold', fmt(now + tonumber(ARGV[7]) * 1000))
end
-- A concurrency 429 while others are still served is an overshoot: the lowered cap is the
-- answer, and a cooldown would idle every worker (the endpoint is busy, not refusing).
if outcome == 2 or (outcome == 1 and n == 0) then
  local ra = tonumber(ARGV[3])
  if ra > 0 then
    local untl = now + ra * 1000
    if untl > (tonumber(m[3]) or 0) then redis.call('HSET', KEYS[2], 'cool', fmt(untl)) end
  end
end
local obs_r = tonumber(ARGV[4])
if obs_r > 0 and (not tonumber(m[4]) or obs_r < tonumber(m[4])) then
  redis.call('HSET', KEYS[2], 'rpm', obs_r)
end
local obs_t = tonumber(ARGV[5])
if obs_t > 0 and (not tonumber(m[5]) or obs_t < tonumber(m[5])) then
  redis.call('HSET', KEYS[2], 'tpm', obs_t)
end
redis.call('HSET', KEYS[2], 'seen', fmt(now))
redis.call('PEXPIRE', KEYS[2], key_ttl)
redis.call('PEXPIRE', KEYS[1], key_ttl)
return {removed, n, cap or 0}
"#;

/// Renew: ARGV = lease_ttl_ms, key_ttl_ms, members… Every held member not released in the last
/// lease TTL gets a fresh expiry; members missing from the set (the server came back empty, or
/// the lease expired while this worker stalled) are added again. Returns how many were added.
const RENEW: &str = r#"
local lease_ttl = tonumber(ARGV[1]) * 1000
local key_ttl = tonumber(ARGV[2])
local restored = 0
for i = 3, #ARGV do
  if not redis.call('ZSCORE', KEYS[3], ARGV[i]) then
    restored = restored + redis.call('ZADD', KEYS[1], fmt(now + lease_ttl), ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], key_ttl)
redis.call('HSET', KEYS[2], 'seen', fmt(now))
redis.call('PEXPIRE', KEYS[2], key_ttl)
return restored
"#;

/// The admit script.
pub(crate) static ADMIT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{PRELUDE}{ADMIT}")));
/// The release script.
pub(crate) static RELEASE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{PRELUDE}{RELEASE}")));
/// The renew script.
pub(crate) static RENEW_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{PRELUDE}{RENEW}")));
