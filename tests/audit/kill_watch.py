# kill_watch.py PID DIR MAX_US: for tests/audit/crash_writes.sh. Watches DIR in a tight loop and,
# as soon as a new ftlua temp file appears there, waits a random 0..MAX_US microseconds (busy) and
# kills the writer with SIGKILL, so that the kill lands inside the write. When the temp is gone
# by then (the write ended), the writer goes on and the next write is watched. PID is the shell that
# runs the writer: its children (the ftlua process) are killed. Exits when PID is gone.
import os, random, signal, sys, time

pid, folder, max_us = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def gone():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True

def temps():
    try:
        return {n for n in os.listdir(folder) if ".ftlua-tmp." in n}
    except OSError:
        return set()

def children():
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()] or [pid]
    except OSError:
        return [pid]

def signal_all(kids, sig):
    for k in kids:
        try:
            os.kill(k, sig)
        except OSError:
            pass

known = temps()  # orphans of earlier kills: not this write's (the writer is still starting)
while not gone():
    os.sched_yield()  # a tight loop (a CSV line is written in well under a millisecond) that yields
    if temps() - known:
        end = time.perf_counter() + random.uniform(0, max_us) / 1e6
        while time.perf_counter() < end:
            pass
        # stop the writer, and kill it only if its temp is still there (the write is still under
        # way); otherwise let it go on to its next write. A write shorter than our wake-up would
        # otherwise be missed on a loaded machine, every time.
        kids = children()
        signal_all(kids, signal.SIGSTOP)
        if temps() - known:
            signal_all(kids, signal.SIGKILL)
            break
        signal_all(kids, signal.SIGCONT)
