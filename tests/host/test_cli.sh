#!/bin/sh
# test_cli.sh: the ftlua command line (arg table, -e, -, stdin, -i, errors and where they are
# said, --traceback, help(), SIGINT, --version, --help).
# Prints "ok <name>", "FAIL <name>: <why>" per check. FTLUA=path overrides ./ftlua.
test_name=cli; . tests/host/preamble.sh
prog=$(basename "$FTLUA") # errors are prefixed with the program's name
tab=$(printf '\t')

# run CMD...: runs it with stdin from /dev/null unless redirected by the caller; sets $rc.
run() { "$@" >"$out" 2>"$err"; rc=$?; }
is() { [ "$(cat "$1")" = "$2" ]; }   # file is exactly this text

# ---- arg: arg[0] the script, arg[1..] its arguments, the interpreter at negative indices
cat >"$tmp/args.lua" <<'EOF'
print(#arg, arg[-1], arg[0], arg[1], arg[2], select("#", ...), ...)
EOF
run "$FTLUA" "$tmp/args.lua" one "two words" </dev/null
want="2${tab}$FTLUA${tab}$tmp/args.lua${tab}one${tab}two words${tab}2${tab}one${tab}two words"
if [ $rc -eq 0 ] && is "$out" "$want"; then ok cli_arg_table; else fail cli_arg_table "rc=$rc, want: $want"; fi

cat >"$tmp/neg.lua" <<'EOF'
print(arg[-3], arg[-2], arg[-1], arg[0], arg[1], arg[-4])
EOF
run "$FTLUA" -e 'x = 1' "$tmp/neg.lua" a </dev/null
want="$FTLUA${tab}-e${tab}x = 1${tab}$tmp/neg.lua${tab}a${tab}nil"
if [ $rc -eq 0 ] && is "$out" "$want"; then ok cli_arg_negative; else fail cli_arg_negative "rc=$rc, want: $want"; fi

# ---- -e, several in order, with ft preloaded and the same table as require "ftlua"
run "$FTLUA" -e 'x = 6' -e 'print(x * 7)' -e 'print(type(ft), require("ftlua") == ft)' </dev/null
if [ $rc -eq 0 ] && is "$out" "42
table${tab}true"; then ok cli_exec; else fail cli_exec "rc=$rc"; fi

# ---- - reads the script from stdin, with arguments
echo 'print("stdin", arg[0], ...)' >"$tmp/in.lua"
run "$FTLUA" - a b <"$tmp/in.lua"
if [ $rc -eq 0 ] && is "$out" "stdin${tab}-${tab}a${tab}b"; then ok cli_stdin_dash; else fail cli_stdin_dash "rc=$rc"; fi

# ---- no script and stdin not a terminal: run stdin (no REPL, no prompts)
printf 'local s = 0\nfor i = 1, 3 do s = s + i end\nprint(s)\n' >"$tmp/in.lua"
run "$FTLUA" <"$tmp/in.lua"
if [ $rc -eq 0 ] && is "$out" "6" && [ ! -s "$err" ]; then ok cli_stdin_pipe; else fail cli_stdin_pipe "rc=$rc"; fi

# ---- -i: the REPL after the script; on a pipe it prints results but no prompts
echo 'y = 5' >"$tmp/set.lua"
printf 'y * 2\ny;\nfunction f()\n  return "multi"\nend\nf()\n' >"$tmp/in.lua"
run "$FTLUA" -i "$tmp/set.lua" <"$tmp/in.lua"
if [ $rc -eq 0 ] && is "$out" "10
multi"; then ok cli_interactive_pipe; else fail cli_interactive_pipe "rc=$rc, want 10 and multi only"; fi

# ---- an error in the REPL is reported and the REPL goes on
printf 'error("first")\nprint("still here")\n' >"$tmp/in.lua"
run "$FTLUA" -i <"$tmp/in.lua"
if [ $rc -eq 0 ] && is "$out" "still here" && has "$err" "stdin:1: first"; then
    ok cli_repl_error_continues
else
    fail cli_repl_error_continues "rc=$rc"
fi

# ---- a runtime error: status 1, program name, message with file:line, traceback
cat >"$tmp/err.lua" <<'EOF'
local function inner()
  error("boom")
end
inner()
EOF
run "$FTLUA" "$tmp/err.lua" </dev/null
if [ $rc -eq 1 ] && has "$err" "$prog: $tmp/err.lua:2: boom" && has "$err" "stack traceback:" \
   && has "$err" "$tmp/err.lua:4: in main chunk"; then
    ok cli_error_traceback
else
    fail cli_error_traceback "rc=$rc, want status 1 and a traceback naming err.lua:2 and :4"
fi

# ---- a mistake caught inside the library is said at the script's line, with no library frames
cat >"$tmp/lib.lua" <<'EOF'
local L = ft.learner.LearnerClass
print("start")
L.fit_one_cycle({}, "3")
EOF
run "$FTLUA" "$tmp/lib.lua" </dev/null
if [ $rc -eq 1 ] && is "$err" "$prog: $tmp/lib.lua:3: fit_one_cycle: the number of epochs must be a positive integer, got the string \"3\""; then
    ok cli_error_at_user_line
else
    fail cli_error_at_user_line "rc=$rc, want one line at lib.lua:3"
fi
# ...and so is a data-module mistake (the issue's V.Resize("96"))
printf 'local V = ft.vision\nlocal r = V.Resize("96")\n' >"$tmp/resize.lua"
run "$FTLUA" "$tmp/resize.lua" </dev/null
if [ $rc -eq 1 ] && is "$err" "$prog: $tmp/resize.lua:2: Resize: size must be a positive integer or {h, w}, got the string \"96\" (write Resize(96), without quotes)"; then
    ok cli_data_error_at_user_line
else
    fail cli_data_error_at_user_line "rc=$rc, want one line at resize.lua:2, got: $err"
fi
printf 'print(1)\nlocal l = ft.load_learner("nope.safetensors")\n' >"$tmp/ll.lua"
run "$FTLUA" "$tmp/ll.lua" </dev/null
if [ $rc -eq 1 ] && has "$err" "$prog: $tmp/ll.lua:2: load_learner: nope.safetensors does not exist"; then
    ok cli_load_learner_error_at_user_line
else
    fail cli_load_learner_error_at_user_line "rc=$rc, want the line at ll.lua:2, got: $err"
fi
# ...and --traceback (or FTLUA_TRACEBACK=1) gives Lua's full message and traceback
run "$FTLUA" --traceback "$tmp/lib.lua" </dev/null
a=$rc; has "$err" "lua/ftlua/learner_api.lua:" && has "$err" "stack traceback:" && has "$err" "$tmp/lib.lua:3: in main chunk"; b=$?
run env FTLUA_TRACEBACK=1 "$FTLUA" "$tmp/lib.lua" </dev/null
if [ $a -eq 1 ] && [ $b -eq 0 ] && [ $rc -eq 1 ] && has "$err" "lua/ftlua/learner_api.lua:" && has "$err" "stack traceback:"; then
    ok cli_full_traceback
else
    fail cli_full_traceback "rc=$a/$rc, want library frames with --traceback and FTLUA_TRACEBACK=1"
fi

# ---- a misspelt name: did you mean, with the names the value has
printf 'local T = ft.tensor\nlocal x = T.zeros(2)\nprint(x:sumx())\n' >"$tmp/typo.lua"
run "$FTLUA" "$tmp/typo.lua" </dev/null
a=$rc; is "$err" "$prog: $tmp/typo.lua:3: attempt to call a nil value (method 'sumx'); did you mean sum?"; b=$?
printf 'local T = ft.tensor\nT.zerso(2)\n' >"$tmp/typo.lua"
run "$FTLUA" "$tmp/typo.lua" </dev/null
if [ $a -eq 1 ] && [ $b -eq 0 ] && [ $rc -eq 1 ] &&
   is "$err" "$prog: $tmp/typo.lua:2: attempt to call a nil value (field 'zerso'); did you mean zeros?"; then
    ok cli_did_you_mean
else
    fail cli_did_you_mean "rc=$a/$rc"
fi

# ---- help() from a script prints the entry of docs/api.md
run "$FTLUA" -e 'help(ft.tensor.zeros) help("ft.nope")' </dev/null
if [ $rc -eq 0 ] && has "$out" "T.zeros(shape), T.zeros(d1, d2, ...)" && has "$out" "see docs/tensor.md#creating-tensors" &&
   has "$out" "help: ft has no field 'nope'"; then
    ok cli_help_global
else
    fail cli_help_global "rc=$rc"
fi

# ---- a syntax error: status 1, file:line
printf 'x = 1\nif then\n' >"$tmp/syn.lua"
run "$FTLUA" "$tmp/syn.lua" </dev/null
if [ $rc -eq 1 ] && has "$err" "$tmp/syn.lua:2:"; then ok cli_syntax_error; else fail cli_syntax_error "rc=$rc"; fi

# ---- error objects with __tostring are shown through it; -e errors fail too
run "$FTLUA" -e 'error(setmetatable({}, {__tostring = function() return "custom error" end}))' </dev/null
if [ $rc -eq 1 ] && has "$err" "$prog: custom error"; then ok cli_error_tostring; else fail cli_error_tostring "rc=$rc"; fi

# ---- a missing script
run "$FTLUA" "$tmp/no-such.lua" </dev/null
if [ $rc -eq 1 ] && has "$err" "no-such.lua"; then ok cli_missing_script; else fail cli_missing_script "rc=$rc"; fi

# ---- SIGINT stops a running script with "interrupted!" (no position) and status 130, as a shell reports it.
# sh starts background jobs with SIGINT ignored (and ftlua then leaves it so): undo that.
rm -f "$tmp/started"
env --default-signal=INT "$FTLUA" -e "io.open('$tmp/started', 'w'):close() while true do end" >"$out" 2>"$err" </dev/null &
pid=$!
tries=100
while [ ! -f "$tmp/started" ] && [ $tries -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
kill -INT "$pid" 2>/dev/null
tries=50
while kill -0 "$pid" 2>/dev/null && [ $tries -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"; wait "$pid" 2>/dev/null
    fail cli_sigint "still running 5 s after SIGINT"
else
    wait "$pid"; rc=$?
    if [ $rc -eq 130 ] && [ "$(cat "$err")" = "$prog: interrupted!" ]; then ok cli_sigint; else fail cli_sigint "rc=$rc, stderr: $(cat "$err")"; fi
fi

# ---- ...and in the learner's C training loop too: 130, no position
cat >"$tmp/fit.lua" <<EOF
local T, nn = ft.tensor, ft.nn
T.manual_seed(0)
local x, y = (T.rand { 2048, 16, 16 } * 255):to("uint8"), T.randint(1, 3, { 2048 })
local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x:narrow(1, 1, 64), y:narrow(1, 1, 64),
  { bs = 16, channels = 1, verbose = false, seed = 1, vocab = { "a", "b" } })
local learn = ft.Learner(dls, nn.Sequential { nn.Flatten(), nn.Linear(256, 2) })
io.open("$tmp/fitting", "w"):close()
learn:fit(1000, 1e-3)
EOF
env --default-signal=INT "$FTLUA" "$tmp/fit.lua" >"$out" 2>"$err" </dev/null &
pid=$!
tries=300
while [ ! -f "$tmp/fitting" ] && [ $tries -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
sleep 1
kill -INT "$pid" 2>/dev/null
tries=300
while kill -0 "$pid" 2>/dev/null && [ $tries -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"; wait "$pid" 2>/dev/null
    fail cli_sigint_fit "still running 30 s after SIGINT"
else
    wait "$pid"; rc=$?
    if [ $rc -eq 130 ] && [ "$(cat "$err")" = "$prog: interrupted!" ]; then ok cli_sigint_fit; else fail cli_sigint_fit "rc=$rc"; fi
fi

# ---- ...but an ignored SIGINT stays ignored (the shell's background jobs)
rm -f "$tmp/started"
"$FTLUA" -e "io.open('$tmp/started', 'w'):close() local t = os.clock() while os.clock() - t < 0.5 do end print('done')" \
    >"$out" 2>"$err" </dev/null &
pid=$!
tries=100
while [ ! -f "$tmp/started" ] && [ $tries -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
kill -INT "$pid" 2>/dev/null
wait "$pid"; rc=$?
if [ $rc -eq 0 ] && is "$out" "done"; then ok cli_sigint_ignored; else fail cli_sigint_ignored "rc=$rc"; fi

# ---- the GC runs in generational mode, as in lua.c
run "$FTLUA" -e 'print(collectgarbage("incremental"))' </dev/null
if [ $rc -eq 0 ] && is "$out" "generational"; then ok cli_gc_generational; else fail cli_gc_generational "rc=$rc"; fi

# ---- --version: ftlua's version (from ftlua.h), Lua's, libtorch's, the devices
version=$(sed -n 's/^#define FTLUA_VERSION "\(.*\)"/\1/p' runtime/ftlua.h)
run "$FTLUA" --version </dev/null
if [ $rc -eq 0 ] && [ -n "$version" ] && has "$out" "ftlua $version" && has "$out" "Lua 5.4" \
   && grep -Eq '^libtorch [0-9]' "$out" && grep -Eq '^devices: cpu( cuda:[0-9]+)*$' "$out"; then
    ok cli_version
else
    fail cli_version "rc=$rc, want ftlua $version, Lua 5.4, libtorch N, devices: cpu ..."
fi

# ---- --help and -h: usage on stdout, status 0
run "$FTLUA" --help </dev/null
if [ $rc -eq 0 ] && has "$out" "usage: $prog" && has "$out" "-e code" && has "$out" "-i" \
   && has "$out" "--version"; then ok cli_help; else fail cli_help "rc=$rc"; fi

# ---- an unknown option: a message and the usage on stderr, status 1, nothing run
run "$FTLUA" --bogus -e 'print("ran")' </dev/null
if [ $rc -eq 1 ] && has "$err" "unrecognized option '--bogus'" && has "$err" "usage:" && [ ! -s "$out" ]; then
    ok cli_unknown_option
else
    fail cli_unknown_option "rc=$rc"
fi
run "$FTLUA" -e </dev/null
if [ $rc -eq 1 ] && has "$err" "'-e' needs an argument"; then ok cli_missing_value; else fail cli_missing_value "rc=$rc"; fi

[ "$failures" -eq 0 ]
