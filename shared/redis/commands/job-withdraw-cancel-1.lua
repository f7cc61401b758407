--[[
  Takes back a cancel request for a job its queue already reports finished, unless the job was
  canceled after all.

  Input:
    KEYS[1] the job record

  Output:
    1 withdrawn, 0 canceled (or nothing to withdraw)
]]
if redis.call('HEXISTS', KEYS[1], 'canceled_at') == 1 then return 0 end
return redis.call('HDEL', KEYS[1], 'cancel_requested_at')
