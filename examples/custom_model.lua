-- examples/custom_model.lua: build your own model from ft.nn layers, with a forward in Lua,
-- and train it a few steps with autograd. Run: ./ftlua examples/custom_model.lua
local T, nn = ft.tensor, ft.nn
T.manual_seed(0)

-- A residual net: the layers' forwards run in C, only this forward is Lua.
local Net = nn.Module("Net", {
  stem  = nn.Sequential { nn.Conv2d(3, 8, 3, { padding = 1 }), nn.BatchNorm2d(8), nn.ReLU() },
  block = nn.BasicBlock(8, 8),
  head  = nn.Sequential { nn.AdaptiveConcatPool2d(), nn.Flatten(), nn.Linear(16, 2) },
  scale = 0.5,
  forward = function(self, x)
    local h = self.stem(x)
    h = h + self.block(h) * self.scale
    return self.head(h)
  end,
})
print(Net)

-- Two classes of 16x16 images: bright on the left or bright on the right.
local n = 64
local y = T.randint(1, 3, { n })
local x = T.rand { n, 3, 16, 16 } * 0.2
for i = 1, n do
  local lo = y[i] == 1 and 1 or 9
  x[{ i, {}, {}, { lo, lo + 7 } }] = x[{ i, {}, {}, { lo, lo + 7 } }] + 1
end

-- Plain SGD with momentum, written out.
local params, velocity = Net:parameters(), {}
for k, p in ipairs(params) do velocity[k] = T.zeros(p:size()) end
local first, last
for step = 1, 30 do
  local logits = Net(x)
  local loss = -(logits:log_softmax(2):gather(2, y:view(n, 1))):mean()  -- y is 1-based
  loss:backward()
  T.no_grad(function()
    for k, p in ipairs(params) do
      velocity[k]:mul_(0.9):add_(p.grad)
      p:sub_(velocity[k], 0.05)
      p.grad = nil
    end
  end)
  first = first or loss:item()
  last = loss:item()
end
Net:eval()
local acc = T.no_grad(function() return Net(x):argmax(2):eq(y):float():mean():item() end)
print(("loss %.3f -> %.3f, training accuracy %.2f"):format(first, last, acc))
assert(last < first and acc > 0.9, "the custom model did not learn")
