-- dist_shard.lua: part of tests/host/test_dist_learner.sh. Items whose label is their index go
-- through 2 epochs of fit; every rank writes, per training batch, "epoch iter items" to
-- OUT.rank<r>, so the test can check that the ranks' parts of each step are disjoint and
-- together the batch one process takes.   ftlua [--nproc N] dist_shard.lua OUT
local T, D = ft.tensor, ft.dist
local out = assert(arg[1])
local n = 30
local x = T.zeros({ n, 2, 2 }):to("uint8")
local y = T.arange(1, n + 1)
local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, { bs = 8, channels = 1, seed = 5,
  verbose = false, num_workers = 0 })
local learn = ft.Learner(dls, ft.nn.Sequential { ft.nn.Flatten(), ft.nn.Linear(4, n) })
local f = assert(io.open(("%s.rank%d"):format(out, D.rank()), "w"))
local rec = { name = "rec" }
function rec:before_batch(l)
  local items = l.yb:totable()
  table.sort(items)
  f:write(("%d %d %s\n"):format(l.epoch, l.iter, table.concat(items, ",")))
end
learn:fit(2, 1e-3, { cbs = { rec } })
f:close()
