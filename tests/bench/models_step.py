"""models_step.py: PyTorch's side of tests/bench/models.sh, the same loop as models_step.lua.
usage: models_step.py THREADS arch:size:dtype:batch ..."""
import os, sys, time
import torch, torchvision

torch.set_num_threads(int(sys.argv[1]))
MIN_SECONDS = float(os.environ.get("BENCH_MIN_SECONDS", "5"))
for spec in sys.argv[2:]:
    arch, size, dtype, batch = spec.split(":")
    size, batch = int(size), int(batch)
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)().train()
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch, 1))

    def step():
        if dtype == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = m(x)
        else:
            out = m(x)
        loss = -(out.float().log_softmax(1).gather(1, y)).mean()
        m.zero_grad(set_to_none=True)
        loss.backward()

    # The timing rule of models_step.lua: steps until MIN_SECONDS (at most 5), the fastest
    # counts, the first (warm-up) only when it is the only one.
    times, t0 = [], time.perf_counter()
    while True:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        if time.perf_counter() - t0 >= MIN_SECONDS or len(times) == 5:
            break
    if len(times) > 1:
        times.pop(0)
    print("%s %d %s %d %.3f" % (arch, size, dtype, batch, batch / min(times)), flush=True)
