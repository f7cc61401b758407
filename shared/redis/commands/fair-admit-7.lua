--[[
  A new parked job joins its owner's pending set; an owner with none before becomes ready at the
  virtual time (or at its own pass, if it is still ahead: leaving and coming back gains nothing);
  then a claim. Runs in the MULTI that adds the job to its BullMQ queue.

  Input:
    KEYS[1] ready: owners with pending jobs, scored by their pass (virtual time of their next job)
    KEYS[2] idle: owners whose pending jobs ran out, with the pass they had (forgotten once the
            virtual time passes it)
    KEYS[3] state: hash with `vtime` (the pass of the last job claimed) and `seq` (arrivals)
    KEYS[4] weights: hash owner -> weight
    KEYS[5] claims: job ids claimed for promotion, scored by the time of the claim
    KEYS[6] BullMQ's delayed set of the backend's queue (where parked jobs are)
    KEYS[7] BullMQ's prioritized set of the backend's queue (the window: async jobs ready to run)

    ARGV[1] the prefix of the owners' pending sets (owner appended)
    ARGV[2] the window
    ARGV[3] now (ms)
    ARGV[4] how old a claim must be to be taken over (its claimer died)
    ARGV[5] the job's owner
    ARGV[6] the job id
    ARGV[7] its priority (1 first)
    ARGV[8] the owner's weight

  Output:
    the job ids claimed for promotion
]]
--- @include "fair-claim"

-- A pending job's score is priority * SEQ_SPAN + seq: priority first, then arrival (a counter per
-- backend). 16 * 2^49 = 2^53, the last integer a score holds exactly; 2^49 jobs per backend is some
-- 1,700 years at 10,000 jobs a second.
local SEQ_SPAN = 562949953421312

local owner = ARGV[5]
local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1) % SEQ_SPAN
redis.call('ZADD', ARGV[1] .. owner, num(tonumber(ARGV[7]) * SEQ_SPAN + seq), ARGV[6])
redis.call('HSET', KEYS[4], owner, ARGV[8])
if not redis.call('ZSCORE', KEYS[1], owner) then
  local pass = tonumber(redis.call('HGET', KEYS[3], 'vtime')) or 0
  local saved = tonumber(redis.call('ZSCORE', KEYS[2], owner))
  if saved and saved > pass then pass = saved end
  redis.call('ZREM', KEYS[2], owner)
  redis.call('ZADD', KEYS[1], num(pass), owner)
end
return claim()
