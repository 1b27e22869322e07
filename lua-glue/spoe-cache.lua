-- spoe-cache.lua: the HAProxy side of a cache hit, and the node-local tier.
--
-- The agent decides everything (Hit, 304, 504 for only-if-cached, HEAD) and
-- hands over, as txn.cache.* variables, the exact response to send: status
-- code, header block ("Name: value\r\n" lines, Content-Length, Age,
-- X-Cache-Status and X-Cache-Key included) and body. This service replays
-- them byte for byte and never looks at the origin. It must stay dumb: no
-- cache logic here, so what a hit looks like is tested in one place (the agent).
--
-- The node-local tier (L1) is HAProxy's own cache (the template's [L1]
-- block). When the agent says a Hit may be kept there (txn.cache.l1, ms),
-- this service writes the copy the cache can keep, and the template's rules
-- turn every answer made from it (this one, and each replay) back into the
-- agent's:
-- - the Age line becomes "x-spoe-cache-l1: AGE": HAProxy's cache keeps no
--   "Age: 0" and no Age without a max-age, so its copy has none, and the
--   rules set Age to AGE plus the seconds since the copy was kept;
-- - a response with neither a validator nor an explicit lifetime (which the
--   agent may store by its policy, and HAProxy's cache would refuse) gets
--   an Expires for the L1's lifetime, marked by ";e" after AGE: the rules
--   remove it again.
--
-- Load with "lua-load-per-thread", use with
--   http-request use-service lua.spoe_cache_hit if { var(txn.cache.serve) -m bool }

local find, sub, lower, floor = string.find, string.sub, string.lower, math.floor

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

-- What HAProxy's cache needs to keep a response: a validator or an
-- explicit lifetime (http_check_response_for_cacheability()).
local function keepable(name, val)
    return name == "etag" or name == "last-modified" or name == "expires" or
        (name == "cache-control" and find(lower(val), "max-age", 1, true) ~= nil)
end

local function replay(applet)
    local code = tonumber(applet:get_var("txn.cache.code"))
    local hdrs = applet:get_var("txn.cache.headers") or ""
    local body = applet:get_var("txn.cache.body") or ""

    if not replayable(code) then
        return refuse(applet)
    end
    local l1 = tonumber(applet:get_var("txn.cache.l1"))
    local age, keep = "0", false
    applet:set_status(code)
    local name, val, pos = next_header(hdrs, 1)
    while name do
        if l1 == nil then
            applet:add_header(name, val)
        elseif name == "age" then
            age = val
        else
            keep = keep or keepable(name, val)
            applet:add_header(name, val)
        end
        name, val, pos = next_header(hdrs, pos)
    end
    if l1 ~= nil then
        if not keep then
            applet:add_header("expires", os.date("!%a, %d %b %Y %H:%M:%S GMT",
                core.now().sec + floor(l1 / 1000)))
            age = age .. ";e"
        end
        applet:add_header("x-spoe-cache-l1", age)
    end
    applet:add_header("x-cache-tier", "L2")
    applet:start_response()
    if #body > 0 and applet.method ~= "HEAD" then
        applet:send(body)
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
    reply:add_header("x-cache-tier", "L2")
    reply:set_body(body)
    txn:done(reply)
end

core.register_service("spoe_cache_hit", "http", replay)
core.register_action("spoe_cache_replace", { "http-res" }, replace, 0)
