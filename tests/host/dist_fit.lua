-- dist_fit.lua: the script of tests/host/test_dist_learner.sh, the same on 1 process and on N.
-- A small net without BatchNorm learns random 8x8 images (with augmentation): lr_find, then
-- fine_tune (a frozen cycle, then an unfrozen one), then a validation. Every rank writes its
-- weights and numbers to OUT.rank<r>.safetensors; rank 0 saves the learner through learn:save.
--   ftlua [--nproc N] dist_fit.lua OUT
local T, nn, D = ft.tensor, ft.nn, ft.dist
local out = assert(arg[1], "usage: dist_fit.lua OUT")
T.manual_seed(3)
local n_train, n_valid = 96, 40
local xt = T.randint(0, 256, { n_train, 8, 8 }):to("uint8")
local yt = T.randint(1, 5, { n_train })
local xv = T.randint(0, 256, { n_valid, 8, 8 }):to("uint8")
local yv = T.randint(1, 5, { n_valid })
local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, {
  bs = 16, val_bs = 12, channels = 1, seed = 11, verbose = false, num_workers = 0,
  batch_tfms = ft.vision.aug_transforms { size = 8, max_rotate = 20, max_warp = 0.1 },
})
local model = nn.Sequential { nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4) }
model:set_param_groups { { "1" }, { "3" } }
local learn = ft.Learner(dls, model, { metrics = { ft.metrics.accuracy }, path = out .. ".dir" })
local lr_min = learn:lr_find { num_it = 6 }
if os.getenv("DIST_FIT_DIE") then
  -- the fault test: rank 1 dies at its 4th training batch of fine_tune (added after lr_find,
  -- so lr_find's batches never trigger it); it notes where and when it dies in DIST_FIT_DIE
  learn:add_cb { name = "die", after_batch = function(_, l)
    if D.rank() == 1 and l.train_iter == 3 then
      os.execute(("echo fine_tune epoch %d train_iter %d $(date +%%s.%%N) > %s; kill -9 %s"):format(
        l.epoch, l.train_iter, os.getenv("DIST_FIT_DIE"), io.popen("echo $PPID"):read("l")))
    end
  end }
end
learn:fine_tune(2, { base_lr = 0.1, freeze_epochs = 1 })
learn:save("final")
local res = {}
for k, t in pairs(model:state_dict()) do res["w." .. k] = t:contiguous() end
local vals = learn.recorder.values[#learn.recorder.values]
res.values = T.tensor(vals):to("float64")
res.lr_min = T.tensor { lr_min }:to("float64")
res.world = T.tensor { D.world_size() }:to("float64")
T.save(("%s.rank%d.safetensors"):format(out, D.rank()), res)
