-- learner_interp.lua: fastai's ClassificationInterpretation (from_learner, confusion_matrix,
-- most_confused, top_losses). Loaded once by learner_api.lua, which calls the returned function
-- with M; it returns the class, whose plots learner_plots.lua adds.
local T = require "ftlua.tensor"
local A = require "ftlua.args"
local check_keys, set = A.check_keys, A.set

return function(M)
  local Interp = {}
  Interp.__index = Interp
  M.ClassificationInterpretation = {}

  -- ClassificationInterpretation.from_learner(learn [, ds_idx = 1])
  function M.ClassificationInterpretation.from_learner(learn, ds_idx)
    local probs, targs, losses = learn:get_preds { ds_idx = ds_idx or 1, with_loss = true }
    local _, decoded = probs:max(2)
    return setmetatable({ learn = learn, vocab = learn.dls.vocab, probs = probs, targs = targs,
      decoded = decoded, losses = losses }, Interp)
  end

  -- confusion_matrix() -> int64 [c, c] tensor, cm[actual][predicted]
  function Interp:confusion_matrix()
    local c = #self.vocab
    local t, d = self.targs:totable(), self.decoded:totable()
    local cm = {}
    for i = 1, c do cm[i] = {} for j = 1, c do cm[i][j] = 0 end end
    for i = 1, #t do cm[t[i]][d[i]] = cm[t[i]][d[i]] + 1 end
    return T.tensor(cm, "int64")
  end

  -- most_confused's result prints as fastai's list of tuples does in Python (pprint: one tuple a
  -- line when it does not fit in 80 columns), e.g. [('Bengal', 'Egyptian_Mau', 2)].
  local MostConfused = { __name = "most_confused" }
  function MostConfused.__tostring(list)
    local function q(v) return type(v) == "string" and "'" .. v:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'" or tostring(v) end
    local items = {}
    for i, t in ipairs(list) do items[i] = ("(%s, %s, %s)"):format(q(t[1]), q(t[2]), tostring(t[3])) end
    local one = "[" .. table.concat(items, ", ") .. "]"
    if #one <= 80 then return one end
    return "[" .. table.concat(items, ",\n ") .. "]"
  end

  -- most_confused{min_val = 1} -> {{actual, predicted, count}, ...} by count, descending
  function Interp:most_confused(opts)
    opts = check_keys("most_confused", opts, set { "min_val" })
    local min_val = opts.min_val or 1
    local cm = self:confusion_matrix():totable()
    local out = {}
    for i = 1, #cm do
      for j = 1, #cm do
        if i ~= j and cm[i][j] >= min_val then out[#out + 1] = { self.vocab[i], self.vocab[j], cm[i][j], #out + 1 } end
      end
    end
    -- ties keep the matrix's row-major order, as fastai's stable sorted() does
    table.sort(out, function(a, b) if a[3] ~= b[3] then return a[3] > b[3] end return a[4] < b[4] end)
    for _, c in ipairs(out) do c[4] = nil end
    return setmetatable(out, MostConfused)
  end

  -- top_losses(k [, largest = true]) -> losses, indices (1-based, into the valid set)
  function Interp:top_losses(k, largest)
    k = k or self.losses:size(1)
    return self.losses:topk(k, 1, largest ~= false)
  end
  return Interp
end
