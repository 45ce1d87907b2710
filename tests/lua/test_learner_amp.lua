-- test_learner_amp.lua: the Learner's default precision. bf16 autocast on a CPU with bf16
-- instructions for convolutional models, float32 elsewhere; FTLUA_AMP and opts.amp decide
-- instead. (That bf16 trains to float32's accuracy is in test_learner_more.lua.)
local ft = require "ftlua"
local T, nn = ft.tensor, ft.nn
local H = require "harness"
local L = ft.learner

local WITH = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
local AMX = "flags\t\t: fpu avx2 amx_bf16 amx_tile\n"
local WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\nbugs\t\t: avx512_bf16_fake\n"
local conv = nn.Sequential { nn.Conv2d(1, 2, 3), nn.Flatten() }
local mlp = nn.Sequential { nn.Flatten(), nn.Linear(4, 2) }

H.test("the policy: bf16 for conv models on CPUs with bf16 instructions, else fp32", function()
  H.eq(L._cpu_has_bf16(WITH), true, "avx512_bf16")
  H.eq(L._cpu_has_bf16(AMX), true, "amx_bf16")
  H.eq(L._cpu_has_bf16(WITHOUT), false, "no flag (a bugs line does not count)")
  H.eq(L._default_amp("cpu", conv, "auto", WITH), "bf16", "conv, bf16 CPU")
  H.eq(L._default_amp("cpu", conv, "auto", WITHOUT), "fp32", "conv, CPU without bf16")
  H.eq(L._default_amp("cpu", mlp, "auto", WITH), "fp32", "no convolution")
  H.eq(L._default_amp("cuda:0", conv, "auto", WITH), "fp32", "CUDA: fp16 stays a choice")
  H.eq(L._default_amp("cpu", mlp, "bf16", WITHOUT), "bf16", "FTLUA_AMP=bf16")
  H.eq(L._default_amp("cpu", conv, "fp32", WITH), "fp32", "FTLUA_AMP=fp32")
  H.errors(function() L._default_amp("cpu", conv, "half", WITH) end, "FTLUA_AMP must be fp32, bf16 or auto")
end)

local function tiny_dls()
  local x = T.randint(0, 256, { 8, 4, 4 }):byte()
  local y = T.tensor { 1, 2, 1, 2, 1, 2, 1, 2 }:long()
  return ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, { bs = 4, channels = 1, verbose = false })
end

H.test("opts.amp chooses, and a wrong value is an error", function()
  H.eq(ft.Learner(tiny_dls(), nn.Sequential { nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2) }, { amp = "bf16" }).amp,
    "bf16", "amp = bf16")
  H.eq(ft.Learner(tiny_dls(), nn.Sequential { nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2) }, { amp = "fp32" }).amp,
    nil, "amp = fp32")
  H.errors(function() ft.Learner(tiny_dls(), mlp, { amp = "fp8" }) end, "amp must be")
end)

-- The real default, in a process without FTLUA_AMP (tests/run.sh pins fp32 for the others),
-- against this machine's /proc/cpuinfo read by grep.
H.test("without FTLUA_AMP, a cnn_learner trains in bf16 exactly when the CPU has bf16 instructions", function()
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write([[
local x = ft.tensor.randint(0, 256, { 8, 8, 8 }):byte()
local y = ft.tensor.tensor { 1, 2, 1, 2, 1, 2, 1, 2 }:long()
local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, { bs = 4, channels = 3, verbose = false })
local learn = ft.vision.cnn_learner(dls, ft.models.resnet18, { pretrained = false })
local mlp = ft.Learner(dls, ft.nn.Sequential { ft.nn.Flatten(), ft.nn.Linear(192, 2) })
print("amp=" .. tostring(learn.amp) .. " mlp=" .. tostring(mlp.amp))
]])
  f:close()
  local p = io.popen("env -u FTLUA_AMP ./ftlua " .. script .. " 2>&1")
  local out = p:read("a")
  p:close()
  os.remove(script)
  local has = os.execute("grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo")
  H.eq(out:match("amp=(%S+)"), has and "bf16" or "nil", "cnn_learner's precision (" .. out .. ")")
  H.eq(out:match("mlp=(%S+)"), "nil", "an MLP stays float32")
end)

H.done()
