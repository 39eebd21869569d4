-- wrk script for bench/http.sh: POSTs one JSON body to a runbox server and
-- checks every answer, so that a broken server cannot produce a fast table.
--
--   wrk -s bench/http-post.lua http://127.0.0.1:8080/v1/run -- BODY EXPECT...
--
-- BODY is the request's JSON. Each EXPECT is a string the response body
-- must contain (plain text, not a pattern): bench/http.sh passes the run's
-- status and exit code, and the program's stdout when it prints one. An
-- answer that is not 2xx or lacks one of them counts as bad.
--
-- done() prints one line for the script to read, every time in
-- milliseconds:
--
--   RESULT <requests> <req/s> <p50 ms> <p99 ms> <bad> <socket errors> <first bad answer>

local expect = {}
bad = 0           -- per thread (each wrk thread has its own Lua state)
first_bad = ""    -- the first bad answer this thread saw, for the error message

function init(args)
	-- args[0] is the URL; the script's own arguments follow.
	wrk.method = "POST"
	wrk.body = args[1]
	wrk.headers["Content-Type"] = "application/json"
	for i = 2, #args do
		expect[#expect + 1] = args[i]
	end
end

function response(status, headers, body)
	local ok = status >= 200 and status < 300
	for _, e in ipairs(expect) do
		if not ok then
			break
		end
		ok = string.find(body, e, 1, true) ~= nil
	end
	if not ok then
		bad = bad + 1
		if first_bad == "" then
			first_bad = status .. " " .. string.sub(body, 1, 300)
		end
	end
end

local threads = {}

function setup(thread)
	threads[#threads + 1] = thread
end

function done(summary, latency, requests)
	local nbad, sample = 0, ""
	for _, t in ipairs(threads) do
		nbad = nbad + t:get("bad")
		if sample == "" then
			sample = t:get("first_bad")
		end
	end
	local e = summary.errors
	local sockerr = e.connect + e.read + e.write + e.timeout
	-- A status > 399 is also counted by response(); e.status is kept in the
	-- bad count in case wrk saw one response() did not.
	if e.status > nbad then
		nbad = e.status
	end
	io.write(string.format("RESULT %d %.1f %.3f %.3f %d %d %s\n",
		summary.requests, summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1000, latency:percentile(99) / 1000,
		nbad, sockerr, (string.gsub(sample, "%s", " "))))
end
