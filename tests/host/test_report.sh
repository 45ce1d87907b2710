#!/bin/sh
# test_report.sh: ftlua --report out.html script.lua: the cells, their output, an embedded PNG
# plot, the error page; then the page in headless Chromium (skipped without /usr/bin/chromium).
# Prints "ok <name>", "FAIL <name>: <why>", "skip <name>: <why>". FTLUA=path overrides ./ftlua.
test_name=report; . tests/host/preamble.sh
PY=/usr/bin/python3

# ---- three cells: prints (locals kept across cells), a PNG plot, a tensor
cat >"$tmp/three.lua" <<'EOF'
-- prints
local who = "cells <&> co"
print("hello " .. who)
io.stderr:write("a warning\n")

-- a plot: no term, no output: a PNG under REPORT_DIR
local ys = {}
for i = 1, 20 do ys[i] = i * i end
ft.plot.plot{ {y = ys, title = "squares"}, title = "squares" }

-- a tensor
print(ft.tensor.ones{2, 3})
print(who:upper(), ...)
EOF
have_gnuplot=1
command -v "${FTLUA_GNUPLOT:-gnuplot}" >/dev/null 2>&1 || have_gnuplot=0
if [ $have_gnuplot = 0 ]; then
    sed -i 's/^ft.plot.plot.*$/print("no gnuplot")/' "$tmp/three.lua"
fi
mkdir -p "$tmp/tmpdir"
TMPDIR="$tmp/tmpdir" timeout 120 "$FTLUA" --report "$tmp/three.html" "$tmp/three.lua" x1 >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
html="$tmp/three.html"
if [ $rc -eq 0 ] && [ -s "$html" ]; then ok report_runs; else fail report_runs "rc=$rc"; fi
if has "$tmp/out" "hello cells <&> co" && has "$tmp/err" "a warning"; then
    ok report_echo
else fail report_echo "output not echoed to the terminal"; fi
n=$(grep -c '<div class="cell' "$html" 2>/dev/null)
if [ "$n" = 3 ]; then ok report_three_cells; else fail report_three_cells "cells: $n"; fi
if has "$html" 'print(&quot;hello &quot; .. who)' && has "$html" 'hello cells &lt;&amp;&gt; co' &&
   has "$html" '<pre class="stderr">a warning' && has "$html" 'CELLS &lt;&amp;&gt; CO	x1' &&
   has "$html" '[float32 tensor of size 2x3 on cpu]'; then
    ok report_code_and_output
