-- learner_export.lua: the Learner's files. learn:save/load (model and optimizer state),
-- learn:export and ft.load_learner (weights plus a JSON description that rebuilds the model and
-- the valid-split transforms). Loaded once by learner_api.lua, which calls the returned function
-- with (M, Learner, L): L the loss helpers, the recorder's attach and new_core (the C core).
local T = require "ftlua.tensor"
local A = require "ftlua.args"
local check_keys, set = A.check_keys, A.set

local function ft() return package.loaded.ftlua end

return function(M, Learner, L)
  local Loss, loss_spec, loss_callable, with_recorder = L.Loss, L.loss_spec, L.loss_callable, L.with_recorder
  local new_core = L.new_core
  local function mkdir_p(dir) os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") end

  function Learner:_file(name)
    if name:match("%.safetensors$") or name:find("/") then return name end
    return ("%s/%s/%s.safetensors"):format(self.path, self.model_dir, name)
  end

  -- learn:save(name [, {with_opt = true}]): model and optimizer state in one safetensors file
  -- (written atomically) at path/model_dir/name.safetensors, with the optimizer's kind in its
  -- metadata (learn:load refuses another kind's state). Returns the file name.
  function Learner:save(name, opts)
    opts = check_keys("save", opts, set { "with_opt" })
    local file = self:_file(name)
    if ft().dist.is_main() then mkdir_p(file:match("^(.*)/[^/]*$") or ".") end
    local out = {}
    for k, t in pairs(self.model:state_dict()) do out["model." .. k] = t end
    if opts.with_opt ~= false then
      for k, t in pairs(self._core:opt_state()) do out["opt." .. k] = t end
    end
    local meta = { format = "ftlua.learner" }
    if opts.with_opt ~= false and self._opt then meta.opt = self._opt.kind end
    self:_rank0_writes(function() T.save(file, out, meta) end)
    return file
  end

  -- learn:load(name [, {with_opt = true}])
  function Learner:load(name, opts)
    opts = check_keys("load", opts, set { "with_opt" })
    local file = self:_file(name)
    local all, meta = T.load(file)
    local model, optst, has_opt = {}, {}, false
    for k, t in pairs(all) do
      local m = k:match("^model%.(.*)$")
      if m then model[m] = t else
        local o = k:match("^opt%.(.*)$")
        if o then optst[o] = t has_opt = true end
      end
    end
    if next(model) == nil then model = all end -- a plain state dict
    self.model:load_state_dict(model)
    if opts.with_opt ~= false then
      local saved, mine = meta and meta.opt, self._core:opt_kind()
      if has_opt and saved and saved ~= mine then
        A.fail("load: %s holds %s optimizer state, but this Learner's optimizer is %s: build the Learner with "
          .. "opt_func = ft.learner.%s, or load the weights alone with learn:load(name, {with_opt = false})",
          file, saved, mine, saved)
      end
      if has_opt then self._core:set_opt_state(optst)
      else io.stderr:write("warning: Saved file doesn't contain an optimizer state.\n") end
    end
    return self
  end

  ---------------------------------------------------------------- export / load_learner

  -- The export description is JSON (ft.json, runtime/base/json.c over jansson): numbers, strings,
  -- booleans, arrays and objects with string keys; no Lua code is ever loaded from a file.
  local json = require "ftlua.json"
  M._json = json

  -- Version 2 describes any model built from ft.nn layers (the module tree, m:describe());
  -- version 1 (ftlua before it) described cnn_learner models only, by arch name. load_learner
  -- reads both.
  local EXPORT_FORMAT = "ftlua.learner.export/2"
  local EXPORT_FORMATS = { ["ftlua.learner.export/1"] = 1, ["ftlua.learner.export/2"] = 2 }

  -- The description of the model that load_learner rebuilds: the module tree (kind, constructor
  -- arguments, children, parameter groups), plus cnn_learner's arch and head options when known
  -- (for people reading the file). A model with a Lua forward cannot be described.
  local function model_desc(self, describe)
    if describe == false then return { kind = "none", type = self.model:type() } end
    local ok, tree = pcall(self.model.describe, self.model)
    if not ok then
      error(("export: cannot describe this model: %s. Export it without the structure, "
        .. "learn:export(file, {describe_model = false}), and load it with "
        .. "ft.load_learner(file, {model = m}), m built by your Lua code (or save the weights with "
        .. "learn:save(name) and load them into the rebuilt model)"):format(tostring(tree):gsub("^describe: ", "")), 0)
    end
    return { kind = "tree", tree = tree, cnn = self._cnn }
  end

  -- The transforms the DataLoaders apply to new items (item Resize, aug params, normalisation),
  -- the vocab and the channel count.
  local function data_desc(dls)
    if dls._desc then return dls._desc end -- a loaded learner's: what its export held
    local cfg = dls._cfg or {}
    local info = dls.valid:info()
    local aug
    if cfg.aug then
      aug = {}
      for k, v in pairs(cfg.aug) do aug[k] = v end
    end
    local vocab = {}
    for i, v in ipairs(dls.vocab or {}) do vocab[i] = tostring(v) end
    return { vocab = vocab, channels = cfg.channels or info.channels or 3, resize = cfg.resize, aug = aug,
      mean = info.mean, std = info.std, val_bs = cfg.val_bs or info.bs, array = cfg.array or false }
  end

  -- learn:export(file = "export.safetensors" [, {describe_model = true}]): the model's weights
  -- and buffers and a JSON description (model, vocab, transforms) in the safetensors metadata,
  -- written atomically. A relative file goes under learn.path, as in fastai. describe_model =
  -- false leaves the model's structure out (for models with a Lua forward): load_learner then
  -- needs {model = m}.
  function Learner:export(file, opts)
    if type(file) == "table" and opts == nil then file, opts = nil, file end
    opts = check_keys("export", opts, set { "describe_model" })
    file = file or "export.safetensors"
    A.check_type("export", "the file name", file, "string")
    if not file:find("^/") then file = (self.path or ".") .. "/" .. file end
    local ok, desc = pcall(function()
      return json.encode { format = EXPORT_FORMAT, version = 2, model = model_desc(self, opts.describe_model),
        data = data_desc(self.dls), loss = getmetatable(self.loss_func) == Loss and { kind = self.loss_func.kind,
          name = self.loss_func.name, reduction = self.loss_func.reduction, eps = self.loss_func.eps } or nil,
        amp = self.amp, opt = self._opt }
    end)
    if not ok then error(desc, 2) end
    local sd = self.model:state_dict()
    self:_rank0_writes(function()
      mkdir_p(file:match("^(.*)/[^/]*$") or ".")
      T.save(file, sd, { format = EXPORT_FORMAT, learner = desc })
    end)
  end

  -- What load_learner gives as dls: the vocab and a test_dl over image files with the exported
  -- valid-split transforms (enough for predict and get_preds{dl = ...}).
  local Exported = {}
  Exported.__index = Exported

  function Exported:test_dl(files, opts)
    opts = check_keys("test_dl", opts, set { "bs", "on_error", "num_workers" })
    local d = self._desc
    local ds, idx = ft().vision.test_dataset(files, d.resize,
      { on_error = opts.on_error or "skip", num_workers = opts.num_workers })
    return ds:loader(idx, { bs = opts.bs or d.val_bs or 64, shuffle = false, drop_last = false, train = false,
      aug = d.aug, size = d.aug and d.aug.size or nil, mean = d.mean, std = d.std, channels = d.channels,
      num_workers = opts.num_workers })
  end

  -- The model of an export: rebuilt from its description, or the caller's (opts.model).
  -- load_learner's errors are raised at several depths, so their position may be inside the
  -- library: ./ftlua's message handler maps it to the user's line. Each names the file.
  local fail_up = A.fail

  local function exported_model(file, md, given)
    if given ~= nil then
      if not ft().nn.is_module(given) then fail_up("load_learner: option 'model' must be a module (ft.nn.*), got a %s", type(given)) end
      return given
    end
    if type(md) ~= "table" then fail_up("load_learner: %s: the description has no model; export it again", file) end
    if md.kind == "cnn" then -- version 1
      local ok, m = pcall(ft().vision.create_cnn_model, md.arch, md.n_out, { pretrained = false,
        lin_ftrs = md.lin_ftrs, ps = md.ps, concat_pool = md.concat_pool })
      if not ok then fail_up("load_learner: %s: cannot rebuild its cnn model: %s", file, tostring(m)) end
      return m
    elseif md.kind == "tree" then
      if type(md.tree) ~= "table" then fail_up("load_learner: %s: the model description is damaged (no tree); export it again", file) end
      local ok, m = pcall(ft().nn.from_description, md.tree)
      if not ok then fail_up("load_learner: %s: cannot rebuild the model: %s", file, tostring(m)) end
      return m
    elseif md.kind == "none" then
      fail_up("load_learner: %s holds the weights of a %s but not its structure (exported with "
        .. "describe_model = false): build the model in Lua and pass it, ft.load_learner(file, {model = m})",
        file, tostring(md.type))
    end
    fail_up("load_learner: %s: unknown model description '%s' (written by a newer ftlua?)", file, tostring(md.kind))
  end

  -- ft.load_learner(file [, {model = m}]) -> a Learner for inference (predict,
  -- get_preds{dl = learn.dls:test_dl(files)}). The model is rebuilt from the file's description
  -- (or is opts.model, built by the caller) and the exported weights are loaded strictly.
  function M.load_learner(file, opts)
    opts = check_keys("load_learner", opts, set { "cpu", "model", "amp" })
    if type(file) ~= "string" then fail_up("load_learner: the file name must be a string, got a %s", type(file)) end
    local fh, why = io.open(file, "rb")
    if not fh then
      if not why:find("No such file", 1, true) then fail_up("load_learner: cannot open %s: %s", file, why) end
      fail_up("load_learner: %s does not exist (learn:export(name) writes name under learn.path, the current folder by default)", file)
    end
    fh:close()
    local okr, tensors, meta = pcall(T.load, file)
    if not okr then
      fail_up("load_learner: cannot read %s: %s (a truncated or damaged file? export it again)", file,
        tostring(tensors):gsub("^[^:]*:%d+: ", ""))
    end
    if not meta or not EXPORT_FORMATS[meta.format] or not meta.learner then
      fail_up("load_learner: %s is not a file written by learn:export (no '%s' description)", file, EXPORT_FORMAT)
    end
    local okd, desc = pcall(json.decode, meta.learner)
    if not okd or type(desc) ~= "table" then
      fail_up("load_learner: %s: the learner description is damaged (%s); export it again", file,
        okd and "not an object" or tostring(desc):gsub("^load_learner: ", ""))
    end
    local md, dd = desc.model, desc.data
    if type(dd) ~= "table" or type(dd.vocab) ~= "table" then
      fail_up("load_learner: %s: the description has no data part (vocab, transforms); export it again", file)
    end
    local model = exported_model(file, md, opts.model)
    local okl, err = pcall(model.load_state_dict, model, tensors)
    if not okl then
      err = tostring(err):gsub("^[^:]*:%d+: ", ""):gsub(" %(strict = false[^)]*%)$", "")
      fail_up("load_learner: %s: the exported weights do not fit the model: %s", file, err)
    end
    local dls = setmetatable({ vocab = dd.vocab, c = #dd.vocab, _desc = dd, path = "." }, Exported)
    local learn = setmetatable({ dls = dls, model = model, lr = 1e-3, path = dls.path, model_dir = "models", cbs = {},
      moms = { 0.95, 0.85, 0.95 }, metrics = {}, loss_func = loss_callable(desc.loss),
      recorder = { lrs = {}, moms = {}, losses = {}, iters = {}, values = {}, metric_names = {} },
      _cnn = type(md) == "table" and (md.kind == "cnn" and md or md.cnn) or nil }, Learner)
    local loss, eps = loss_spec(desc.loss)
    -- The exporting learner's optimizer (fastai's export pickles its opt_func): fine-tuning a
    -- loaded learner trains as the original did. Exports from before it make an Adam.
    local o = type(desc.opt) == "table" and desc.opt or {}
    if o.kind ~= nil and o.kind ~= "Adam" and o.kind ~= "SGD" then
      fail_up("load_learner: %s: unknown optimizer '%s' (written by a newer ftlua?)", file, tostring(o.kind))
    end
    learn._opt = { kind = o.kind or "Adam", mom = o.mom, sqr_mom = o.sqr_mom, eps = o.eps, wd = o.wd,
      decouple_wd = o.decouple_wd }
    learn._core = new_core(model, learn._opt, { lr = 1e-3, loss = loss, ls_eps = eps, metrics = {} })
    -- The precision policy it was trained (and validated) under, so that its predictions are the
    -- exporting learner's: bf16 autocast stays bf16 (opts.amp overrides; "fp32" to leave it).
    local amp = opts.amp
    if amp == nil then amp = desc.amp or "fp32" end
    if amp == "bf16" then learn:to_bf16()
    elseif amp == "fp16" then
      if not (dls.device or ""):match("^cuda") then
        io.stderr:write(("warning: load_learner: %s was trained with fp16 autocast (CUDA); predicting in float32 on the CPU\n"):format(file))
      else learn:to_fp16() end
    elseif amp ~= "fp32" then
      fail_up("load_learner: option amp must be \"fp32\", \"bf16\" or \"fp16\", got %s", tostring(amp))
    end
    model:eval()
    return with_recorder(learn)
  end
end
