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
-- The L1 keeps each copy SPOE_CACHE_L1_TTL seconds, out of the agent's
-- reach. So a task here polls every agent's invalidation feed (GET
-- /l1/feed on its admin endpoint) and fills the skip map the [L1] rules
-- read (see "the L1's invalidation feed" below).
--
-- Load with "lua-load-per-thread", use with
--   http-request use-service lua.spoe_cache_hit if { var(txn.cache.serve) -m bool }
-- The feed's task needs the template's [GLOBAL] presetenv lines
-- (SPOE_CACHE_L1_TTL, SPOE_CACHE_L1_SKIP_MAP) and SPOE_CACHE_ADMIN.

local find, sub, floor, match = string.find, string.sub, math.floor, string.match

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

-- ---- the L1's invalidation feed ----
--
-- Nothing in HAProxy deletes an L1 copy before its SPOE_CACHE_L1_TTL is
-- up. So each agent remembers the L1 grants it gave, re-checks them
-- against memcached every second, and lists on its admin endpoint the
-- bases (Host + path, HAProxy's "base") whose entry changed or went (a
-- purge, a flush, a newer store, from any node or the CLI):
--
--   GET /l1/feed?since=N  ->  "epoch E seq S\n", then "SEQ TTL_MS BASE\n"
--   for each event after N, oldest first (at most 1000: ask again while
--   the last is below S), or the line "all" when the events after N are
--   no longer held (or N > S).
--
-- This task polls every agent of SPOE_CACHE_ADMIN (host:port, space
-- separated) every 500 ms and puts each base in the skip map (the file
-- SPOE_CACHE_L1_SKIP_MAP) for as long as a copy of it may live (TTL_MS,
-- plus a second); the frontend's [L1] rules skip the lookup of a base in
-- the map, and of everything while the map holds "*". "*" is set for the
-- L1's whole lifetime on "all" or when an agent's epoch changes (it
-- restarted: its grants are lost), and while an agent has not answered
-- for more than 3 s (until it does). One task per process: every
-- thread's Lua state registers it, it runs on thread 1 (or 0, the shared
-- state) only.
--
-- Everything an agent sends is untrusted: an answer is read up to a
-- bound, in a bounded time, and one that is not well-formed is a failed
-- poll. An event line that is not ("SEQ TTL_MS BASE", a base of at most
-- 2048 bytes, seqs in order) skips every lookup for the L1's lifetime
-- instead: its base cannot be skipped alone. A base is any bytes but NUL
-- (the map is set at run time, never parsed from a file): HAProxy 2.6
-- takes a Host with spaces, control characters or bytes above 127 and
-- its "base" keeps them, so such a base is skipped as it is; refusing it
-- would let any client that can get such a copy granted make every node
-- skip its whole L1 whenever that entry changes.

local FEED_PERIOD_MS = 500
local FEED_DOWN_MS = 3000       -- an agent silent longer: skip everything
local FEED_TIMEOUT_S = 1        -- connect, and each read or write
local FEED_ANSWER_MS = 2000     -- one answer, whole
local FEED_ANSWER_MAX = 3 * 1024 * 1024 -- bytes (1000 events of 2048-byte bases fit)
local FEED_EVENTS_MAX = 1000    -- per answer, as the agent sends at most
local FEED_BASE_MAX = 2048
local FEED_ROUNDS_MAX = 20      -- answers per agent per round, when catching up
local FEED_SKIPPED_MAX = 100000 -- bases skipped at once; past it, everything

local function now_ms()
    local t = core.now()
    return t.sec * 1000 + floor(t.usec / 1000)
end

local feed = {
    map = nil,          -- the skip map's name, as HAProxy registered it
    life_ms = 0,        -- the L1's lifetime (max-age)
    token = nil,
    agents = {},
    skipped = {},       -- base -> until when (ms) it stays in the map
    nskipped = 0,
    all_until = 0,      -- "*" is in the map until then, at least
    star = false,       -- "*" is in the map
}

