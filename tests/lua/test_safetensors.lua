-- test_safetensors.lua: T.save / T.load against tests/py/safetensors_ref.py (an independent
-- Python reader/writer using torch for the bytes) and against bytes built here with
-- string.pack from the formula the Python reference also uses.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"

local ROOT = os.getenv("FTLUA_ROOT") or "."
local DIR = H.tmpdir()

-- ftlua dtype name -> safetensors name.
local ST = { float32 = "F32", float64 = "F64", float16 = "F16", bfloat16 = "BF16", int64 = "I64",
  int32 = "I32", int16 = "I16", int8 = "I8", uint8 = "U8", bool = "BOOL" }

-- Element i as little-endian bytes; the same formula as formula() in safetensors_ref.py.
local function element(dtype, i)
  if dtype == "float32" or dtype == "float64" or dtype == "float16" or dtype == "bfloat16" then
    local v = (i % 17) * 0.25 - 2.0
    if dtype == "float32" then return string.pack("<f", v) end
    if dtype == "float64" then return string.pack("<d", v) end
    if dtype == "bfloat16" then return string.pack("<f", v):sub(3, 4) end -- exact: top half
    local b = string.unpack("<I4", string.pack("<f", v))                   -- float16, exact
    if b & 0x7fffffff == 0 then return string.pack("<I2", (b >> 16) & 0x8000) end
    local e = ((b >> 23) & 0xff) - 127 + 15
    return string.pack("<I2", ((b >> 16) & 0x8000) | (e << 10) | ((b >> 13) & 0x3ff))
  end
  if dtype == "int8" then return string.pack("<i1", (i % 11) * 3 - 15) end
  if dtype == "int16" then return string.pack("<i2", (i % 11) * 3000 - 15000) end
  if dtype == "int32" then return string.pack("<i4", (i % 11) * 100000000 - 500000000) end
  if dtype == "int64" then return string.pack("<i8", ((i % 11) - 5) * (1 << 40) + i) end
  if dtype == "uint8" then return string.char((i * 37) % 256) end
  if dtype == "bool" then return string.char(i % 3 == 0 and 1 or 0) end
  error("no formula for " .. dtype)
end

