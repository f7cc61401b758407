--[[
  Takes one of a tenant's webhook delivery slots, if the cap leaves one free. Leases past their end
  are dropped first: a worker that died holding a slot frees it within one lease, however busy the
  tenant stays. Redis's clock, so every worker counts alike.

  Input:
    KEYS[1] the tenant's slots: a sorted set of holders scored by when their lease runs out

    ARGV[1] the cap
    ARGV[2] the lease (ms)
    ARGV[3] the new holder

  Output:
    the slots held after the call, negative when the cap refused a new one
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return -held end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return held + 1
