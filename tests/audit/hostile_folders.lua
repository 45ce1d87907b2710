-- hostile_folders.lua: the standing audit of hostile image folders (docs/reliability.md,
-- "Hostile folders and images"). Run by tests/audit/test_hostile_folders.sh, which gives it the
-- environment of tests/run.sh.
--
-- Every case is built here, at test time, in a temp dir, from four tiny images (a 16x12 JPEG,
-- PNG and GIF written once by PIL, kept below as hex; the BMP is written by bmp() below), and
-- has one expected outcome, checked. Cases that could hang run in a child ftlua under
-- `timeout`, so a hang fails the case instead of the suite.
local H = require "harness"
local V, T = ft.vision, ft.tensor

local FTLUA = os.getenv("FTLUA") or "./ftlua"
local tmp = H.tmpdir()
os.execute("chmod 755 '" .. tmp .. "'") -- the unreadable case reads it as another user

local function unhex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end

local JPEG = unhex(
  "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d28" ..
  "3a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffdb0043011112121815182f1a1a" ..
  "2f634238426363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363" ..
  "636363ffc0001108000c001003012200021101031101ffc40014000100000000000000000000000000000005ffc4001a10000202" ..
  "0300000000000000000000000000030421052231ffc4001501010100000000000000000000000000000002ffc400191100030003" ..
  "000000000000000000000000000204030521ffda000c03010002110311003f000e3e379a89c7c6f35158e85d509c742ea865ad88" ..
  "d7dadc3fffd9")
local PNG = unhex(
  "89504e470d0a1a0a0000000d49484452000000100000000c0802000000e485aad60000001b4944415478da63646068106060201e" ..
  "b1308830900446358c140d00669c027a0a1ca2d30000000049454e44ae426082")
local GIF = unhex(
  "47494638376110000c00810000b0a08030a080b028803028802c0000000010000c0000083c0007081c384080c18307090e44c850" ..
  "a14086081d1684685022458301326a0c00a0a3478f1b357e1c1932e3c88f25399eec987225cb922e01b4741910003b")

