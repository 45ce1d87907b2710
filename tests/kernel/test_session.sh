#!/bin/sh
# Top-level locals carry from one REPL input to the next (runtime/kernel/session.c), and the
# rewrite leaves everything else alone: locals inside blocks, strings and comments that say
# "local", line numbers in errors.
cd "$(dirname "$0")/../.." || exit 2
out=$(./ftlua -i -e "" 2>&1 <<'LUA'
local a, b <const> = 40, 2
a + b
local function twice(v) return 2 * v end
twice(a)
local s = "local x = 1 -- local"
s
do local hidden = 1 end
hidden
local n
n
local t = {} for i = 1, 3 do local sq = i * i t[i] = sq end
sq, #t
local print_ = print
type(print_)
local e = 1
error("line " .. e)
LUA
)
expect() { # name, wanted line
    if printf '%s\n' "$out" | grep -qxF -- "$2"; then echo "ok $1"; else echo "FAIL $1: no line '$2' in:"; printf '%s\n' "$out"; fi
}
expect session_local_values "42"
expect session_local_function "80"
expect session_string_untouched "local x = 1 -- local"
expect session_block_local_stays_local "nil"
expect session_loop_local "nil	3"
expect session_local_alias "function"
expect session_error_line "stdin:1: line 1"
