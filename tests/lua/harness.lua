-- harness.lua: the Lua test harness. Prints the lines tests/run.sh counts:
--   "ok <name>", "FAIL <name>: <why>", "skip <name>: <why>".
-- References come from Debian's python3-torch at test time (H.python), from known values,
-- or from finite differences; never from ftlua itself.
local H = {}
local failures = 0

local function fail(name, why)
  failures = failures + 1
  print(("FAIL %s: %s"):format(name, tostring(why):gsub("\n", "\n    ")))
end

function H.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then print("ok " .. name) else fail(name, err) end
end

function H.skip(name, why) print(("skip %s: %s"):format(name, why)) end

-- Compare numbers, nested tables of numbers, or tensors (via :totable()), within
-- |a-b| <= tol * max(1, |b|). Errors with the first differing position.
function H.close(a, b, tol, what)
  tol = tol or 1e-6
  local function walk(x, y, path)
    if type(x) == "userdata" and x.totable then x = x:totable() end
    if type(y) == "userdata" and y.totable then y = y:totable() end
    if type(x) == "number" and type(y) == "number" then
      local scale = math.max(1, math.abs(y))
      if not (math.abs(x - y) <= tol * scale) and not (x ~= x and y ~= y) then
        error(("%s%s: got %.9g, want %.9g (tol %g)"):format(what and (what .. " ") or "", path, x, y, tol), 0)
      end
    elseif type(x) == "table" and type(y) == "table" then
      if #x ~= #y then error(("%s%s: length %d, want %d"):format(what or "", path, #x, #y), 0) end
      for i = 1, #y do walk(x[i], y[i], path .. "[" .. i .. "]") end
    elseif x ~= y then
      error(("%s%s: got %s, want %s"):format(what or "", path, tostring(x), tostring(y)), 0)
    end
  end
  walk(a, b, "")
end

function H.eq(a, b, what)
  if a ~= b then error(("%s: got %s, want %s"):format(what or "value", tostring(a), tostring(b)), 2) end
end

-- fn must raise an error whose message contains every plain string in `wants`.
function H.errors(fn, ...)
  local ok, err = pcall(fn)
  if ok then error("expected an error, got none", 2) end
  err = tostring(err)
  for _, want in ipairs({ ... }) do
    if not err:find(want, 1, true) then
      error(("error %q does not mention %q"):format(err, want), 2)
    end
  end
  return err
end

local PY = os.getenv("FTLUA_PYTHON") or "/usr/bin/python3"

-- True when the reference interpreter has torch (Debian's python3-torch).
function H.have_torch()
  if H._have_torch == nil then
    H._have_torch = os.execute(PY .. " -c 'import torch' >/dev/null 2>&1") == true
  end
  return H._have_torch
end

-- Run Python code that prints one Lua expression; return its value.
-- The helper `lua(x)` is predefined: it turns numbers, lists, tuples, dicts, strings, bools
-- and torch tensors (as nested lists) into Lua source.
local PRELUDE = [[
import math, sys
def lua(x):
    try:
        import torch
        if isinstance(x, torch.Tensor): x = x.tolist()
    except ImportError: pass
    if isinstance(x, bool): return "true" if x else "false"
    if isinstance(x, int): return repr(x)
    if isinstance(x, float):
        if math.isnan(x): return "(0/0)"
        if math.isinf(x): return "math.huge" if x > 0 else "-math.huge"
        return repr(x)
    if isinstance(x, str): return "[==[" + x + "]==]"
    if isinstance(x, (list, tuple)): return "{" + ",".join(lua(v) for v in x) + "}"
    if isinstance(x, dict): return "{" + ",".join("[ " + lua(k) + " ]=" + lua(v) for k, v in x.items()) + "}"
    if x is None: return "nil"
    raise TypeError(type(x))
]]

function H.python(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(PRELUDE, "\n", code, "\n")
  f:close()
  local p = assert(io.popen(PY .. " " .. path .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  if not ok then error("python reference failed:\n" .. out, 2) end
  local chunk, err = load("return " .. out, "=python", "t", { math = math })
  if not chunk then error("python printed no Lua value: " .. err .. "\n" .. out, 2) end
  return chunk()
end

-- A path under ../shared (FTLUA_SHARED), or nil when this clone has none.
function H.shared(rel)
  local root = os.getenv("FTLUA_SHARED") or "../shared"
  local f = io.open(root .. "/" .. rel, "r")
  if not f then return nil end
  f:close()
  return root .. "/" .. rel
end

function H.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

-- The bytes of the file at p, or nil when it cannot be opened.
function H.read_file(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- A copy of model's state dict, each tensor cloned (to compare with after training).
function H.state_clone(model)
  local out = {}
  for k, t in pairs(model:state_dict()) do out[k] = t:clone() end
  return out
end

-- Call at the end of every test file.
function H.done() os.exit(failures == 0 and 0 or 1) end

-- The program running this test (./ftlua, ./ftlua-asan), as a path that works from any folder.
function H.self_exe()
  local e = arg[-1]
  if not e then return (os.getenv("FTLUA_ROOT") or ".") .. "/ftlua" end
  if e:find("/", 1, true) and e:sub(1, 1) ~= "/" then e = (os.getenv("PWD") or ".") .. "/" .. e end
  return e
end

-- The plot tests need gnuplot: without it, one skip line named what and the test ends here.
function H.need_gnuplot(what)
  if os.execute("command -v gnuplot >/dev/null 2>&1") ~= true then
    H.skip(what, "gnuplot is missing (apt-get install gnuplot-nox)")
    H.done()
  end
end

return H
