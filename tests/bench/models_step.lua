-- models_step.lua: ftlua's side of tests/bench/models.sh. For each "arch:size:dtype:batch"
-- argument, times resnet training steps (forward, cross entropy, backward) and prints
-- "arch size dtype batch images_per_second". The loop and the timing rule are the ones
-- models_step.py has.
local T, nn = ft.tensor, ft.nn
local MIN_SECONDS = tonumber(os.getenv("BENCH_MIN_SECONDS") or "5")

for _, spec in ipairs(arg) do
  local arch, size, dtype, batch = spec:match("^(%w+):(%d+):(%w+):(%d+)$")
  size, batch = tonumber(size), tonumber(batch)
  T.manual_seed(0)
  local m = ft.models[arch]():train()
  local x = T.randn { batch, 3, size, size }
  local y = T.randint(1, 1001, { batch }):view(batch, 1) -- 1-based classes for gather
  local function step()
    local out = dtype == "bf16" and nn.autocast("bfloat16", m, x) or m(x)
    local loss = -(out:float():log_softmax(2):gather(2, y)):mean()
    m:zero_grad()
    loss:backward()
  end
  -- Steps until MIN_SECONDS have passed (at most 5); the fastest step counts, the first one
  -- (warm-up: allocations, oneDNN primitives) only when it is the only one. The fastest
  -- step is the figure least disturbed by other work on a shared machine.
  local times, t0 = {}, ft.clock()
  repeat
    local t = ft.clock()
    step()
    times[#times + 1] = ft.clock() - t
  until ft.clock() - t0 >= MIN_SECONDS or #times == 5
  if #times > 1 then table.remove(times, 1) end
  print(("%s %d %s %d %.3f"):format(arch, size, dtype, batch, batch / math.min(table.unpack(times))))
  io.stdout:flush()
  m, x = nil, nil
  collectgarbage()
end
