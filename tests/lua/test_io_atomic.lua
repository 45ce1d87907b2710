-- test_io_atomic.lua: ft.io, the atomic writer for Lua code (runtime/tensor/atomic_lua.c over
-- runtime/io/atomic.c, whose C test is tests/c/test_atomic.c). Known values: the bytes written,
-- the files left in the folder.
local ft = require "ftlua"
local H = require "harness"
local IO = ft.io

local DIR = H.tmpdir()

local read = H.read_file

local function listing()
  local out, p = {}, io.popen("ls -A '" .. DIR .. "'")
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return table.concat(out, " ")
end

H.test("write_atomic writes and replaces, leaving only the file", function()
  local p = DIR .. "/a.txt"
  IO.write_atomic(p, "old\n")
  H.eq(read(p), "old\n", "first write")
  IO.write_atomic(p, ("x"):rep(100000))
  H.eq(#read(p), 100000, "replaced")
  IO.write_atomic(p, "")
  H.eq(read(p), "", "an empty string makes an empty file")
  H.eq(listing(), "a.txt", "files in the folder")
end)

H.test("open_atomic: pieces, commit; abort and <close> without commit keep the old file", function()
  local p = DIR .. "/b.csv"
  local w = IO.open_atomic(p)
  H.eq(w:write("epoch,", 1, "\n"), w, "write returns the file")
  w:write(2.5, "\n")
  H.eq(read(p), nil, "nothing at the path before commit")
  w:commit()
  H.eq(read(p), "epoch,1\n2.5\n", "committed")
  H.errors(function() w:commit() end, "already committed or aborted")
  local w2 = IO.open_atomic(p)
  w2:write("half")
  w2:abort()
  H.eq(read(p), "epoch,1\n2.5\n", "abort keeps the old file")
  do
    local w3 <close> = IO.open_atomic(p)
    w3:write("never committed")
  end
  H.eq(read(p), "epoch,1\n2.5\n", "<close> without commit keeps the old file")
  H.errors(function()
    local w4 <close> = IO.open_atomic(p)
    w4:write("then an error")
    error("boom")
  end, "boom")
  H.eq(read(p), "epoch,1\n2.5\n", "an error before commit keeps the old file")
  H.eq(listing(), "a.txt b.csv", "no temp left")
  H.errors(function() IO.open_atomic(p):write({}) end, "argument 1 must be a string or a number (got table)")
  collectgarbage()
  H.eq(listing(), "a.txt b.csv", "no temp left after a collected file")
end)

H.test("errors name the path and the cause", function()
  H.errors(function() IO.write_atomic(DIR .. "/no/such/c.txt", "x") end,
    "write_atomic: cannot write '" .. DIR .. "/no/such/c.txt': No such file or directory")
  H.errors(function() IO.open_atomic(DIR .. "/") end, "is not a file path (it ends with '/')")
  os.execute("mkdir '" .. DIR .. "/d'")
  H.errors(function() IO.write_atomic(DIR .. "/d", "x") end, "cannot replace '" .. DIR .. "/d'")
  H.eq(listing(), "a.txt b.csv d", "no temp left")
end)

os.execute("rm -rf '" .. DIR .. "'")
H.done()
