"""Writes scripts/pets.ipynb (the chapter as a notebook) from the cells below.

Kept so the notebook's text is reviewable in a diff-friendly form; run it after editing:
    /usr/bin/python3 tests/kernel/make_pets_notebook.py
"""
import json
import sys

CELLS = [
("md", """# Pet breeds: fastai's chapter 5 in ftlua

This notebook follows the chapter's path with ftlua: build the data with presizing, look at a
batch, see what cross-entropy really computes, pick a learning rate with `lr_find`, train with
the one-cycle policy, unfreeze with discriminative learning rates, try deeper models and half
precision, and finally read the mistakes.

Run it with the **ftlua** kernel (`./ftlua --install-kernel --user`, see `docs/jupyter.md`). The
progress bar, the epoch tables and every plot appear below their cells."""),
("md", """## Parameters

As it stands, the notebook runs offline on the 600 photos in `../shared/data/pets-sample`
(three breeds) with small images and few epochs, so it finishes in minutes on a laptop CPU. Set
`FULL = true` to use the whole Oxford-IIIT Pet dataset (37 breeds, downloaded by `untar_data`)
at the book's settings: resnet34, 224-pixel images, 3 + 12 epochs, pretrained weights."""),
("code", """FULL = false                 -- true: the whole dataset and the book's settings (network needed)
local tiny = os.getenv("FTLUA_NOTEBOOK_TINY") == "1"   -- the test suite's setting: seconds, not minutes
ARCH = FULL and "resnet34" or "resnet18"
SIZE = FULL and 224 or (tiny and 32 or 128)
BS = FULL and 64 or 16
EPOCHS = FULL and {3, 12} or (tiny and {1, 1} or {2, 3})
NUM_IT = FULL and 100 or (tiny and 10 or 50)
PRETRAINED = FULL                  -- offline there are no ImageNet weights to download
DEEPER = FULL and {"resnet50"} or (tiny and {} or {"resnet34"})
SAMPLE = (os.getenv("FTLUA_SHARED") or "../../shared") .. "/data/pets-sample"  -- from scripts/
V = ft.vision
ft.tensor.manual_seed(42)"""),
("md", """## The data, presized

Each image is first resized to a generous square (460 pixels for 224 in the book) on the item
level; then, per batch, one combined random crop, rotation, zoom and warp brings it to the
final size. Doing the destructive resizes once, and the augmentations together at the end,
keeps the images free of the empty borders and blur that a chain of separate transforms leaves."""),
("code", """local path
if FULL then path = ft.untar_data(ft.URLs.PETS) .. "/images" else path = SAMPLE .. "/images" end
local presize = math.floor(SIZE * 460 / 224 + 0.5)
pets = V.DataBlock {
  blocks = { V.ImageBlock, V.CategoryBlock },
  get_items = V.get_image_files,
  splitter = V.RandomSplitter { seed = 42 },
  get_y = V.RegexLabeller "(.+)_%d+%.jpg$",
  item_tfms = V.Resize(presize),
  batch_tfms = V.aug_transforms { size = SIZE, min_scale = 0.75 },
}
dls = pets:dataloaders(path, { bs = BS })
dls.vocab"""),
("md", """Always look at the data before training: the labels come from the file names through a
regular expression, and a wrong pattern shows up here at once."""),
("code", """dls:show_batch { nrows = 3, ncols = 3 };"""),
("md", """## Cross-entropy, by hand

A model gives one activation per class. Softmax turns them into probabilities that add up to
one (exponentiate, then divide by the sum); the loss of an item is minus the log of the
probability given to its true class. Below we compute exactly that from the raw activations of
an untrained learner, and compare it with the loss the library reports for the same items."""),
("code", """learn = V.cnn_learner(dls, ft.models[ARCH], { metrics = ft.metrics.error_rate, pretrained = PRETRAINED })
local acts, targs, losses = learn:get_preds { ds_idx = 1, with_loss = true, act = false }
local e = (acts - acts:max(2, true)):exp()          -- shifting by the max changes nothing but avoids overflow
local probs = e / e:sum(2, true)
local by_hand = -probs:gather(2, targs:view(-1, 1)):view(-1):log()
print(("probabilities add up to 1: %.6f"):format(probs:sum(2):mean():item()))
print(("largest difference from the library's loss: %.2e"):format((by_hand - losses):abs():max():item()))
assert((by_hand - losses):abs():max():item() < 1e-4, "hand-made cross-entropy differs");"""),
("md", """## The learning rate finder

`lr_find` trains for a few batches while raising the learning rate exponentially and records
the loss. A good rate is where the loss still falls steeply, well before it blows up; the two
suggestions are the minimum divided by ten and the steepest point."""),
("code", """lr_min, lr_steep = learn:lr_find { num_it = NUM_IT }
print(("Minimum/10: %.2e, steepest point: %.2e"):format(lr_min, lr_steep))
learn:plot_lr_find();"""),
("md", """## Training the head, then everything

With a pretrained body, `cnn_learner` freezes it: only the new head trains at first. The
one-cycle schedule warms the learning rate up, then anneals it, while the momentum moves the
other way."""),
("code", """learn:fit_one_cycle(EPOCHS[1], 3e-3);"""),
("md", """Then unfreeze the body. Its early layers already detect generic edges and textures, so
they should move less than the last ones: `ft.slice(lo, hi)` spreads the learning rates over the
parameter groups, the lowest for the first group. We look at `lr_find` again, since the model
is different now."""),
("code", """learn:unfreeze()
lr_min, lr_steep = learn:lr_find { num_it = NUM_IT }
print(("Minimum/10: %.2e, steepest point: %.2e"):format(lr_min, lr_steep))
learn:plot_lr_find();"""),
("code", """learn:fit_one_cycle(EPOCHS[2], ft.slice(1e-6, 1e-4));"""),
("md", """The losses of every batch and the validation loss at each epoch's end: training longer pays
while the validation loss keeps falling; when it turns up while the training loss still falls,
the model starts to memorise."""),
("code", """learn.recorder:plot_loss();"""),
("md", """## Deeper models, and half precision

A deeper resnet can fit more, at the price of time and memory. Half precision (bfloat16 on
CPUs with the instructions for it, fp16 on GPUs) makes each step cheaper; `to_bf16` keeps a
float32 copy of the weights and scales nothing, since bfloat16 has float32's range."""),
("code", """for _, arch in ipairs(DEEPER) do
  local deeper = V.cnn_learner(dls, ft.models[arch], { metrics = ft.metrics.error_rate, pretrained = PRETRAINED })
  deeper:to_bf16()
  deeper:fine_tune(EPOCHS[1], { freeze_epochs = 1 })
end"""),
("md", """## What the model gets wrong

The confusion matrix counts, for each true breed, the predicted ones; `most_confused` lists the
largest off-diagonal cells. The top losses are the images the model was most confidently wrong
about, often mislabelled photos or genuinely hard cases."""),
("code", """interp = ft.ClassificationInterpretation.from_learner(learn)
interp:plot_confusion_matrix();"""),
("code", """interp:plot_top_losses(9);"""),
("code", """print(("%-28s %-28s %s"):format("actual", "predicted", "count"))
for _, c in ipairs(interp:most_confused { min_val = 1 }) do
  print(("%-28s %-28s %d"):format(c[1], c[2], c[3]))
end"""),
]


def notebook(cells):
    out = []
    for i, (kind, text) in enumerate(cells):
        lines = text.split("\n")
        src = [l + "\n" for l in lines[:-1]] + [lines[-1]]
        if kind == "md":
            out.append({"cell_type": "markdown", "id": "cell-%d" % i, "metadata": {}, "source": src})
        else:
            out.append({"cell_type": "code", "id": "cell-%d" % i, "execution_count": None, "metadata": {}, "outputs": [],
                        "source": src})
    return {"cells": out, "metadata": {
        "kernelspec": {"display_name": "ftlua", "language": "lua", "name": "ftlua"},
        "language_info": {"name": "lua", "file_extension": ".lua", "mimetype": "text/x-lua",
                          "codemirror_mode": "lua", "pygments_lexer": "lua"}},
        "nbformat": 4, "nbformat_minor": 5}


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "scripts/pets.ipynb"
    with open(path + ".part", "w") as f:
        json.dump(notebook(CELLS), f, indent=1)
        f.write("\n")
    import os
    os.replace(path + ".part", path)
