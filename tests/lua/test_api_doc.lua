-- test_api_doc.lua: docs/api.md documents every public name of the running program, and only
-- names that exist.
--
-- The names come from the program, not from a list: the `ft` table and its namespaces, the
-- methods of every userdata class (the `ftlua.*` metatables in the registry, as made by creating
-- small instances), and the methods and fields of the Lua-made objects (DataLoaders, DataBlock,
-- Learner, recorder, ClassificationInterpretation), and the flags of `ftlua --help`.
--
-- docs/api.md is cut into sections by markers `<!-- api: ID [ID...] -->`; each ID names a
-- namespace (`ft.tensor`), a class (`ftlua.Tensor`, `Learner`) or the command line (`ftlua`).
-- An entry is a table row whose first cell holds code spans such as `T.zeros{...}`,
-- `x:add_(b)` or `learn.recorder`: the last name of the leading dotted chain is the name it
-- documents (a span without `.` or `:`, like `#x` or `x[i]`, documents no name). On the
-- command line, a span starting with `-` documents that flag.
--
-- Checks:
--   api_doc_names      every public name (not starting with `_`) has an entry in its section
--   api_doc_no_stale   every entry names something that exists in its section's namespaces
--   api_doc_classes    every userdata class with methods has a section
--   api_doc_cli        every flag of `ftlua --help` has an entry, and every flag entry exists
--   api_doc_links      every entry row links to a topic doc; every link of the page goes to an
--                      existing file and, with `#anchor`, to an existing heading there
local H = require "harness"
local root = os.getenv("FTLUA_ROOT") or "."
local DOC = root .. "/docs/api.md"

