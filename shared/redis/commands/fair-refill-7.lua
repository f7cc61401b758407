--[[
  Claims the next parked jobs for a backend's window, in fair order.

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

  Output:
    the job ids claimed for promotion
]]
--- @include "fair-claim"

return claim()
