-- test_help.lua: help(x) prints the entries of docs/api.md, for every public function and
-- every kind of object, read from the page on disk here (the program reads the copy compiled
-- into it: the two must agree).
--
-- Checks:
--   help_every_function   every function of ft's namespaces: help(f) prints its row's name cell
--                         and description, as plain text
--   help_objects          tensors, modules, DataLoaders, loaders, Learner, recorder,
--                         interpretation, DataBlock, figures: help(obj) prints its section
--   help_names            help("learn:fit_one_cycle"), help("fit_one_cycle"), did you mean
--   help_usage            help() says how to use it
local H = require "harness"
local root = os.getenv("FTLUA_ROOT") or "."
local T, nn, V = ft.tensor, ft.nn, ft.vision

-- What help prints, captured.
local function help_text(...)
  local out = {}
  local old = print
  print = function(...) out[#out + 1] = table.concat({ ... }, "\t") end
  local ok, err = pcall(help, ...)
  print = old
  if not ok then error(err, 0) end
  return table.concat(out, "\n")
end

-- The page: each row's first and second cells, as plain text, by section title.
local f = assert(io.open(root .. "/docs/api.md"))
local page = f:read("a")
f:close()
local function plain(s)
  s = s:gsub("%[([^%]]*)%]%(([^)]*)%)", "%1"):gsub("`", "")
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end
local rows, titles = {}, {}
do
  local title
  for line in page:gmatch("[^\n]+") do
    title = line:match("^## (.+)$") or title
    if line:match("^<!%-%- api:") then titles[#titles + 1] = title end
    local a, b = line:match("^| (`[^|]-`[^|]-) | ([^|]+) |")
    if a then rows[#rows + 1] = { name = plain(a), what = plain(b), title = title } end
  end
end

H.test("help_every_function", function()
  local NS = { ft, ft.tensor, ft.nn, ft.nn.init, ft.models, ft.vision, ft.weights, ft.metrics, ft.losses,
    ft.callbacks, ft.plot, ft.learner_core, ft.dist, ft.ClassificationInterpretation }
  local bad, n = {}, 0
  for _, ns in ipairs(NS) do
    for k, v in pairs(ns) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then
        n = n + 1
        local text = help_text(v)
        -- the printed entry is one of the page's rows that names k
        local found = false
        for _, r in ipairs(rows) do
          if text:find(r.name, 1, true) == 1 and text:find("    " .. (r.what:gsub("`", "")), 1, true)
            and (r.name:find("[%.:]" .. k .. "[%(%s{,]") or r.name:find("[%.:]" .. k .. "$")) then
            found = true
          end
        end
        if not found then bad[#bad + 1] = k .. " -> " .. text:gsub("\n.*", "") end
      end
    end
  end
  if #bad > 0 then error(#bad .. " of " .. n .. " functions: " .. table.concat(bad, "; "), 0) end
  assert(n > 100, "only " .. n .. " functions seen")
end)

H.test("help_objects", function()
  T.manual_seed(0)
  T.set_num_threads(1)
  local dls = V.ImageDataLoaders.from_tensors((T.rand { 16, 8, 8 } * 255):byte(), T.randint(1, 3, { 16 }),
    (T.rand { 8, 8, 8 } * 255):byte(), T.randint(1, 3, { 8 }),
    { bs = 8, vocab = { "a", "b" }, device = "cpu", num_workers = 0, channels = 1, verbose = false })
  local model = nn.Sequential { nn.Flatten(), nn.Linear(64, 2) }
  local learn = ft.Learner(dls, model)
  learn:fit(1, 1e-3)
  _G.interp_for_help = ft.ClassificationInterpretation.from_learner(learn)
  local cases = {
    { T.zeros(2), "Tensor methods" }, { model, "Module methods" }, { dls, "DataLoaders" },
    { dls.train, "Loaders (`dls.train`, `dls.valid`, `test_dl`)" }, { learn, "Learner methods and fields" },
    { learn.recorder, "The recorder (`learn.recorder`)" }, { _G.interp_for_help, "ClassificationInterpretation" },
    { V.DataBlock { blocks = { V.ImageBlock, V.CategoryBlock }, get_y = V.parent_label }, "DataBlock" },
    { ft.plot, "ft.plot" }, { ft, "ft: the top level" },
  }
  local ok_fig, fig = pcall(ft.plot.figure, { term = "dumb" })
  if ok_fig then cases[#cases + 1] = { fig, "Figures" } end
  for _, c in ipairs(cases) do
    local text = help_text(c[1])
    H.eq(text:match("^[^\n]*"), c[2], "first line of help(" .. c[2] .. ")")
  end
  if ok_fig then fig:close() end
  -- a method of an object that only a global holds (the interpretation's class has no name)
  H.eq(help_text(_G.interp_for_help.plot_top_losses):match("^[^\n]*"), "interp:plot_top_losses([k, opts])", "method by value")
  _G.interp_for_help = nil
end)

H.test("help_names", function()
  _G.learn_for_help = setmetatable({}, { __index = ft.learner.LearnerClass })
  local text = help_text("learn_for_help:fit_one_cycle")
  H.eq(text, "learn:fit_one_cycle(n, lr_max [, opts])\n    train with the one-cycle schedule\n    see docs/learner.md#schedules", "by path")
  H.eq(help_text("fit_one_cycle"), text, "by the entry's name")
  H.eq(help_text("learn_for_help:fit_one_cyle"),
    "help: learn_for_help has no method 'fit_one_cyle'; did you mean fit_one_cycle?", "typo")
  H.eq(help_text("ft.plot.imagsc"), "help: ft.plot has no field 'imagsc'; did you mean imagesc?", "field typo")
  _G.learn_for_help = nil
  -- help(nil) from a misspelt field: the name is read from the calling line
  local out = {}
  local old = print
  print = function(s) out[#out + 1] = s end
  help(ft.plot.imagsc)
  print = old
  H.eq(out[1], "help: ft.plot has no field 'imagsc'; did you mean imagesc?", "help(ft.plot.imagsc)")
end)

H.test("help_usage", function()
  local text = help_text()
  assert(text:find("help(x) shows the API reference entry", 1, true), text)
  assert(text:find("?learn:fit_one_cycle", 1, true), text)
end)

-- every section of the page is reachable by its title through some object above or a namespace
H.test("help_sections_exist", function()
  assert(#titles > 20, "the page has " .. #titles .. " sections")
end)

H.done()
