-- pgusers forward authentication for HAProxy >= 2.6, self-contained (no Lua library needed:
-- it uses HAProxy's built-in core.httpclient()).
--
-- Load it and call it from haproxy.cfg:
--
--   global
--       lua-load /etc/haproxy/pgusers-auth.lua
--   frontend app
--       http-request lua.pgusers-auth http://127.0.0.1:8080/v1/auth
--
-- The action sends the client's Cookie and Authorization headers (never the body) to the
-- given forward-auth URL with X-Forwarded-Proto/-Host/-Uri/-Method/-For and X-Original-URI,
-- and stores the outcome in transaction variables for the configuration to act on:
--
--   txn.pgusers_status      200, 401, 403 as answered by the daemon; 503 for anything else
--                           (daemon unreachable, timeout, unexpected status): fail closed
--   txn.pgusers_user        X-User        (only on 200)
--   txn.pgusers_user_id     X-User-Id     (only on 200)
--   txn.pgusers_user_email  X-User-Email  (only on 200)
--   txn.pgusers_user_admin  X-User-Admin  (only on 200)
--   txn.pgusers_user_groups X-User-Groups (only on 200; empty when the user has no group)
--   txn.pgusers_login_url   X-Login-Url of a 401, when the daemon has a login_url configured
--
-- It never touches the request headers itself: the configuration deletes client-sent
-- X-User* headers and sets the identity headers from these variables.

local TIMEOUT_MS = 5000

local IDENTITY = {
    { header = "x-user",       var = "txn.pgusers_user" },
    { header = "x-user-id",    var = "txn.pgusers_user_id" },
    { header = "x-user-email", var = "txn.pgusers_user_email" },
    { header = "x-user-admin", var = "txn.pgusers_user_admin" },
    -- An empty value may arrive as no header at all: it is optional.
    { header = "x-user-groups", var = "txn.pgusers_user_groups", optional = true },
}

-- Header tables from HAProxy map a lower-case name to a list of values; depending on the
-- version the list starts at index 0 or 1. Return the values in order.
local function values(list)
    local out = {}
    if type(list) ~= "table" then
        if list ~= nil then out[1] = tostring(list) end
        return out
    end
    local keys = {}
    for k in pairs(list) do
        if type(k) == "number" then keys[#keys + 1] = k end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do out[#out + 1] = list[k] end
    return out
end

local function first(headers, name)
    if type(headers) ~= "table" then return nil end
    local v = values(headers[name])
    return v[1]
end

local function check(txn, url)
    local req = txn.http:req_get_headers()
    local headers = {}
    for _, name in ipairs({ "cookie", "authorization" }) do
        local v = values(req[name])
        if #v > 0 then headers[name] = v end
    end
    local uri = txn.f:url() or "/"
    local host = first(req, "host") or ""
    local proto = "http"
    if txn.f:ssl_fc() == 1 or txn.f:ssl_fc() == true then proto = "https" end
    headers["x-forwarded-proto"] = { proto }
    headers["x-forwarded-host"] = { host }
    headers["x-forwarded-uri"] = { uri }
    headers["x-forwarded-method"] = { txn.f:method() or "GET" }
    headers["x-forwarded-for"] = { txn.f:src() or "" }
    headers["x-original-uri"] = { uri }

    local client = core.httpclient()
    local ok, res = pcall(client.get, client, { url = url, headers = headers, timeout = TIMEOUT_MS })
    if not ok or type(res) ~= "table" then
        return 503, nil
    end
    local status = tonumber(res.status) or 0
    if status == 200 or status == 401 or status == 403 then
        return status, res.headers
    end
    return 503, nil
end

core.register_action("pgusers-auth", { "http-req" }, function(txn, url)
    local status, headers = check(txn, url)
    -- Start from a clean slate: nothing from a previous rule may leak through.
    for _, id in ipairs(IDENTITY) do txn:unset_var(id.var) end
    txn:unset_var("txn.pgusers_login_url")
    if status == 200 then
        for _, id in ipairs(IDENTITY) do
            local v = first(headers, id.header)
            if v == nil and id.optional then v = "" end
            if v == nil then
                -- The contract says they are always present; refuse if one is missing.
                status = 503
                break
            end
            txn:set_var(id.var, v)
        end
    elseif status == 401 then
        local login = first(headers, "x-login-url")
        if login ~= nil and login ~= "" then txn:set_var("txn.pgusers_login_url", login) end
    end
    txn:set_var("txn.pgusers_status", status)
end, 1)
