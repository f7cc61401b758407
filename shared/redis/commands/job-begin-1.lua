--[[
  A worker picks a job up. One read answers everything the worker needs before it can start; the
  first start is recorded. Called as jobBeginBuffer: the inline image (field `image`,
  INLINE_IMAGE_FIELD in job-records.ts) comes back as bytes.

  Input:
    KEYS[1] the job record

    ARGV[1] the deadline (ms; '' for none)
    ARGV[2] now (ms)
    ARGV[3] '1' to return the inline image

  Output:
    {'missing'}, {'canceled'}, {'late'}, {'resumed', image?} or {'started', image?}
]]
local fields = {'backend', 'started_at', 'cancel_requested_at'}
if ARGV[3] == '1' then fields[4] = 'image' end
local f = redis.call('HMGET', KEYS[1], unpack(fields))
if not f[1] then return {'missing'} end
if f[3] then return {'canceled'} end
if f[2] then return {'resumed', f[4]} end
if ARGV[1] ~= '' and tonumber(ARGV[2]) > tonumber(ARGV[1]) then return {'late'} end
redis.call('HSET', KEYS[1], 'started_at', ARGV[2])
return {'started', f[4]}
