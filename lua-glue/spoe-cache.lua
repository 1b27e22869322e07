-- spoe-cache.lua: the HAProxy side of a cache hit, and the node-local tier.
--
-- The agent decides everything (Hit, 304, 504 for only-if-cached, HEAD) and
-- hands over, as txn.cache.* variables, the exact response to send: status
-- code, header block ("Name: value\r\n" lines, Content-Length, Age,
-- X-Cache-Status and X-Cache-Key included) and body. This service replays
-- them byte for byte and never looks at the origin. It must stay dumb: no
-- cache logic here, so what a hit looks like is tested in one place (the agent).
--
-- The node-local tier (L1): when the agent says a Hit may be kept
-- (txn.cache.l1, milliseconds: min(the policy's l1_ttl, the entry's
-- freshness left), sent only for a plain GET of a policy keyed on the URL
-- alone and an entry without Vary), the service also keeps it in this
-- thread's memory, and the spoe_cache_l1 action answers the same URL from
-- there, before any SPOE exchange, until that time is up. The action only
-- looks a request up when it carries nothing the agent treats specially
-- (REFUSE below, a consumer identity, a body), and its key holds the
-- scheme, Host, the whole URL and the policy: never coarser than the
-- agent's key. Age on an L1 hit is the agent's Age plus the seconds since.
-- X-Cache-Tier says which tier answered (L1, or L2 for the agent).
--
-- Load with "lua-load-per-thread" (one Lua state per HAProxy thread, so
-- one L1 per thread and no lock), use with
--   http-request lua.spoe_cache_l1 MIB if { var(txn.cache_policy) -m found }
--   http-request use-service lua.spoe_cache_hit if { var(txn.cache_l1) -m found }
--   ... the SPOE lookup ...
--   http-request use-service lua.spoe_cache_hit if { var(txn.cache.serve) -m bool }

local find, sub, floor = string.find, string.sub, math.floor

-- ---- the node-local tier ----

-- Request headers that make the agent's answer depend on more than the
-- URL, or that it handles itself (conditionals, Range, Cache-Control).
local REFUSE = {}
for _, n in ipairs({
    "authorization", "cache-control", "pragma", "range", "if-range", "if-match",
    "if-none-match", "if-modified-since", "if-unmodified-since",
    "content-length", "transfer-encoding", "x-proxy-cache-memcached-force",
    -- routing overrides: what could make the origin answer another resource
    "forwarded", "x-forwarded-host", "x-forwarded-server", "x-forwarded-scheme",
    "x-forwarded-proto", "x-forwarded-port", "x-forwarded-prefix", "x-host",
    "x-original-url", "x-original-host", "x-rewrite-url", "x-http-method-override",
    "x-http-method", "x-method-override",
}) do
    REFUSE[n] = true
end

-- Two generations bound the memory: entries go into cur; when cur holds
-- half the budget it becomes old and the previous old is dropped. A hot
-- entry is re-fetched from the agent at least every l1_ttl anyway.
local budget = nil          -- bytes per generation; false: L1 off
local cur, old, cur_bytes = {}, {}, 0
-- What the action found, for the service of the same stream (which runs
-- later on this thread, when cur may have turned over): the last 512 picks.
local pick, pick_old, npick = {}, {}, 0

local function now_ms()
    local t = core.now()
    return t.sec * 1000 + floor(t.usec / 1000), t.sec
end

local function l1_lookup(txn, mib)
    if budget == nil then
        local m = tonumber(mib) or 0
        budget = m > 0 and floor(m * 1048576 / 2) or false
    end
    if not budget then
        return
    end
    local meth = txn.sf:method()
    if meth ~= "GET" and meth ~= "HEAD" then
        return
    end
    if txn:get_var("txn.cache_consumer") ~= nil then
        return
    end
    local b = txn:get_var("txn.cache_body")
    if b ~= nil and b ~= 0 then
        return
    end
    local hdrs = txn.http:req_get_headers()
    for name in pairs(hdrs) do
        if REFUSE[name] then
            return
        end
    end
    local host = hdrs["host"]
    if host == nil or host[0] == nil or host[1] ~= nil then
        return
    end
    local tls = txn.f:ssl_fc()
    -- No component but the policy (last) can hold a "\n".
    local key = ((tls == true or tls == 1) and "https\n" or "http\n") .. host[0] .. "\n" ..
        txn.sf:url() .. "\n" .. (txn:get_var("txn.cache_policy") or "")
    local e = cur[key] or old[key]
    if e ~= nil then
        if now_ms() < e.exp then
            npick = npick + 1
            if npick > 256 then
                pick_old, pick, npick = pick, {}, 1
            end
            pick[key] = e
            txn:set_var("txn.cache_l1", key)
            return
        end
        cur[key], old[key] = nil, nil
    end
    txn:set_var("txn.cache_l1s", key)
