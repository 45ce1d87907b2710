-- examples/tensor_tour.lua: a short tour of the tensor module. Run: ./ftlua examples/tensor_tour.lua
local T = ft.tensor

local a = T.tensor { { 1, 2 }, { 3, 4 } }
print(a)                                   -- PyTorch's format, plus dtype, shape and device
print("a @ a =", a:matmul(a))
print("sum of a @ a:", a:matmul(a):sum():item())  --> 54
print("size", a:size(), "dim", a:dim(), a:dtype(), a:device())

-- 1-based indexing and slices, as in Torch7
local x = T.arange(12):view(3, 4)
print("x[2] =", x[2])
print("x[{1, {2, 3}}] =", x[{ 1, { 2, 3 } }])
print("column 2:", x[{ {}, 2 }])
x[x:gt(9)] = -1
print("masked:", x)

-- views share memory
local v = x:view(-1)
v[1] = 100
print("x[1][1] after writing through a view:", x[1][1])

-- random numbers are PyTorch's for the same seed
T.manual_seed(42)
print("randn with seed 42:", T.randn { 3 })

-- big tensors are summarised
print(T.arange(2000):float())
