--[[
  The API asks to cancel a job: marks it `cancel_requested` unless it was canceled or a worker
  settled it first. A missing record is left alone (writing to it would create a key without a
  TTL).

  Input:
    KEYS[1] the job record

    ARGV[1] now (ms)

  Output:
    {'missing'}, {'canceled', at}, {'finished', outcome}, or {'requested', at} (now or before)
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'canceled_at', 'settled', 'cancel_requested_at')
if f[1] then return {'canceled', f[1]} end
if f[2] then return {'finished', f[2]} end
if f[3] then return {'requested', f[3]} end
redis.call('HSET', KEYS[1], 'cancel_requested_at', ARGV[1])
return {'requested', ARGV[1]}
