#!/bin/sh
# test_repl.sh: drive the ftlua REPL in a real terminal (a tmux pane) and read the screen back.
# Prints "ok <name>", "FAIL <name>: <why>" or "skip <name>: <why>" per check.
# FTLUA=path overrides the binary (default ./ftlua, run from the repository root).
FTLUA=${FTLUA:-./ftlua}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHECKS="repl_multiline repl_autoprint repl_semicolon_quiet repl_ctrl_c repl_ctrl_c_prompt repl_complete_field
repl_complete_method repl_timing repl_history repl_help repl_help_typo repl_nothing_prints_nothing
repl_error_at_user_line repl_method_typo repl_python_habit repl_bar_cleared repl_eof"

if ! command -v tmux >/dev/null 2>&1; then
    for c in $CHECKS; do echo "skip $c: tmux is not installed"; done
    exit 0
fi
case "$FTLUA" in /*) ;; *) FTLUA="$PWD/$FTLUA" ;; esac
if [ ! -x "$FTLUA" ]; then
    echo "FAIL repl_start: $FTLUA is not built"
    exit 1
fi

tmp=$(mktemp -d)
sock="ftlua-test-$$"
t() { tmux -L "$sock" -f /dev/null "$@" 2>/dev/null; } # quiet: the session may have ended
# The server leaves its socket behind when the session ends by itself.
cleanup() {
    t kill-server >/dev/null 2>&1
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$sock"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP
failures=0

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }

screen() { t capture-pane -p -t repl 2>/dev/null; }

# Wait until the screen matches the extended regex $1, for at most $2 seconds (default 5).
wait_for() {
    tries=$(( ${2:-5} * 10 ))
    while [ "$tries" -gt 0 ]; do
        screen | grep -Eq -- "$1" && return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

# Type text literally (tmux would read a trailing ';' as its own command separator).
type_text() {
    case "$1" in *\;) set -- "${1%;}\\;" ;; esac
    t send-keys -t repl -l -- "$1"
}
line() { type_text "$1"; t send-keys -t repl Enter; }

# Start each check on an empty screen: Ctrl-L at the prompt, then wait for the bare prompt.
fresh() {
    t send-keys -t repl C-l
    t clear-history -t repl
    wait_for '^>$' 3
}

# Show the screen when a check fails.
dump() { screen | sed -e '/^$/d' -e 's/^/    | /'; }

# HOME points at the temp dir, so the history goes there; no inputrc or tmux config interferes.
if ! t new-session -d -s repl -x 100 -y 30 \
        "env HOME='$tmp' INPUTRC=/dev/null TERM=xterm '$FTLUA' 2>&1"; then
    echo "FAIL repl_start: tmux could not start a session"
    exit 1
fi
if ! wait_for '^> ?$' 20; then
    echo "FAIL repl_start: no prompt within 20 s"
    dump
    exit 1
fi

# ---- a function defined over several lines, then called
fresh
line 'function double(a)'
line '  return a * 2'
line 'end'
line 'double(21)'
if wait_for '^42$' && screen | grep -q '^>>   return a \* 2' && screen | grep -q '^>> end'; then
    ok repl_multiline
else
    fail repl_multiline "no '>>' continuation or no 42 from double(21)"; dump
fi

# ---- an expression is printed without '=', and a fast command prints no timing
fresh
line '1+1'
line 'print("mark" .. "1")'
if wait_for '^mark1$' && screen | grep -A1 '^> 1+1$' | grep -q '^2$' && ! screen | grep -q 's\]'; then
    ok repl_autoprint
else
    fail repl_autoprint "1+1 did not show 2 (or showed a timing line)"; dump
fi

# ---- a trailing ';' suppresses printing
fresh
line '2+3;'
line 'print("mark" .. "2")'
if wait_for '^mark2$' && ! screen | grep -q '^5$'; then
    ok repl_semicolon_quiet
else
    fail repl_semicolon_quiet "2+3; printed its value"; dump
fi

# ---- Ctrl-C stops a running loop, back at the prompt with the globals intact
fresh
line 'kept = 7'
line 'while true do end'
wait_for '^> while true do end$' && sleep 0.3 # running: a Ctrl-C while typing would drop it
t send-keys -t repl C-c
if wait_for 'interrupted!' && wait_for '^>$' && { line 'kept * 6'; wait_for '^42$'; }; then
    ok repl_ctrl_c
else
    fail repl_ctrl_c "no 'interrupted!', no prompt after it, or the global was lost"; dump
fi

# ---- Ctrl-C while typing drops the unfinished input and gives a fresh prompt
fresh
line 'function half('
wait_for '^>> ?$'
t send-keys -t repl C-c
wait_for '^> ?$' # the fresh prompt: keys typed before it could land in the dropped line
line '1+2'
if wait_for '^3$' && ! screen | grep -q "'end' expected"; then
    ok repl_ctrl_c_prompt
else
    fail repl_ctrl_c_prompt "the unfinished 'function half(' was not dropped"; dump
fi

# ---- Tab completes a nested field
fresh
type_text 'ft.tensor.zer'
t send-keys -t repl Tab
if wait_for '^> ft\.tensor\.zeros'; then
    ok repl_complete_field
else
    fail repl_complete_field "ft.tensor.zer<Tab> did not become ft.tensor.zeros"; dump
fi
t send-keys -t repl C-u

# ---- Tab completes a method from the value's metatable (tensors have :totable)
fresh
line 'tt = ft.tensor.zeros(2, 2)'
type_text 'tt:tota'
t send-keys -t repl Tab
if wait_for '^> tt:totable'; then
    ok repl_complete_method
else
    fail repl_complete_method "tt:tota<Tab> did not become tt:totable"; dump
fi
t send-keys -t repl C-u

# ---- a slow command prints its time
fresh
line 'local t0 = os.clock() while os.clock() - t0 < 0.3 do end'
if wait_for '^\[[0-9]+\.[0-9][0-9]s\]$'; then
    ok repl_timing
else
    fail repl_timing "no [N.NNs] line after a 0.3 s loop"; dump
fi

# ---- every entry is appended to ~/.ftlua_history as it is entered
hist="$tmp/.ftlua_history"
if [ -f "$hist" ] && grep -q '^kept = 7$' "$hist" && grep -q '^function double(a)$' "$hist"; then
    ok repl_history
else
    fail repl_history "$hist lacks the entries typed"
    [ -f "$hist" ] && sed 's/^/    | /' "$hist"
fi

# ---- help: ?name and help(value) print the entry of docs/api.md; help() says how
row=$(grep -m1 '^| `ft.plot.imagesc(' "$ROOT/docs/api.md" | cut -d'|' -f3 | sed 's/^ *//; s/ *$//')
fresh
# each line waits for the answer before the next is typed (on a loaded machine typed-ahead
# keys would land in the middle of the previous answer)
line '?ft.plot.imagesc'
wait_for '^ft.plot.imagesc\(matrix'
line 'help(ft.tensor.zeros)'
wait_for '^T.zeros\(shape\)'
line 'help()'
if [ -n "$row" ] && wait_for 'help\(x\) shows the API reference' && screen | grep -q '^ft.plot.imagesc(matrix \[, opts\])$' &&
   screen | grep -qF "    $row" && screen | grep -q '^T.zeros(shape), T.zeros(d1, d2, ...)$'; then
    ok repl_help
