-- help.lua: the API reference at the prompt, read from docs/api.md as compiled into the binary
-- (tools/embed_doc.sh), so that help(x) and the page never disagree. runtime/host.c is its only
-- user: it passes the page's text and the host's name lister (ftl_names) to init, and wraps
-- value(), text() and suggest() as C functions (host.h).
--
-- The page is cut as tests/lua/test_api_doc.lua cuts it: a section starts at `<!-- api: IDS -->`
-- (IDS name namespaces such as `ft.plot`, classes such as `ftlua.Tensor` or `Learner`, or the
-- command line `ftlua`); an entry is a table row whose first cell holds code spans, and the last
-- name of each span's leading chain (`learn:fit_one_cycle(...)` -> fit_one_cycle) is what it
-- documents.
local M = {}

local doc          -- {sections = {...}, by_id = {id -> section}}
local names_of     -- function(v [, methods]) -> sorted list of the names v has (host.c)

---------------------------------------------------------------- reading the page

-- Split a table row into cells at `|` outside code spans.
local function cells(line)
  local out, cur, code = {}, {}, false
  for i = 2, #line do
    local c = line:sub(i, i)
    if c == "`" then code = not code end
    if c == "|" and not code and line:sub(i - 1, i - 1) ~= "\\" then
      out[#out + 1] = table.concat(cur)
      cur = {}
    else
      cur[#cur + 1] = c
    end
  end
  return out
end

-- The names a first cell documents, in order.
local function row_names(first)
  local names = {}
  for span in first:gmatch("`([^`]+)`") do
    local name
    if span:match("^%-") then
      name = span:match("^(%-%-?[%w%-]*)")
    else
      local chain = span:match("^[%a_][%w_]*[%.:][%a_][%w_%.:]*")
      if chain then name = chain:gsub("[%.:]+$", ""):match("([%a_][%w_]*)$") end
    end
    if name then names[#names + 1] = name end
  end
  return names
end

local function parse(text)
  local d = { sections = {}, by_id = {} }
  local cur, title
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local h = line:match("^##%s+(.-)%s*$")
    if h then title = h; cur = nil end
    local ids = line:match("^<!%-%- api: (.-) %-%->")
    if ids then
      cur = { title = title, ids = {}, intro = {}, rows = {}, entries = {} }
      d.sections[#d.sections + 1] = cur
      for id in ids:gmatch("%S+") do cur.ids[#cur.ids + 1] = id; d.by_id[id] = cur end
    elseif cur and line:match("^|") then
      if not line:match("^|%s*:?%-%-") then
        local c = cells(line)
        local names = row_names(c[1] or "")
        if #names > 0 then
          local row = { cells = c, names = names, sec = cur }
          cur.rows[#cur.rows + 1] = row
          for _, n in ipairs(names) do
            cur.entries[n] = cur.entries[n] or {}
            table.insert(cur.entries[n], row)
          end
        end
      end
    elseif cur and #cur.rows == 0 and line:match("%S") then
      cur.intro[#cur.intro + 1] = line
    end
  end
  return d
end

---------------------------------------------------------------- showing entries

-- GitHub's heading anchors, as links to the page use them.
local function slug(heading)
  return (heading:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-"))
end

-- Markdown to plain text: code spans lose their backticks, links keep their text (a link to a
-- topic doc shows its file).
local function plain(s)
  s = s:gsub("%[([^%]]*)%]%(([^)]*)%)", function(label, target)
    if target:match("^#") then return label end
    if target:match("^%.%./") then return target:sub(4) end
    return "docs/" .. target
  end)
  s = s:gsub("`", "")
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function show_row(row)
  local out = { plain(row.cells[1]) }
  if row.cells[2] and plain(row.cells[2]) ~= "" then out[#out + 1] = "    " .. plain(row.cells[2]) end
  local more = row.cells[3] and plain(row.cells[3]) or ""
  if more ~= "" then out[#out + 1] = "    see " .. more end
  return table.concat(out, "\n")
end

local function show_rows(rows)
  local out, seen = {}, {}
  for _, r in ipairs(rows) do
    if not seen[r] then seen[r] = true; out[#out + 1] = show_row(r) end
  end
  return table.concat(out, "\n")
end

local function show_section(sec)
  local out = { sec.title }
  for _, l in ipairs(sec.intro) do out[#out + 1] = plain(l) end
  local width = 0
  for _, r in ipairs(sec.rows) do width = math.max(width, math.min(#plain(r.cells[1]), 40)) end
  for _, r in ipairs(sec.rows) do
    local name = plain(r.cells[1])
    local pad = #name < width and (" "):rep(width - #name) or ""
    out[#out + 1] = "  " .. name .. pad .. "  " .. plain(r.cells[2] or "")
  end
  out[#out + 1] = "see docs/api.md#" .. slug(sec.title)
  return table.concat(out, "\n")
end

---------------------------------------------------------------- what a value is

local function ft_root() return package.loaded.ftlua or rawget(_G, "ft") end

-- Resolve "ft.vision.Normalize" from the ft table.
local function ft_path(id)
  local ft = ft_root()
  if not ft or not id:match("^ft[%.%w_]*$") then return nil end
  local v = ft
  for part in id:gmatch("%.([%w_]+)") do
    if type(v) ~= "table" then return nil end
    v = rawget(v, part)
  end
  return v
end

-- Where a userdata class keeps its methods (as test_api_doc.lua finds them).
local function class_methods(mt)
  if type(mt) ~= "table" then return nil end
  if type(rawget(mt, "__methods")) == "table" then return mt.__methods end
  if type(rawget(mt, "methods")) == "table" then return mt.methods end
  local idx = rawget(mt, "__index")
  if type(idx) == "table" then return idx end
  if type(idx) == "function" then
    local _, up = debug.getupvalue(idx, 1)
    if type(up) == "table" then return up end
  end
  return nil
end

-- Classes written in Lua that are reachable by a name; others are found from live objects.
local LUA_CLASSES = { Learner = "ft.learner.LearnerClass", Recorder = "ft.learner.RecorderClass",
  DataLoaders = "ft.vision.DataLoaders" }

-- The method tables of a section's classes.
local function section_classes(sec)
  local r = {}
  for _, id in ipairs(sec.ids) do
    if id:match("^ftlua%.") then
      r[#r + 1] = class_methods(debug.getregistry()[id])
    elseif LUA_CLASSES[id] then
      r[#r + 1] = ft_path(LUA_CLASSES[id])
    end
  end
  return r
end

-- A section that documents a class of objects (ids `ftlua.Tensor`, `Learner`, ...), not only
-- namespaces (`ft.plot`) or the command line (`ftlua`).
local function is_class_section(sec)
  for _, id in ipairs(sec.ids) do
    if id ~= "ft" and id ~= "ftlua" and not id:match("^ft%.") then return true end
  end
  return false
end

-- The class section of an object: its metatable's __name, else the section whose entries
-- cover most of the object's names (a Learner has fit, fit_one_cycle, lr_find, ...).
local function class_section(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__name")) == "string" and doc.by_id[mt.__name] then
    return doc.by_id[mt.__name]
  end
  if type(v) ~= "table" and type(v) ~= "userdata" then return nil end
  for _, sec in ipairs(doc.sections) do
    for _, c in ipairs(section_classes(sec)) do
      if rawequal(c, v) or (type(mt) == "table" and (rawequal(c, mt) or rawequal(c, rawget(mt, "__index")))) then
        return sec
      end
    end
  end
  if type(mt) ~= "table" then return nil end
  local names = names_of(v)
  local best, best_n = nil, 1
  for _, sec in ipairs(doc.sections) do
    if is_class_section(sec) then
      local n = 0
      for _, name in ipairs(names) do if sec.entries[name] then n = n + 1 end end
      if n > best_n then best, best_n = sec, n end
    end
  end
  return best
end

-- The section of a namespace table (ft.plot) or of an object, or nil.
local function section_of(v)
  for _, sec in ipairs(doc.sections) do
    for _, id in ipairs(sec.ids) do
      if type(v) == "table" and rawequal(ft_path(id), v) then return sec end
    end
  end
  return class_section(v)
end

-- Rows documenting the value v, found by where it lives: a namespace (and the tables one level
-- below it: ft.nn.init), a class, or the methods of an object held in a global.
local function rows_for_value(v)
  local rows = {}
  local function scan(t, sec, depth)
    if type(t) ~= "table" then return end
    for k, x in pairs(t) do
      if type(k) == "string" then
        if rawequal(x, v) and sec.entries[k] then
          for _, r in ipairs(sec.entries[k]) do rows[#rows + 1] = r end
        elseif depth > 0 and type(x) == "table" and x ~= t then
          scan(x, sec, depth - 1)
        end
      end
    end
  end
  for _, sec in ipairs(doc.sections) do
    for _, id in ipairs(sec.ids) do
      local ns = ft_path(id)
      if type(ns) == "table" then scan(ns, sec, 1) end
      if rawequal(ns, v) and #rows == 0 and sec.entries[id:match("([%w_]+)$")] then
        for _, r in ipairs(sec.entries[id:match("([%w_]+)$")]) do rows[#rows + 1] = r end
      end
    end
    for _, c in ipairs(section_classes(sec)) do scan(c, sec, 0) end
  end
  if #rows == 0 then
    for _, g in pairs(_G) do
      local mt = (type(g) == "table" or type(g) == "userdata") and getmetatable(g)
      if type(mt) == "table" then
        local sec = class_section(g)
        if sec then scan(class_methods(mt), sec, 0) end
      end
      if #rows > 0 then break end
    end
  end
  -- the top level's row only points at the real entry: drop it when there is one elsewhere
  local top, other = doc.by_id.ft, {}
  for _, r in ipairs(rows) do if r.sec ~= top then other[#other + 1] = r end end
  if #other > 0 then rows = other end
  return rows
end

---------------------------------------------------------------- did you mean

-- Optimal string alignment distance (edits, with swaps of neighbours).
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

-- The names among `names` close to `name` (a typo away), best first; at most three.
function M.closest(name, names)
  local limit = #name <= 4 and 1 or (#name <= 8 and 2 or 3)
  local scored = {}
  for _, n in ipairs(names) do
    if n ~= name then
      local d = distance(name:lower(), n:lower())
      if d <= limit then scored[#scored + 1] = { n, d } end
    end
  end
  table.sort(scored, function(a, b) if a[2] ~= b[2] then return a[2] < b[2] end return a[1] < b[1] end)
  local r = {}
  for i = 1, math.min(3, #scored) do r[i] = scored[i][1] end
  return r
end

local function or_list(list)
  if #list == 1 then return list[1] end
  return table.concat(list, ", ", 1, #list - 1) .. " or " .. list[#list]
end

-- "did you mean fit_one_cycle?" for a name that obj lacks, or nil.
function M.suggest(obj, name, methods)
  local near = M.closest(name, names_of(obj, methods))
  if #near == 0 then return nil end
  return "did you mean " .. or_list(near) .. "?"
end

---------------------------------------------------------------- the lookups

-- The reference text for a value, or nil.
function M.value(v)
  if v == nil then return nil end
  for _, sec in ipairs(doc.sections) do -- a namespace: its whole section
    for _, id in ipairs(sec.ids) do
      if type(v) == "table" and rawequal(ft_path(id), v) then return show_section(sec) end
    end
  end
  local rows = rows_for_value(v)
  if #rows > 0 then return show_rows(rows) end
  local sec = section_of(v)
  if sec then return show_section(sec) end
  return nil
end

-- Every entry named `name`, in any section.
local function rows_named(name)
  local rows = {}
  for _, sec in ipairs(doc.sections) do
    for _, r in ipairs(sec.entries[name] or {}) do rows[#rows + 1] = r end
  end
  return rows
end

local function all_entry_names()
  local seen, r = {}, {}
  for _, sec in ipairs(doc.sections) do
    for n in pairs(sec.entries) do if not seen[n] then seen[n] = true; r[#r + 1] = n end end
  end
  table.sort(r)
  return r
end

-- The reference text for a name path such as "learn:fit_one_cycle", "ft.plot.imagesc" or
-- "fit_one_cycle". resolve(name) gives the value of the first name (default: the global).
-- Returns the text, or nil and a message saying what is wrong ("did you mean ...?").
function M.text(expr, resolve)
  resolve = resolve or function(n) return rawget(_G, n) end
  expr = expr:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%(%s*%)$", "")
  local parts, seps = {}, {}
  local first = expr:match("^[%a_][%w_]*")
  if not first then return nil, "help: '" .. expr .. "' is not a name" end
  parts[1] = first
  local rest = expr:sub(#first + 1)
  while rest ~= "" do
    local sep, name = rest:match("^([%.:])([%a_][%w_]*)")
    if not sep then return nil, "help: '" .. expr .. "' is not a name such as learn:fit or ft.plot.imagesc" end
    seps[#seps + 1], parts[#parts + 1] = sep, name
    rest = rest:sub(#sep + #name + 1)
  end
  local v = resolve(first)
  if v == nil then
    if #parts == 1 then
      local rows = rows_named(first)
      if #rows > 0 then return show_rows(rows) end
      local near = M.closest(first, names_of(_G))
      for _, n in ipairs(M.closest(first, all_entry_names())) do near[#near + 1] = n end
      return nil, "help: '" .. first .. "' is neither a global nor in the reference"
        .. (#near > 0 and "; did you mean " .. or_list(near) .. "?" or "")
    end
    local near = M.closest(first, names_of(_G))
    return nil, "help: '" .. first .. "' is nil" .. (#near > 0 and "; did you mean " .. or_list(near) .. "?" or "")
  end
  local path = first
  for i = 2, #parts do
    local owner, name, sep = v, parts[i], seps[i - 1]
    local ok, x = pcall(function() return owner[name] end)
    if not ok or x == nil then
      local what = sep == ":" and "method" or "field"
      return nil, ("help: %s has no %s '%s'"):format(path, what, name)
        .. ((M.suggest(owner, name, sep == ":") and "; " .. M.suggest(owner, name, sep == ":")) or "")
    end
    if i == #parts then
      local sec = section_of(owner)
      if sec and sec.entries[name] then return show_rows(sec.entries[name]) end
      local text = M.value(x)
      if text then return text end
      local rows = rows_named(name)
      if #rows > 0 then return show_rows(rows) end
      return nil, ("help: %s%s%s has no entry in the reference (a %s)"):format(path, sep, name, type(x))
    end
    path, v = path .. sep .. name, x
  end
  local text = M.value(v)
  if text then return text end
  return nil, ("help: %s has no entry in the reference (a %s)"):format(expr, type(v))
end

M.usage = [[
help(x) shows the API reference entry for x: a function, a class, an object or a namespace.
  help(ft.plot.imagesc)        a function
  help(learn)                  an object: its methods and fields
  help("learn:fit_one_cycle")  a method, by name (also "fit_one_cycle" alone)
  ?learn:fit_one_cycle         the same at the prompt
The whole reference: docs/api.md (help(ft) lists the top level).]]

function M.init(text, lister)
  doc, names_of = parse(text), lister
end

return M
