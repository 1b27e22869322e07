-- floor.lua: `make bench` only, never shipped. The "SPOE+Lua floor" front
-- end asks the agent a question that needs no cache work (a policy whose
-- request_method leaves GET out, so the answer is an immediate Bypass) and
-- then always answers from this Lua service, which sends the object from
-- memory. That is everything a cache built from an SPOE exchange and a Lua
-- hit service must do on every hit, minus the cache itself: no SPOE+Lua
-- cache on this HAProxy can be faster.
-- BENCH_FLOOR_HEADERS (the bench's "floorh" front end only): the other header
-- lines of a real L2 hit, "name: value" one per line, sent as well: what
-- replaying a hit's headers costs, still with no cache work.
local extra = {}
for line in string.gmatch(os.getenv("BENCH_FLOOR_HEADERS") or "", "[^\n]+") do
    local name, value = string.match(line, "^([^:]+): (.*)$")
    if name then
        extra[#extra + 1] = { name, value }
    end
end
local objects = {}
local dir = os.getenv("BENCH_OBJECTS")
for _, name in ipairs({ "1k.txt", "16k.txt" }) do
    local f = assert(io.open(dir .. "/" .. name, "rb"))
    objects["/" .. name] = f:read("a")
    f:close()
end

core.register_service("bench_floor", "http", function(applet)
    local body = objects[applet.path]
    if body == nil then
        applet:set_status(404)
        applet:add_header("content-length", "0")
        applet:start_response()
        return
    end
    applet:set_status(200)
    for i = 1, #extra do
        applet:add_header(extra[i][1], extra[i][2])
    end
    applet:add_header("content-type", "text/plain")
    applet:add_header("content-length", tostring(#body))
    applet:start_response()
    applet:send(body)
end)