else
    fail repl_help "?ft.plot.imagesc, help(ft.tensor.zeros) or help() did not print their entries ('$row')"; dump
fi

# ---- help on a misspelt name: the close names the value has
fresh
line 'hx = ft.tensor.zeros(2)'
line '?hx:sumx'
if wait_for "help: hx has no method 'sumx'; did you mean sum\?"; then
    ok repl_help_typo
else
    fail repl_help_typo "?hx:sumx did not suggest sum"; dump
fi

# ---- a call that returns nothing prints nothing (and one that returns nil prints nil)
fresh
line 'function nothing() end'
line 'nothing()'
line 'print("mark" .. "3")'
if wait_for '^mark3$' && screen | grep -A1 '^> nothing()$' | tail -1 | grep -q '^> print'; then
    ok repl_nothing_prints_nothing
else
    fail repl_nothing_prints_nothing "nothing() printed something"; dump
fi

# ---- a mistake caught inside the library is reported at stdin:1, without library frames
fresh
line 'T, V = ft.tensor, ft.vision'
line 'dls = V.ImageDataLoaders.from_tensors((T.rand{16, 8, 8} * 255):byte(), T.randint(1, 3, {16}), (T.rand{8, 8, 8} * 255):byte(), T.randint(1, 3, {8}), {bs = 8, vocab = {"a", "b"}, device = "cpu", num_workers = 0, channels = 1, verbose = false})'
line 'learn = ft.Learner(dls, ft.nn.Sequential{ft.nn.Flatten(), ft.nn.Linear(64, 2)})'
line 'learn:fit_one_cycle("3", 1e-3)'
if wait_for '^stdin:1: fit_one_cycle: ' 20 && ! screen | grep -q 'lua/ftlua/' && ! screen | grep -q 'traceback'; then
    ok repl_error_at_user_line
else
    fail repl_error_at_user_line "the error was not said at stdin:1, or showed library frames"; dump
fi

# ---- a misspelt method: did you mean
fresh
line 'learn:fit_one_cyle(1)'
if wait_for "^stdin:1: attempt to call a nil value \(method 'fit_one_cyle'\); did you mean fit_one_cycle\?$"; then
    ok repl_method_typo
else
    fail repl_method_typo "no 'did you mean fit_one_cycle?'"; dump
fi

# ---- Python habits: an expression alone after statements says what Lua expects
fresh
line 'a = 1; a'
if wait_for '`a` alone is not a statement in Lua' && wait_for '^>$' && ! screen | grep -q '^>>'; then
    ok repl_python_habit
else
    fail repl_python_habit "'a = 1; a' fell into the continuation prompt or gave no hint"; dump
fi

# ---- a finished batch bar leaves nothing on its line: the prompt (or the timing line) that
# follows would show what is left, as "> och 2/2 :" or "[93.38s]2 :"
fresh
line 'bar = ft.learner_core.ProgressBar(1, 2, 4) for i = 0, 4 do bar:update(i) end bar:finish()'
wait_for '^> ?$' 5
if ! screen | grep -qE 'och [0-9]|[0-9]/2 :'; then
    ok repl_bar_cleared
else
    fail repl_bar_cleared "text of the batch bar stayed on the screen"; dump
fi

# ---- Ctrl-D on an empty line ends the REPL (and so the tmux session)
fresh
t send-keys -t repl C-d
tries=50
while [ "$tries" -gt 0 ] && t has-session -t repl 2>/dev/null; do sleep 0.1; tries=$((tries - 1)); done
if t has-session -t repl 2>/dev/null; then
    fail repl_eof "still running 5 s after Ctrl-D"; dump
else
    ok repl_eof
fi

[ "$failures" -eq 0 ]
