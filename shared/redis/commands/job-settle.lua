--[[
  A worker commits to an outcome, unless a cancel was requested first (then the job ends canceled).
  The retention runs from the end of a job, not its creation: a record and its webhook deliveries
  (which exist only for a job with a webhook) are kept that long after it settles, however long
  the job waited or ran. The step that lands the terminal state (settled, or canceled) the first
  time counts the job's usage: a retry, a stall run again or a fallback lands nothing new, so
  nothing is counted twice. The result-cache entry of a success is written in the same step unless
  the job ends canceled, so commitment and cache cost one round trip. A missing record is left
  alone (writing to it would create a key without a TTL). Two keys, or three with a cache entry:
  the caller passes their count first.

  Input:
    KEYS[1] the job record
    KEYS[2] its webhook deliveries
    KEYS[3] the result-cache entry (optional)

    ARGV[1] the outcome ('succeeded' or 'failed')
    ARGV[2] now (ms)
    ARGV[3] the retention (seconds)
    ARGV[4] '1' to give the quota charge back
    ARGV[5] the usage ledger's prefix
    ARGV[6] the usage day
    ARGV[7] the usage retention (seconds)
    ARGV[8] the model's time (ms)
    ARGV[9] '1' for a job with a webhook (its deliveries' retention starts too)
    ARGV[10] the result-cache entry (with KEYS[3])
    ARGV[11] its TTL (seconds)

  Output:
    {'settled' or 'canceled', what count_usage counted (when this step landed the end)}
]]
--- @include "count-usage"

local function remember()
  if KEYS[3] then redis.call('SET', KEYS[3], ARGV[10], 'EX', ARGV[11]) end
end
-- One read: this step's own fields, then those count_usage needs.
local f = redis.call('HMGET', KEYS[1], 'cancel_requested_at', 'settled', 'backend', unpack(USAGE_FIELDS))
local u = {unpack(f, 4, 3 + #USAGE_FIELDS)}
if not f[3] then
  remember()
  return {'settled'}
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[9] == '1' then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
if f[1] then
  if redis.call('HSETNX', KEYS[1], 'canceled_at', ARGV[2]) == 0 then return {'canceled'} end
  return {'canceled', count_usage(u, 'canceled', '0', ARGV[5], ARGV[6], ARGV[7], '0')}
end
remember()
if f[2] then return {'settled'} end
redis.call('HSET', KEYS[1], 'settled', ARGV[1])
return {'settled', count_usage(u, ARGV[1], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])}
