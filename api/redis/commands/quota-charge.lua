--[[
  Takes one from each of a tenant's quota counters, or nothing. Every counter is checked before
  any is taken from, in one step: concurrent submissions never take a quota past its limit, and a
  refusal takes nothing. A variable number of keys: the caller passes their count first.

  Input:
    KEYS[i]     one counter per policy (`<prefix>:quota:<tenant>:<policy>:<period>`)

    ARGV[2i-1]  counter i's limit
    ARGV[2i]    when counter i expires (unix seconds)

  Output:
    {1 taken or 0 refused, what each counter has used}
]]
local used = {}
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i])) or 0
end
for i = 1, #KEYS do
  if used[i] + 1 > tonumber(ARGV[2 * i - 1]) then return {0, unpack(used)} end
end
for i = 1, #KEYS do
  used[i] = redis.call('INCR', KEYS[i])
  redis.call('EXPIREAT', KEYS[i], ARGV[2 * i])
end
return {1, unpack(used)}
