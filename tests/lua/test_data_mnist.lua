-- test_data_mnist.lua: MNIST IDX files (Debian's gzip'd Fashion-MNIST) against Python's own
-- parsing, and Fashion-MNIST as DataLoaders.
local H = require "harness"
local T, V = ft.tensor, ft.vision

local DIR = "/usr/share/datasets/fashion-mnist"
local f = io.open(DIR .. "/t10k-labels-idx1-ubyte.gz", "rb")
if not f then
  H.skip("fashion-mnist", DIR .. " is absent (apt install dataset-fashion-mnist)")
  H.done()
end
f:close()
local root = os.getenv("FTLUA_ROOT") or "."

local ref
if H.have_torch() then
  ref = H.python(("import sys; sys.path.insert(0, %q + '/tests/py'); import data_ref\n"):format(root) .. ([[
d = %q
print(lua({n: data_ref.idx_summary(d + "/" + n) for n in
  ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"]}))]]):format(DIR))
end

local xv = V.read_idx(DIR .. "/t10k-images-idx3-ubyte.gz")
local yv = V.read_idx(DIR .. "/t10k-labels-idx1-ubyte.gz")
local yt = V.read_idx(DIR .. "/train-labels-idx1-ubyte.gz")

H.test("read_idx equals Python's parse: shapes, values, label histogram", function()
  H.close(xv:size(), { 10000, 28, 28 }, 0, "images shape")
  H.eq(xv:dtype(), "uint8", "dtype")
  H.close(yt:size(), { 60000 }, 0, "train labels shape")
  if not ref then return H.skip("read_idx vs python", "no python3") end
  for name, t in pairs { ["t10k-images-idx3-ubyte.gz"] = xv, ["t10k-labels-idx1-ubyte.gz"] = yv,
                         ["train-labels-idx1-ubyte.gz"] = yt } do
    local r = ref[name]
    H.close(t:size(), r.shape, 0, name .. " shape")
    local flat = t:view(-1)
    H.close(flat:narrow(1, 1, 8):totable(), r.first, 0, name .. " first values")
    H.close(flat:narrow(1, flat:size(1) - 7, 8):totable(), r.last, 0, name .. " last values")
    H.eq(flat:long():sum():item(), r.sum, name .. " sum")
    local hist = {}
    for k = 0, 9 do hist[k + 1] = flat:eq(k):long():sum():item() end
    H.close(hist, r.hist, 0, name .. " histogram of 0..9")
  end
end)

H.test("Fashion-MNIST DataLoaders: 3 channels, valid batch = pixels / 255", function()
  local dls = V.FashionMNIST { n_train = 1000, n_valid = 300, bs = 128, seed = 1, device = "cpu", verbose = false }
  H.eq(dls.c, 10, "classes")
  H.eq(dls.vocab[10], "Ankle boot", "vocab")
  H.eq(#dls.train, 7, "train batches (1000 // 128)")
  H.eq(#dls.valid, 3, "valid batches")
  local x, y = dls.valid:one_batch()
  H.close(x:size(), { 128, 3, 28, 28 }, 0, "x shape")
  local want = xv:narrow(1, 1, 128):float() / 255
  H.close(x:select(2, 1), want, 1e-6, "channel 1")
  H.close(x:select(2, 3), want, 1e-6, "channel 3 (grey replicated)")
  H.eq(y:equal(yv:narrow(1, 1, 128):long() + 1), true, "labels 1-based")
  local n = 0
  for xb, yb in dls.train:batches() do
    n = n + xb:size(1)
    assert(yb:min():item() >= 1 and yb:max():item() <= 10, "labels in 1..10")
  end
  H.eq(n, 896, "train items per epoch")
end)

H.test("Fashion-MNIST with 1 channel, normalised, resized and augmented", function()
  local dls = V.FashionMNIST { n_train = 256, n_valid = 64, bs = 64, channels = 1, device = "cpu", verbose = false,
    normalize = { { 0.5, 0.5, 0.5 }, { 0.25, 0.25, 0.25 } } }
  local x = dls.valid:one_batch()
  H.close(x:size(), { 64, 1, 28, 28 }, 0, "x shape")
  H.close(x, (xv:narrow(1, 1, 64):float():view(64, 1, 28, 28) / 255 - 0.5) / 0.25, 1e-5, "normalised")
  local aug = V.FashionMNIST { n_train = 256, n_valid = 64, bs = 64, channels = 1, device = "cpu", verbose = false,
    item_tfms = V.Resize(32), batch_tfms = V.aug_transforms { size = 24, min_scale = 0.8 }, seed = 5 }
  local a = aug.train:one_batch()
  H.close(a:size(), { 64, 1, 24, 24 }, 0, "augmented shape")
  assert(a:min():item() >= 0 and a:max():item() <= 1, "in [0, 1]")
  H.eq(a:equal(aug.train:one_batch()), true, "seeded")
end)

H.test("show_batch on small images scales them up so labels fit", function()
  local dls = V.FashionMNIST { n_train = 64, n_valid = 64, bs = 16, device = "cpu", verbose = false }
  local path = os.tmpname() .. ".png"
  dls:show_batch { nrows = 2, ncols = 4, path = path, split = "valid" }
  local f = assert(io.open(path, "rb"))
  local w, h = string.unpack(">I4I4", f:read(24), 17)
  f:close()
  H.eq(w, 4 * (140 + 6) + 6, "width (28 px scaled 5x)")
  H.eq(h, 2 * (140 + 26 + 6) + 6, "height")
  os.remove(path)
end)

H.done()
