-- test_data_aug.lua: the standalone fused augmentation (ft.vision.augment), its draws, and the
-- CUDA twin against the CPU kernel on the same draws (skipped without CUDA; tools/device-check.sh
-- runs it on the GPU machine).
local H = require "harness"
local T, V = ft.tensor, ft.vision

-- A deterministic uint8 batch [4,40,52,3] with structure (gradients plus a pattern).
local function batch()
  local n, h, w = 4, 40, 52
  local x = T.arange(n * h * w * 3):view(n, h, w, 3)
  return ((x * 37 + x:remainder(97) * 11):remainder(256)):byte()
end

local x = batch()
local OPTS = { size = 32, seed = 9, min_scale = 0.6, mean = { 0.485, 0.456, 0.406 }, std = { 0.229, 0.224, 0.225 } }

H.test("augment: shape, same draws for the same seed, others for another", function()
  local a = V.augment(x, OPTS)
  H.close(a:size(), { 4, 3, 32, 32 }, 0, "shape")
  H.eq(a:dtype(), "float32", "dtype")
  H.eq(a:equal(V.augment(x, OPTS)), true, "same seed")
  local o = {}
  for k, v in pairs(OPTS) do o[k] = v end
  o.seed = 10
  H.eq(a:equal(V.augment(x, o)), false, "another seed")
end)

H.test("augment, valid: a plain bilinear resize (align_corners) and Normalize, vs torch", function()
  local o = {}
  for k, v in pairs(OPTS) do o[k] = v end
  o.train, o.min_scale = false, 1
  local sq = x:narrow(3, 1, 40):contiguous() -- square 40x40: the valid crop is the whole image
  local got = V.augment(sq, o)
  if not H.have_torch() then return H.skip("valid vs torch", "no python3 with torch") end
  local want = H.python(([[
import torch, torch.nn.functional as F
n, h, w = 4, 40, 52
x = torch.arange(n * h * w * 3).view(n, h, w, 3)
x = ((x * 37 + (x %% 97) * 11) %% 256).to(torch.uint8)[:, :, :40].permute(0, 3, 1, 2).double() / 255
g = F.affine_grid(torch.eye(3, dtype=torch.float64)[:2][None].expand(4, 2, 3), (4, 3, 32, 32), align_corners=True)
y = F.grid_sample(x, g, mode="bilinear", padding_mode="reflection", align_corners=True)
m = torch.tensor(%s, dtype=torch.float64).view(1, 3, 1, 1); s = torch.tensor(%s, dtype=torch.float64).view(1, 3, 1, 1)
print(lua(((y - m) / s).float()))]]):format("[0.485, 0.456, 0.406]", "[0.229, 0.224, 0.225]"))
  H.close(got, want, 1e-4, "valid")
end)

if not (V.cuda_kernel and T.cuda_available()) then
  H.skip("augment on CUDA vs CPU", V.cuda_kernel and "no CUDA device" or
    "this build has no CUDA kernel (a CUDA libtorch and nvcc: tools/device-check.sh)")
else H.test("the CUDA kernel equals the CPU kernel on the same draws (1e-4)", function()
  for _, train in ipairs { true, false } do
    local o = {}
    for k, v in pairs(OPTS) do o[k] = v end
    o.train = train
    local cpu = V.augment(x, o)
    o.device = "cuda"
    local gpu = V.augment(x, o)
    H.eq(gpu:device(), "cuda:0", "device")
    local d = (gpu:cpu() - cpu):abs():max():item()
    assert(d <= 1e-4, ("train=%s: max |cuda - cpu| = %g"):format(tostring(train), d))
  end
end) end

if not T.cuda_available() then H.skip("loader on CUDA", "no CUDA device")
else H.test("a loader sends batches to CUDA (the CUDA kernel when built), equal to the CPU loader", function()
  local imgs = x:narrow(3, 1, 40):contiguous()
  local y = T.tensor({ 1, 2, 1, 2 }, "int64")
  local function make(device)
    return V.ImageDataLoaders.from_tensors(imgs, y, imgs, y, { bs = 4, seed = 3, device = device, verbose = false,
      batch_tfms = V.aug_transforms { size = 24, min_scale = 0.75 } })
  end
  local c, g = make("cpu"), make("cuda")
  for _, split in ipairs { "train", "valid" } do
    local xc, yc = c[split]:one_batch()
    local xg, yg = g[split]:one_batch()
    H.eq(xg:device(), "cuda:0", split .. " x device")
    H.eq(yg:device(), "cuda:0", split .. " y device")
    local d = (xg:cpu() - xc):abs():max():item()
    assert(d <= 1e-4, split .. ": max |cuda - cpu| = " .. d)
    H.eq(yg:cpu():equal(yc), true, split .. " labels")
  end
end) end

H.done()
