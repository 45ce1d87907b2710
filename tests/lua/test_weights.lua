-- test_weights.lua: ft.weights.load / save / pretrained.
-- References: checkpoints made at test time by torch.save (tests/py/weights_fixtures.py) with
-- the expected tensors written by the independent safetensors_ref.py encoder; round trips read
-- back by safetensors_ref.py and by torchvision; file hashes from sha256sum; the cache folder
-- from torch.hub.get_dir(); downloads from tests/py/file_server.py on 127.0.0.1.
local ft = require "ftlua"
local T = ft.tensor
local W = ft.weights
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

local function mkdir(path) assert(os.execute("mkdir -p " .. q(path))) end

-- Sorted entries of a folder ({} when it does not exist).
local function listdir(path)
  local out = run("ls -A " .. q(path) .. " 2>/dev/null")
  local names = {}
  for line in out:gmatch("[^\n]+") do names[#names + 1] = line end
  table.sort(names)
  return names
end

local function sha256sum(path)
  local out = run("sha256sum " .. q(path))
  return assert(out:match("^(%x+)"), "sha256sum failed: " .. out)
end

local function list_eq(got, want, what)
  if #got ~= #want then error(("%s: %d entries, want %d"):format(what, #got, #want), 2) end
  for i = 1, #want do
    if got[i] ~= want[i] then error(("%s[%d]: got %s, want %s"):format(what, i, tostring(got[i]), want[i]), 2) end
  end
end

local function shape_of(t)
  local sz, out = t:size(), {}
  for k = 1, t:dim() do out[k] = sz[k] end
  return table.concat(out, "x")
end

-- Every tensor of `want` is in `got` with the same dtype, shape and bytes.
local function same_tensors(got, want, what)
  local n = 0
  for name, w in pairs(want) do
    n = n + 1
    local g = got[name]
    if not T.is_tensor(g) then error(("%s: tensor %q missing"):format(what, name), 2) end
    if g:dtype() ~= w:dtype() or shape_of(g) ~= shape_of(w) then
      error(("%s: %s is %s %s, want %s %s"):format(what, name, g:dtype(), shape_of(g), w:dtype(), shape_of(w)), 2)
    end
    if g:tobytes() ~= w:tobytes() then error(("%s: %s values differ"):format(what, name), 2) end
  end
  for name in pairs(got) do
    if not want[name] then error(("%s: unexpected tensor %q"):format(what, name), 2) end
  end
  return n
end

-- ------------------------------------------------------------------ sha256

H.test("weights.sha256 equals sha256sum", function()
  local p = DIR .. "/random.bin"
  local parts = {}
  math.randomseed(7)
  for i = 1, 100003 do parts[i] = string.char(math.random(0, 255)) end
  write_file(p, table.concat(parts))
  H.eq(W.sha256(p), sha256sum(p), "sha256")
  H.errors(function() W.sha256(DIR .. "/missing") end, "weights.sha256", "missing")
end)

-- ------------------------------------------------------------------ load

local FIX = DIR .. "/fix"
local NAMES
if H.have_torch() then
  local out, ok = run(PY .. " " .. q(ROOT .. "/tests/py/weights_fixtures.py") .. " make " .. q(FIX) .. " 2>&1")
  local chunk = ok and load("return " .. out, "=fixtures", "t", {})
  if chunk then NAMES = chunk() else print("# fixtures failed: " .. out) end
end

if not NAMES then
  H.skip("weights.load fixtures", "no python3 with torch (" .. PY .. ")")
else
  local expected = T.load(FIX .. "/small_expected.safetensors")

  for _, f in ipairs { "small.pth", "small_legacy.pth" } do
    H.test("load " .. f .. ": names in state_dict order, dtypes, shapes, values", function()
      local t, names = W.load(FIX .. "/" .. f)
      list_eq(names, NAMES.small, "names")
      H.eq(same_tensors(t, expected, f), #NAMES.small, "tensor count")
      -- The strided views are copied element by element; spot-check one against torch's text.
      H.close(t.view_slice, { { 8, 9, 10 }, { 14, 15, 16 } }, 0, "view_slice")
      H.close(t.expanded, { { 0, 0, 0, 0 }, { 1, 1, 1, 1 }, { 2, 2, 2, 2 } }, 0, "expanded")
      H.eq(t.transposed:is_contiguous(), true, "loaded tensors are contiguous")
    end)
  end

  H.test("load safetensors (sniffed by content): header order and values", function()
    local t, names = W.load(FIX .. "/small_expected.safetensors")
    list_eq(names, NAMES.small, "names")
    same_tensors(t, expected, "safetensors")
    H.errors(function() W.load(FIX .. "/small_expected.safetensors", { key = "model" }) end,
      "is a safetensors file; the key option applies to PyTorch checkpoints")
  end)

  for _, f in ipairs { "nested.pth", "nested_legacy.pth" } do
    H.test("load " .. f .. " with key = 'model'", function()
      local t, names = W.load(FIX .. "/" .. f, { key = "model" })
      list_eq(names, NAMES.small, "names")
      same_tensors(t, expected, f)
      local _, all = W.load(FIX .. "/" .. f)
      H.eq(all[1], "model.f32", "without a key, names are flattened with '.'")
      H.errors(function() W.load(FIX .. "/" .. f, { key = "state_dict" }) end,
        "weights.load: " .. FIX .. "/" .. f, "no key 'state_dict' in checkpoint; keys: model, epoch")
    end)
  end

  if NAMES.resnet18 then
    local r_expected = T.load(FIX .. "/resnet18_expected.safetensors")
    for _, f in ipairs { "resnet18.pth", "resnet18_legacy.pth" } do
      H.test("load torchvision " .. f, function()
        local t, names = W.load(FIX .. "/" .. f)
        list_eq(names, NAMES.resnet18, "names")
        H.eq(same_tensors(t, r_expected, f), 122, "tensor count")
      end)
    end
  else
    H.skip("load torchvision resnet18", "no torchvision")
  end

  H.test("a malicious pickle is refused and nothing runs", function()
    for _, f in ipairs { "malicious.pth", "malicious_legacy.pth" } do
      local p = FIX .. "/" .. f
      H.errors(function() W.load(p) end, "weights.load: " .. p .. ": checkpoint refers to global 'posix.system'",
        "only state dicts are accepted")
    end
    H.eq(read_file(FIX .. "/pwned"), nil, "the pickle's command did not run")
  end)

  H.test("a view repeating its storage to 2^40 elements is refused, not allocated", function()
    H.errors(function() W.load(FIX .. "/huge_expand.pth") end, FIX .. "/huge_expand.pth",
      "would take more than 4 times the file's size", "'e'")
  end)

  H.test("every truncation of each format is a clear error", function()
    local cut = DIR .. "/cut.bin"
    for _, f in ipairs { "small.pth", "small_legacy.pth", "small_expected.safetensors" } do
      local whole = read_file(FIX .. "/" .. f)
      local n, len = 0, 0
      while len < #whole do -- every 13th length, then every length near the end
        write_file(cut, whole:sub(1, len))
        local ok, err = pcall(W.load, cut)
        if ok then error(("%s cut to %d bytes loaded without error"):format(f, len)) end
        if not tostring(err):find("weights.load: ", 1, true) or not tostring(err):find(cut, 1, true) then
          error(("%s cut to %d: message does not name the file: %s"):format(f, len, err))
        end
        n = n + 1
        len = len + (len < #whole - 64 and 13 or 1)
      end
      if n < 100 then error(f .. ": too few cuts tried") end
    end
  end)

  H.test("load errors: missing, folder, not a checkpoint, empty, tar, bad options", function()
    H.errors(function() W.load(DIR .. "/missing.pth") end, "weights.load: " .. DIR .. "/missing.pth: No such file")
    H.errors(function() W.load(DIR) end, "weights.load: " .. DIR .. ": not a regular file")
    if os.execute("mkfifo " .. q(DIR .. "/fifo")) then -- must not block waiting for a writer
      H.errors(function() W.load(DIR .. "/fifo") end, "fifo: not a regular file")
    end
    local p = DIR .. "/text.pth"
    write_file(p, "hello, this is text\n")
    H.errors(function() W.load(p) end, p .. ": neither a PyTorch checkpoint (zip or legacy torch.save) nor a safetensors file")
    write_file(p, "")
    H.errors(function() W.load(p) end, p .. ": empty file")
    write_file(p, ("\0"):rep(257) .. "ustar" .. ("\0"):rep(250))
    H.errors(function() W.load(p) end, "legacy tar checkpoint")
    H.errors(function() W.load(FIX .. "/small.pth", { kye = "model" }) end, "weights.load: unknown option 'kye' (known: key)")
    H.errors(function() W.load(FIX .. "/small.pth", { key = {} }) end, "weights.load: option 'key' must be a string, got a table")
    H.errors(function() W.load() end, "bad argument #1")
  end)

  -- ---------------------------------------------------------------- save and round trips

  local function py_check(cmd, a, b)
    local out = run(PY .. " " .. q(ROOT .. "/tests/py/weights_fixtures.py") .. " " .. cmd .. " " .. q(a) .. " " .. q(b) .. " 2>&1")
    local chunk = load("return " .. out, "=python", "t", {})
    local r = chunk and chunk()
    if not r then error("python printed no Lua value:\n" .. out) end
    if not r.ok then error("python: " .. r.why) end
  end

  H.test("round trip: .pth -> weights.save -> read by Python: same names, order, values", function()
    for _, f in ipairs { "small.pth", "small_legacy.pth" } do
      local t, names = W.load(FIX .. "/" .. f)
      local out = DIR .. "/rt_" .. f .. ".safetensors"
      W.save(out, t, names)
      py_check("compare", FIX .. "/" .. f, out)
      local back, order = W.load(out)
      list_eq(order, names, "names after a round trip")
      same_tensors(back, expected, "round trip")
      local _, meta = T.load(out)
      H.eq(meta.format, "pt", "metadata format")
    end
  end)

  if NAMES.resnet18 then
    H.test("round trip: torchvision resnet18 files and ftlua files are interchangeable", function()
      local t, names = W.load(FIX .. "/resnet18.pth")
      local out = DIR .. "/rt_resnet18.safetensors"
      W.save(out, t, names)
      py_check("compare", FIX .. "/resnet18.pth", out)
      py_check("resnet18", FIX .. "/resnet18.pth", out) -- torchvision loads ours strictly: same logits
      local back, order = W.load(out)
      list_eq(order, NAMES.resnet18, "names")
      same_tensors(back, t, "ftlua-made vs torchvision-made")
    end)
  end

  H.test("save without names: largest element first, then by name", function()
    local t = W.load(FIX .. "/small.pth")
    local out = DIR .. "/sorted.safetensors"
    W.save(out, t)
    local size = { float64 = 8, int64 = 8, float32 = 4, int32 = 4, float16 = 2, bfloat16 = 2, int16 = 2,
      int8 = 1, uint8 = 1, bool = 1 }
    local want = {}
    for name in pairs(t) do want[#want + 1] = name end
    table.sort(want, function(a, b)
      local sa, sb = size[t[a]:dtype()], size[t[b]:dtype()]
      if sa ~= sb then return sa > sb end
      return a < b
    end)
    local back, order = W.load(out)
    list_eq(order, want, "order")
    same_tensors(back, expected, "sorted save")
  end)
end

H.test("save errors name the culprit and leave nothing behind", function()
  local d = DIR .. "/save_errors"
  mkdir(d)
  local p = d .. "/x.safetensors"
  local a, b = T.ones { 2 }, T.zeros({ 3 }, "int64")
  H.errors(function() W.save(p, { a = a, b = b }, { "a" }) end, "tensor 'b' is in the table but not in names")
  H.errors(function() W.save(p, { a = a }, { "a", "c" }) end, "names[2] is 'c', which the table does not hold")
  H.errors(function() W.save(p, { a = a, b = b }, { "a", "a" }) end, "'a' is listed twice in names")
  H.errors(function() W.save(p, { a = a }, { 1 }) end, "names must be strings")
  H.errors(function() W.save(p, { a = 3 }) end, "value for 'a' is not a tensor (got number)")
  H.errors(function() W.save(p, { [1] = a }) end, "tensor names must be strings")
  H.errors(function() W.save(d .. "/no/such/x.safetensors", { a = a }) end, "weights.save: ", "cannot write")
  list_eq(listdir(d), {}, "files left")
  W.save(p, { a = a, b = b }, { "b", "a" })
  local back, order = W.load(p)
  list_eq(order, { "b", "a" }, "given order")
  same_tensors(back, { a = a, b = b }, "small save")
  list_eq(listdir(d), { "x.safetensors" }, "files after a good save")
end)

-- ------------------------------------------------------------------ pretrained

-- Run `code` in a child ftlua with exactly these variables among those we care about.
-- Returns ok, value-or-message, everything the child printed.
local function child(env, code)
  local script = DIR .. "/child.lua"
  write_file(script, "local ok, r = pcall(function() " .. code .. " end)\n" ..
    "io.write('\\nRESULT ', ok and 'ok' or 'err', '\\n', tostring(r), '\\nEND\\n')\n")
  local cmd = { "env", "-u TORCH_HOME -u XDG_CACHE_HOME -u FTLUA_WEIGHTS_URL -u FTLUA_CURL" }
  for k, v in pairs(env) do cmd[#cmd + 1] = k .. "=" .. q(v) end
  cmd[#cmd + 1] = q(FTLUA) .. " " .. q(script) .. " 2>&1"
  local out = run(table.concat(cmd, " "))
  local status, value = out:match("\nRESULT (%a+)\n(.-)\nEND\n$")
  if not status then error("child printed no result:\n" .. out, 2) end
  if status == "err" then value = value:gsub("^[^\n]-:%d+: ", "", 1) end -- the caller's position
  return status == "ok", value, out
end

local function pretrained(env, arg) return child(env, "return ft.weights.pretrained(" .. arg .. ")") end

H.test("pretrained: argument errors", function()
  H.errors(function() W.pretrained("resnet19") end,
    "no pretrained weights for 'resnet19' (known: resnet18, resnet34, resnet50, resnet101, resnet152")
  H.errors(function() W.pretrained { file = "x.pth" } end, "the table needs a url")
  H.errors(function() W.pretrained { url = "ftp://h/x.pth" } end, "URL must start with http:// or https://")
  H.errors(function() W.pretrained { url = "http://h/" } end, "cannot take a file name from the URL")
  H.errors(function() W.pretrained { url = "http://h/x.pth", file = "../x.pth" } end, "is not a plain file name")
  H.errors(function() W.pretrained { url = "http://h/x.pth", sha = "ab" } end, "weights.pretrained: unknown option 'sha' (known: file, sha256, url)")
  H.errors(function() W.pretrained { url = "http://h/x.pth", sha256 = "xyz" } end, "sha256 must be hex digits")
  H.errors(function() W.pretrained(3) end, "architecture name or {url = ..., file = ...} expected")
end)

H.test("pretrained: the cache folder is torch.hub's", function()
  local home = DIR .. "/home"
  local cases = {
    { TORCH_HOME = DIR .. "/th" }, { XDG_CACHE_HOME = DIR .. "/xdg", HOME = home }, { HOME = home },
    { TORCH_HOME = "~/th2", HOME = home }, { TORCH_HOME = DIR .. "/th3/", XDG_CACHE_HOME = DIR .. "/xdg" },
  }
  local got = {}
  for i, env in ipairs(cases) do
    local ok, value = child(env, "return ft.weights.cache_dir()")
    H.eq(ok, true, "cache_dir ran")
    got[i] = value
  end
  if not H.have_torch() then
    H.eq(got[1], DIR .. "/th/hub/checkpoints", "TORCH_HOME")
    return
  end
  -- torch.hub reads the variables on each call, so one Python process answers every case.
  local code = { "import os, torch.hub", "out = []" }
  for _, env in ipairs(cases) do
    code[#code + 1] = "for k in ('TORCH_HOME', 'XDG_CACHE_HOME', 'HOME'): os.environ.pop(k, None)"
    for k, v in pairs(env) do code[#code + 1] = ("os.environ[%q] = %q"):format(k, v) end
    code[#code + 1] = "out.append(os.path.normpath(os.path.join(torch.hub.get_dir(), 'checkpoints')))"
  end
  code[#code + 1] = "print(lua(out))"
  local want = H.python(table.concat(code, "\n"))
  list_eq(got, want, "cache folders")
end)

local function start_server(root)
  local portfile, pidfile = DIR .. "/port", DIR .. "/server.pid"
  os.execute(("%s %s %s %s 120 >/dev/null 2>&1 & echo $! > %s"):format(PY, q(ROOT .. "/tests/py/file_server.py"),
    q(root), q(portfile), q(pidfile)))
  for _ = 1, 100 do
    local s = read_file(portfile)
    if s then
      local port, closed = s:match("(%d+) (%d+)")
      return tonumber(port), tonumber(closed), read_file(pidfile):match("%d+")
    end
    os.execute("sleep 0.1")
  end
  local pid = read_file(pidfile)
  if pid then os.execute("kill " .. pid:match("%d+") .. " 2>/dev/null") end
  return nil
end

local SRV = DIR .. "/served"
mkdir(SRV)
local PORT, CLOSED, SERVER_PID = start_server(SRV)

if not PORT then
  H.skip("pretrained downloads", "the test server did not start (" .. PY .. " tests/py/file_server.py)")
else
  local BASE = ("http://127.0.0.1:%d/"):format(PORT)
  local OFFLINE = ("http://127.0.0.1:%d/"):format(CLOSED)
  local serial = 0
  local function fresh_home()
    serial = serial + 1
    local th = ("%s/torch%d"):format(DIR, serial)
    return th, th .. "/hub/checkpoints"
  end
  local function requests()
    return read_file(SRV .. "/requests.log") or ""
  end
  -- A served file of random bytes, named NAME-<first 8 hex of its sha256>.pth unless told.
  local function serve(stem, exact)
    local parts = {}
    for i = 1, 200000 + serial do parts[i] = string.char(math.random(0, 255)) end
    local tmp = SRV .. "/tmp.bin"
    write_file(tmp, table.concat(parts))
    local hash = sha256sum(tmp)
    local name = exact or (stem .. "-" .. hash:sub(1, 8) .. ".pth")
    os.rename(tmp, SRV .. "/" .. name)
    return name, hash
  end

  H.test("pretrained: a cached torchvision file is used without network", function()
    local th, cache = fresh_home()
    mkdir(cache)
    write_file(cache .. "/resnet18-f37072fd.pth", "not really weights")
    local ok, path, out = pretrained({ TORCH_HOME = th, FTLUA_WEIGHTS_URL = OFFLINE }, '"resnet18"')
    H.eq(ok, true, "ok (" .. out .. ")")
    H.eq(path, cache .. "/resnet18-f37072fd.pth", "path")
    -- The table form, with a file named after its real hash.
    local name, hash = serve("cached")
    os.execute("cp " .. q(SRV .. "/" .. name) .. " " .. q(cache .. "/" .. name))
    ok, path = pretrained({ TORCH_HOME = th }, ("{url = %q}"):format(OFFLINE .. "files/" .. name))
    H.eq(ok, true, "table form ok")
    H.eq(path, cache .. "/" .. name, "table form path")
    H.eq(sha256sum(path), hash, "untouched")
  end)

  H.test("pretrained: downloads, checks the hash, lands atomically, then reuses", function()
    local th, cache = fresh_home()
    local name, hash = serve("fresh")
    local url = BASE .. "files/" .. name
    local ok, path, out = pretrained({ TORCH_HOME = th }, ("{url = %q}"):format(url))
    H.eq(ok, true, "ok (" .. out .. ")")
    H.eq(path, cache .. "/" .. name, "path")
    H.eq(sha256sum(path), hash, "sha256 of the download")
    list_eq(listdir(cache), { name }, "files in the cache")
    H.eq(run("stat -c %a " .. q(path)):match("%d+"), "644", "mode")
    if not out:find("Downloading " .. url, 1, true) then error("no download notice: " .. out) end
    local before = select(2, requests():gsub("/files/" .. name:gsub("%p", "%%%0"), ""))
    ok, path = pretrained({ TORCH_HOME = th }, ("{url = %q}"):format(url))
    H.eq(ok and path, cache .. "/" .. name, "second call")
    H.eq(select(2, requests():gsub("/files/" .. name:gsub("%p", "%%%0"), "")), before, "no second request")
  end)

  H.test("pretrained: {url, file, sha256} lands under the given name", function()
    local th, cache = fresh_home()
    local name, hash = serve(nil, "plain.bin")
    local ok, path, out = pretrained({ TORCH_HOME = th },
      ("{url = %q, file = 'renamed.bin', sha256 = %q}"):format(BASE .. "files/" .. name, hash:upper()))
    H.eq(ok, true, "ok (" .. out .. ")")
    H.eq(path, cache .. "/renamed.bin", "path")
    list_eq(listdir(cache), { "renamed.bin" }, "files")
    local bad = hash:sub(1, 10) .. (hash:sub(11, 11) == "0" and "1" or "0")
    ok, path = pretrained({ TORCH_HOME = th }, ("{url = %q, sha256 = %q}"):format(BASE .. "files/" .. name, bad))
    H.eq(ok, false, "a wrong sha256 option is refused")
    if not path:find("expected " .. bad .. "..., got " .. hash, 1, true) then error(path) end
    list_eq(listdir(cache), { "renamed.bin" }, "nothing new left")
  end)

  H.test("pretrained: FTLUA_WEIGHTS_URL is used, a wrong hash is refused, nothing is left", function()
    local th, cache = fresh_home()
    local _, hash = serve(nil, "resnet18-f37072fd.pth")
    local ok, msg = pretrained({ TORCH_HOME = th, FTLUA_WEIGHTS_URL = BASE .. "files" }, '"resnet18"')
    H.eq(ok, false, "refused")
    for _, want in ipairs { "downloaded resnet18-f37072fd.pth from " .. BASE .. "files/resnet18-f37072fd.pth",
      "sha256 is wrong: expected f37072fd..., got " .. hash, "deleted" } do
      if not msg:find(want, 1, true) then error(("%q does not mention %q"):format(msg, want)) end
    end
    list_eq(listdir(cache), {}, "files left")
    if not requests():find("/files/resnet18-f37072fd.pth", 1, true) then error("server was not asked") end
    -- The same for a name the user gives.
    local bad = serve(nil, "bad-00000000.pth")
    ok, msg = pretrained({ TORCH_HOME = th }, ("{url = %q}"):format(BASE .. "files/" .. bad))
    H.eq(ok, false, "bad-00000000 refused")
    if not msg:find("expected 00000000...", 1, true) then error(msg) end
    list_eq(listdir(cache), {}, "files left")
  end)

  H.test("pretrained: 404 and a truncated transfer fail cleanly", function()
    local th, cache = fresh_home()
    local url = BASE .. "files/missing-1234abcd.pth"
    local ok, msg = pretrained({ TORCH_HOME = th }, ("{url = %q}"):format(url))
    H.eq(ok, false, "404 refused")
    local want = "cannot download missing-1234abcd.pth from " .. url .. " (curl: "
    if not msg:find(want, 1, true) or not msg:find("404", 1, true) then error(msg) end
    if not msg:find("). Put the file in " .. cache .. "/ and run again.", 1, true) then error(msg) end
    local name = serve("whole")
    url = BASE .. "truncate/" .. name
    ok, msg = pretrained({ TORCH_HOME = th }, ("{url = %q}"):format(url))
    H.eq(ok, false, "truncated refused")
    if not msg:find("cannot download " .. name .. " from " .. url .. " (curl: ", 1, true) then error(msg) end
    list_eq(listdir(cache), {}, "files left")
  end)

  H.test("pretrained: offline, the message names the file, the URL and the folder", function()
    local th, cache = fresh_home()
    local t0 = ft.clock()
    local ok, msg = pretrained({ TORCH_HOME = th, FTLUA_WEIGHTS_URL = OFFLINE }, '"resnet34"')
    H.eq(ok, false, "fails")
    local head = "weights.pretrained: cannot download resnet34-b627a593.pth from " .. OFFLINE ..
        "resnet34-b627a593.pth (curl: "
    local tail = "). Put the file in " .. cache .. "/ and run again."
    if msg:sub(1, #head) ~= head or msg:sub(-#tail) ~= tail then error(msg) end
    if ft.clock() - t0 > 20 then error("took too long to fail") end
    list_eq(listdir(cache), {}, "files left")
  end)
end

H.test("pretrained: the default URL and curl's own words (a stand-in curl, no network)", function()
  local fake, args = DIR .. "/fakecurl", DIR .. "/curl_args"
  write_file(fake, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " .. q(args) .. "\n" ..
    "echo 'curl: (6) Could not resolve host: download.pytorch.org' >&2\nexit 6\n")
  os.execute("chmod +x " .. q(fake))
  local home = DIR .. "/home_default"
  local ok, msg = pretrained({ HOME = home, FTLUA_CURL = fake }, '"resnet34"')
  H.eq(ok, false, "fails")
  local cache = home .. "/.cache/torch/hub/checkpoints"
  H.eq(msg, "weights.pretrained: cannot download resnet34-b627a593.pth from " ..
    "https://download.pytorch.org/models/resnet34-b627a593.pth (curl: Could not resolve host: " ..
    "download.pytorch.org). Put the file in " .. cache .. "/ and run again.", "message")
  local argv = read_file(args) or ""
  for _, want in ipairs { "--fail\n", "--location\n", "--connect-timeout\n30\n",
    "--url\nhttps://download.pytorch.org/models/resnet34-b627a593.pth\n" } do
    if not argv:find(want, 1, true) then error("curl argv lacks " .. want .. ":\n" .. argv) end
  end
  list_eq(listdir(cache), {}, "files left")

  ok, msg = pretrained({ HOME = home, FTLUA_CURL = DIR .. "/no/such/curl" }, '"resnet50"')
  H.eq(ok, false, "no curl")
  if not msg:find("resnet50-0676ba61.pth", 1, true) or not msg:find("curl program was not found", 1, true) then
    error(msg)
  end

  write_file(DIR .. "/afile", "x")
  ok, msg = pretrained({ TORCH_HOME = DIR .. "/afile/th" }, '"resnet18"')
  H.eq(ok, false, "unwritable cache")
  if not msg:find("set TORCH_HOME to a writable folder", 1, true) then error(msg) end
end)

if SERVER_PID then os.execute("kill " .. SERVER_PID .. " 2>/dev/null") end
os.execute("rm -rf " .. q(DIR))
H.done()
