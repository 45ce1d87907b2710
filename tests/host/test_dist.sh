#!/bin/sh
# test_dist.sh: data-parallel runs over c10d/Gloo on 127.0.0.1: the launcher (ftlua --nproc),
# ft.dist's collectives, and faults that must end in a clear error, never a hang (a rank killed
# mid-run, the master port in use, an unreachable master).
# Prints "ok <name>", "FAIL <name>: <why>", "skip <name>: <why>". FTLUA=path overrides ./ftlua.
test_name=dist; . tests/host/dist_preamble.sh

run() { "$@" >"$out" 2>"$err" </dev/null; rc=$?; }
elapsed() { echo $(( $(date +%s) - $1 )); }

# ---- the launcher sets the variables; all_reduce, broadcast, barrier across 2 ranks
cat >"$tmp/coll.lua" <<'EOF'
local T, D = ft.tensor, ft.dist
D.init()
local r = D.rank()
local x = T.full({3}, r + 1)
D.all_reduce(x)                                  -- 1 + 2
local m = D.all_reduce({r, 10}, "mean")          -- {0.5, 10}
local mx = D.all_reduce(r, "max")
local b = T.full({2}, r == 0 and 7 or -1)
D.broadcast(b, 0)
D.barrier()
print(("rank %d/%d local %d env %s %s: %g %g %g %g %g threads %d"):format(r, D.world_size(), D.local_rank(),
  os.getenv("MASTER_ADDR"), os.getenv("LOCAL_WORLD_SIZE"), x:totable()[3], m[1], m[2], mx, b:totable()[2],
  T.get_num_threads()))
EOF
port=$(free_port)
run "$FTLUA" --nproc 2 --master-port "$port" "$tmp/coll.lua"
want0="rank 0/2 local 0 env 127.0.0.1 2: 3 0.5 10 1 7 threads"
want1="rank 1/2 local 1 env 127.0.0.1 2: 3 0.5 10 1 7 threads"
if [ $rc -eq 0 ] && has "$out" "$want0" && has "$out" "$want1"; then ok dist_launcher_collectives
else fail dist_launcher_collectives "rc=$rc"; fi

# ---- threads per rank: cores / local ranks (here 2 ranks)
cores=$(nproc); per=$(( cores / 2 )); [ $per -lt 1 ] && per=1
if has "$out" "threads $per"; then ok dist_threads_per_rank; else fail dist_threads_per_rank "want threads $per"; fi

# ---- the variables of another launcher (torchrun, Slurm) are honoured: two plain ftlua runs
port=$(free_port)
MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 "$FTLUA" "$tmp/coll.lua" >"$tmp/r1" 2>&1 &
p1=$!
MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 run "$FTLUA" "$tmp/coll.lua"
wait $p1; rc1=$?
if [ $rc -eq 0 ] && [ $rc1 -eq 0 ] && has "$out" "rank 0/2" && has "$tmp/r1" "rank 1/2"; then ok dist_env_from_other_launcher
else fail dist_env_from_other_launcher "rc=$rc rc1=$rc1"; fi

# ---- two "machines": two launchers, --nnodes 2, node ranks 0 and 1, one rank each
port=$(free_port)
"$FTLUA" --nnodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port "$port" --nproc 1 "$tmp/coll.lua" >"$tmp/n1" 2>&1 &
p1=$!
run "$FTLUA" --nnodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port "$port" --nproc 1 "$tmp/coll.lua"
wait $p1; rc1=$?
if [ $rc -eq 0 ] && [ $rc1 -eq 0 ] && has "$out" "rank 0/2 local 0" && has "$tmp/n1" "rank 1/2 local 0"; then
    ok dist_launcher_two_nodes
else fail dist_launcher_two_nodes "rc=$rc rc1=$rc1"; fi

# ---- a world of one needs no launcher and no port
run "$FTLUA" -e 'ft.dist.init(); print(ft.dist.world_size(), ft.dist.all_reduce(5), ft.dist.is_main())'
if [ $rc -eq 0 ] && has "$out" "1	5.0	true"; then ok dist_world_of_one; else fail dist_world_of_one "rc=$rc"; fi

# ---- a rank killed mid-run: the survivor errors at once (the peer closed its connection), well
# before the grace period would end it; the launcher names the rank
cat >"$tmp/die.lua" <<'EOF'
local T, D = ft.tensor, ft.dist
D.init()
local x = T.ones{1000}
for i = 1, 100000 do
  if D.rank() == 1 and i == 20 then
    local pid = io.popen("echo $PPID"):read("l")   -- the shell's parent: this ftlua
    os.execute("date +%s.%N > " .. arg[1] .. "; kill -9 " .. pid)
  end
  D.all_reduce(x, "mean")
