-- test_untar.lua: ft.untar_data and ft.URLs.
-- References: archives built at test time by tar (and Python's tarfile for the evil one),
-- served by tests/py/file_server.py on 127.0.0.1, whose log says which requests it saw; the
-- extracted files are compared with the originals by diff -r.
local ft = require "ftlua"
local H = require "harness"

local ROOT = os.getenv("FTLUA_ROOT") or "."
local PY = os.getenv("FTLUA_PYTHON") or "/usr/bin/python3"
local FTLUA = ROOT .. "/ftlua"
local DIR = H.tmpdir()

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function run(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
local function exists(path) return os.execute("test -e " .. q(path)) == true end
local function sh(cmd) assert(os.execute(cmd), "failed: " .. cmd) end

H.test("URLs are fastai's", function()
  H.eq(ft.URLs.PETS, "https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz", "PETS")
  H.eq(ft.URLs.MNIST_SAMPLE, "https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz", "MNIST_SAMPLE")
  H.eq(ft.URLs.IMAGENETTE_160, "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz", "IMAGENETTE_160")
  H.eq(ft.untar_data, ft.untar.untar_data, "alias")
  H.errors(function() ft.untar_data("ftp://x/y.tgz") end, "URL must start with http:// or https://")
  H.errors(function() ft.untar_data("http://x/y.tgz", { dst = "a" }) end, "unknown option 'dst'")
end)

-- Build the archives: two small datasets, a corrupt one, one with a ../evil member.
local SRC, SRV = DIR .. "/src", DIR .. "/served"
sh(("mkdir -p %s/ds1/sub %s/ds2 %s"):format(q(SRC), q(SRC), q(SRV)))
write_file(SRC .. "/ds1/a.txt", "hello\n")
write_file(SRC .. "/ds1/sub/b.txt", ("line\n"):rep(100))
sh(("head -c 300000 /dev/urandom > %s"):format(q(SRC .. "/ds2/big.bin")))
write_file(SRC .. "/ds2/small.txt", "x")
sh(("tar -czf %s -C %s ds1 && tar -czf %s -C %s ds2"):format(q(SRV .. "/ds1.tgz"), q(SRC),
  q(SRV .. "/ds2.tgz"), q(SRC)))
sh(("head -c 5000 /dev/urandom > %s"):format(q(SRV .. "/bad.tgz")))
sh(("%s -c %s"):format(PY, q(([[
import io, tarfile
with tarfile.open("%s/evil.tgz", "w:gz") as t:
    for name in ("evil/ok.txt", "../evil"):
        info = tarfile.TarInfo(name); info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
]]):format(SRV))))

local function start_server()
  local portfile, pidfile = DIR .. "/port", DIR .. "/server.pid"
  os.execute(("timeout 60 %s %s %s %s 55 >/dev/null 2>&1 & echo $! > %s"):format(PY,
    q(ROOT .. "/tests/py/file_server.py"), q(SRV), q(portfile), q(pidfile)))
  local pid = (read_file(pidfile) or ""):match("%d+")
  for _ = 1, 100 do
    local s = read_file(portfile)
    if s then
      local port, closed = s:match("(%d+) (%d+)")
      return tonumber(port), tonumber(closed), pid
    end
    os.execute("sleep 0.1")
  end
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  return nil
end

local PORT, CLOSED, PID = start_server()
local DATA, ARCH = DIR .. "/data", DIR .. "/archive"

-- untar_data(url) in a child ftlua with FTLUA_DATA_URL = base. Returns ok, value-or-message.
local function untar(base, url)
  local script = DIR .. "/child.lua"
  write_file(script, ("local ok, r = pcall(require('ftlua').untar_data, %q)\n"):format(url) ..
    "io.write('\\nRESULT ', ok and 'ok' or 'err', '\\n', tostring(r), '\\nEND\\n')\n")
  local out = run(("env FTLUA_DATA=%s FTLUA_ARCHIVE=%s FTLUA_DATA_URL=%s timeout 30 %s %s 2>&1"):format(
    q(DATA), q(ARCH), q(base), q(FTLUA), q(script)))
  local status, value = out:match("\nRESULT (%a+)\n(.-)\nEND\n$")
  if not status then error("child printed no result:\n" .. out, 2) end
  return status == "ok", value
end
local function requests() return read_file(SRV .. "/requests.log") or "" end
local function same_tree(a, b)
  local out, ok = run(("diff -r %s %s 2>&1"):format(q(a), q(b)))
  if not ok then error("extracted files differ:\n" .. out, 2) end
end
local function no_leftovers()
  local out = run(("ls -A %s"):format(q(DATA)))
  if out:find(".untar", 1, true) then error("temporary folder left in the data folder:\n" .. out, 2) end
end

if not PORT then
  H.skip("untar_data downloads", "the test server did not start (" .. PY .. " tests/py/file_server.py)")
else
  local BASE = ("http://127.0.0.1:%d/files/"):format(PORT)

  H.test("untar_data: downloads, extracts, then caches", function()
    local ok, path = untar(BASE, "https://example.invalid/fast-ai-sample/ds1.tgz")
    H.eq(ok, true, "first call: " .. tostring(path))
    H.eq(path, DATA .. "/ds1", "path")
    same_tree(path, SRC .. "/ds1")
    H.eq(exists(ARCH .. "/ds1.tgz"), true, "archive kept")
    H.eq(exists(ARCH .. "/ds1.tgz.part"), false, "no .part left")
    no_leftovers()
    local before = requests()
    if not before:find("/files/ds1.tgz -", 1, true) then error("server log: " .. before) end
    ok, path = untar(BASE, "https://example.invalid/fast-ai-sample/ds1.tgz")
    H.eq(ok, true, "second call")
    H.eq(path, DATA .. "/ds1", "second path")
    H.eq(requests(), before, "second call made no request")
  end)

  H.test("untar_data: a cut transfer resumes with a Range request", function()
    local ok, path = untar(("http://127.0.0.1:%d/cut/"):format(PORT), "http://h/ds2.tgz")
    H.eq(ok, true, "resumed call: " .. tostring(path))
    local log = requests()
    if not log:find("/cut/ds2.tgz -", 1, true) or not log:find("/cut/ds2.tgz bytes=%d+%-") then
      error("expected a plain then a Range request, log:\n" .. log)
    end
    same_tree(path, SRC .. "/ds2")
    H.eq(read_file(ARCH .. "/ds2.tgz"), read_file(SRV .. "/ds2.tgz"), "archive bytes")
    no_leftovers()
  end)

  H.test("untar_data: a corrupt archive errors and leaves nothing", function()
    local ok, msg = untar(BASE, "http://h/bad.tgz")
    H.eq(ok, false, "corrupt archive")
    if not msg:find("cannot read the archive", 1, true) then error("message: " .. msg) end
    H.eq(exists(DATA .. "/bad"), false, "no bad folder")
    H.eq(exists(ARCH .. "/bad.tgz"), false, "corrupt archive deleted")
    no_leftovers()
  end)

  H.test("untar_data: refuses ../ members", function()
    local ok, msg = untar(BASE, "http://h/evil.tgz")
    H.eq(ok, false, "evil archive")
    if not msg:find("refusing to extract", 1, true) or not msg:find("../evil", 1, true) then
      error("message: " .. msg)
    end
    H.eq(exists(DATA .. "/evil"), false, "no evil folder")
    H.eq(exists(DIR .. "/evil"), false, "nothing written outside")
    no_leftovers()
  end)

  H.test("untar_data: offline names the URL and the folder", function()
    local base = ("http://127.0.0.1:%d/"):format(CLOSED)
    local ok, msg = untar(base, ft.URLs.PETS)
    H.eq(ok, false, "offline")
    for _, want in ipairs({ "cannot download " .. base .. "oxford-iiit-pet.tgz",
                            "Put the extracted folder at " .. DATA .. "/oxford-iiit-pet and run again." }) do
      if not msg:find(want, 1, true) then error(("message %q lacks %q"):format(msg, want)) end
    end
    H.eq(exists(DATA .. "/oxford-iiit-pet"), false, "no folder")
  end)

  os.execute("kill " .. PID .. " 2>/dev/null")
end
os.execute("rm -rf " .. q(DIR))
H.done()