else fail report_code_and_output "code, escaped output or tensor missing"; fi
if [ $have_gnuplot = 1 ]; then
    size=$(timeout 30 $PY - "$html" <<'EOF' 2>&1
import base64, io, re, sys
from PIL import Image
page = open(sys.argv[1]).read()
cells = page.split('<div class="cell')[1:]
imgs = [re.findall(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', c) for c in cells]
assert [len(i) for i in imgs] == [0, 1, 0], [len(i) for i in imgs]
data = base64.b64decode(imgs[1][0], validate=True)
assert data[:8] == b"\x89PNG\r\n\x1a\n"
im = Image.open(io.BytesIO(data)); im.load()
print("%dx%d" % im.size)
EOF
)
    if [ "$size" = 640x480 ]; then ok report_png_inline; else fail report_png_inline "$size"; fi
else
    echo "skip report_png_inline: no gnuplot"
fi
if [ -z "$(ls -A "$tmp/tmpdir")" ] && ! ls ./ftlua-fig*.png >/dev/null 2>&1; then
    ok report_no_litter
else fail report_no_litter "plot files left behind"; fi

# ---- figures the script writes to files of its own: each one lands in the cell that wrote it
# (an ft.plot output, then a show_batch grid), and stays where the script put it
if [ $have_gnuplot = 1 ]; then
    mkdir -p "$tmp/own"
    cat >"$tmp/own.lua" <<EOF
print("nothing drawn")

ft.plot.plot{ {y = {1, 4, 9}}, output = "$tmp/own/curve.png" }

local x = ft.tensor.randint(0, 256, {4, 8, 8}):byte()
local y = ft.tensor.tensor{1, 2, 1, 2}:long()
local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, {bs = 4, verbose = false})
dls:show_batch{nrows = 2, ncols = 2, path = "$tmp/own/batch.png"}
EOF
    timeout 120 "$FTLUA" --report "$tmp/own.html" "$tmp/own.lua" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    counts=$(timeout 30 $PY - "$tmp/own.html" <<'EOF' 2>&1
import re, sys
cells = open(sys.argv[1]).read().split('<div class="cell')[1:]
print(" ".join(str(len(re.findall(r'src="data:image/png;base64,', c))) for c in cells))
EOF
)
    if [ $rc -eq 0 ] && [ "$counts" = "0 1 1" ] && [ -s "$tmp/own/curve.png" ] && [ -s "$tmp/own/batch.png" ]; then
        ok report_own_files_inline
    else fail report_own_files_inline "rc=$rc, images per cell: $counts"; fi
else
    echo "skip report_own_files_inline: no gnuplot"
fi

# ---- an error: exit 1, the page still written, the failing cell marked, later cells not run
cat >"$tmp/bad.lua" <<'EOF'
print("before")

local function boom() error("kaboom <here>") end
boom()

print("never")
EOF
timeout 60 "$FTLUA" --report "$tmp/bad.html" "$tmp/bad.lua" >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
if [ $rc -eq 1 ] && has "$tmp/err" "kaboom <here>" && [ -s "$tmp/bad.html" ] &&
   has "$tmp/bad.html" '<div class="cell failed" id="cell-2">' &&
   has "$tmp/bad.html" 'kaboom &lt;here&gt;' && has "$tmp/bad.html" 'stack traceback' &&
   has "$tmp/bad.html" '<div class="cell notrun" id="cell-3">' && ! has "$tmp/out" never; then
    ok report_error
else fail report_error "rc=$rc"; fi

# a syntax error: exit 1 and a page that says so
printf 'print("a")\n\nx = = 1\n' >"$tmp/syntax.lua"
timeout 60 "$FTLUA" --report "$tmp/syntax.html" "$tmp/syntax.lua" >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
if [ $rc -eq 1 ] && has "$tmp/syntax.html" 'does not compile' && has "$tmp/syntax.html" "unexpected symbol"; then
    ok report_syntax_error
else fail report_syntax_error "rc=$rc"; fi

# an unwritable page: exit 1, a message, nothing left behind
timeout 60 "$FTLUA" --report "$tmp/no/dir/x.html" "$tmp/three.lua" >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
if [ $rc -eq 1 ] && has "$tmp/err" "cannot write"; then ok report_unwritable; else fail report_unwritable "rc=$rc"; fi

# ---- the page in a browser
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    echo "skip report_chromium: $CHROMIUM is missing (apt-get install chromium)"
else
    prof="$tmp/profile"
    mkdir -p "$prof"
    flags="--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage --user-data-dir=$prof"
    # shellcheck disable=SC2086
    timeout 90 "$CHROMIUM" $flags --dump-dom "file://$html" >"$tmp/dom.html" 2>"$tmp/chromium.err" </dev/null
    rc=$?
    n=$(grep -c '<div class="cell' "$tmp/dom.html")
    if [ $rc -eq 0 ] && [ "$n" = 3 ] && has "$tmp/dom.html" 'id="status">finished' &&
       { [ $have_gnuplot = 0 ] || grep -q '<img alt="plot" src="data:image/png;base64,' "$tmp/dom.html"; }; then
        ok report_chromium_dom
    else fail report_chromium_dom "rc=$rc, cells in the DOM: $n"; fi
    # shellcheck disable=SC2086
    timeout 90 "$CHROMIUM" $flags --window-size=1200,1600 --screenshot="$tmp/shot.png" "file://$html" \
        >/dev/null 2>>"$tmp/chromium.err" </dev/null
    rc=$?
    size=$(timeout 30 $PY -c 'import sys; from PIL import Image; im = Image.open(sys.argv[1]); im.load(); print("%dx%d" % im.size)' "$tmp/shot.png" 2>&1)
    if [ $rc -eq 0 ] && [ -s "$tmp/shot.png" ] && [ "$size" = 1200x1600 ]; then
        ok report_chromium_screenshot
    else fail report_chromium_screenshot "rc=$rc, $size"; fi
fi

[ $failures -eq 0 ]
