# crash_lib.sh: what tests/audit/crash_writes.sh and full_disk.sh share (sourced from the
# repository root): the writers, their targets, and the checks of "the old file or the new one,
# whole". Sets FTLUA, PY, tmp (removed at exit), failures=0, ok/fail/skip.
FTLUA=${FTLUA:-./ftlua}
PY=${FTLUA_PYTHON:-/usr/bin/python3}
export LUA_PATH="$PWD/tests/lua/?.lua;;" FTLUA_ROOT="$PWD"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
ok() { echo "ok $1"; }
skip() { echo "skip $1: $2"; }
fail() {
    echo "FAIL $1: $2"
    failures=$((failures + 1))
    [ -n "$3" ] && [ -s "$3" ] && sed 's/^/    > /' "$3" | tail -8
}
KINDS=${CRASH_KINDS:-"save export weights backbone savemodel csv plot report untar"}

# The untar writer downloads through a stand-in for curl that copies $FAKE_ARCHIVE.
cat >"$tmp/fake_curl" <<'SH'
#!/bin/sh
out=
while [ $# -gt 0 ]; do [ "$1" = --output ] && { out=$2; shift; }; shift; done
cat "$FAKE_ARCHIVE" >"$out"
SH
chmod +x "$tmp/fake_curl"
make_archive() { # dest.tgz variant: a folder "audit" of 300 files of 4 KB
    d=$(mktemp -d)
    mkdir -p "$d/audit/sub"
    i=0
    while [ $i -lt 300 ]; do
        head -c 4096 /dev/urandom >"$d/audit/sub/f$i.bin"
        i=$((i + 1))
    done
    echo "variant $2" >"$d/audit/VARIANT"
    tar -czf "$1" -C "$d" audit
    rm -rf "$d"
}

# target KIND BASE: the path the writer writes; watch KIND BASE: the folder its temp appears in
target() {
    case $1 in
    save) echo "$2/save/models/ck.safetensors" ;;
    savemodel) echo "$2/savemodel/models/best.safetensors" ;;
    csv) echo "$2/csv/history.csv" ;;
    export) echo "$2/export.safetensors" ;;
    weights) echo "$2/weights.safetensors" ;;
    backbone) echo "$2/backbone.safetensors" ;;
    plot) echo "$2/plot.png" ;;
    report) echo "$2/report.html" ;;
    untar) echo "$2/data/audit" ;;
    esac
}
watch_dir() { dirname "$(target "$1" "$2")"; }

# write KIND BASE VARIANT: runs the writer in the foreground; in the background with &
write() {
    case $1 in
    save | savemodel | csv) mkdir -p "$2/$1" && "$FTLUA" tests/audit/crash_writer.lua "$1" "$2/$1" "$3" ;;
    report)
        printf 'print("variant %s")\nfor i = 1, 2000 do print(("line %%d of the report"):format(i)) end\n' "$3" >"$tmp/report_$3.lua"
        "$FTLUA" --report "$(target report "$2")" "$tmp/report_$3.lua" ;;
    untar)
        mkdir -p "$2/data" "$tmp/archive"
        FTLUA_CURL="$tmp/fake_curl" FAKE_ARCHIVE="$tmp/audit_$3.tgz" FTLUA_ARCHIVE="$tmp/archive" \
            "$FTLUA" tests/audit/crash_writer.lua untar "$2/data" "$3" ;;
    *) "$FTLUA" tests/audit/crash_writer.lua "$1" "$(target "$1" "$2")" "$3" ;;
    esac
}

# fingerprint PATH: a file's bytes or a folder's files and bytes, as one md5
fingerprint() {
    if [ -d "$1" ]; then (cd "$1" && find . -type f -print0 | sort -z | xargs -0 md5sum) | md5sum | cut -d' ' -f1
    elif [ -f "$1" ]; then md5sum <"$1" | cut -d' ' -f1
    else echo absent; fi
}

# whole KIND PATH: the file is complete by its own format (for kinds whose new bytes vary:
# the report has timings; SaveModelCallback's file is the best epoch so far; CSVLogger's holds
# the epochs so far)
whole() {
    case $1 in
    report) [ -s "$2" ] && [ "$(tail -c 8 "$2")" = "</html>" ] ;;
    savemodel) "$PY" - "$2" <<'PY'
import json, os, struct, sys
p = sys.argv[1]
with open(p, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
end = max(v["data_offsets"][1] for k, v in h.items() if k != "__metadata__")
sys.exit(0 if 8 + n + end == os.path.getsize(p) and any(k.startswith("model.") for k in h) else 1)
PY
    ;;
    csv) # the first lines of the full file (header first, whole lines; the time column may
        # differ from the reference run's)
        [ -s "$2" ] && [ "$(tail -c 1 "$2" | od -An -c | tr -d ' ')" = '\n' ] && head -1 "$2" | grep -q '^epoch,' &&
            [ "$(sed 's/,[^,]*$//' "$2")" = "$(head -n "$(wc -l <"$2")" "$3" | sed 's/,[^,]*$//')" ] ;;
    *) return 1 ;;
    esac
}

# temps BASE: ftlua temp files and folders anywhere under BASE
temps() { find "$1" -name '*.ftlua-tmp.*' 2>/dev/null | wc -l; }
