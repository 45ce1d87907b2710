-- args.lua: the Lua library's one way to check arguments and options and to say what is wrong.
-- require "ftlua.args" (internal). Every message names the function, the thing, what was
-- received and, for an option, the known ones.
--
-- Levels: fail and the checks raise at the caller of the library function that called them
-- (error level 3 from fail), so a script run by plain lua5.4 sees its own line; ./ftlua's
-- message handler (runtime/host_errors.c) also maps any position inside lua/ftlua/ to the user's line.
-- fail_at(0, ...) raises without a position, for messages that name their file instead.
local A = {}

-- fail(fmt, ...): a formatted error at the caller of the function that called fail.
function A.fail(fmt, ...) error(fmt:format(...), 3) end

-- fail_at(level, fmt, ...): the same at an explicit level (0: no position); level counts
-- as error's does, from the function that calls fail_at.
function A.fail_at(level, fmt, ...)
  error(fmt:format(...), level > 0 and level + 1 or 0)
end

-- set{"a", "b"} -> {a = true, b = true}: the keys an options table may hold.
function A.set(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

-- A value as a message shows it: a string quoted, a number as itself, anything else by its type.
function A.describe(v)
  if type(v) == "string" then return ("the string %q"):format(v) end
  if type(v) == "number" then return tostring(v) end
  return "a " .. type(v)
end

-- "a, b, c": the names of a set, sorted.
local function names_of(allowed)
  local names = {}
  for n in pairs(allowed) do names[#names + 1] = tostring(n) end
  table.sort(names)
  return table.concat(names, ", ")
end

-- check_keys(what, opts, allowed [, level]) -> opts (or {} for nil): opts is a table whose keys
-- are all in the set allowed, so a typo is an error rather than a silent default. The error is
-- raised at the caller of the function that called check_keys (level 0: without a position).
function A.check_keys(what, opts, allowed, level)
  level = level or 2
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    A.fail_at(level == 0 and 0 or level + 1, "%s: options must be a table, got %s", what, A.describe(opts))
  end
  for k in pairs(opts) do
    if not allowed[k] then
      A.fail_at(level == 0 and 0 or level + 1, "%s: unknown option '%s' (known: %s)", what, tostring(k), names_of(allowed))
    end
  end
  return opts
end

-- check_type(what, name, v, expected) -> v: v's Lua type (or math.type for "integer") is
-- expected, else an error that says what was received, at the caller of the function that
-- called check_type.
function A.check_type(what, name, v, expected)
  local ok
  if expected == "integer" then ok = math.type(v) == "integer" else ok = type(v) == expected end
  if not ok then A.fail_at(3, "%s: %s must be a%s %s, got %s", what, name, expected:match("^[aeiou]") and "n" or "",
    expected, A.describe(v)) end
  return v
end

return A
