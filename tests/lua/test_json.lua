-- test_json.lua: ft.json (runtime/base/json.c over jansson) against Python's json module, and
-- learn:export's description: exports written by the hand-written Lua codec that ft.json
-- replaced (its exact byte format, reproduced below) still load.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local S = require "synth"
local nn = ft.nn
local json = ft.json

T.set_num_threads(1)

local function same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then error(("%s: %s ~= %s"):format(path, type(a), type(b)), 0) end
  if type(a) == "number" and math.type(a) ~= math.type(b) then
    error(("%s: %s ~= %s"):format(path, math.type(a), math.type(b)), 0)
  end
  if type(a) ~= "table" then
    if a ~= b then error(("%s: %s ~= %s"):format(path, tostring(a), tostring(b)), 0) end
    return true
  end
  for k, v in pairs(a) do same(v, b[k], path .. "." .. tostring(k)) end
  for k in pairs(b) do if a[k] == nil then error(path .. "." .. tostring(k) .. ": extra", 0) end end
  return true
end

local sample = {
  name = "ftlua \"quoted\" \\ back/slash\n\ttab \1 é ünï 猫",
  ints = { 0, -1, 42, 9007199254740993, math.mininteger, math.maxinteger },
  reals = { 0.1, -2.5, 1e300, 5e-324, 1 / 3, 2.0, -0.0 },
  flags = { t = true, f = false },
  empty = {},
  nested = { { { { "deep" } } }, { a = { b = { c = 1 } } } },
}

H.test("json: encode/decode round trip keeps values and number kinds", function()
  local s = json.encode(sample)
  assert(same(json.decode(s), sample))
  H.eq(json.encode(json.decode(s)), s, "encode(decode(s)) is s")
  H.eq(json.encode { b = 1, a = 2, c = { 3 } }, '{"a":2,"b":1,"c":[3]}', "compact, keys sorted")
  H.eq(json.encode {}, "[]", "an empty table is an array")
  H.eq(json.encode "x", '"x"', "a bare string")
  assert(json.decode("null") == nil, "null")
  local holes = json.decode("[1,null,3]")
  H.eq(holes[3], 3, "null in an array is a hole")
end)

H.test("json: Python's json reads what ft.json writes, and ft.json reads what Python writes", function()
  if not H.have_torch() then return H.skip("json against Python", "no /usr/bin/python3") end
  local s = json.encode(sample)
  local py = H.python(("import json\nprint(lua(json.loads(%q)))"):format(s))
  -- Python's lua() helper writes its floats with repr: the same doubles
  assert(same(py.reals, sample.reals, "python reals"))
  H.eq(py.name, sample.name, "python string")
  H.eq(py.ints[4], sample.ints[4], "python big int")
  local text = H.python(([==[
import json
print(lua(json.dumps(json.loads(%q), ensure_ascii=True, indent=2)))]==]):format(s))
  assert(same(json.decode(text), sample, "from python"))
end)

H.test("json: bad values and bad text are clear errors", function()
  H.errors(function() json.encode { x = 0 / 0 } end, "ft.json.encode: cannot store nan")
  H.errors(function() json.encode { x = math.huge } end, "cannot store inf")
  H.errors(function() json.encode { x = { [2] = "b" } } end, "cannot store a table with number keys")
  H.errors(function() json.encode { f = print } end, "cannot store a function")
  H.errors(function() json.encode "\255" end, "not UTF-8")
  local cycle = {}
  cycle.self = cycle
  H.errors(function() json.encode(cycle) end, "nested deeper than")
  H.errors(function() json.decode '{"a": 1' end, "ft.json.decode:", "line 1")
  H.errors(function() json.decode '[1] 2' end, "ft.json.decode:", "end of file expected")
  H.errors(function() json.decode {} end, "string expected")
end)

-- The codec that ft.json replaced wrote: keys sorted, no spaces, integers as tostring, floats
-- as %.17g, and '"', '\' and control bytes as \u00XX.
local function old_encode(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return math.type(v) == "integer" and tostring(v) or ("%.17g"):format(v) end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
  end
  if #v > 0 or next(v) == nil then
    local out = {}
    for i = 1, #v do out[i] = old_encode(v[i]) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = old_encode(k) .. ":" .. old_encode(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

H.test("json: text in the old codec's format decodes to the same values", function()
  local old = old_encode(sample)
  assert(old:find("\\u0022", 1, true), "the old format escapes quotes as \\u0022")
  local got = json.decode(old)
  H.eq(got.name, sample.name, "string with escapes")
  H.eq(got.ints[5], math.mininteger, "integers")
  H.eq(got.reals[1], 0.1, "%.17g reals")
  H.eq(got.nested[2].a.b.c, 1, "nesting")
end)

H.test("load_learner: an export whose description has the old codec's bytes still loads", function()
  S.in_tmpdir(H, function(dir)
    T.manual_seed(3)
    local xt, yt = S.halves(48, 16, 1)
    local xv, yv = S.halves(16, 16, 2)
    local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { bs = 16, channels = 1,
      verbose = false, seed = 1, vocab = { 'say "left"', "right\\" }, normalize = { { 0.3 }, { 0.2 } } })
    local model = nn.Sequential { nn.Conv2d(1, 4, 3, { padding = 1 }), nn.ReLU(), nn.Flatten(),
      nn.Linear(4 * 16 * 16, 2) }
    local learn = ft.Learner(dls, model, { path = dir })
    learn:fit(1, 1e-2)
    local file = learn:export("new.safetensors")
    local sd, meta = T.load(file)
    local old_text = old_encode(json.decode(meta.learner))
    H.eq(old_text == meta.learner, false, "the old bytes differ from ft.json's")
    local old_file = dir .. "/old.safetensors"
    T.save(old_file, sd, { format = meta.format, learner = old_text })
    local loaded = ft.load_learner(old_file)
    H.eq(loaded.dls.vocab[1], 'say "left"', "vocab with quotes")
    H.eq(loaded.dls.vocab[2], "right\\", "vocab with a backslash")
    local p1 = learn:get_preds()
    local p2 = loaded:get_preds { dl = learn.dls.valid }
    H.close(p2, p1, 0, "predictions of the old-format export")
  end)
end)

H.done()