local function numel(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

local function formula_bytes(dtype, shape)
  local parts = {}
  for i = 0, numel(shape) - 1 do parts[#parts + 1] = element(dtype, i) end
  return table.concat(parts)
end

-- name, ftlua dtype, shape: every dtype, a scalar, empty tensors, 16 dims, awkward names.
local SPEC = {
  { "w", "float32", { 2, 3 } }, { "d", "float64", { 4 } }, { "h", "float16", { 3, 1 } },
  { "bf", "bfloat16", { 5 } }, { "l", "int64", { 2, 2 } }, { "i", "int32", { 3 } },
  { "s", "int16", { 2 } }, { "c", "int8", { 7 } }, { "u", "uint8", { 10 } },
  { "m", "bool", { 2, 3 } }, { "scalar", "float32", {} }, { "bscalar", "bool", {} },
  { "empty", "float32", { 0, 4 } }, { "empty_i64", "int64", { 3, 0 } },
  { "layer.0.bias", "float16", { 1, 1, 1, 2 } }, { "\u{e9}\u{2713}", "int8", { 2 } },
  { 'q"b\\s', "uint8", { 1 } },
  { "dims16", "float64", { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2 } },
}
local META = { format = "pt", note = "\u{e9} \"q\" \\ b", empty = "" }

local function formula_tensors()
  local ts = {}
  for _, s in ipairs(SPEC) do ts[s[1]] = T.frombytes(formula_bytes(s[2], s[3]), s[3], s[2]) end
  return ts
end

local function shape_of(t)
  local sz, out = t:size(), {}
  for k = 1, t:dim() do out[k] = sz[k] end
  return out
end

-- Every tensor in `got` has SPEC's name, dtype, shape and formula bytes.
local function check_spec(got)
  local n = 0
  for _ in pairs(got) do n = n + 1 end
  H.eq(n, #SPEC, "tensor count")
  for _, s in ipairs(SPEC) do
    local t = got[s[1]]
    if not T.is_tensor(t) then error(("tensor %q missing"):format(s[1])) end
    H.eq(t:dtype(), s[2], s[1] .. " dtype")
    H.close(shape_of(t), s[3], 0, s[1] .. " shape")
    H.eq(t:device(), "cpu", s[1] .. " device")
    if t:tobytes() ~= formula_bytes(s[2], s[3]) then error(s[1] .. ": bytes differ from the formula") end
  end
end

local function file_bytes(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_bytes(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function tmp_left(dir)
  local p = io.popen("ls -a '" .. dir .. "'")
  local n = 0
  for line in p:lines() do if line:find(".ftlua-tmp.", 1, true) or line:find(".tmp.", 1, true) then n = n + 1 end end
  p:close()
  return n
end

-- A raw file: u64 header length, the header, then data.
local function raw_file(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end

H.test("round trip: every dtype, scalar, empty, 16 dims, metadata", function()
  local path = DIR .. "/rt.safetensors"
  T.save(path, formula_tensors(), META)
  local got, meta = T.load(path)
  check_spec(got)
  H.eq(meta.format, "pt"); H.eq(meta.note, META.note); H.eq(meta.empty, "")
  H.eq(tmp_left(DIR), 0, "temporary files left")
end)

H.test("round trip: a strided view is saved as its values", function()
  local path = DIR .. "/strided.safetensors"
  local base = T.frombytes(formula_bytes("float32", { 3, 4 }), { 3, 4 }, "float32")
  local tr = base:transpose(1, 2)
  H.eq(tr:is_contiguous(), false, "the view is strided")
  T.save(path, { tr = tr })
  local got = T.load(path)
  H.close(shape_of(got.tr), { 4, 3 }, 0, "transposed shape")
  H.close(got.tr, tr, 0, "transposed values")
  H.eq(got.tr:is_contiguous(), true, "loaded tensors are contiguous")
  -- Element [j][i] of the view is element i*4+j of the formula.
  H.eq(got.tr:tobytes():sub(1, 8), element("float32", 0) .. element("float32", 4), "first row bytes")
end)

H.test("round trip: a tensor that requires grad is saved as its values", function()
  local path = DIR .. "/grad.safetensors"
  local g = T.frombytes(formula_bytes("float64", { 5 }), { 5 }, "float64"):requires_grad()
  T.save(path, { g = g })
  local got, meta = T.load(path)
  H.eq(next(meta), nil, "no metadata")
  H.eq(got.g:tobytes(), g:tobytes(), "bytes")
end)

H.test("layout: largest element first, then by name; header padded to 8", function()
  local path = DIR .. "/layout.safetensors"
  T.save(path, { b = T.zeros({ 1 }, "int8"), a = T.zeros({ 3 }, "int8"), z = T.zeros({ 1 }, "float64"),
    y = T.zeros({ 2 }, "float16") })
  local s = file_bytes(path)
  local n = string.unpack("<I8", s)
  H.eq(n % 8, 0, "header length mod 8")
  local header = s:sub(9, 8 + n)
  local pz, py, pa, pb = header:find('"z"', 1, true), header:find('"y"', 1, true), header:find('"a"', 1, true),
      header:find('"b"', 1, true)
  if not (pz < py and py < pa and pa < pb) then error("unexpected order in header: " .. header) end
  H.eq(header:find('"z":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}', 1, true) ~= nil, true, "z at 0")
  H.eq(header:find('"b":{"dtype":"I8","shape":[1],"data_offsets":[15,16]}', 1, true) ~= nil, true, "b at 15")
end)

H.test("overwrite is atomic and leaves no temporary file", function()
  local path = DIR .. "/over.safetensors"
  T.save(path, { a = T.ones { 4 } })
  T.save(path, { b = T.zeros({ 2 }, "int32") })
  local got = T.load(path)
  H.eq(got.a, nil, "old tensor gone"); H.eq(got.b:dtype(), "int32")
  H.eq(tmp_left(DIR), 0, "temporary files left")
end)

H.test("T.save errors name the culprit and write nothing", function()
  local path = DIR .. "/bad.safetensors"
  H.errors(function() T.save(path, { w = 3 }) end, "T.save: value for 'w' is not a tensor (got number)")
  H.errors(function() T.save(path, { w = T.ones { 2 }, [1] = T.ones { 2 } }) end, "tensor names must be strings")
  H.errors(function() T.save(path, { w = T.ones { 2 } }, { k = 1 }) end,
    "metadata value for 'k' must be a string (got number)")
  H.errors(function() T.save(path, { w = T.ones { 2 } }, { [true] = "x" }) end, "metadata keys must be strings")
  H.errors(function() T.save(path, { ["a\0b"] = T.ones { 2 } }) end, "must not contain NUL")
  H.errors(function() T.save(path, { __metadata__ = T.ones { 2 } }) end, "'__metadata__' is reserved")
  H.errors(function() T.save(path, { ["\xff"] = T.ones { 2 } }) end, "not valid UTF-8")
  local x = T.ones { 2 }
  x:free()
  H.errors(function() T.save(path, { x = x }) end, "tensor 'x' has been freed")
  H.errors(function() T.save(path, "nope") end, "table expected")
  H.errors(function() T.save(DIR .. "/no/such/dir/x.safetensors", { w = T.ones { 2 } }) end, "cannot write '" .. DIR .. "/no/such/dir/x.safetensors': No such file")
  H.eq(io.open(path, "rb"), nil, "nothing written")
  H.eq(tmp_left(DIR), 0, "temporary files left")
end)

H.test("T.load errors: missing, directory, not safetensors, truncated, lying header", function()
  H.errors(function() T.load(DIR .. "/missing.safetensors") end, "T.load: safetensors: cannot open", "missing.safetensors")
  H.errors(function() T.load(DIR) end, "is not a regular file")
  local p = DIR .. "/text.safetensors"
  write_bytes(p, "hello, this is not a model at all\n")
  H.errors(function() T.load(p) end, p, "exceeds file size 34")
  write_bytes(p, raw_file("[]"))
  H.errors(function() T.load(p) end, "not a safetensors file (header does not start with '{')")
  write_bytes(p, "")
  H.errors(function() T.load(p) end, "file too small (0 bytes)")

  -- Truncate a valid file at several points: every prefix is refused.
  local good = DIR .. "/good.safetensors"
  T.save(good, { w = T.ones { 3, 3 }, b = T.zeros({ 5 }, "int64") }, { k = "v" })
  local s = file_bytes(good)
  for _, n in ipairs { 1, 7, 8, 9, 20, 8 + string.unpack("<I8", s), #s - 1 } do
    write_bytes(p, s:sub(1, n))
    H.errors(function() T.load(p) end, "T.load: safetensors: " .. p)
  end
  write_bytes(p, s .. "x")
  H.errors(function() T.load(p) end, "hole in data buffer at byte")

  -- Headers that lie.
  write_bytes(p, string.pack("<I8", 12345678) .. "{}" .. string.rep("\0", 90))
  H.errors(function() T.load(p) end, "header length 12345678 exceeds file size 100")
  write_bytes(p, raw_file('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', string.rep("\0", 8)))
  H.errors(function() T.load(p) end, "tensor 'w': data_offsets [0, 8] but shape [3] of F32 needs 12 bytes")
  write_bytes(p, raw_file('{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}',
    string.rep("\0", 8)))
  H.errors(function() T.load(p) end, "has too many elements")
  write_bytes(p, raw_file('{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', string.rep("\0", 8)))
  H.errors(function() T.load(p) end, "run past the end")
  write_bytes(p, raw_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', string.rep("\0", 12)))
  H.errors(function() T.load(p) end, "tensors 'a' and 'b' overlap")
  write_bytes(p, raw_file('{"w":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}}', string.rep("\0", 4)))
  H.errors(function() T.load(p) end, "tensor 'w': unsupported dtype U16")
  write_bytes(p, raw_file('{"__metadata__":{"k":1}}'))
  H.errors(function() T.load(p) end, "__metadata__ value for 'k' must be a string")
  H.errors(function() T.load() end, "string expected")
end)

H.test("loaded tensors count as live memory and are released", function()
  local good = DIR .. "/mem.safetensors"
  T.save(good, { w = T.ones { 64, 64 } })
  collectgarbage(); collectgarbage()
  local before = T.memory().live_bytes
  for _ = 1, 20 do
    local t = T.load(good)
    H.eq(T.memory().live_bytes, before + 64 * 64 * 4, "live bytes with the loaded tensor")
    t.w:free()
    pcall(T.load, DIR .. "/text.safetensors")
  end
  collectgarbage(); collectgarbage()
  H.eq(T.memory().live_bytes, before, "live bytes after")
end)

if not H.have_torch() then
  H.skip("python reference", "/usr/bin/python3 has no torch (apt-get install python3-torch)")
else
  local function spec_json()
    local parts = {}
    for _, s in ipairs(SPEC) do
      parts[#parts + 1] = ("[%q, %q, [%s]]"):format(s[1], ST[s[2]], table.concat(s[3], ","))
    end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local PRE = ("import sys, io, contextlib, json\nsys.path.insert(0, %q)\nimport safetensors_ref as R\n")
      :format(ROOT .. "/tests/py")

  H.test("a file written by the Python reference loads with the right values", function()
    local path = DIR .. "/py.safetensors"
    -- Lua's %q and JSON agree on these names (no control characters).
    H.python(PRE .. ("R.write_spec(%q, {'tensors': json.loads(%q), 'metadata': json.loads(%q)})\nprint(lua(True))")
      :format(path, spec_json(), '{"format": "pt", "note": "\\u00e9 \\"q\\" \\\\ b", "empty": ""}'))
    local got, meta = T.load(path)
    check_spec(got)
    H.eq(meta.format, "pt"); H.eq(meta.note, META.note); H.eq(meta.empty, "")
  end)

  H.test("a file written by T.save is read correctly by the Python reference", function()
    local path = DIR .. "/lua.safetensors"
    T.save(path, formula_tensors(), META)
    local out = H.python(PRE .. ("buf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n    R.verify(%q)\n" ..
      "print(lua(buf.getvalue()))"):format(path))
    local seen = 0
    for line in out:gmatch("[^\n]+") do
      if line:match("^tensor ") then
        seen = seen + 1
        if not line:match(" ok$") then error("python: " .. line) end
      end
    end
    H.eq(seen, #SPEC, "tensors python checked")
    for k, v in pairs(META) do
      if not out:find("meta " .. k .. "=" .. v .. "\n", 1, true) then
        error("python did not see metadata " .. k .. ":\n" .. out)
      end
    end
  end)
end

os.execute("rm -rf '" .. DIR .. "'")
H.done()
