--[[
  Claims an idempotency key for a new job, or answers whose it is. One HSETNX: of concurrent
  requests with one key exactly one claims it. A claimed key starts with a short lease: a request
  that dies between claim and commit frees its key when the lease runs out instead of holding it
  for the whole retention.

  Input:
    KEYS[1] the key's hash (`<prefix>:idempotency:<owner>:<sha256 of key>`)

    ARGV[1] the new job's id
    ARGV[2] the request's fingerprint
    ARGV[3] the lease (ms)

  Output:
    {'claimed'}, or {'taken', job id, fingerprint, state ('pending' or 'committed')}
]]
if redis.call('HSETNX', KEYS[1], 'job_id', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[2], 'state', 'pending')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
local f = redis.call('HMGET', KEYS[1], 'job_id', 'fingerprint', 'state')
return {'taken', f[1], f[2] or '', f[3] or ''}
