-- wrk script for bench/create_orders: POST one small order per request.
--   KASSA_BENCH_TOKEN=ksk_... wrk -t2 -c32 -d10s --latency -s post.lua http://127.0.0.1:8000/api/v1/orders
-- done() prints one machine-readable line, "WRK_JSON {...}", that run.py parses (latencies in µs).

wrk.method = "POST"
wrk.body = '{"amount": 1050, "currency": "USD", "description": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("KASSA_BENCH_TOKEN") or "none")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
