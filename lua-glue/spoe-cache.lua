-- spoe-cache.lua: the HAProxy side of a cache hit, and the node-local tier.
--
-- The agent decides everything (Hit, 304, 504 for only-if-cached, HEAD) and
-- hands over, as txn.cache.* variables, the exact response to send: status
-- code, header block ("Name: value\r\n" lines, Content-Length, Age,
-- X-Cache-Status, X-Cache-Tier and X-Cache-Key included) and body. This service replays
-- them byte for byte and never looks at the origin. It must stay dumb: no
-- cache logic here, so what a hit looks like is tested in one place (the agent).
--
-- The node-local tier (L1) is HAProxy's own cache (the template's [L1]
-- block). When the agent says a Hit may be kept there (txn.cache.l1, ms),
-- the block it hands over is already the copy HAProxy's cache can keep and
-- replay as it is (labelled "x-cache-tier: L1", see l1_copy() in
-- agent/core/l1.h), and the template's rules give this live answer back
-- what differs. This service does nothing different for it.
--
-- Load with "lua-load-per-thread", use with
--   http-request use-service lua.spoe_cache_hit if { var(txn.cache.serve) -m bool }

local find, sub, floor = string.find, string.sub, math.floor

-- ---- the hit service ----

-- What a cache may answer with. HAProxy 2.6 dies on an interim (1xx)
-- status from an applet (BUG_ON in http_ana.c), so a code outside this
-- range is refused here too, whatever sent it: the agent checks every
-- stored entry before it says "serve", this is the second lock.
local function replayable(code)
    return code ~= nil and code == floor(code) and code >= 200 and code <= 599
end

-- The next line of a header block from the agent at pos: its name, its
-- value and where the line after it starts; nil at the end. The agent
-- hands over only blocks whose every line is a token name, ": ", a value
-- without CR, LF or NUL, and CRLF (entry_check_replay). Plain finds, not
-- a pattern: this runs for every header of every hit.
local function next_header(hdrs, pos)
    local colon = find(hdrs, ": ", pos, true)
    local eol = colon and find(hdrs, "\r\n", colon + 2, true)
    if eol then
        return sub(hdrs, pos, colon - 1), sub(hdrs, colon + 2, eol - 1), eol + 2
    end
end

local function refuse(applet)
    applet:set_status(502)
    applet:add_header("content-length", "0")
    applet:start_response()
end

-- The agent's answer, as it is: status, header lines, body (none for HEAD).
local function replay(applet)
    local code = tonumber(applet:get_var("txn.cache.code"))

    if not replayable(code) then
        return refuse(applet)
    end
    local hdrs = applet:get_var("txn.cache.headers") or ""
    applet:set_status(code)
    local name, val, pos = next_header(hdrs, 1)
    while name do
        applet:add_header(name, val)
        name, val, pos = next_header(hdrs, pos)
    end
    applet:start_response()
    if applet.method ~= "HEAD" then
        local body = applet:get_var("txn.cache.body")
        if body ~= nil and #body > 0 then
            applet:send(body)
        end
    end
end

-- ---- replacing the origin's response ----

-- The store step's answer (txn.cache.replace): the origin said 304 to the
-- validators of a stale entry the client asked for unconditionally, or
-- failed (5xx) while a stale entry may stand in for it (stale-if-error).
-- The response becomes the entry's, as the agent built it.
local function replace(txn)
    local code = tonumber(txn:get_var("txn.cache.code"))
    local hdrs = txn:get_var("txn.cache.headers") or ""
    local body = txn:get_var("txn.cache.body") or ""

    if not replayable(code) then
        return
    end
    local reply = txn:reply()
    reply:set_status(code)
    local name, val, pos = next_header(hdrs, 1)
    while name do
        reply:add_header(name, val)
        name, val, pos = next_header(hdrs, pos)
    end
    reply:set_body(body)
    txn:done(reply)
end

core.register_service("spoe_cache_hit", "http", replay)
core.register_action("spoe_cache_replace", { "http-res" }, replace, 0)
