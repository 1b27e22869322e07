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

local find, sub, floor = string.find, string.sub, math.floor

-- What a cache may answer with. HAProxy 2.6 dies on an interim (1xx)
-- status from an applet (BUG_ON in http_ana.c), so a code outside this
-- range is refused here too, whatever sent it: the agent checks every
-- stored entry before it says "serve", this is the second lock.
local function replayable(code)
    return code ~= nil and code == floor(code) and code >= 200 and code <= 599
end

local function refuse(applet)
    applet:set_status(502)
    applet:add_header("content-length", "0")
    applet:start_response()
end

local function replay(applet)
    local code = tonumber(applet:get_var("txn.cache.code"))
    local hdrs = applet:get_var("txn.cache.headers") or ""
    local body = applet:get_var("txn.cache.body") or ""

    if not replayable(code) then
        return refuse(applet)
    end
    applet:set_status(code)
    -- The agent hands over only entries whose every line is a token name,
    -- ": ", a value without CR, LF or NUL, and CRLF (entry_check_replay),
    -- so a line is always "name: value\r\n". Plain finds, not a pattern:
    -- this loop runs for every header of every hit.
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
