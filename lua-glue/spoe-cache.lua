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
-- this service writes the copy HAProxy's cache can keep and replay as it
-- is, labelled "X-Cache-Tier: L1" (the template's rules relabel this live
-- answer L2 and give it its Age back, which cache-store takes off):
-- - fast form: HAProxy's cache adds Age = the Age it kept (none for "Age:
--   0", which it refuses, so that line goes) plus the seconds since. It
--   keeps a response's Age only up to its s-maxage or max-age, so this
--   form is for responses that have one at least that large (or Age 0 and
--   a validator or a lifetime), and no Cache-Status ttl to count down.
-- - marked form, for the rest: no Age, "x-spoe-cache-l1: AGE" (";e" after
--   it when this service added an Expires: HAProxy's cache keeps nothing
--   without a validator or a lifetime), and the template's rules turn each
--   replay back into the agent's answer (Age = AGE + the seconds since,
--   no added Expires, the Cache-Status ttl counted down).
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

-- The parts of a hit's header lines HAProxy's cache looks at
-- (http_check_response_for_cacheability(), http_calc_maxage() and the Age
-- check of http_action_store_cache()).
local function cache_view(names, vals, n)
    local v = { age = 0, smax = -1, max = -1, known = false, status = false }
    for i = 1, n do
        local name, val = names[i], vals[i]
        if name == "age" then
            v.age = tonumber(val) or 0
        elseif name == "etag" or name == "last-modified" or name == "expires" then
            v.known = true
        elseif name == "cache-status" then
            v.status = v.status or find(val, "spoe-cache; hit; ttl=", 1, true) ~= nil
        elseif name == "cache-control" then
            for d in string.gmatch(lower(val), "[^,]+") do
                local k, x = string.match(d, "^%s*([%w-]+)%s*=%s*\"?(%d+)")
                if k == "s-maxage" then
                    v.smax = tonumber(x)
                elseif k == "max-age" then
                    v.max = tonumber(x)
                end
            end
        end
    end
    v.life = v.smax > 0 and v.smax or v.max
    v.known = v.known or v.life > 0
    return v
end

-- The copy of a hit the L1 may keep (see the top of this file).
local function send_l1(applet, code, names, vals, n, l1)
    local v = cache_view(names, vals, n)
    local fast = not v.status and (v.age == 0 and v.known or v.age > 0 and v.life >= v.age)
    applet:set_var("txn.cache_l1age", v.age)
    applet:set_status(code)
    for i = 1, n do
        if names[i] ~= "age" then
            applet:add_header(names[i], vals[i])
        elseif fast and v.age > 0 then
            applet:add_header("age", vals[i])
        end
    end
    if not fast then
        local mark = tostring(v.age)
        if not v.known then
            applet:add_header("expires", os.date("!%a, %d %b %Y %H:%M:%S GMT",
                core.now().sec + floor(l1 / 1000)))
            applet:set_var("txn.cache_l1e", true)
            mark = mark .. ";e"
        end
        applet:add_header("x-spoe-cache-l1", mark)
    end
    applet:add_header("x-cache-tier", "L1")
end

local function replay(applet)
    local code = tonumber(applet:get_var("txn.cache.code"))
    local hdrs = applet:get_var("txn.cache.headers") or ""
    local body = applet:get_var("txn.cache.body") or ""

    if not replayable(code) then
        return refuse(applet)
    end
    local l1 = tonumber(applet:get_var("txn.cache.l1"))
    local name, val, pos = next_header(hdrs, 1)
    if l1 ~= nil then
        local names, vals, n = {}, {}, 0
        while name do
            n = n + 1
            names[n], vals[n] = name, val
            name, val, pos = next_header(hdrs, pos)
        end
        send_l1(applet, code, names, vals, n, l1)
    else
        applet:set_status(code)
        while name do
            applet:add_header(name, val)
            name, val, pos = next_header(hdrs, pos)
        end
        applet:add_header("x-cache-tier", "L2")
    end
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
