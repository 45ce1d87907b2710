-- crash_writer.lua KIND TARGET VARIANT: one write of one kind, for tests/audit/crash_writes.sh
-- (which kills it with SIGKILL mid-write, or runs it on a full disk). VARIANT (1 or 2) picks the
-- content, so that the old file and the new one differ; the same VARIANT gives the same bytes.
--   save       learn:save("ck", {with_opt = true})    TARGET/models/ck.safetensors
--   export     learn:export(TARGET)
--   weights    ft.weights.save(TARGET, ...)
--   backbone   T.save(TARGET, model:state_dict()), as scripts/main.lua caches its backbone
--   savemodel  fit 3 epochs with SaveModelCallback       TARGET/models/best.safetensors
--   csv        fit 40 epochs with CSVLogger              TARGET/history.csv
--   plot       ft.plot.plot{..., output = TARGET}        (a PNG, through gnuplot)
--   untar      ft.untar_data(URL, {dest = TARGET, force = true}) (FTLUA_CURL serves the archive)
local T, nn = ft.tensor, ft.nn
local kind, target, variant = arg[1], arg[2], tonumber(arg[3] or "1")
assert(kind and target, "usage: crash_writer.lua KIND TARGET VARIANT")
T.set_num_threads(1)
T.manual_seed(variant)

-- learner(hidden): hidden = 16384 gives about 4 MB of weights, so that a write takes long
-- enough to be caught in the middle
local function learner(hidden)
  hidden = hidden or 16384
  local xt = T.randint(0, 256, { 64, 8, 8 }):to("uint8")
  local yt = T.randint(1, 5, { 64 })
  local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xt:narrow(1, 1, 16), yt:narrow(1, 1, 16),
    { bs = 16, channels = 1, seed = 1, verbose = false, num_workers = 0, vocab = { "a", "b", "c", "d" } })
  local model = nn.Sequential { nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 4) }
  return ft.Learner(dls, model, { path = target }), model
end

if kind == "save" then
  local learn = learner()
  learn:fit(1, 1e-3)
  learn:save("ck", { with_opt = true })
elseif kind == "export" then
  local learn = learner()
  learn:export(target)
elseif kind == "weights" then
  ft.weights.save(target, { w = T.full({ 1 << 21 }, variant), b = T.arange(1000) * variant })
elseif kind == "backbone" then
  local _, model = learner()
  T.save(target, (model:state_dict()))
elseif kind == "savemodel" then
  local learn = learner()
  learn:fit(3, 1e-3, { cbs = { ft.callbacks.SaveModelCallback { fname = "best" } } })
elseif kind == "csv" then
  -- a CSV line is written in well under a millisecond: many short epochs give the watcher many
  -- writes to catch (a loaded 2-core machine missed all of 3)
  local learn = learner(16)
  learn:fit(40, 1e-3, { cbs = { ft.callbacks.CSVLogger { fname = "history.csv" } } })
elseif kind == "plot" then
  local xs, ys = {}, {}
  for i = 1, 2000 do xs[i] = i ys[i] = math.sin(i / (50 * variant)) end
  ft.plot.plot { { x = xs, y = ys, title = "variant " .. variant }, output = target, title = "crash audit" }
  ft.plot.close()
elseif kind == "untar" then
  ft.untar_data("https://example.invalid/data/audit.tgz", { dest = target, force = true })
else
  error("unknown kind " .. kind, 0)
end
