--[[
  The claimed key's job could not be created: the key is free for a retry. Only the claimer's job
  id releases it.

  Input:
    KEYS[1] the key's hash

    ARGV[1] the job id the claim was made for

  Output:
    1 released, 0 the key is not this job's (or is gone)
]]
if redis.call('HGET', KEYS[1], 'job_id') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
