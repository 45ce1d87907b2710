-- dist_ckpt.lua: the script of test_dist_learner.sh's checkpoint fault, on 2 ranks. Rank 0
-- saves a checkpoint (the old one), trains on, and saves again over it; rank 1 watches the
-- models folder and kills itself (SIGKILL) as soon as rank 0's temp file of that second write
-- appears, so it dies while rank 0 writes. dist_ckpt_check.lua then checks the file.
--   DIST_CKPT_DIR=DIR ftlua --nproc 2 dist_ckpt.lua
local T, nn, D = ft.tensor, ft.nn, ft.dist
local dir = assert(os.getenv("DIST_CKPT_DIR"), "set DIST_CKPT_DIR")
T.manual_seed(5)
local xt = T.randint(0, 256, { 64, 8, 8 }):to("uint8")
local yt = T.randint(1, 5, { 64 })
local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xt:narrow(1, 1, 16), yt:narrow(1, 1, 16),
  { bs = 16, channels = 1, seed = 1, verbose = false, num_workers = 0 })
-- wide enough that the checkpoint (weights + Adam state, about 50 MB) takes a while to write
local model = nn.Sequential { nn.Flatten(), nn.Linear(64, 65536), nn.ReLU(), nn.Linear(65536, 4) }
local learn = ft.Learner(dls, model, { path = dir })
learn:fit(1, 1e-3)
learn:save("ck", { with_opt = true }) -- the old checkpoint
if D.is_main() then os.execute(("cp '%s/models/ck.safetensors' '%s/old.safetensors'"):format(dir, dir)) end
learn:fit(1, 1e-3)
if D.is_main() then -- what the new checkpoint must hold
  local sd = {}
  for k, t in pairs(model:state_dict()) do sd["model." .. k] = t:contiguous() end
  T.save(dir .. "/new_model.safetensors", sd)
end
D.barrier()
if D.rank() == 1 then
  local t0, seen = ft.clock(), false
  while not seen and ft.clock() - t0 < 30 do
    local p = io.popen("ls -a '" .. dir .. "/models'")
    for name in p:lines() do if name:find("^%.ck%.safetensors%.ftlua%-tmp%.") then seen = true end end
    p:close()
  end
  local f = io.open(dir .. "/rank1.where", "w")
  f:write(seen and "during the write\n" or "missed the write\n")
  f:close()
  os.execute("kill -9 " .. io.popen("echo $PPID"):read("l"))
end
learn:save("ck", { with_opt = true }) -- the new one: rank 1 dies while this writes
print("rank " .. D.rank() .. ": the save returned") -- not reached: the barrier after it fails
