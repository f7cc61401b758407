--[[
  Moves a job to another backend (fallback): the route's last step gets the error that made it
  move on, and a new step starts. Only from the backend the record names, so a transition repeated
  after a crash changes nothing.

  Input:
    KEYS[1] the job record

    ARGV[1] the backend it leaves
    ARGV[2] the backend it moves to
    ARGV[3] now (ms)
    ARGV[4] the error (JSON: code, message)

  Output:
    1 moved now, 0 already moved (or the record is gone)
]]
local backend = redis.call('HGET', KEYS[1], 'backend')
if backend ~= ARGV[1] then return 0 end
local route = cjson.decode(redis.call('HGET', KEYS[1], 'route') or '[]')
if #route > 0 then route[#route]['error'] = cjson.decode(ARGV[4]) end
route[#route + 1] = { backend = ARGV[2], at = tonumber(ARGV[3]) }
redis.call('HSET', KEYS[1], 'backend', ARGV[2], 'route', cjson.encode(route))
return 1