local function feed_log(msg)
    core.Warning("spoe-cache L1 feed: " .. msg)
end

local function feed_note(msg)
    core.log(core.notice, "spoe-cache L1 feed: " .. msg)
end

-- Every copy the L1 holds now must be skipped until it has expired.
local function skip_all(now, why)
    if now >= feed.all_until then
        feed_log(why .. ": every L1 lookup skipped for " .. floor(feed.life_ms / 1000) .. " s")
    end
    feed.all_until = now + feed.life_ms + 1000
end

local function skip_base(now, base, ttl)
    if base == "*" then
        return skip_all(now, "an event for \"*\"")  -- the map's own key
    end
    if ttl > feed.life_ms then
        ttl = feed.life_ms  -- no copy lives longer than the L1's max-age
    end
    local untl = now + ttl + 1000
    local cur = feed.skipped[base]
    if cur == nil then
        if feed.nskipped >= FEED_SKIPPED_MAX then
            return skip_all(now, "more than " .. FEED_SKIPPED_MAX .. " bases to skip")
        end
        core.set_map(feed.map, base, "1")
        feed.nskipped = feed.nskipped + 1
        feed.skipped[base] = untl
    elseif cur < untl then
        feed.skipped[base] = untl
    end
end

-- One answer of agent a to "since": (nil, why) when it failed, else
-- { epoch = string, seq = integer, all = bool, events = { {seq, ttl, base} },
-- bad = how many event lines were not well-formed, cut = the answer was cut
-- short (only its complete lines are in) }.
--
-- HAProxy 2.6's Lua socket stalls once an answer outgrows its buffer
-- (tune.bufsize, 256 KiB in the templates): what is beyond arrives only as
-- the read times out, and a timeout reads like a close. So what was read
-- within the bounds is taken as it is, up to its last complete line, and
-- the events after it are asked for again.
local function feed_fetch(a, since)
    local s = core.tcp()
    s:settimeout(FEED_TIMEOUT_S)
    local started = now_ms()
    local ok, err = s:connect(a.host, a.port)
    if not ok then
        s:close()
        return nil, "cannot connect (" .. tostring(err) .. ")"
    end
    local req = "GET /l1/feed?since=" .. string.format("%d", since) .. " HTTP/1.0\r\n" ..
        "Host: " .. a.addr .. "\r\n" .. (feed.token or "") .. "Connection: close\r\n\r\n"
    if s:send(req) ~= #req then
        s:close()
        return nil, "cannot send"
    end
    local parts, n, cut = {}, 0, false
    while true do
        local d = s:receive(16384)
        if d == nil then
            break
        end
        if n + #d > FEED_ANSWER_MAX then
            d = sub(d, 1, FEED_ANSWER_MAX - n)
            cut = true
        end
        n = n + #d
        parts[#parts + 1] = d
        if cut or now_ms() - started > FEED_ANSWER_MS then
            cut = true
            break
        end
    end
    s:close()
    local resp = table.concat(parts)
    local hend = find(resp, "\r\n\r\n", 1, true)
    if hend == nil then
        return nil, n == 0 and "no answer" or "no complete HTTP header"
    end
    local head = string.lower(sub(resp, 1, hend + 1))
    local status = match(head, "^http/1%.[01] (%d%d%d)[ \r]")
    if status ~= "200" then
        return nil, status and ("HTTP " .. status .. (status == "401" and
            " (SPOE_CACHE_ADMIN_TOKEN: the agent's agent.admin.token)" or "")) or "not HTTP"
    end
    local body = sub(resp, hend + 4)
    local clen = match(head, "\r\ncontent%-length:[ \t]*(%d+)[ \t]*\r\n")
    if clen ~= nil then
        if #clen > 9 or tonumber(clen) < #body then
            return nil, "answer longer than its Content-Length"
        end
        cut = cut or tonumber(clen) > #body
    else
        -- no length: a read that timed out may have ended it
        cut = cut or now_ms() - started >= FEED_TIMEOUT_S * 1000
    end

    local pos = 1
    local function line()   -- the next complete line, without its LF (and CR)
        local e = find(body, "\n", pos, true)
        if e == nil then
            return nil
        end
        local l = sub(body, pos, e - 1)
        pos = e + 1
        if sub(l, -1) == "\r" then
            l = sub(l, 1, -2)
        end
        return l
    end
    local e, sq = match(line() or "", "^epoch (%d+) seq (%d+)$")
    if e == nil or #e > 20 or #sq > 18 then
        return nil, cut and "answer cut short" or "no \"epoch E seq S\" line"
    end
    local ans = { epoch = e, seq = tonumber(sq), all = false, events = {}, bad = 0, cut = cut }
    local l = line()
    if l == "all" then
        ans.all = true
        return ans
    end
    while l ~= nil and #ans.events < FEED_EVENTS_MAX do
        local q, ttl, base = match(l, "^(%d+) (%d+) ([^\0]+)$")
        if q ~= nil and #q <= 18 and #ttl <= 10 and #base <= FEED_BASE_MAX then
            ans.events[#ans.events + 1] = { tonumber(q), tonumber(ttl), base }
        else
            ans.bad = ans.bad + 1
        end
        l = line()
    end
    if not cut and pos <= #body then
        ans.bad = ans.bad + 1   -- a last line without its LF
    end
    return ans
end

-- Apply one answer of agent a to "since"; true when there is more to ask.
local function feed_apply(a, since, ans, now)
    local name = "agent " .. a.addr
    if a.epoch ~= nil and a.epoch ~= ans.epoch then
        skip_all(now, name .. " restarted (epoch " .. a.epoch .. ", now " .. ans.epoch ..
            "): its grants are lost")
        a.epoch, a.seq = ans.epoch, ans.seq
        return false
    end
    if a.epoch == nil then
        a.epoch = ans.epoch
        if not a.missed then
            -- The first poll, as HAProxy starts: the L1 is empty.
            a.seq = ans.seq
            feed_note(name .. ": epoch " .. ans.epoch .. ", seq " .. ans.seq)
            return false
        end
        -- It did not answer the first polls, and the L1 may have kept
        -- copies meanwhile: everything since 0 (since is 0) applies.
        feed_note(name .. ": epoch " .. ans.epoch .. ", seq " .. ans.seq ..
            " (events since 0 apply)")
    end
    if ans.all or ans.seq < since then
        skip_all(now, name .. " no longer holds the events after " .. since)
        a.seq = ans.seq
        return false
    end
    local last, bad = since, ans.bad
    for _, ev in ipairs(ans.events) do
        if ev[1] <= last or ev[1] > ans.seq then
            bad = bad + 1
        else
            skip_base(now, ev[3], ev[2])
            last = ev[1]
        end
    end
    if bad > 0 or (#ans.events == 0 and ans.seq > since and not ans.cut) then
        skip_all(now, name .. ": " .. bad .. " event line(s) not well-formed, or none listed up to seq " ..
            ans.seq)
        a.seq = ans.seq
        return false
    end
    a.seq = last
    return last < ans.seq
end

local function feed_poll(a)
    if a.host == nil then
        return  -- not host:port: never answers
    end
    local started = now_ms()
    for _ = 1, FEED_ROUNDS_MAX do
        local since = a.seq
        local ans, why = feed_fetch(a, since)
        local now = now_ms()
        if ans ~= nil and ans.cut and not ans.all and #ans.events == 0 and
                ans.seq > since and ans.epoch == a.epoch then
            ans, why = nil, "answer cut short before its first event"
        end
        if ans == nil then
            if a.epoch == nil then
                a.missed = true
            end
            if a.err ~= why then
                feed_log("agent " .. a.addr .. ": " .. why)
                a.err = why
            end
            return
        end
        a.last_ok = now
        if a.err ~= nil or a.down then
            feed_note("agent " .. a.addr .. " answers again")
            a.err, a.down = nil, false
        end
        if not feed_apply(a, since, ans, now) or now - started > FEED_ANSWER_MS then
            return  -- the rest next round
        end
    end
end

local function feed_round()
    for _, a in ipairs(feed.agents) do
        local ok, err = pcall(feed_poll, a)
        if not ok and a.err ~= err then
            feed_log("agent " .. a.addr .. ": " .. tostring(err))
            a.err = err
        end
    end
    local now = now_ms()
    for base, untl in pairs(feed.skipped) do
        if untl <= now then
            core.del_map(feed.map, base)
            feed.skipped[base] = nil
            feed.nskipped = feed.nskipped - 1
        end
    end
    local want = now < feed.all_until
    for _, a in ipairs(feed.agents) do
        if now - a.last_ok > FEED_DOWN_MS then
            if not a.down then
                feed_log("agent " .. a.addr .. " has not answered for " .. floor(FEED_DOWN_MS / 1000) ..
                    " s: every L1 lookup skipped until it does")
                a.down = true
            end
            want = true
        end
    end
    if want ~= feed.star then
        if want then
            core.set_map(feed.map, "*", "1")
        else
            core.del_map(feed.map, "*")
            feed_note("L1 lookups resumed")
        end
        feed.star = want
    end
end

local function feed_task()
    if core.thread > 1 then
        return  -- another thread's state: one poller per process
    end
    local life = tonumber(os.getenv("SPOE_CACHE_L1_TTL") or "60")
    if life == nil or life <= 0 then
        return  -- the L1 is off
    end
    feed.life_ms = floor(life) * 1000
    local list = os.getenv("SPOE_CACHE_ADMIN") or "127.0.0.1:12346"
    feed.map = os.getenv("SPOE_CACHE_L1_SKIP_MAP")
    if feed.map == nil or feed.map == "" or not pcall(core.del_map, feed.map, "*") then
        core.Alert("spoe-cache L1 feed: no skip map (SPOE_CACHE_L1_SKIP_MAP, set by the " ..
            "template's [GLOBAL] lines, must name the map the [L1] rules read): no " ..
            "invalidation feed, L1 copies live their whole " .. floor(life) .. " s")
        return
    end
    local tok = os.getenv("SPOE_CACHE_ADMIN_TOKEN")
    if tok ~= nil and tok ~= "" then
        if find(tok, "[%c]") then
            core.Alert("spoe-cache L1 feed: SPOE_CACHE_ADMIN_TOKEN holds a control character: " ..
                "not sent")
        else
            feed.token = "Authorization: Bearer " .. tok .. "\r\n"
        end
    end
    local start = now_ms()
    local seen = {}
    for addr in string.gmatch(list, "%S+") do
        if seen[addr] then
            goto next
        end
        seen[addr] = true
        local host, port = match(addr, "^%[?([^%[%]]+)%]?:(%d+)$")
        port = tonumber(port)
        if host == nil or port == nil or port < 1 or port > 65535 then
            -- Never polled, so "*" stays: its grants cannot be followed.
            core.Alert("spoe-cache L1 feed: SPOE_CACHE_ADMIN: \"" .. addr ..
                "\" is not host:port: every L1 lookup skipped")
            host, port = nil, nil
        end
        feed.agents[#feed.agents + 1] = { addr = addr, host = host, port = port,
            epoch = nil, seq = 0, last_ok = start, missed = false, down = false }
        ::next::
    end
    if #feed.agents == 0 then
        feed_note("SPOE_CACHE_ADMIN is empty: no invalidation feed, L1 copies live their whole " ..
            floor(life) .. " s")
        return
    end
    local last_err
    while true do
        local ok, err = pcall(feed_round)
        if not ok and err ~= last_err then
            feed_log(tostring(err))
        end
        last_err = not ok and err or nil
        core.msleep(FEED_PERIOD_MS)
    end
end

core.register_task(feed_task)
