-- data_loader.lua: images/s of ftlua's vision loader on pets-sample, for tests/bench/data.sh.
--   ftlua tests/bench/data_loader.lua DIR WORKERS CACHE_MB [rss [BS]]
-- Prints "build_seconds img_per_s" (and the peak RSS in MB with "rss"): the dataloaders' build
-- (every file decoded once, checked, cached within CACHE_MB) and one train epoch (Resize(460) at a random position, the fused
-- aug_transforms(224, min_scale=0.75) with Normalize, bs 64, shuffled, drop_last).
local V = ft.vision
local dir, workers, cache_mb, bs = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[5]) or 64
local t0 = ft.clock()
local dls = V.ImageDataLoaders.from_name_re(dir, nil, "(.+)_%d+%.jpg$", {
  valid_pct = 0.2, seed = 42, bs = bs, item_tfms = V.Resize(460), device = "cpu",
  batch_tfms = { V.aug_transforms { size = 224, min_scale = 0.75 }, V.Normalize.from_stats(V.imagenet_stats) },
  num_workers = workers, cache_mb = cache_mb, verbose = false,
})
local build = ft.clock() - t0
local n = 0
t0 = ft.clock()
for x in dls.train:batches() do n = n + x:size(1) end
local rate = n / (ft.clock() - t0)
if arg[4] == "rss" then
  local rss = 0
  for l in io.lines("/proc/self/status") do rss = tonumber(l:match("^VmHWM:%s*(%d+)")) or rss end
  print(("%.2f %.1f %.0f"):format(build, rate, rss / 1024))
else
  print(("%.2f %.1f"):format(build, rate))
end
