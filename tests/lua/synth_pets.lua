-- synth_pets.lua: a synthetic Oxford-IIIT Pet folder for tests (require "synth_pets"; not a
-- test itself): the dataset's 37 real breed names (cat breeds capitalised, dog breeds in lower
-- case, as in the dataset's file names) and small generated images, written at test time into
-- a folder the caller gives (never committed).
local P = {}

P.CATS = { "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau", "Maine_Coon",
  "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx" }
P.DOGS = { "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "boxer", "chihuahua",
  "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees", "havanese",
  "japanese_chin", "keeshond", "leonberger", "miniature_pinscher", "newfoundland", "pomeranian", "pug",
  "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "staffordshire_bull_terrier",
  "wheaten_terrier", "yorkshire_terrier" }
P.BREEDS = {}
for _, b in ipairs(P.CATS) do P.BREEDS[#P.BREEDS + 1] = b end
for _, b in ipairs(P.DOGS) do P.BREEDS[#P.BREEDS + 1] = b end

local function le32(v) return string.pack("<I4", v) end
local function le16(v) return string.pack("<I2", v) end

-- A 24-bit BMP of w x h pixels; pixel(x, y) -> r, g, b (0..255), x and y from 0, y down.
function P.write_bmp(path, w, h, pixel)
  local row_pad = (4 - (w * 3) % 4) % 4
  local size = (w * 3 + row_pad) * h
  local out = { "BM", le32(54 + size), le32(0), le32(54), le32(40), le32(w), le32(h), le16(1), le16(24),
    le32(0), le32(size), le32(2835), le32(2835), le32(0), le32(0) }
  local pad = string.rep("\0", row_pad)
  for y = h - 1, 0, -1 do -- BMP rows go bottom up
    local row = {}
    for x = 0, w - 1 do
      local r, g, b = pixel(x, y)
      row[#row + 1] = string.char(b, g, r)
    end
    out[#out + 1] = table.concat(row) .. pad
  end
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(out))
  f:close()
end

-- P.make(dir, {per_class = 6, w = 72, h = 64}) -> the list of files: dir/<Breed>_<k>.jpg for each
-- breed, k = 1..per_class. Each breed has its own colour and stripe period, with noise from a
-- fixed LCG, so the classes can be learnt a little. The files are BMPs named .jpg (the decoder
-- reads by content, as the real dataset has a PNG and a GIF named .jpg).
function P.make(dir, opts)
  opts = opts or {}
  local per, w, h = opts.per_class or 6, opts.w or 72, opts.h or 64
  local seed = 12345
  local function rand() seed = (seed * 1103515245 + 12345) % 2147483648 return seed / 2147483648 end
  local files = {}
  for c, breed in ipairs(P.BREEDS) do
    local r0, g0, b0 = (c * 53) % 256, (c * 97) % 256, (c * 151) % 256
    local period = 3 + c % 9
    for k = 1, per do
      local path = ("%s/%s_%d.jpg"):format(dir, breed, k)
      P.write_bmp(path, w, h, function(x, y)
        local stripe = ((x + y * (c % 2)) // period) % 2 == 0 and 60 or 0
        local n = math.floor(rand() * 40)
        return (r0 + stripe + n) % 256, (g0 + n) % 256, (b0 + stripe) % 256
      end)
      files[#files + 1] = path
    end
  end
  return files
end

return P
