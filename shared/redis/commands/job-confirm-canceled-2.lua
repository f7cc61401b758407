--[[
  A queued job whose cancel was requested has left its queue and never runs: it ends canceled, its
  retention starts, and its inline image (field `image`, INLINE_IMAGE_FIELD in job-records.ts)
  goes at once. The first confirmation counts the job's usage. A record without a cancel request
  (or missing) is left alone.

  Input:
    KEYS[1] the job record
    KEYS[2] its webhook deliveries

    ARGV[1] now (ms)
    ARGV[2] the retention (seconds)
    ARGV[3] the usage ledger's prefix
    ARGV[4] the usage day
    ARGV[5] the usage retention (seconds)

  Output:
    {0} nothing new, or {1, what count_usage counted}
]]
--- @include "count-usage"

if redis.call('HEXISTS', KEYS[1], 'cancel_requested_at') == 0 then return {0} end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[1], 'image')
if redis.call('HSETNX', KEYS[1], 'canceled_at', ARGV[1]) == 0 then return {0} end
local u = redis.call('HMGET', KEYS[1], unpack(USAGE_FIELDS))
return {1, count_usage(u, 'canceled', '0', ARGV[3], ARGV[4], ARGV[5], '0')}
