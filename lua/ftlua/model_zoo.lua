-- model_zoo.lua: the Lua half of the `model` module. runtime/model/model.c runs this chunk
-- once with the tables to fill; it is not meant for require.
--
--   ft.models.resnet18/34/50/101/152{num_classes = 1000, weights = FILE | pretrained = true}
--   ft.nn.create_head(nf, n_out [, opts])                  fastai's create_head
--   ft.vision.create_cnn_model(arch, n_out [, opts])       fastai's create_cnn_model
--
-- The architectures and every forward are C (runtime/model); this file only wires options,
-- weights files (through ft.weights, the weights module) and fastai's head together.
local nn, models, M, priv = ...
if type(nn) ~= "table" then
  error("ftlua.model_zoo is loaded by ftlua.model; use ft.models and ft.nn", 2)
end
local T = require "ftlua.tensor"

-- Options are checked by name (ftlua.args), so a typo (num_class = 10) is an error, not a
-- silent default.
local A = require "ftlua.args"
local check_opts, fail = A.check_keys, A.fail

-- ft.weights is another module of the library; look it up when needed, not at load time.
local function weights_module()
  local ft = package.loaded.ftlua
  local W = type(ft) == "table" and ft.weights or package.loaded["ftlua.weights"]
  return type(W) == "table" and W or nil
end

-- A state dict from a file (torch.save .pth or .safetensors) or a table given directly.
local function read_weights(source)
  if type(source) == "table" then return source end
  local W = weights_module()
  if W and W.load then return (W.load(source)) end
  if tostring(source):match("%.safetensors$") then return (T.load(source)) end
  A.fail_at(2, "reading %s needs ft.weights, which this build lacks (safetensors files work without it)",
    tostring(source))
end

local function pretrained_path(arch)
  local W = weights_module()
  if not (W and W.pretrained) then
    A.fail_at(2, "pretrained = true needs ft.weights.pretrained to find torchvision's %s file, and this "
      .. "build has no ft.weights; pass weights = FILE instead", arch)
  end
  return W.pretrained(arch)
end

-- ---------------------------------------------------------------- the zoo

local RESNET_OPTS = { num_classes = true, weights = true, pretrained = true }

for _, depth in ipairs { 18, 34, 50, 101, 152 } do
  local arch = "resnet" .. depth
  models[arch] = function(opts)
    opts = check_opts("ft.models." .. arch, opts, RESNET_OPTS)
    local model = priv.resnet(depth, opts.num_classes or 1000)
    local source = opts.weights
    if source == nil and opts.pretrained then source = pretrained_path(arch) end
    if source ~= nil then model:load_state_dict(read_weights(source)) end
    return model
  end
end

-- ---------------------------------------------------------------- fastai's head

-- fastai's BatchNorm(nf, ndim=1): weight 1, bias 1e-3.
local function head_bn(n)
  local bn = nn.BatchNorm1d(n)
  T.no_grad(function() bn.bias:fill(1e-3) end)
  return bn
end

local HEAD_OPTS = { lin_ftrs = true, ps = true, concat_pool = true, pool = true, first_bn = true,
  bn_final = true }

