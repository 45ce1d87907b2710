#!/bin/sh
# crash_writes.sh: kill -9 during every kind of write ftlua does, and check that the file at the
# path is always the old one or the new one, whole, and that no temp survives the next run.
# Then the full disk (full_disk.sh, in a mount namespace of its own). Run by `make audit`.
#
# For each writer (tests/audit/crash_writer.lua, the --report page, untar_data): write the old
# file (variant 1) and the new one (variant 2) once, as references; then CRASH_KILLS times: put
# the old file back, start the new write, wait until its temp file appears (so the kill lands in
# the write, not in libtorch's start), wait 0-3 ms more, kill -9, and compare. Kinds whose new
# bytes vary (timings in the report, the epochs so far of SaveModelCallback and CSVLogger) are
# checked for being whole by their format instead. Prints ok/FAIL/skip lines.
cd "$(dirname "$0")/../.." || exit 2
. tests/audit/crash_lib.sh
KILLS=${CRASH_KILLS:-8}
if [ ! -x "$PY" ]; then echo "skip crash_writes: no $PY to watch and kill the writers"; exit 0; fi
if [ ! -x "$FTLUA" ]; then echo "FAIL crash_binary: $FTLUA is not built"; exit 1; fi
make_archive "$tmp/audit_1.tgz" 1
make_archive "$tmp/audit_2.tgz" 2

# kill_in_write KIND BASE: starts the new write, and kills it with SIGKILL 0-3 ms after its temp
# appears (kill_watch.py)
kill_in_write() {
    write "$1" "$2" 2 >"$tmp/k.out" 2>&1 &
    pid=$!
    max_us=${CRASH_MAX_US:-3000}
    [ "$1" = csv ] && max_us=${CRASH_MAX_US:-50} # a CSV write takes tens of microseconds
    "$PY" tests/audit/kill_watch.py "$pid" "$(watch_dir "$1" "$2")" "$max_us"
    wait "$pid" 2>/dev/null
    sleep 0.2 # a --report or a plot has children of its own (the script, gnuplot): let them end
}

for kind in $KINDS; do
    base="$tmp/$kind"
    mkdir -p "$base"
    path=$(target "$kind" "$base")
    if [ $kind = plot ] && ! command -v gnuplot >/dev/null; then skip "crash_$kind" "no gnuplot"; continue; fi
    if ! write "$kind" "$base" 2 >"$tmp/ref.err" 2>&1; then fail "crash_$kind" "the new write failed" "$tmp/ref.err"; continue; fi
    rm -rf "$tmp/new"; cp -r "$path" "$tmp/new"
    new=$(fingerprint "$path")
    if ! write "$kind" "$base" 1 >"$tmp/ref.err" 2>&1; then fail "crash_$kind" "the old write failed" "$tmp/ref.err"; continue; fi
    rm -rf "$tmp/old"; cp -r "$path" "$tmp/old"
    old=$(fingerprint "$path")
    hits=0 bad=""
    i=0
    # up to 3x the kills when none has landed in the middle of the write yet (a loaded machine)
    while [ $i -lt "$KILLS" ] || { [ $hits -eq 0 ] && [ $i -lt $((KILLS * 3)) ]; }; do
        i=$((i + 1))
        rm -rf "$path"; cp -r "$tmp/old" "$path"
        find "$base" -name '*.ftlua-tmp.*' | sort >"$tmp/before"
        kill_in_write "$kind" "$base"
        # the kill landed in the middle of the write when it left a temp of its own behind
        find "$base" -name '*.ftlua-tmp.*' | sort >"$tmp/after"
        comm -13 "$tmp/before" "$tmp/after" | grep -q . && hits=$((hits + 1))
        now=$(fingerprint "$path")
        if [ "$now" != "$old" ] && [ "$now" != "$new" ] && ! whole "$kind" "$path" "$tmp/new"; then
            bad="kill $i left $path neither old nor new nor whole ($(ls -la "$path" 2>&1 | head -1))"
            break
        fi
    done
    left=$(temps "$base")
    # the next run: it removes what the killed runs left
    write "$kind" "$base" 2 >"$tmp/next.err" 2>&1 || bad="${bad:-the next run failed}"
    after=$(temps "$base")
    if [ -n "$bad" ]; then fail "crash_$kind" "$bad" "$tmp/next.err"
    elif [ "$after" -ne 0 ]; then fail "crash_$kind" "$after temp files survived the next run: $(find "$base" -name '*.ftlua-tmp.*' | head -3)"
    elif [ $hits -eq 0 ]; then fail "crash_$kind" "none of $i kills landed in the middle of the write (none left a temp)"
    else
        echo "# $kind: $hits of $i kills landed in the middle of the write (they left a temp), each left the old or the new file, whole; the next run removed the $left temps left"
        ok "crash_$kind"
    fi
done

# ---- the full disk, in a mount namespace of our own (a tmpfs we can fill)
if [ "$(id -u)" -ne 0 ]; then
    skip crash_full_disk "needs root to mount a tmpfs (run make audit as root)"
elif unshare -m true 2>/dev/null; then
    unshare -m sh tests/audit/full_disk.sh || failures=$((failures + 1))
else
    sh tests/audit/full_disk.sh || failures=$((failures + 1))
fi
[ $failures -eq 0 ]
