--[[
  The claimed key's job exists: the key maps to it for the retention. Only the claimer's job id
  commits (a key whose lease ran out may belong to another request by now).

  Input:
    KEYS[1] the key's hash

    ARGV[1] the job id the claim was made for
    ARGV[2] the retention (seconds)

  Output:
    1 committed, 0 the key is not this job's
]]
if redis.call('HGET', KEYS[1], 'job_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'committed')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
