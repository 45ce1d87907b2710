# kill_watch.py PID DIR MAX_US: for tests/audit/crash_writes.sh. Watches DIR in a tight loop and,
# as soon as a new ftlua temp file appears there, waits a random 0..MAX_US microseconds (busy) and
# kills the writer with SIGKILL, so that the kill lands inside the write. PID is the shell that
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

known = temps()  # orphans of earlier kills: not this write's (the writer is still starting)
while not gone():
    os.sched_yield()  # a tight loop (a CSV line is written in well under a millisecond) that yields
    if temps() - known:
        end = time.perf_counter() + random.uniform(0, max_us) / 1e6
        while time.perf_counter() < end:
            pass
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(c) for c in f.read().split()]
        except OSError:
            kids = []
        for k in kids or [pid]:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        break
