-- wrk script of benches/http.sh: prints one machine-readable summary line at the end, and with
-- WRK_TOKENS=FILE (one bearer token a line) sends every request with the next user's token, so
-- that the load spreads over that many users (each thread starts at its own place in the list).

local tokens_file = os.getenv("WRK_TOKENS")

if tokens_file and tokens_file ~= "" then
    local tokens = {}
    for line in io.lines(tokens_file) do
        if line ~= "" then tokens[#tokens + 1] = line end
    end
    assert(#tokens > 0, "no tokens in " .. tokens_file)

    local threads = 0
    function setup(thread)
        thread:set("first", threads)
        threads = threads + 1
    end

    local requests, next_request = {}, 1
    function init(args)
        -- Built once: the per-request work in Lua is one table lookup.
        for i, token in ipairs(tokens) do
            requests[i] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
        end
        next_request = (first * 97) % #requests + 1
    end

    function request()
        local r = requests[next_request]
        next_request = next_request % #requests + 1
        return r
    end
end

function done(summary, latency, _)
    local seconds = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "wrk-summary requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
        summary.requests, seconds, summary.requests / seconds,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        e.status, e.connect + e.read + e.write + e.timeout))
end
