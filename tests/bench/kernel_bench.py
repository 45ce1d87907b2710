"""tests/bench/kernel.sh's driver: times through jupyter_client, prints markdown rows."""
import os
import re
import statistics
import subprocess
import time

from jupyter_client import KernelManager

N_ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))

km = KernelManager(kernel_name="ftlua")
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)


def round_trip(code):
    """Seconds from sending execute_request to having both its reply and its idle status."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    replied = idle = False
    while not (replied and idle):
        if not replied:
            r = kc.get_shell_msg(timeout=30)
            replied = r["parent_header"].get("msg_id") == msg_id
        while not idle:
            m = kc.get_iopub_msg(timeout=30)
            idle = (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                    and m["content"]["execution_state"] == "idle")
    return time.perf_counter() - t0


def run_cell(code):
    """Runs code; returns its stdout."""
    out = []
    kc.execute_interactive(code, timeout=1800, output_hook=lambda m: out.append(m["content"].get("text", ""))
                           if m["msg_type"] == "stream" else None)
    return "".join(out)


def cpu_seconds(pid):
    """utime + stime of a process, from /proc: what it costs, whatever the machine's load."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


for _ in range(20):  # warm-up
    round_trip("1")
kpid = km.provisioner.process.pid
k0, c0 = cpu_seconds(kpid), time.process_time()
times = sorted(round_trip("1") for _ in range(N_ROUNDS))
k1, c1 = cpu_seconds(kpid), time.process_time()
med, p90 = statistics.median(times) * 1e3, times[int(0.9 * len(times))] * 1e3
print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
print()
print("| measure | value |")
print("|---|---|")
print(f"| trivial cell `1`, round trip, median of {N_ROUNDS} | {med:.2f} ms |")
print(f"| same, 90th percentile | {p90:.2f} ms |")
print(f"| CPU time per cell in the kernel (utime + stime) | {1e3 * (k1 - k0) / N_ROUNDS:.3f} ms |")
print(f"| CPU time per cell in the client (jupyter_client) | {1e3 * (c1 - c0) / N_ROUNDS:.3f} ms |")
print()

# the same fit, as a script and in the kernel, three times each, alternating (load changes hit both)
script, kernel = [], []
for _ in range(3):
    s = subprocess.run(["./ftlua", "tests/bench/learner_fit.lua", "fp32"], capture_output=True, text=True).stdout
    script.append(float(re.search(r"^fp32 ([\d.]+)", s, re.M).group(1)))
    k = run_cell('arg = { "fp32" }; dofile("tests/bench/learner_fit.lua")')
    kernel.append(float(re.search(r"^fp32 ([\d.]+)", k, re.M).group(1)))
n = os.environ.get("BENCH_N_TRAIN", "512")
print("| one epoch of fit, resnet18 on Fashion-MNIST, float32, %s images | img/s |" % n)
print("|---|---|")
print(f"| `ftlua tests/bench/learner_fit.lua` (best of 3) | {max(script):.2f} |")
print(f"| the same file in the kernel, `dofile` in a cell (best of 3) | {max(kernel):.2f} |")
print(f"| kernel / script | {max(kernel) / max(script):.3f}x |")
kc.stop_channels()
km.shutdown_kernel()
os._exit(0)  # no client destructors at interpreter exit (their noise)