end
EOF
port=$(free_port)
run "$FTLUA" --nproc 2 --master-port "$port" "$tmp/die.lua" "$tmp/die.t"
after=$(awk -v k="$(cat "$tmp/die.t" 2>/dev/null)" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - k }')
# "at once": rank 0 reports the closed connection itself and the world is over in less than
# FTLUA_DIST_GRACE (5 s here), so the launcher never had to signal rank 0
if [ $rc -ne 0 ] && has "$err" "rank 1 was killed by signal 9" && has "$err" "all_reduce (rank 0 of 2" &&
   [ -s "$tmp/die.t" ] && awk -v a="$after" 'BEGIN { exit !(a < 5) }'; then
    ok dist_rank_killed
else fail dist_rank_killed "rc=$rc, the world ended ${after}s after the kill (bound: 5 s, the grace period)"; fi

# ---- a rank that stops responding (SIGSTOP: alive, holding its sockets, never answering):
# rank 0's collective times out after FTLUA_DIST_TIMEOUT and it exits non-zero; the launcher then
# ends the stopped rank (SIGTERM with SIGCONT after FTLUA_DIST_GRACE, SIGKILL 5 s later) and
# exits non-zero. The bound distributed.md gives, from the moment the rank stops: timeout + grace
# + 5 s (here 4 + 2 + 5), plus 3 s of slack for a loaded machine.
cat >"$tmp/hang.lua" <<'EOF'
local T, D = ft.tensor, ft.dist
D.init()
D.all_reduce(T.ones{10})                          -- both ranks are in the world
if D.rank() == 1 then
  local pid = io.popen("echo $PPID"):read("l")     -- the shell's parent: this ftlua
  local f = io.open(arg[1], "w") f:write(pid) f:close()
  os.execute("date +%s.%N > " .. arg[1] .. ".t; kill -STOP " .. pid) -- rank 1 answers nothing now
end
for i = 1, 10 do D.all_reduce(T.ones{10}) end
print("rank " .. D.rank() .. " finished")
EOF
port=$(free_port)
FTLUA_DIST_TIMEOUT=4 FTLUA_DIST_GRACE=2 run "$FTLUA" --nproc 2 --master-port "$port" "$tmp/hang.lua" "$tmp/hang.pid"
after=$(awk -v k="$(cat "$tmp/hang.pid.t" 2>/dev/null)" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - k }')
hpid=$(cat "$tmp/hang.pid" 2>/dev/null)
alive=no
[ -n "$hpid" ] && kill -0 "$hpid" 2>/dev/null && alive=yes
if [ $rc -ne 0 ] && [ -n "$hpid" ] && [ $alive = no ] && [ -s "$tmp/hang.pid.t" ] &&
   awk -v a="$after" 'BEGIN { exit !(a < 14) }' && has "$err" "all_reduce (rank 0 of 2" &&
   has "$err" "timed out" && has "$err" "rank 0 exited with status 1" && ! has "$out" "finished"; then
    ok dist_rank_stops_responding
else
    fail dist_rank_stops_responding "rc=$rc, the world ended ${after}s after rank 1 stopped (bound 14 s), the stopped rank ${hpid:-?} is still alive: $alive"
    [ $alive = yes ] && kill -9 "$hpid"
fi

# ---- the master port in use: the launcher says so; a rank 0 on its own says so too
port=$(free_port)
"$PY" -c "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', $port)); s.listen(); time.sleep(30)" &
holder=$!
sleep 0.5
run "$FTLUA" --nproc 2 --master-port "$port" "$tmp/coll.lua"
if [ $rc -ne 0 ] && has "$err" "master port $port is in use"; then ok dist_port_in_use_launcher
else fail dist_port_in_use_launcher "rc=$rc"; fi
MASTER_PORT=$port WORLD_SIZE=2 RANK=0 FTLUA_DIST_TIMEOUT=3 run "$FTLUA" -e 'ft.dist.init()'
if [ $rc -ne 0 ] && has "$err" "cannot serve the rendezvous on port $port"; then ok dist_port_in_use_rank0
else fail dist_port_in_use_rank0 "rc=$rc"; fi
kill $holder 2>/dev/null; wait $holder 2>/dev/null

# ---- nobody serves the master: retries until the timeout, then names the address
port=$(free_port)
t0=$(date +%s)
MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=2 RANK=1 FTLUA_DIST_TIMEOUT=3 run "$FTLUA" -e 'ft.dist.init()'
took=$(elapsed "$t0")
if [ $rc -ne 0 ] && has "$err" "cannot reach the master at 127.0.0.1:$port after 3 s" && [ "$took" -lt 15 ]; then
    ok dist_master_unreachable
else fail dist_master_unreachable "rc=$rc after ${took}s"; fi

# ---- launcher arguments are checked
run "$FTLUA" --nproc x "$tmp/coll.lua"
if [ $rc -ne 0 ] && has "$err" "'--nproc' needs an integer"; then ok dist_launcher_bad_args
else fail dist_launcher_bad_args "rc=$rc"; fi

[ $failures -eq 0 ]
