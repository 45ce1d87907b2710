-- dist_allreduce.lua: part of tests/bench/dist.sh, run as ranks of `ftlua --nproc N`: the time
-- of one all-reduce of resnet18's gradients (11.2 M float32, 45 MB) through ft.dist, the
-- communication every data-parallel step of that model adds. Rank 0 prints "allreduce seconds".
local T, D = ft.tensor, ft.dist
D.init()
local x = T.randn { 11200000 }
D.all_reduce(x) -- connections, buffers
local t0 = ft.clock()
for _ = 1, 5 do D.all_reduce(x) end
if D.is_main() then print(("allreduce %.4f"):format((ft.clock() - t0) / 5)) end
