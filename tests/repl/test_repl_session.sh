#!/bin/sh
# test_repl_session.sh: replay examples/repl_session.md in the REPL and compare the screen.
#
# The input lines of the transcript (those after a "> " or ">> " prompt) are typed one at a time
# into ./ftlua running in a tmux pane (its own socket, a temporary HOME, one libtorch thread),
# each after the REPL is back at a prompt; then the whole pane, scrollback included, must equal
# the transcript, with timing figures masked (tests/repl/transcript.lua says how).
#
# FTLUA_TRANSCRIPT_UPDATE=1 writes the screen into the transcript instead (after a change of
# the printed output that is intended; review the diff).
# FTLUA=path overrides the binary (default ./ftlua, run from the repository root).
cd "$(dirname "$0")/../.." || exit 2
FTLUA=${FTLUA:-./ftlua}
SESSION=examples/repl_session.md
NAME=repl_session_transcript

if ! command -v tmux >/dev/null 2>&1; then
    echo "skip $NAME: tmux is not installed"; exit 0
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "skip $NAME: the session uses Debian's dataset-fashion-mnist (make deps)"; exit 0
fi
case "$FTLUA" in /*) ;; *) FTLUA="$PWD/$FTLUA" ;; esac
if [ ! -x "$FTLUA" ]; then
    echo "FAIL $NAME: $FTLUA is not built"; exit 1
fi

tmp=$(mktemp -d)
sock="ftlua-session-$$"
printf 'set -g history-limit 10000\n' >"$tmp/tmux.conf"
t() { tmux -L "$sock" -f "$tmp/tmux.conf" "$@" 2>/dev/null; }
cleanup() {
    t kill-server >/dev/null 2>&1
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$sock"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

# The whole pane, scrollback included, wrapped lines joined.
screen() { t capture-pane -p -J -S - -E - -t repl; }
# The number of prompt lines so far, and whether the last line is a bare prompt (idle).
prompts() { screen | grep -cE '^>>? ?'; }
idle() { screen | sed -e '/^$/d' | tail -1 | grep -qE '^>>? ?$'; }

# Wait until the REPL shows its n-th prompt and waits at it, for at most $2 seconds.
wait_prompt() {
    tries=$(( $2 * 10 ))
    while [ "$tries" -gt 0 ]; do
        if [ "$(prompts)" -ge "$1" ] && idle; then return 0; fi
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

"$FTLUA" tests/repl/transcript.lua inputs "$SESSION" >"$tmp/inputs" || { echo "FAIL $NAME: cannot read $SESSION"; exit 1; }

if ! t new-session -d -s repl -x 200 -y 50 \
        "env HOME='$tmp' INPUTRC=/dev/null TERM=xterm FTLUA_NUM_THREADS=1 '$FTLUA' 2>&1"; then
    echo "FAIL $NAME: tmux could not start a session"; exit 1
fi
n=1
if ! wait_prompt "$n" 20; then
    echo "FAIL $NAME: no prompt within 20 s"; screen | sed 's/^/    | /'; exit 1
fi
while IFS= read -r line; do
    # Type the text literally (tmux would read a trailing ';' as its own command separator).
    case "$line" in *\;) text="${line%;}\\;" ;; *) text=$line ;; esac
    [ -n "$text" ] && t send-keys -t repl -l -- "$text"
    t send-keys -t repl Enter
    n=$((n + 1))
    if ! wait_prompt "$n" 120; then
        echo "FAIL $NAME: no prompt within 120 s after typing: $line"; screen | tail -20 | sed 's/^/    | /'; exit 1
    fi
done <"$tmp/inputs"
screen >"$tmp/screen"

if [ -n "$FTLUA_TRANSCRIPT_UPDATE" ]; then
    "$FTLUA" tests/repl/transcript.lua update "$SESSION" "$tmp/screen"
    exit $?
fi
"$FTLUA" tests/repl/transcript.lua compare "$SESSION" "$tmp/screen"
