-- examples/linear_regression.lua: fit y = 3x - 2 with autograd and plain gradient descent.
-- Run: ./ftlua examples/linear_regression.lua
local T = ft.tensor
T.manual_seed(0)

local x = T.rand { 100, 1 } * 4 - 2
local y = x * 3 - 2 + T.randn { 100, 1 } * 0.1

local w = T.zeros { 1, 1 }:requires_grad()
local b = T.zeros { 1 }:requires_grad()

for step = 1, 200 do
  local loss = ((x:matmul(w) + b - y) ^ 2):mean()
  loss:backward()
  T.no_grad(function()
    w:sub_(w.grad, 0.1); b:sub_(b.grad, 0.1)    -- w -= 0.1 * grad
  end)
  w.grad, b.grad = nil, nil
  if step % 50 == 0 then print(("step %3d  loss %.5f"):format(step, loss:item())) end
end
print(("w = %.3f (want 3), b = %.3f (want -2)"):format(w:item(), b:item()))
assert(math.abs(w:item() - 3) < 0.05 and math.abs(b:item() + 2) < 0.05, "did not converge")
