#!/bin/sh
# test_dist_learner.sh: the Learner data parallel on 2 ranks over Gloo on 127.0.0.1 equals one
# process taking the same global batch: tests/host/dist_fit.lua (lr_find, then fine_tune: a
# frozen one-cycle and an unfrozen one, with augmentation, a model without BatchNorm) gives the
# same weights, losses and metrics (with the all-reduce overlapped with backward, in one bucket
# or in one per parameter, and without overlap), only rank 0 prints and saves, a rank killed
# during fine_tune ends the world at once with a clear error, and a rank that dies while rank 0
# writes a checkpoint leaves the old checkpoint or the new one, whole.
# Prints "ok <name>", "FAIL <name>: <why>", "skip <name>: <why>". FTLUA=path overrides ./ftlua.
cd "$(dirname "$0")/../.." || exit 2
test_name=dist_learner; . tests/host/dist_preamble.sh
export LUA_PATH="$PWD/tests/lua/?.lua;;"
fail() { # name, why, files to show
    echo "FAIL $1: $2"
    failures=$((failures + 1))
    for f in "$3" "$4"; do [ -n "$f" ] && [ -s "$f" ] && sed "s|^|    $(basename "$f")> |" "$f" | tail -15; done
}
nocol() { sed 's/ *[0-9][0-9]:[0-9][0-9] *$//' "$1"; } # the table without its time column

# ---- one process, one thread; then 2 ranks of one thread each, same global batch
FTLUA_NUM_THREADS=1 "$FTLUA" tests/host/dist_fit.lua "$tmp/one" >"$tmp/one.out" 2>"$tmp/one.err"
rc1=$?
port=$(free_port)
"$FTLUA" --nproc 2 --master-port "$port" tests/host/dist_fit.lua "$tmp/two" >"$tmp/two.out" 2>"$tmp/two.err"
rc2=$?
if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    fail dist_learner_runs "one process rc=$rc1, two ranks rc=$rc2" "$tmp/one.err" "$tmp/two.err"
    exit 1
fi
ok dist_learner_runs

# ---- the numbers: weights within float tolerance, the same losses/metrics and lr_find on every rank
cat >"$tmp/cmp.lua" <<'LUA'
local T, H = ft.tensor, require "harness"
local dir, run, suffix = arg[1], arg[2], arg[3] or ""
local one, r0, r1 = T.load(dir .. "/one.rank0.safetensors"), T.load(dir .. "/" .. run .. ".rank0.safetensors"),
  T.load(dir .. "/" .. run .. ".rank1.safetensors")
local test = H.test
H.test = function(name, fn) return test(name .. suffix, fn) end
H.test("dist_learner_world_sizes", function()
  H.eq(one.world:item(), 1, "world of the single run")
  H.eq(r0.world:item(), 2, "world of the 2-rank run")
end)
H.test("dist_learner_weights_equal_one_process", function()
  local n = 0
  for k, t in pairs(one) do
    if k:match("^w%.") then H.close(r0[k], t, 1e-5, k) n = n + 1 end
  end
  assert(n == 4, "expected 4 weight tensors, got " .. n)
end)
H.test("dist_learner_ranks_identical", function()
  for k, t in pairs(r0) do H.close(r1[k], t, 1e-7, k) end
end)
H.test("dist_learner_valid_metrics_all_reduced", function()
  H.close(r0.values, one.values, 1e-5, "train_loss, valid_loss, accuracy")
end)
H.test("dist_learner_lr_find", function() H.close(r0.lr_min, one.lr_min, 1e-6, "lr_min") end)
H.done()
LUA
"$FTLUA" "$tmp/cmp.lua" "$tmp" two || failures=$((failures + 1))

# ---- the same with a bucket per parameter, each sent from its autograd hook during backward,
# and with the all-reduce after backward instead (FTLUA_DIST_OVERLAP=0)
for v in tiny_buckets no_overlap; do
    port=$(free_port)
    if [ $v = tiny_buckets ]; then env="FTLUA_DIST_BUCKET_MB=0.0005"; else env="FTLUA_DIST_OVERLAP=0"; fi
    env $env "$FTLUA" --nproc 2 --master-port "$port" tests/host/dist_fit.lua "$tmp/$v" >"$tmp/$v.out" 2>"$tmp/$v.err"
    rc=$?
    if [ $rc -ne 0 ]; then fail "dist_learner_runs_$v" "rc=$rc" "$tmp/$v.err"; continue; fi
    "$FTLUA" "$tmp/cmp.lua" "$tmp" "$v" "_$v" | grep -E '^(ok|FAIL) dist_learner_(weights|ranks)' ||
        failures=$((failures + 1))
