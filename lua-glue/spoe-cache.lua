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

local function replay(applet)
    local code = tonumber(applet:get_var("txn.cache.code")) or 502
    local hdrs = applet:get_var("txn.cache.headers") or ""
    local body = applet:get_var("txn.cache.body") or ""

    applet:set_status(code)
    -- The agent never stores CR or LF inside a name or value, so a line is
    -- always "name: value\r\n".
    for name, value in string.gmatch(hdrs, "([^:\r\n]+): ([^\r\n]*)\r\n") do
        applet:add_header(name, value)
    end
    applet:start_response()
    if #body > 0 and applet.method ~= "HEAD" then
        applet:send(body)
    end
end

core.register_service("spoe_cache_hit", "http", replay)
