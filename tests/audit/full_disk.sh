#!/bin/sh
# full_disk.sh: each writer on a full tmpfs gives a clear error (the file and "No space left on
# device"; a plot, whose writer gnuplot keeps its errno, may say that the disk is full), the old
# file stays as it was, and no empty file and no temp are left. Run by
# crash_writes.sh inside `unshare -m`, so the tmpfs is seen by nobody else; skips with the
# reason when the sandbox does not allow the mount.
cd "$(dirname "$0")/../.." || exit 2
. tests/audit/crash_lib.sh
make_archive "$tmp/audit_1.tgz" 1
make_archive "$tmp/audit_2.tgz" 2
mnt="$tmp/mnt"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=48m tmpfs "$mnt" 2>"$tmp/mount.err"; then
    skip full_disk "cannot mount a tmpfs here: $(cat "$tmp/mount.err")"
    exit 0
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$tmp"' EXIT
fill() { # fill the tmpfs to the last block
    dd if=/dev/zero of="$mnt/filler" bs=1M 2>/dev/null
    dd if=/dev/zero of="$mnt/filler2" bs=4k 2>/dev/null
    dd if=/dev/zero of="$mnt/filler3" bs=1 count=100000 2>/dev/null
}
for kind in $KINDS; do
    rm -rf "${mnt:?}"/*
    base="$mnt/$kind"
    mkdir -p "$base"
    path=$(target "$kind" "$base")
    if [ $kind = plot ] && ! command -v gnuplot >/dev/null; then skip "full_disk_$kind" "no gnuplot"; continue; fi
    if ! write "$kind" "$base" 1 >"$tmp/old.err" 2>&1; then fail "full_disk_$kind" "the old write failed" "$tmp/old.err"; continue; fi
    old=$(fingerprint "$path")
    fill
    write "$kind" "$base" 2 >"$tmp/out" 2>"$tmp/err"
    rc=$?
    rm -f "$mnt/filler" "$mnt/filler2" "$mnt/filler3"
    now=$(fingerprint "$path")
    empty=$(find "$base" -type f -empty | head -3)
    named=no
    # the error names the file (the folder, for untar_data) and the cause
    grep -qF -- "$path" "$tmp/err" && named=yes
    if [ $rc -eq 0 ]; then fail "full_disk_$kind" "the write on a full disk reported success" "$tmp/err"
    elif ! grep -q "No space left on device" "$tmp/err" &&
         ! { [ $kind = plot ] && grep -q "disk is full\|disk full" "$tmp/err"; }; then fail "full_disk_$kind" "the error does not say 'No space left on device'" "$tmp/err"
    elif [ $named = no ]; then fail "full_disk_$kind" "the error does not name $path" "$tmp/err"
    elif [ "$now" != "$old" ]; then fail "full_disk_$kind" "the old file changed"
    elif [ -n "$empty" ]; then fail "full_disk_$kind" "empty files left: $empty"
    elif [ "$(temps "$base")" -ne 0 ]; then fail "full_disk_$kind" "temp files left: $(find "$base" -name '*.ftlua-tmp.*' | head -3)"
    else
        echo "# $kind: $(grep -m1 'No space' "$tmp/err" | cut -c1-200)"
        ok "full_disk_$kind"
    fi
done
[ $failures -eq 0 ]
