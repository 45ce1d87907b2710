-- test_device.lua: the same ops on CUDA and on the CPU agree. Runs where CUDA is available
-- (tools/device-check.sh on the lent GPU machine); elsewhere it says why it skips.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"

H.test("default device follows availability", function()
  H.eq(T.default_device(), T.cuda_available() and "cuda:0" or "cpu", "default_device")
  H.eq(T.cuda_device_count() > 0, T.cuda_available(), "device count")
end)

if not T.cuda_available() then
  H.skip("cuda vs cpu", "no CUDA device here (libtorch without CUDA, or no GPU); tools/device-check.sh runs this on the GPU machine")
  H.done()
end

local dev = os.getenv("FTLUA_TEST_DEVICE") or "cuda"

H.test("cuda vs cpu: maths, reductions, autograd", function()
  T.manual_seed(1)
  local a, b = T.randn { 64, 32 }, T.randn { 32, 16 }
  local ga, gb = a:to(dev), b:to(dev)
  H.eq(ga:device(), dev == "cuda" and "cuda:0" or dev)
  H.close(ga:matmul(gb):cpu(), a:matmul(b), 1e-4, "matmul")
  H.close((ga:sigmoid() * 2 - ga:exp()):cpu(), a:sigmoid() * 2 - a:exp(), 1e-5, "elementwise")
  H.close(ga:sum(2):cpu(), a:sum(2), 1e-4, "sum(dim)")
  local v, i = ga:max(1)
  local cv, ci = a:max(1)
  H.close(v:cpu(), cv, 0); H.close(i:cpu(), ci, 0)
  H.close(ga:log_softmax(2):cpu(), a:log_softmax(2), 1e-5, "log_softmax")
  local x = T.randn { 8 }:to(dev):requires_grad()
  ((x * x):sum()):backward()
  H.close(x.grad:cpu(), (x:detach() * 2):cpu(), 1e-6, "grad")
  H.eq(tostring(ga[1]):find("device='cuda:0'", 1, true) ~= nil, true, "printing names the device")
end)

H.test("cuda bytes are tracked", function()
  collectgarbage("collect")
  local base = T.memory().live_bytes
  local t = T.zeros({ 1024, 1024 }, { device = dev })
  H.eq(T.memory().live_bytes - base, 4 * 2 ^ 20)
  t = nil; collectgarbage("collect")
  H.eq(T.memory().live_bytes, base)
end)

H.done()
