-- wrk script of the client-overhead baseline: replays the exact requests a wxcube run makes.
--
--   wrk -t1 -cC -dDs -s benches/replay.lua http://127.0.0.1:PORT -- requests.tsv
--
-- requests.tsv holds one request per line, "path?access_token=…<TAB>json body", as
-- benches/bench.py writes it from `wxcube extract --dry-run` (the same tables, windows and
-- accounts, shuffled so that any stretch of the file has the run's mix of endpoints). Every
-- connection keeps one request in flight, so C connections are concurrency C. The list is sent
-- round and round until the duration ends; the simulator answers the same request the same way
-- every time, so a repeat costs it what the first did.

local requests = {}
local position = 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    if path then
      requests[#requests + 1] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
    end
  end
  assert(#requests > 0, "no requests in " .. args[1])
  -- Threads (if more than one) start at different places in the list.
  position = (id * 7919) % #requests
end

function request()
  position = position % #requests + 1
  return requests[position]
end
