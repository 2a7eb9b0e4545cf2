-- wrk script: POST /urls?full_url=U with a URL never posted before, so every request creates a
-- link (one INSERT on the owning shard). U = https://bench.example/NONCE/THREAD/COUNTER/RANDOM:
-- NONCE (wrk argument, one per bench/run invocation and phase) keeps runs apart, THREAD and
-- COUNTER keep requests apart, RANDOM spreads the URLs' SHA-256 (and so the ids) over the ring.
--   wrk -t2 -c64 -d10s -s bench/load/post.lua http://127.0.0.1:PORT -- NONCE
local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("tid", next_thread)
end

function init(args)
  nonce = args[1] or tostring(os.time())
  counter = 0
  math.randomseed(os.time() + 7919 * (tid or 0))
  prefix = "/urls?full_url=https://bench.example/" .. nonce .. "/" .. (tid or 0) .. "/"
end

function request()
  counter = counter + 1
  return wrk.format("POST", prefix .. counter .. "/" .. math.random(1, 1000000000))
end