end

-- Keep the agent's answer for ttl ms under key: its header lines, already
-- split by replay() (names, vals, n), with the index of its Age line and,
-- when the policy adds Cache-Status (RFC 9211), of the agent's own entry
-- ("spoe-cache; hit; ttl=N", the last one) and its ttl: both are
-- recomputed when the L1 replays it.
local function l1_store(key, ttl, code, names, vals, n, size, body)
    local ai, ci, cttl
    for i = 1, n do
        local name = names[i]
        if name == "age" then
            ai = i
        elseif name == "cache-status" then
            local t = string.match(vals[i], "^spoe%-cache; hit; ttl=(%-?%d+)$")
            if t then
                ci, cttl = i, tonumber(t)
            end
        end
    end
    if ai == nil then
        return
    end
    local ms, sec = now_ms()
    cur_bytes = cur_bytes + size
    if cur_bytes > budget then
        old, cur, cur_bytes = cur, {}, size
    end
    cur[key] = { exp = ms + ttl, sec = sec, age = tonumber(vals[ai]) or 0, code = code, n = n,
                 names = names, vals = vals, ai = ai, ci = ci, cttl = cttl, body = body }
end

local function l1_replay(applet, e)
    local _, sec = now_ms()
    local names, vals, ai, ci = e.names, e.vals, e.ai, e.ci
    local since = sec > e.sec and sec - e.sec or 0
    applet:set_status(e.code)
    for i = 1, e.n do
        if i == ai then
            applet:add_header("age", tostring(e.age + since))
        elseif i == ci then
            applet:add_header("cache-status", "spoe-cache; hit; ttl=" .. tostring(e.cttl - since))
        else
            applet:add_header(names[i], vals[i])
        end
    end
    applet:add_header("x-cache-tier", "L1")
    applet:start_response()
    if #e.body > 0 and applet.method ~= "HEAD" then
        applet:send(e.body)
    end
end

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

local function replay(applet)
    local k = applet:get_var("txn.cache_l1")
    if k ~= nil then
        local e = pick[k] or pick_old[k] or cur[k] or old[k]
        if e ~= nil then
            return l1_replay(applet, e)
        end
        -- Cannot happen: 256 other hits between this stream's action and
        -- its service. Say so rather than invent an answer.
        core.Warning("spoe-cache: L1 entry gone before its replay")
        applet:set_status(503)
        applet:add_header("retry-after", "0")
        applet:add_header("content-length", "0")
        applet:start_response()
        return
    end

    local code = tonumber(applet:get_var("txn.cache.code"))
    local hdrs = applet:get_var("txn.cache.headers") or ""
    local body = applet:get_var("txn.cache.body") or ""

    if not replayable(code) then
        return refuse(applet)
    end
    -- The L1 keeps this answer when the agent allows it (txn.cache.l1, in
    -- ms) for the key the action chose (txn.cache_l1s) and it fits.
    -- The key (scheme, Host, the whole URL) is the client's and may be as
    -- long as HAProxy's buffer: it counts against the budget too.
    local ttl, key, size = tonumber(applet:get_var("txn.cache.l1")), nil, 0
    if ttl ~= nil and ttl > 0 and applet.method == "GET" and budget then
        key = applet:get_var("txn.cache_l1s")
        size = #hdrs + #body + (key and #key or 0) + 256
        if size > budget then
            key = nil
        end
    end
    local names, vals, n = key and {}, key and {}, 0
    applet:set_status(code)
    local name, val, pos = next_header(hdrs, 1)
    while name do
        applet:add_header(name, val)
        if key then
            n = n + 1
            names[n], vals[n] = name, val
        end
        name, val, pos = next_header(hdrs, pos)
    end
    applet:add_header("x-cache-tier", "L2")
    applet:start_response()
    if #body > 0 and applet.method ~= "HEAD" then
        applet:send(body)
    end
    if key then
        l1_store(key, ttl, code, names, vals, n, size, body)
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
core.register_action("spoe_cache_l1", { "http-req" }, l1_lookup, 1)
