-- spoe-cache.lua: the HAProxy side of a cache hit.
--
-- The agent decides everything (Hit, 304, 504 for only-if-cached, HEAD) and
-- hands over, as txn.cache.* variables, the exact response to send: status
-- code, header block ("Name: value\r\n" lines, Content-Length, Age,
-- X-Cache-Status and X-Cache-Key included) and body. This service replays
-- them byte for byte and never looks at the origin. It must stay dumb: no
-- cache logic here, so what a hit looks like is tested in one place (the agent).
--
-- Load with "lua-load-per-thread" (one Lua state per HAProxy thread), use with
--   http-request use-service lua.spoe_cache_hit if { var(txn.cache.serve) -m bool }

local find, sub = string.find, string.sub

local function replay(applet)
    local code = tonumber(applet:get_var("txn.cache.code")) or 502
    local hdrs = applet:get_var("txn.cache.headers") or ""
    local body = applet:get_var("txn.cache.body") or ""

    applet:set_status(code)
    -- The agent never stores CR or LF inside a name or value, nor a colon
    -- in a name, so a line is always "name: value\r\n". Plain finds, not
    -- a pattern: this loop runs for every header of every hit.
    local pos = 1
    while true do
        local colon = find(hdrs, ": ", pos, true)
        local eol = colon and find(hdrs, "\r\n", colon + 2, true)
        if not eol then
            break
        end
        applet:add_header(sub(hdrs, pos, colon - 1), sub(hdrs, colon + 2, eol - 1))
        pos = eol + 2
    end
    applet:start_response()
    if #body > 0 and applet.method ~= "HEAD" then
        applet:send(body)
    end
end

core.register_service("spoe_cache_hit", "http", replay)
