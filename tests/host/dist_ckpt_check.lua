-- dist_ckpt_check.lua DIR RC: after dist_ckpt.lua (a rank died while rank 0 wrote a checkpoint),
-- the checkpoint is the old one (byte for byte) or the new one (the weights rank 0 had), whole,
-- and the next write to the folder leaves no temp file. Prints ok/FAIL lines.
local T, H = ft.tensor, require "harness"
local dir, rc = arg[1], tonumber(arg[2])
local read = H.read_file
local function temps(folder)
  local n, p = 0, io.popen("ls -a '" .. folder .. "'")
  for name in p:lines() do if name:find("%.ftlua%-tmp%.") then n = n + 1 end end
  p:close()
  return n
end
H.test("dist_learner_rank_dies_during_checkpoint", function()
  assert(rc ~= 0, "the world exited 0, though rank 1 was killed")
  local where = read(dir .. "/rank1.where") or "nothing"
  assert(where == "during the write\n", "rank 1 did not die while rank 0 wrote: " .. where)
  local ck, old = read(dir .. "/models/ck.safetensors"), read(dir .. "/old.safetensors")
  assert(ck and old, "the checkpoint or its old copy is missing")
  local ok, t = pcall(T.load, dir .. "/models/ck.safetensors")
  assert(ok, "the checkpoint does not load: " .. tostring(t))
  if ck ~= old then
    local new = T.load(dir .. "/new_model.safetensors")
    local n = 0
    for k, v in pairs(new) do
      assert(t[k] and t[k]:equal(v), "neither the old checkpoint nor the new one: " .. k .. " differs")
      n = n + 1
    end
    H.eq(n, 4, "model tensors")
    local opt = 0
    for k in pairs(t) do if k:find("^opt%.") then opt = opt + 1 end end
    assert(opt > 0, "the new checkpoint has no optimizer state (not whole)")
    print("# the checkpoint is the new one")
  else
    print("# the checkpoint is the old one")
  end
end)
H.test("dist_learner_checkpoint_no_orphan", function()
  ft.io.write_atomic(dir .. "/models/probe", "x") -- the next write to the folder
  H.eq(temps(dir .. "/models"), 0, "temp files left in the models folder")
end)
H.done()
