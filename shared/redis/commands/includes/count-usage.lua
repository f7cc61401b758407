--[[
  count_usage(u, outcome, refund, prefix, day, ttl, inference_ms), for the scripts that land a
  job's terminal state (job-settle, job-confirm-canceled): counts the job in its owner's usage of
  the day, from the fields of its record, and gives back its quota charge when `refund` is '1' (a
  failure on the gateway's side) or when it is canceled before it started. It runs only in the
  branch of a script that lands the terminal state the first time, so a job is counted once however
  many attempts, stalls or backends it went through.

  `u` holds the record's USAGE_FIELDS, in that order: a script that reads the record anyway asks
  for them in its own HMGET, so counting reads nothing more.

  Its keys are built here from the prefix, like BullMQ's scripts build a job's keys: the prefix
  carries the cluster hash tag, so they share the record's slot. A model's requests are not a
  field of their own: every count adds one to exactly one outcome, so the reader sums those
  (UsageLedger.read).

  Output of count_usage():
    {owner, model, outcome, images, model time (µs), uploaded bytes}, for UsageLedger.counted
]]
local USAGE_FIELDS = {'owner', 'model', 'image_bytes', 'quota_keys', 'cached_result', 'started_at'}

local function count_usage(u, outcome, refund, prefix, day, ttl, inference_ms)
  local owner = u[1] or 'anonymous'
  local model = u[2] or 'unknown'
  local bytes = tonumber(u[3]) or 0
  local images = 0
  local ms = 0
  if outcome == 'succeeded' then
    ms = tonumber(inference_ms) or 0
    if not u[5] then images = 1 end
  end
  local usage = prefix .. ':usage:' .. owner .. ':' .. day
  -- The first count of an outcome of a model on a day creates its field: only then is the expiry
  -- (re)set, and the tenant added to the day's index, so a busy day costs no EXPIRE per job.
  if redis.call('HINCRBY', usage, model .. '|' .. outcome, 1) == 1 then
    redis.call('EXPIRE', usage, ttl)
    local index = prefix .. ':usage:tenants:' .. day
    redis.call('SADD', index, owner)
    redis.call('EXPIRE', index, ttl)
  end
  if images > 0 then redis.call('HINCRBY', usage, model .. '|images', images) end
  -- Model time in whole microseconds: HINCRBY, not a float that drifts as it adds up.
  local us = math.floor(ms * 1000 + 0.5)
  if us > 0 then redis.call('HINCRBY', usage, model .. '|inference_us', us) end
  if bytes > 0 then redis.call('HINCRBY', usage, model .. '|uploaded_bytes', bytes) end
  if u[4] and (refund == '1' or (outcome == 'canceled' and not u[6])) then
    for counter in string.gmatch(u[4], '%S+') do
      if (tonumber(redis.call('GET', counter)) or 0) > 0 then redis.call('DECR', counter) end
    end
  end
  return {owner, model, outcome, images, us, bytes}
end