-- fastai's create_head: [AdaptiveConcatPool2d, Flatten] then, per linear layer, BatchNorm1d,
-- Dropout (when p > 0), Linear without bias (a BN precedes it), ReLU except after the last.
-- Linear weights get kaiming_normal_ (fan_in, std sqrt(2/fan_in)), as fastai's apply_init.
function nn.create_head(nf, n_out, opts)
  opts = check_opts("create_head", opts, HEAD_OPTS)
  local pool, concat = opts.pool ~= false, opts.concat_pool ~= false
  if pool and concat then nf = nf * 2 end
  local lin = { nf }
  for _, n in ipairs(opts.lin_ftrs or { 512 }) do lin[#lin + 1] = n end
  lin[#lin + 1] = n_out
  local ps = opts.ps or 0.5
  if type(ps) == "number" then ps = { ps } end
  if #ps == 1 then -- fastai: ps/2 for the hidden layers, ps for the last
    local p = ps[1]
    ps = {}
    for i = 1, #lin - 2 do ps[i] = p / 2 end
    ps[#lin - 1] = p
  end
  if #ps ~= #lin - 1 then
    fail("create_head: %d dropout values for %d linear layers", #ps, #lin - 1)
  end
  local layers = {}
  local function add(m) layers[#layers + 1] = m end
  if pool then
    add(concat and nn.AdaptiveConcatPool2d() or nn.AdaptiveAvgPool2d(1))
    add(nn.Flatten())
  end
  for i = 1, #lin - 1 do
    local bn = i > 1 or opts.first_bn ~= false
    if bn then add(head_bn(lin[i])) end
    if ps[i] ~= 0 then add(nn.Dropout(ps[i])) end
    local linear = nn.Linear(lin[i], lin[i + 1], { bias = not bn })
    nn.init.kaiming_normal_(linear.weight)
    if not bn then T.no_grad(function() linear.bias:zero() end) end
    add(linear)
    if i < #lin - 1 then add(nn.ReLU { inplace = true }) end
  end
  if opts.bn_final then add(nn.BatchNorm1d(lin[#lin], { momentum = 0.01 })) end
  return nn.Sequential(layers)
end

-- ---------------------------------------------------------------- fastai's cnn model

-- The body's output channels: the last Conv2d or BatchNorm2d of the tree (fastai runs a dummy
-- batch through the body instead; for these architectures the answer is the same).
local function num_features(body)
  local nf
  for _, m in body:named_modules() do
    local t = m:type()
    if t == "Conv2d" or t == "BatchNorm2d" then nf = m.weight:size(1) end
  end
  if not nf then A.fail_at(2, "create_cnn_model: cannot find the body's number of features") end
  return nf
end

local CNN_OPTS = { pretrained = true, weights = true, cut = true, custom_head = true }
for k in pairs(HEAD_OPTS) do CNN_OPTS[k] = true end

-- create_cnn_model(arch, n_out [, opts]): Sequential(body, head) as fastai builds it. arch is
-- "resnet34" or a constructor such as ft.models.resnet34. pretrained defaults to true, as in
-- fastai. The body is the arch cut before its pooling layer, its children renamed 0..7 as
-- fastai's nn.Sequential(*children) does (so names are "0.4.0.conv1.weight"), the head is child
-- "1". Resnets get fastai's three parameter groups; other bodies two (body, head).
function M.create_cnn_model(arch, n_out, opts)
  opts = check_opts("create_cnn_model", opts, CNN_OPTS)
  local make = type(arch) == "string" and models[arch] or arch
  if type(make) ~= "function" then
    fail("create_cnn_model: unknown arch %s (use \"resnet34\" or ft.models.resnet34)", tostring(arch))
  end
  if math.type(n_out) ~= "integer" or n_out < 1 then
    fail("create_cnn_model: n_out must be a positive integer, got %s", A.describe(n_out))
  end
  local pretrained = opts.pretrained
  if pretrained == nil then pretrained = true end
  local full = make { pretrained = (pretrained and opts.weights == nil) or nil, weights = opts.weights }
  local children, cut = {}, opts.cut
  for name, child in full:children() do children[#children + 1] = { name, child } end
  if cut == nil then -- fastai's meta for resnets: cut = -2 (drop avgpool and fc)
    for i, c in ipairs(children) do
      if c[1] == "avgpool" then cut = i - 1 end
    end
    if not cut then fail("create_cnn_model: no 'avgpool' child to cut at; pass cut = N") end
  elseif cut < 0 then
    cut = #children + cut
  end
  local kept = {}
  for i = 1, cut do kept[i] = children[i][2] end
  local body = nn.Sequential(kept)
  local head = opts.custom_head or nn.create_head(num_features(body), n_out, {
    lin_ftrs = opts.lin_ftrs, ps = opts.ps, concat_pool = opts.concat_pool, pool = opts.pool,
    first_bn = opts.first_bn, bn_final = opts.bn_final })
  local model = nn.Sequential { body, head }
  local resnet = cut == 8 and children[8][1] == "layer4"
  if resnet then -- fastai's _resnet_split
    model:set_param_groups { { "0.0", "0.1", "0.2", "0.3", "0.4", "0.5" }, { "0.6", "0.7" }, { "1" } }
  else
    model:set_param_groups { { "0" }, { "1" } }
  end
  return model
end
M.create_head = nn.create_head

-- The losses live with the learner (which reads them); ft.nn holds them too, as torch.nn and
-- torch.nn.functional do: ft.nn.CrossEntropyLoss(), ft.nn.functional.cross_entropy(...).
local learner = package.loaded["ftlua.learner"]
if type(learner) == "table" and learner.losses then
  for name, ctor in pairs(learner.losses) do nn[name] = ctor end
  nn.functional = learner._functional
end
