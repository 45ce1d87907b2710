#!/bin/sh
# ftlua.so is a C module library for a stock lua5.4: `require "ftlua"` finds luaopen_ftlua.
cd "$(dirname "$0")/../.." || exit 2
if ! command -v lua5.4 >/dev/null 2>&1; then
    echo "skip lua5.4 require: lua5.4 is not installed (apt-get install lua5.4)"
    exit 0
fi
out=$(LUA_CPATH="./?.so" lua5.4 -e '
local ft = require "ftlua"
local T = ft.tensor
local a = T.tensor{{1, 2}, {3, 4}}
print(a:matmul(a):sum():item(), ft.version, require("ftlua") == ft)
' 2>&1)
case "$out" in
    "54.0	"*"	true") echo "ok lua5.4 require ftlua" ;;
    *) echo "FAIL lua5.4 require ftlua: $out" ;;
esac
# No global side effects: the module returns its table and sets no globals.
out=$(LUA_CPATH="./?.so" lua5.4 -e 'local n = 0; for _ in pairs(_G) do n = n + 1 end
local ft = require "ftlua"; local m = 0; for k in pairs(_G) do m = m + 1 end; print(m - n)' 2>&1)
[ "$out" = "0" ] && echo "ok require sets no globals" || echo "FAIL require sets no globals: $out"
