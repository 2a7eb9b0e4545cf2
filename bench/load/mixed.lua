-- wrk script for the soak: of every 20 requests, 2 create a new link (POST /urls?full_url=...),
-- 9 read a link (GET /urls/{id}) and 9 follow a redirect (GET /{id}), ids from a file.
--   wrk ... -s bench/load/mixed.lua http://127.0.0.1:PORT -- IDS_FILE NONCE
local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("tid", next_thread)
end

function init(args)
  local file = assert(args[1], "usage: -- IDS_FILE NONCE")
  local nonce = args[2] or tostring(os.time())
  ids = {}
  for id in io.lines(file) do
    if id ~= "" then ids[#ids + 1] = id end
  end
  assert(#ids > 0, "no ids in " .. file)
  math.randomseed(os.time() + 7919 * (tid or 0))
  prefix = "/urls?full_url=https://bench.example/soak/" .. nonce .. "/" .. (tid or 0) .. "/"
  n = 0
end

function request()
  n = n + 1
  local k = n % 20
  if k < 2 then
    return wrk.format("POST", prefix .. n .. "/" .. math.random(1, 1000000000))
  end
  local id = ids[math.random(1, #ids)]
  if k % 2 == 0 then return wrk.format("GET", "/urls/" .. id) end
  return wrk.format("GET", "/" .. id)
end