done

# ---- the shards: per step, the ranks' items are disjoint and together one process's batch
FTLUA_NUM_THREADS=1 "$FTLUA" tests/host/dist_shard.lua "$tmp/s1" >/dev/null 2>"$tmp/s1.err"
port=$(free_port)
"$FTLUA" --nproc 2 --master-port "$port" tests/host/dist_shard.lua "$tmp/s2" >/dev/null 2>"$tmp/s2.err"
cat >"$tmp/shard.lua" <<'LUA'
local H = require "harness"
local function read(f)
  local t = {}
  for line in io.lines(f) do
    local e, i, items = line:match("^(%d+) (%d+) (.*)$")
    local set = {}
    for v in items:gmatch("%d+") do set[#set + 1] = tonumber(v) end
    t[e .. ":" .. i] = set
  end
  return t
end
H.test("dist_learner_shards_disjoint_and_whole", function()
  local one, r0, r1 = read(arg[1] .. ".rank0"), read(arg[2] .. ".rank0"), read(arg[2] .. ".rank1")
  local steps = 0
  for step, items in pairs(one) do
    steps = steps + 1
    local a, b = assert(r0[step], "rank 0 lacks step " .. step), assert(r1[step], "rank 1 lacks step " .. step)
    H.eq(#a, 4, "rank 0's items at " .. step)
    H.eq(#b, 4, "rank 1's items at " .. step)
    local seen = {}
    for _, v in ipairs(a) do seen[v] = true end
    for _, v in ipairs(b) do assert(not seen[v], "item " .. v .. " on both ranks at " .. step) seen[v] = true end
    for _, v in ipairs(items) do assert(seen[v], "item " .. v .. " of one process's step " .. step .. " on no rank") end
  end
  H.eq(steps, 6, "steps (2 epochs of 3 batches of 8)")
end)
H.done()
LUA
"$FTLUA" "$tmp/shard.lua" "$tmp/s1" "$tmp/s2" || failures=$((failures + 1))

# ---- only rank 0 prints the table (the same table as one process) and writes the checkpoint
if [ "$(nocol "$tmp/two.out")" = "$(nocol "$tmp/one.out")" ] && [ "$(grep -c '^epoch' "$tmp/two.out")" -eq 2 ]; then
    ok dist_learner_rank0_prints
else fail dist_learner_rank0_prints "the 2-rank output differs from one process's" "$tmp/one.out" "$tmp/two.out"; fi
if [ -f "$tmp/two.dir/models/final.safetensors" ]; then ok dist_learner_rank0_saves
else fail dist_learner_rank0_saves "no $tmp/two.dir/models/final.safetensors"; fi

# ---- a rank killed mid-fit (during fine_tune, after lr_find): rank 0's all-reduce fails at
# once (the peer closed its connection), rank 0 reports it and exits by itself, and the world is
# over well before the grace period (5 s here) would have signalled it; the launcher names rank 1
port=$(free_port)
DIST_FIT_DIE="$tmp/die.where" "$FTLUA" --nproc 2 --master-port "$port" tests/host/dist_fit.lua "$tmp/die" >"$tmp/die.out" 2>"$tmp/die.err"
rc=$?
after=$(awk -v k="$(awk '{print $NF}' "$tmp/die.where" 2>/dev/null)" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - k }')
if [ $rc -ne 0 ] && grep -q "rank 1 was killed by signal 9" "$tmp/die.err" &&
   grep -q "all_reduce (rank 0 of 2, master 127.0.0.1:$port)" "$tmp/die.err" &&
   grep -q "^fine_tune " "$tmp/die.where" && awk -v a="$after" 'BEGIN { exit !(a < 5) }'; then
    ok dist_learner_rank_killed_mid_fit
else fail dist_learner_rank_killed_mid_fit "rc=$rc, the world ended ${after}s after the kill (bound 5 s); where: $(cat "$tmp/die.where" 2>/dev/null)" "$tmp/die.err"; fi

# ---- a rank dies while rank 0 writes a checkpoint (learn:save over an older one): the file is
# the old checkpoint or the new one, whole, and the next write to the folder leaves no temp
port=$(free_port)
DIST_CKPT_DIR="$tmp/ck" "$FTLUA" --nproc 2 --master-port "$port" tests/host/dist_ckpt.lua >"$tmp/ck.out" 2>"$tmp/ck.err"
rc=$?
"$FTLUA" tests/host/dist_ckpt_check.lua "$tmp/ck" "$rc" || { failures=$((failures + 1)); sed 's/^/    ck.err> /' "$tmp/ck.err" | tail -15; }

[ $failures -eq 0 ]