local function sorted_keys(t)
  local r = {}
  for k in pairs(t) do if type(k) == "string" then r[#r + 1] = k end end
  table.sort(r)
  return r
end
local function public(k) return type(k) == "string" and k:sub(1, 1) ~= "_" end

---------------------------------------------------------------- parse docs/api.md
local f = assert(io.open(DOC, "r"), "cannot open " .. DOC)
local text = f:read("a")
f:close()

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

-- id -> {entries = {name -> line}, via = {name -> line}, rows = {...}}: `entries` are the names
-- an entry documents (the last of its chain), `via` the tables named on the way.
local sections = {}
local section_of = {}  -- id -> the shared section table
local section_list = {} -- each section table once, in the page's order
do
  local current
  local ln = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    ln = ln + 1
    local ids = line:match("^<!%-%- api: (.-) %-%->")
    if ids then
      current = { entries = {}, via = {}, rows = {}, ids = ids }
      section_list[#section_list + 1] = current
      for id in ids:gmatch("%S+") do
        assert(not section_of[id], "docs/api.md: section id " .. id .. " appears twice")
        section_of[id] = current
        sections[#sections + 1] = id
      end
    elseif current and line:match("^|") and not line:match("^|%s*:?%-%-") then
      local c = cells(line)
      local first = c[1] or ""
      local named = false
      for span in first:gmatch("`([^`]+)`") do
        local name
        if span:match("^%-") then
          name = span:match("^(%-%-?[%w%-]*)")
        else
          local chain = span:match("^[%a_][%w_]*[%.:][%a_][%w_%.:]*")
          if chain then
            chain = chain:gsub("[%.:]+$", "")
            name = chain:match("([%a_][%w_]*)$")
            -- the names in between document the tables on the way (`nn.init.kaiming_normal_`)
            local first = true
            for part in chain:gmatch("[%a_][%w_]*") do
              if not first and part ~= name then current.via[part] = current.via[part] or ln end
              first = false
            end
          end
        end
        if name then
          current.entries[name] = current.entries[name] or ln
          named = true
        end
      end
      if named then current.rows[#current.rows + 1] = { line = line, ln = ln, cells = c } end
    end
  end
end

---------------------------------------------------------------- the program's names
-- Each "owner" is a namespace or class: the names it has, and the section that documents them.
local owners = {}      -- list of {id, label, names = {name -> value or true}, alias = bool}
local function owner(id, names, opts)
  local o = { id = id, names = names, alias = opts and opts.alias, label = opts and opts.label }
  owners[#owners + 1] = o
  return o
end

local function table_names(t)
  local r = {}
  for _, k in ipairs(sorted_keys(t)) do if public(k) then r[k] = t[k] end end
  return r
end
local function merge(...)
  local r = {}
  for _, t in ipairs({ ... }) do for k, v in pairs(t) do r[k] = v end end
  return r
end

-- Namespaces. The raw submodules (ft.learner, ft.model, ft.untar, ft.data) are re-exported as
-- ft.Learner, ft.nn, ft.vision, ...: their names count as documented when the value is the
-- same object as a documented name (alias = true), else they need their own entry.
-- {section id, table [, label for messages]}
local NAMESPACES = {
  { "ft", ft },
  { "ft.tensor", ft.tensor },
  { "ft.nn", ft.nn }, { "ft.nn", ft.nn.init, "ft.nn.init" }, { "ft.nn", ft.nn.functional, "ft.nn.functional" },
  { "ft.models", ft.models },
  { "ft.vision", ft.vision }, { "ft.vision", ft.vision.ImageDataLoaders, "ft.vision.ImageDataLoaders" },
  { "ft.vision", ft.vision.Normalize, "ft.vision.Normalize" },
  { "ft.weights", ft.weights },
  { "ft.io", ft.io },
  { "ft.Learner", { Learner = ft.Learner, load_learner = ft.load_learner, slice = ft.slice,
                    cnn_learner = ft.vision.cnn_learner, vision_learner = ft.vision.vision_learner }, "ft" },
  { "ft.metrics", ft.metrics },
  { "ft.losses", ft.losses },
  { "ft.callbacks", ft.callbacks },
  { "ft.ClassificationInterpretation", ft.ClassificationInterpretation },
  { "ft.plot", ft.plot },
  { "ft.untar_data", { untar_data = ft.untar_data, URLs = ft.URLs }, "ft" }, { "ft.untar_data", ft.URLs, "ft.URLs" },
  { "ft.learner_core", ft.learner_core },
  { "ft.dist", ft.dist },
  { "ft.json", ft.json },
  { "ft.script", ft.script },
}
local namespace_tables = {}
for _, n in ipairs(NAMESPACES) do
  owner(n[1], table_names(n[2]), { label = n[3] })
  namespace_tables[n[2]] = true
end
local RAW = { "learner", "model", "untar", "data" }
for _, m in ipairs(RAW) do
  owner("ft." .. m, table_names(ft[m]), { alias = true })
  namespace_tables[ft[m]] = true
end
-- A new table in `ft` (a new submodule) must be listed above, with a section.
local unlisted_namespaces = {}
for _, k in ipairs(sorted_keys(ft)) do
  local v = ft[k]
  if public(k) and type(v) == "table" and not namespace_tables[v] then
    unlisted_namespaces[#unlisted_namespaces + 1] = "ft." .. k
  end
end

-- Userdata classes: the methods of every `ftlua.*` metatable in the registry, after making one
-- of each kind so that every module has registered its classes.
local T, nn, V = ft.tensor, ft.nn, ft.vision
T.manual_seed(0)
local x = T.zeros(2, 2)
local model = nn.Sequential { nn.Flatten(), nn.Linear(64, 2) }
local fig_ok, fig = pcall(ft.plot.figure, { term = "dumb" }) -- needs no gnuplot until it draws
local core = ft.learner_core
local opt = core.Adam({ { T.zeros(2):requires_grad() } }, { lr = 1e-3 })
local sched = core.one_cycle(1e-3, { n_groups = 1 })
local ds = V.new_array_dataset((T.rand { 4, 8, 8 } * 255):byte(), T.tensor({ 1, 2, 1, 2 }):long(), {})

-- Where each class keeps its methods.
local function class_methods(mt)
  if type(mt.__methods) == "table" then return mt.__methods end          -- ftlua.Tensor
  if type(mt.methods) == "table" then return mt.methods end              -- ftlua.Schedule
  if type(mt.__index) == "table" then return mt.__index end
  if type(mt.__index) == "function" then                                 -- ftlua.Module
    local _, up = debug.getupvalue(mt.__index, 1)
    if type(up) == "table" then return up end
  end
  return nil
end
-- Fields read through __index functions, which pairs() cannot list.
local FIELDS = {
  ["ftlua.Tensor"] = { grad = true, shape = true },
  ["ftlua.Module"] = { training = true },
}
-- Reached only through a private field (learn._core): documented in learner.md's C loop, not here.
local PRIVATE_CLASSES = { ["ftlua.LearnerCore"] = true }

local classes_without_section = {}
for k, mt in pairs(debug.getregistry()) do
  if type(k) == "string" and k:match("^ftlua%.") and type(mt) == "table" and not PRIVATE_CLASSES[k] then
    local m = class_methods(mt)
    if m and next(m) then
      owner(k, merge(table_names(m), FIELDS[k] or {}))
      if not section_of[k] then classes_without_section[#classes_without_section + 1] = k end
    end
  end
end
for _, v in ipairs({ x, model, opt, sched, ds }) do assert(getmetatable(v), "no metatable") end
if fig_ok then fig:close() end

-- Lua-made objects: a DataLoaders over tensors, a Learner, one epoch for its recorder, an
-- interpretation, a DataBlock. Their methods and their public fields.
T.set_num_threads(1)
local dls = V.ImageDataLoaders.from_tensors((T.rand { 32, 8, 8 } * 255):byte(), T.randint(1, 3, { 32 }),
  (T.rand { 16, 8, 8 } * 255):byte(), T.randint(1, 3, { 16 }),
  { bs = 8, vocab = { "a", "b" }, device = "cpu", num_workers = 0, channels = 1, verbose = false })
local learn = ft.Learner(dls, model, { metrics = ft.metrics.accuracy })
local fresh_fields = table_names(learn)
learn:fit(1, 1e-2) -- prints one epoch's table
local interp = ft.ClassificationInterpretation.from_learner(learn)
local block = V.DataBlock { blocks = { V.ImageBlock, V.CategoryBlock }, get_y = V.parent_label }

local function methods_of(obj)
  local mt = getmetatable(obj)
  return mt and type(mt.__index) == "table" and table_names(mt.__index) or {}
end
-- Fields of file-based DataLoaders (from_folder, from_name_re) that from_tensors does not set.
local DLS_FILE_FIELDS = { items = true, train_items = true, valid_items = true, dataset = true, path = true }
owner("DataLoaders", merge(methods_of(dls), table_names(dls), DLS_FILE_FIELDS))
owner("DataBlock", merge(methods_of(block), table_names(block)))
owner("Learner", merge(methods_of(learn), fresh_fields, table_names(learn)))
owner("Recorder", merge(methods_of(learn.recorder), table_names(learn.recorder)))
owner("Interpretation", merge(methods_of(interp), table_names(interp)))

-- The command line: the flags of --help.
local ftlua_bin = "./ftlua"  -- the interpreter running this test: arg's lowest index
if arg then
  local i = -1
  while arg[i - 1] do i = i - 1 end
  ftlua_bin = arg[i] or ftlua_bin
end
local flags = {}
do
  local p = assert(io.popen("'" .. ftlua_bin:gsub("'", "'\\''") .. "' --help 2>&1"))
  local help = p:read("a")
  p:close()
  for line in help:gmatch("[^\n]+") do
    local opts = line:match("^%s+(%-[^%s].-)%s%s") or line:match("^%s+(%-%-)%s*$")
    if opts then
      for flag in opts:gmatch("(%-%-?[%w%-]*)") do flags[flag] = true end
    end
  end
end
owner("ftlua", flags)

---------------------------------------------------------------- checks
local documented_values = {}   -- functions and tables documented somewhere
local documented_plain = {}    -- "name=value" of documented strings, numbers, booleans
local function plain_key(k, v) return k .. "=" .. tostring(v) end
local missing, stale = {}, {}
-- Plain owners first, so the raw submodules can resolve names by identity.
table.sort(owners, function(a, b)
  if (a.alias or false) ~= (b.alias or false) then return not a.alias end
  return a.id < b.id
end)
for _, o in ipairs(owners) do
  local sec = section_of[o.id]
  for _, k in ipairs(sorted_keys(o.names)) do
    local v = o.names[k]
    local ref = type(v) == "function" or type(v) == "table"
    local ok = sec and (sec.entries[k] or sec.via[k])
    if not ok and o.alias then ok = ref and documented_values[v] or not ref and documented_plain[plain_key(k, v)] end
    if ok then
      if ref then documented_values[v] = true else documented_plain[plain_key(k, v)] = true end
    else
      local label = o.label or o.id
      missing[#missing + 1] = (label:match("^ftlua%.") and label .. ":" or label == "ftlua" and "ftlua " or label .. ".") .. k
    end
  end
end

H.test("api_doc_names", function()
  local why = {}
  if #missing > 0 then
    why[#why + 1] = #missing .. " public names have no entry in docs/api.md: " .. table.concat(missing, ", ")
  end
  if #unlisted_namespaces > 0 then
    why[#why + 1] = "namespaces with no section (add them to NAMESPACES in this test and to docs/api.md): "
        .. table.concat(unlisted_namespaces, ", ")
  end
  if #why > 0 then error(table.concat(why, "\n"), 0) end
end)

H.test("api_doc_classes", function()
  table.sort(classes_without_section)
  if #classes_without_section > 0 then
    error("classes with methods but no `<!-- api: NAME -->` section in docs/api.md: "
      .. table.concat(classes_without_section, ", "), 0)
  end
end)

H.test("api_doc_no_stale", function()
  -- Every entry of a section must be a name of one of the owners that section documents.
  local by_section = {}
  for _, o in ipairs(owners) do
    local sec = section_of[o.id]
    if sec then
      by_section[sec] = by_section[sec] or {}
      for k in pairs(o.names) do by_section[sec][k] = true end
    end
  end
  local unknown_ids = {}
  for _, id in ipairs(sections) do
    local found = false
    for _, o in ipairs(owners) do if o.id == id then found = true end end
    if not found then unknown_ids[#unknown_ids + 1] = id end
  end
  for _, sec in ipairs(section_list) do
    local known = by_section[sec] or {}
    for _, name in ipairs(sorted_keys(sec.entries)) do
      if not known[name] then
        stale[#stale + 1] = ("%s (line %d, section %s)"):format(name, sec.entries[name], sec.ids)
      end
    end
  end
  local why = {}
  if #unknown_ids > 0 then why[#why + 1] = "sections for things that do not exist: " .. table.concat(unknown_ids, ", ") end
  if #stale > 0 then why[#why + 1] = "documented names that do not exist: " .. table.concat(stale, "; ") end
  if #why > 0 then error(table.concat(why, "\n"), 0) end
end)

H.test("api_doc_cli", function()
  if not next(flags) then error("could not read any flag from `" .. ftlua_bin .. " --help`", 0) end
  for _, want in ipairs({ "-e", "-i", "--help", "--version" }) do
    if not flags[want] then error("--help parsing lost " .. want, 0) end
  end
end)

-- GitHub's heading anchors: lower case, punctuation dropped, spaces made hyphens.
local function slug(heading)
  return (heading:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-"))
end
local anchors_cache = {}
local function anchors(path)
  if anchors_cache[path] == nil then
    local fh = io.open(path, "r")
    if not fh then anchors_cache[path] = false return false end
    local set, fenced = {}, false
    for line in fh:lines() do
      if line:match("^```") then fenced = not fenced end
      local h = not fenced and line:match("^#+%s+(.-)%s*$")
      if h then set[slug(h)] = true end
    end
    fh:close()
    anchors_cache[path] = set
  end
  return anchors_cache[path]
end

H.test("api_doc_links", function()
  local bad = {}
  -- Every link of the page goes to an existing file, and to an existing heading there.
  local ln = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    ln = ln + 1
    for target in line:gmatch("%]%(([^)%s]+)%)") do
      if not target:match("^%a+:") then
        local file, anchor = target:match("^([^#]*)#?(.*)$")
        local path = file == "" and DOC or root .. "/docs/" .. file
        local set = anchors(path)
        if not set then
          bad[#bad + 1] = ("line %d: %s does not exist"):format(ln, target)
        elseif anchor ~= "" and file:match("%.md$") or anchor ~= "" and file == "" then
          if not set[anchor] then bad[#bad + 1] = ("line %d: no heading for #%s in %s"):format(ln, anchor, path) end
        end
      end
    end
  end
  for _, sec in ipairs(section_list) do
    for _, row in ipairs(sec.rows) do
      local last = row.cells[#row.cells] or ""
      local target = last:match("%]%(([^)#]+)[^)]*%)")
      if not target then
        bad[#bad + 1] = ("line %d: no link to a topic doc in the last cell"):format(row.ln)
      else
        local fh = io.open(root .. "/docs/" .. target, "r")
        if fh then fh:close() else bad[#bad + 1] = ("line %d: %s does not exist"):format(row.ln, target) end
      end
    end
  end
  if #bad > 0 then error(table.concat(bad, "\n"), 0) end
end)

H.done()