-- A 24-bit BMP of w x h (rows padded to 4 bytes); claim_w/claim_h lie in the header when given.
local function bmp(w, h, claim_w, claim_h)
  local row = (3 * w + 3) // 4 * 4
  local px = {}
  for y = 0, h - 1 do
    local r = {}
    for x = 0, w - 1 do r[#r + 1] = string.char(x * 16 % 256, y * 20 % 256, 128) end
    px[#px + 1] = table.concat(r) .. ("\0"):rep(row - 3 * w)
  end
  local data = table.concat(px)
  return "BM" .. string.pack("<I4I2I2I4", 54 + #data, 0, 0, 54) ..
    string.pack("<I4i4i4I2I2I4I4i4i4I4I4", 40, claim_w or w, claim_h or h, 1, 24, 0, #data, 2835, 2835, 0, 0) .. data
end
local BMP = bmp(16, 12)
local GOOD = { jpg = JPEG, png = PNG, gif = GIF, bmp = BMP }

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end
local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function sh(cmd) assert(os.execute(cmd), cmd) end
local function mkdir(p) sh("mkdir -p " .. q(p)) end

-- The same bytes with the size the header claims changed (the pixels stay those of 16x12).
local function claiming(kind, w, h)
  if kind == "jpg" then -- the SOF0 segment: FF C0, length, precision, height, width
    local at = assert(JPEG:find("\xff\xc0", 1, true))
    return JPEG:sub(1, at + 4) .. string.pack(">I2I2", h, w) .. JPEG:sub(at + 9)
  elseif kind == "png" then -- IHDR's width and height at bytes 17..24
    return PNG:sub(1, 16) .. string.pack(">I4I4", w, h) .. PNG:sub(25)
  elseif kind == "gif" then -- the logical screen, bytes 7..10
    return GIF:sub(1, 6) .. string.pack("<I2I2", w, h) .. GIF:sub(11)
  else
    return bmp(16, 12, w, h)
  end
end

-- Run Lua code in a child ftlua under timeout: rc (124: it hung), stdout, stderr.
local nchild = 0
local function child(code, secs, env)
  nchild = nchild + 1
  local base = ("%s/child%d"):format(tmp, nchild)
  write(base .. ".lua", code)
  local ok, _, rc = os.execute(("%s timeout %d %s %s >%s 2>%s"):format(env or "", secs or 60, FTLUA,
    q(base .. ".lua"), q(base .. ".out"), q(base .. ".err")))
  return ok and 0 or rc, read(base .. ".out"), read(base .. ".err")
end

-- get_image_files(dir) in a child: rc, {relative path, ...}, stderr.
local function list_in_child(dir, secs)
  local rc, out, err = child(([[
    for _, p in ipairs(ft.vision.get_image_files(%q)) do io.write(p:sub(%d), "\0") end]]):format(dir, #dir + 2), secs)
  local files = {}
  for p in out:gmatch("([^%z]*)%z") do files[#files + 1] = p end
  return rc, files, err
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

---------------------------------------------------------------- symlinks
H.test("a symlink cycle (sub/up -> ..): each file once, the link named in a warning", function()
  local d = tmp .. "/cycle1"
  mkdir(d .. "/sub")
  write(d .. "/a.jpg", JPEG)
  write(d .. "/sub/b.png", PNG)
  sh("ln -s .. " .. q(d .. "/sub/up"))
  local rc, files, err = list_in_child(d, 30)
  H.eq(rc, 0, "exit status (124: it hung)")
  H.eq(table.concat(files, " "), "a.jpg sub/b.png", "files")
  assert(err:find("skipped 1 link", 1, true) and err:find("sub/up", 1, true), "warning names the link: " .. err)
end)

H.test("two cycles (loop/up -> .., loop2 -> loop) return at once, each file once", function()
  local d = tmp .. "/cycle2"
  mkdir(d .. "/loop")
  write(d .. "/loop/x.gif", GIF)
  sh("ln -s .. " .. q(d .. "/loop/up") .. " && ln -s loop " .. q(d .. "/loop2"))
  local rc, files, err = list_in_child(d, 30)
  H.eq(rc, 0, "exit status (124: it hung)")
  H.eq(table.concat(files, " "), "loop/x.gif", "files")
  assert(err:find("loop2", 1, true) and err:find("loop/up", 1, true), "both links named: " .. err)
end)

H.test("a cycle puts no item in both train and valid", function()
  local d = tmp .. "/cycle3"
  mkdir(d .. "/sub")
  for i = 1, 10 do
    write(("%s/cat_%d.png"):format(d, i), PNG)
    write(("%s/sub/dog_%d.png"):format(d, i), PNG)
  end
  sh("ln -s .. " .. q(d .. "/sub/up"))
  local dls = V.ImageDataLoaders.from_name_re(d, nil, "(%a+)_%d+%.png$", {
    valid_pct = 0.5, seed = 1, bs = 4, item_tfms = V.Resize(16), verbose = false, device = "cpu", num_workers = 1,
  })
  H.eq(#dls.train_items + #dls.valid_items, 20, "items")
  local train = set(dls.train_items)
  for _, p in ipairs(dls.valid_items) do assert(not train[p], p .. " is in both splits") end
end)

H.test("hard links and links to a file list the file once; a dangling link not at all", function()
  local d = tmp .. "/links"
  mkdir(d)
  write(d .. "/a.jpg", JPEG)
  sh(("ln %s %s && ln -s a.jpg %s && ln -s nowhere.jpg %s"):format(q(d .. "/a.jpg"), q(d .. "/hard.jpg"),
    q(d .. "/soft.jpg"), q(d .. "/dangling.jpg")))
  local rc, files, err = list_in_child(d, 30)
  H.eq(rc, 0, "exit status")
  -- the real name wins over the link; of two real names (hard links), the first in byte order
  H.eq(table.concat(files, " "), "a.jpg", "files")
  assert(err:find("soft.jpg", 1, true) and err:find("hard.jpg", 1, true), "both named: " .. err)
end)

---------------------------------------------------------------- bombs and truncated files
local function bad_messages(paths, opts)
  local _, bad = V.new_file_dataset(paths, nil, nil, opts or { resize_w = 32, resize_h = 32, num_workers = 2 })
  local by_path = {}
  for _, b in ipairs(bad) do by_path[paths[b[1]]] = b[2] end
  return by_path
end

local function peak_rss_mb()
  for l in io.lines("/proc/self/status") do
    local kb = l:match("^VmHWM:%s*(%d+)")
    if kb then return tonumber(kb) / 1024 end
  end
end

H.test("bombs of each format are refused with their size and the cap, in bounded memory", function()
  local d = tmp .. "/bombs"
  mkdir(d)
  local sizes = { jpg = { 16000, 16000 }, png = { 50000, 50000 }, gif = { 65535, 65535 }, bmp = { 60000, 60000 } }
  local paths = { d .. "/good.png" }
  write(paths[1], PNG)
  for kind, wh in pairs(sizes) do
    for copy = 1, 2 do
      local p = ("%s/bomb%d.%s"):format(d, copy, kind)
      write(p, claiming(kind, wh[1], wh[2]))
      paths[#paths + 1] = p
    end
  end
  table.sort(paths)
  local bad = bad_messages(paths)
  for _, p in ipairs(paths) do
    local kind = p:match("bomb%d%.(%a+)$")
    if kind then
      local want = ("%s is %dx%d"):format(({ jpg = "JPEG", png = "PNG", gif = "GIF", bmp = "BMP" })[kind],
        sizes[kind][1], sizes[kind][2])
      local msg = bad[p] or "(loaded!)"
      assert(msg:find(want, 1, true) and msg:find("over the cap of 178956970 pixels", 1, true)
        and msg:find(p, 1, true), p .. ": " .. msg)
    else
      H.eq(bad[p], nil, "the good image")
    end
  end
  local rss = peak_rss_mb()
  assert(rss < 1024, ("peak RSS %.0f MB: something decoded a bomb"):format(rss))
end)

H.test("an image over half the cap decodes with a warning (FTLUA_MAX_IMAGE_PIXELS)", function()
  local p = tmp .. "/half.jpg"
  -- 800 pixels, cap 1000: warned. Its scan data covers 16x12 and then meets the end marker:
  -- libjpeg fills in the rest and warns, and PIL loads such a file too, so it decodes.
  write(p, claiming("jpg", 40, 20))
  local rc, _, err = child(([[
    local _, bad = ft.vision.new_file_dataset({ %q }, nil, nil, { num_workers = 1 })
    io.stderr:write("BAD ", bad[1] and bad[1][2] or "none", "\n")]]):format(p), 60, "FTLUA_MAX_IMAGE_PIXELS=1000")
  H.eq(rc, 0, "exit status")
  assert(err:find("JPEG is 40x20 (800 pixels), over 500", 1, true), "warning: " .. err)
  assert(err:find("BAD none", 1, true), "then decoded: " .. err)
end)

H.test("truncated files of each format are named as bad items; the good ones load", function()
  local d = tmp .. "/truncated"
  mkdir(d)
  local paths = {}
  for kind, bytes in pairs(GOOD) do
    for _, cut in ipairs { 10, #bytes // 2 } do
      local p = ("%s/cut%d.%s"):format(d, cut, kind)
      write(p, bytes:sub(1, cut))
      paths[#paths + 1] = p
    end
    paths[#paths + 1] = ("%s/whole.%s"):format(d, kind)
    write(paths[#paths], bytes)
  end
  write(d .. "/empty.jpg", "")
  paths[#paths + 1] = d .. "/empty.jpg"
  table.sort(paths)
  local bad = bad_messages(paths)
  for _, p in ipairs(paths) do
    if p:find("/whole%.") then
      H.eq(bad[p], nil, p)
    else
      local msg = bad[p] or "(loaded!)"
      assert(msg:sub(1, #p + 2) == p .. ": " and #msg > #p + 8, p .. " -> " .. msg)
    end
  end
end)

---------------------------------------------------------------- names and odd files
H.test("names with spaces, quotes, a newline and non-UTF-8 bytes are listed and load", function()
  local d = tmp .. "/names"
  mkdir(d)
  local names = { "a b.png", "it's \"quoted\".jpg", "new\nline.gif", "\xff\xfe latin1 \xe9.bmp", "tab\there.png" }
  for _, n in ipairs(names) do write(d .. "/" .. n, GOOD[n:match("%.(%a+)$")]) end
  local files = V.get_image_files(d)
  H.eq(#files, #names, "listed")
  local bad = bad_messages(files)
  H.eq(next(bad), nil, "all load")
end)

H.test("a bad file whose name holds a newline is warned about on one line", function()
  local d = tmp .. "/badname"
  mkdir(d)
  for i = 1, 4 do write(("%s/good%d.png"):format(d, i), PNG) end
  write(d .. "/fake\nwarning: all is well.jpg", "not an image")
  local rc, _, err = child(([[
    ft.vision.ImageDataLoaders.from_name_func(%q, ft.vision.get_image_files(%q),
      function(p) return "x" end, { valid_pct = 0.25, item_tfms = ft.vision.Resize(8), bs = 2, num_workers = 1 })]])
    :format(d, d), 60)
  H.eq(rc, 0, "exit status: " .. err)
  assert(err:find("warning: skipping " .. d .. "/fake\\010warning: all is well.jpg", 1, true), err)
  assert(not err:find("\nwarning: all is well", 1, true), "a faked line: " .. err)
end)

H.test("an empty file, a folder named x.jpg and a dangling link", function()
  local d = tmp .. "/odd"
  mkdir(d .. "/folder.jpg")
  write(d .. "/folder.jpg/inside.png", PNG)
  write(d .. "/empty.jpg", "")
  sh("ln -s missing.png " .. q(d .. "/dangling.png"))
  local files = V.get_image_files(d)
  H.eq(#files, 2, "the empty file and the one inside the folder")
  local bad = bad_messages(files)
  H.eq(bad[d .. "/empty.jpg"], d .. "/empty.jpg: empty file", "the empty file")
  H.eq(bad[d .. "/folder.jpg/inside.png"], nil, "inside the folder")
end)

H.test("a FIFO named .jpg is not listed, and as an item it is refused at once", function()
  local d = tmp .. "/fifo"
  mkdir(d)
  write(d .. "/ok.png", PNG)
  sh("mkfifo " .. q(d .. "/pipe.jpg"))
  local rc, files = list_in_child(d, 30)
  H.eq(rc, 0, "listing (124: it hung)")
  H.eq(table.concat(files, " "), "ok.png", "listed")
  local err
  rc, _, err = child(([[
    local _, bad = ft.vision.new_file_dataset({ %q }, nil, nil, { num_workers = 1 })
    io.stderr:write("BAD ", bad[1] and bad[1][2] or "none", "\n")]]):format(d .. "/pipe.jpg"), 30)
  H.eq(rc, 0, "decoding (124: it hung)")
  assert(err:find("BAD " .. d .. "/pipe.jpg: not a file but a FIFO", 1, true), err)
end)

H.test("a folder that vanishes: listed files gone are bad items; a walk racing deletions ends", function()
  local d = tmp .. "/vanish"
  mkdir(d .. "/gone")
  write(d .. "/stay.png", PNG)
  for i = 1, 3 do write(("%s/gone/%d.jpg"):format(d, i), JPEG) end
  local files = V.get_image_files(d)
  H.eq(#files, 4, "listed")
  sh("rm -rf " .. q(d .. "/gone"))
  local bad = bad_messages(files)
  H.eq(bad[d .. "/stay.png"], nil, "the file that stayed")
  assert((bad[d .. "/gone/1.jpg"] or ""):find("No such file", 1, true), tostring(bad[d .. "/gone/1.jpg"]))
  -- Folders appearing and vanishing while get_image_files walks, 40 times over.
  local pidfile = tmp .. "/racer.pid"
  sh(("(while :; do mkdir -p %s/v/w/x && cp %s/stay.png %s/v/w/x/a.png && rm -rf %s/v; done) >/dev/null 2>&1 & echo $! >%s")
    :format(q(d), q(d), q(d), q(d), q(pidfile)))
  local rc, out = child(([[
    local n = 0
    for i = 1, 40 do
      local files = ft.vision.get_image_files(%q)
      local stay = false
      for _, p in ipairs(files) do stay = stay or p:find("stay.png", 1, true) ~= nil end
      if stay then n = n + 1 end
    end
    print(n)]]):format(d), 60)
  os.execute("kill " .. read(pidfile):match("%d+") .. " 2>/dev/null")
  H.eq(rc, 0, "exit status")
  H.eq(tonumber(out), 40, "every walk listed the file that stayed")
end)

H.test("unreadable files and folders (chmod 000) are named, the rest listed", function()
  local d = tmp .. "/unreadable"
  mkdir(d .. "/locked")
  write(d .. "/ok.png", PNG)
  write(d .. "/secret.jpg", JPEG)
  write(d .. "/locked/hidden.png", PNG)
  sh(("chmod -R a+rX %s && chmod 000 %s %s"):format(q(d), q(d .. "/secret.jpg"), q(d .. "/locked")))
  local prefix = ""
  local uid = io.popen("id -u"):read("l")
  if uid == "0" then
    -- root reads anything: check as an ordinary user, when this machine can switch to one
    local p = io.popen("command -v setpriv")
    local setpriv = p:read("l")
    p:close()
    if not setpriv or not os.execute("setpriv --reuid=65534 --regid=65534 --clear-groups test -r " .. q(FTLUA) .. " 2>/dev/null")
      or not os.execute("setpriv --reuid=65534 --regid=65534 --clear-groups test -x " .. q(FTLUA) .. " 2>/dev/null") then
      os.execute(("chmod -R u+rwX %s"):format(q(d)))
      return H.skip("unreadable files", "running as root, and cannot run ftlua as user nobody (setpriv)")
    end
    prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups"
  end
  local rc, out, err = child(([[
    local files = ft.vision.get_image_files(%q)
    local _, bad = ft.vision.new_file_dataset(files, nil, nil, { num_workers = 1 })
    print(#files, #bad, bad[1] and bad[1][2] or "")]]):format(d), 60, prefix)
  os.execute(("chmod -R u+rwX %s"):format(q(d)))
  H.eq(rc, 0, "exit status: " .. err)
  H.eq(out, ("2\t1\t%s/secret.jpg: cannot open (Permission denied)\n"):format(d), "listed, bad")
  assert(err:find("cannot open folder '" .. d .. "/locked' (Permission denied)", 1, true), err)
end)

---------------------------------------------------------------- checkpoints read by the wrong reader
H.test("T.load on a PyTorch .pth says what it is and what to use", function()
  local p = tmp .. "/model.pth"
  write(p, "PK\3\4" .. ("\0"):rep(60)) -- torch.save's zip
  local ok, err = pcall(T.load, p)
  assert(not ok and tostring(err):find("not a safetensors file (this looks like a PyTorch .pth: use ft.weights.load)", 1, true), tostring(err))
  write(p, "\x80\x02\x7dq\x00.") -- a legacy pickle
  ok, err = pcall(T.load, p)
  assert(not ok and tostring(err):find("use ft.weights.load", 1, true), tostring(err))
end)

os.execute("chmod -R u+rwX " .. q(tmp) .. " 2>/dev/null; rm -rf " .. q(tmp))
H.done()
