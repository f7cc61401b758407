--[[
  Records one webhook delivery attempt beside its job record. The list lives and dies with the
  record: while the job lives neither expires; once it has ended the list takes the record's
  remaining TTL (the lifecycle's end steps expire both), and nothing is recorded once the record is
  gone.

  Input:
    KEYS[1] the job record
    KEYS[2] its deliveries (a list)

    ARGV[1] the attempt (JSON)
    ARGV[2] attempts kept (the oldest are dropped first)

  Output:
    1 recorded, 0 the record is gone
]]
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
