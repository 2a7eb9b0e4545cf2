-- wrk script: GET PREFIX..ID for ids read from a file (one per line), round-robin. Each thread
-- starts at a different offset and walks the whole list, so a warm-up of n requests per thread
-- touches every id. The requests are formatted once, in init(), to keep wrk's own CPU low.
--   wrk ... -s bench/load/ids.lua http://127.0.0.1:PORT -- IDS_FILE /urls/     (GET /urls/{id})
--   wrk ... -s bench/load/ids.lua http://127.0.0.1:PORT -- IDS_FILE /          (GET /{id})
local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("tid", next_thread)
end

function init(args)
  local file = assert(args[1], "usage: -- IDS_FILE PREFIX")
  local prefix = args[2] or "/urls/"
  reqs = {}
  for id in io.lines(file) do
    if id ~= "" then reqs[#reqs + 1] = wrk.format("GET", prefix .. id) end
  end
  assert(#reqs > 0, "no ids in " .. file)
  i = ((tid or 1) - 1) * math.floor(#reqs / 2) % #reqs
end

function request()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
