--[[
  The claim shared by fair-admit and fair-refill, atomic with either: `claim()` decides which parked
  jobs go into the window, by stride scheduling across owners (weighted fair queuing with a cost of
  one job). The keys and ARGV[1..4] are those of the scripts that include it.

  Output of claim():
    the job ids claimed for promotion
]]

-- Work one claim may do past the window's room: stale entries (canceled jobs) it clears.
local EXTRA_STEPS = 64

local function num(x) return string.format('%.17g', x) end
local function claim()
  local now = tonumber(ARGV[3])
  local claimed = {}
  local inFlight = 0
  -- Claims whose job is parked no more were promoted (or canceled): done. Older ones than the
  -- takeover age belong to a process that died between its claim and its promotion.
  local held = redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
  for i = 1, #held, 2 do
    local id = held[i]
    if not redis.call('ZSCORE', KEYS[6], id) then
      redis.call('ZREM', KEYS[5], id)
    else
      inFlight = inFlight + 1
      if now - tonumber(held[i + 1]) >= tonumber(ARGV[4]) then
        redis.call('ZADD', KEYS[5], now, id)
        claimed[#claimed + 1] = id
      end
    end
  end
  local room = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[7]) - inFlight
  local steps = room + EXTRA_STEPS
  while room > 0 and steps > 0 do
    steps = steps - 1
    local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if #head == 0 then break end
    local owner, pass = head[1], tonumber(head[2])
    local pending = ARGV[1] .. owner
    local popped = redis.call('ZPOPMIN', pending)
    if #popped == 0 then
      redis.call('ZREM', KEYS[1], owner)
      redis.call('ZADD', KEYS[2], num(pass), owner)
    elseif redis.call('ZSCORE', KEYS[6], popped[1]) then
      -- Still parked (not canceled meanwhile): its owner's turn is spent.
      redis.call('ZADD', KEYS[5], now, popped[1])
      claimed[#claimed + 1] = popped[1]
      room = room - 1
      redis.call('HSET', KEYS[3], 'vtime', num(pass))
      local weight = tonumber(redis.call('HGET', KEYS[4], owner)) or 1
      local nextPass = num(pass + 1 / weight)
      if redis.call('EXISTS', pending) == 1 then
        redis.call('ZADD', KEYS[1], nextPass, owner)
      else
        redis.call('ZREM', KEYS[1], owner)
        redis.call('ZADD', KEYS[2], nextPass, owner)
      end
    end
  end
  -- An idle owner's pass at or behind the virtual time says nothing more: it would start there.
  local vtime = redis.call('HGET', KEYS[3], 'vtime')
  if vtime then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', vtime) end
  return claimed
end
