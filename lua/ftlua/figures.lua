-- figures.lua: where the image grids go (show_batch, plot_top_losses, show_results), by the
-- rule of docs/plot.md ("Where figures go"), shared with ft.plot's curves:
--   an explicit path  -> that PNG (written whole or not at all, by the data module's write_grid);
--   no path, FTLUA_PLOT_DIR set (--report, the notebook kernel) -> a fresh PNG in that folder;
--   no path otherwise (the REPL, any terminal) -> the grid as text on stdout: each image's number
--   and its label, wrapped, never cut, under a thumbnail drawn with 24-bit colour half blocks
--   on a terminal that has them. Never a file the user did not name.
-- require "ftlua.figures" (internal: the public names are the methods that use it).
local F = {}

local function plot_dir()
  local d = os.getenv("FTLUA_PLOT_DIR")
  return d and d ~= "" and d or nil
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

-- A fresh "<FTLUA_PLOT_DIR>/<name>-<n>.png" (none is overwritten), or nil when the figure goes
-- to the terminal.
function F.auto_path(name)
  local dir = plot_dir()
  if not dir then return nil end
  for n = 1, math.huge do
    local p = ("%s/%s-%d.png"):format(dir, name, n)
    if not exists(p) then return p end
  end
end

-- The terminal's colour codes (ESC[31m ...) that labels may carry; kept on a terminal, removed
-- when stdout is a file or a pipe.
local function strip(s) return (s:gsub("\27%[[%d;]*m", "")) end
local function visible_len(s) return utf8.len(strip(s)) or #strip(s) end

-- Wrap s (no newlines) to lines of at most w visible characters, breaking after a space or '/',
-- else after '_', else anywhere. Colour codes stay with their text.
local function wrap(s, w, out)
  local plain = strip(s)
  if #plain <= w then out[#out + 1] = s return end
  -- Work on the plain text; a coloured label is re-coloured as a whole per line.
  local colour = s:match("^(\27%[%d*m)")
  local pos = 1
  while pos <= #plain do
    while plain:sub(pos, pos) == " " do pos = pos + 1 end
    if pos > #plain then break end
    local last = math.min(pos + w - 1, #plain)
    local cut = last
    if last < #plain then
      local soft, us
      for i = pos, last do
        local c = plain:sub(i, i)
        if c == " " or c == "/" then soft = i elseif c == "_" then us = i end
      end
      cut = soft or us or last
    end
    local line = plain:sub(pos, cut)
    out[#out + 1] = colour and (colour .. line .. "\27[0m") or line
    pos = cut + 1
  end
end

-- Whether to draw thumbnails with the terminal's 24-bit colours: FTLUA_TERM_IMAGES=1|0 decides,
-- else a terminal that says it has them (COLORTERM=truecolor or 24bit).
local function term_images()
  local force = os.getenv("FTLUA_TERM_IMAGES")
  if force == "1" or force == "0" then return force == "1" end
  local ct = os.getenv("COLORTERM") or ""
  return (ct == "truecolor" or ct == "24bit") and package.loaded.ftlua.plot._stdout_is_tty()
end

-- Thumbnails of x as lines of text: w characters wide, each character two pixels (upper half
-- block in the top pixel's colour over the bottom pixel's), so a square image is w x w/2.
-- x: float [N,C,H,W] normalised with mean/std, or uint8 [N,H,W,3]. -> {{line, ...}, ...}
local function thumbnails(x, w, mean, std)
  local T = package.loaded.ftlua.tensor
  if x:dtype() == "uint8" then x = x:permute { 1, 4, 2, 3 }:float() / 255 mean, std = nil, nil end
  local n, C, H, W = x:size(1), x:size(2), x:size(3), x:size(4)
  local rows = math.max(1, math.floor(w * H / W / 2 + 0.5))
  local pool = package.loaded.ftlua.nn.AdaptiveAvgPool2d { rows * 2, w }
  local small = T.no_grad(function() return pool(x:float():cpu()) end):totable()
  local out = {}
  for i = 1, n do
    local function rgb(r, c)
      local v = {}
      for k = 1, 3 do
        local ch = C == 3 and k or 1
        local t = small[i][ch][r][c]
        if mean then t = t * std[ch] + mean[ch] end
        v[k] = math.floor(math.max(0, math.min(1, t)) * 255 + 0.5)
      end
      return v
    end
    local lines = {}
    for r = 1, rows do
      local parts = {}
      for c = 1, w do
        local a, b = rgb(2 * r - 1, c), rgb(2 * r, c)
        parts[c] = ("\27[38;2;%d;%d;%dm\27[48;2;%d;%d;%dm\u{2580}"):format(a[1], a[2], a[3], b[1], b[2], b[3])
      end
      lines[r] = table.concat(parts) .. "\27[0m"
    end
    out[i] = lines
  end
  return out
end
F.term_images = term_images

-- Print labels as a grid of numbered cells: ncols per row (fewer when the terminal is narrow),
-- each label wrapped to the cell's width, under its thumbnail when pics are given (lines of
-- pic_w characters). title heads it; hint follows it.
function F.text_grid(labels, ncols, title, hint, pics, pic_w)
  local tty = package.loaded.ftlua.plot._stdout_is_tty() or pics ~= nil
  local width = tonumber(os.getenv("COLUMNS") or "") or 100
  local longest = pic_w or 8
  for _, l in ipairs(labels) do
    for part in (l .. "\n"):gmatch("([^\n]*)\n") do longest = math.max(longest, visible_len(part)) end
  end
  local cw = math.min(longest, 44)
  local num_w = #tostring(#labels)
  local cell = num_w + 1 + cw + 3
  ncols = math.max(1, math.min(ncols or #labels, #labels, (width - 1) // cell))
  local out = {}
  if title then out[#out + 1] = title end
  for r0 = 1, #labels, ncols do
    local cols, height = {}, 0
    for i = r0, math.min(r0 + ncols - 1, #labels) do
      local lines = {}
      for _, l in ipairs(pics and pics[i] or {}) do lines[#lines + 1] = l end
      for part in (labels[i] .. "\n"):gmatch("([^\n]*)\n") do wrap(part, cw, lines) end
      cols[#cols + 1] = { i = i, lines = lines }
      height = math.max(height, #lines)
    end
    for l = 1, height do
      local row = {}
      for k, c in ipairs(cols) do
        local text = c.lines[l] or ""
        if not tty then text = strip(text) end
        local first = pics and #(pics[c.i] or {}) + 1 or 1 -- the number goes by the label
        local head = l == first and ("%" .. num_w .. "d "):format(c.i) or (" "):rep(num_w + 1)
        local pad = k < #cols and (" "):rep(cw - visible_len(text) + 3) or ""
        row[#row + 1] = head .. text .. pad
      end
      out[#out + 1] = (table.concat(row):gsub("%s+$", ""))
    end
  end
  if hint then out[#out + 1] = hint end
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
end

-- F.grid(x, labels, {path =, name =, ncols =, mean =, std =, title =, text_labels =}):
-- x float [N,C,H,W] (normalised with mean/std) or uint8 [N,H,W,3]. Writes the PNG (path, or a
-- fresh file in FTLUA_PLOT_DIR named after name) or prints the text grid (text_labels, else
-- labels). Returns nothing.
function F.grid(x, labels, o)
  local path = o.path or F.auto_path(o.name)
  if path then
    package.loaded.ftlua.vision.write_grid(x, labels, path, { ncols = o.ncols, mean = o.mean, std = o.std })
    return
  end
  local n = x:size(1)
  local shown = o.text_labels or labels
  if not shown then
    shown = {}
    for i = 1, n do shown[i] = "" end
  end
  local ncols = math.min(o.ncols or n, n)
  local pics, pic_w
  if term_images() then
    pic_w = 20
    pics = thumbnails(x, pic_w, o.mean, o.std)
  end
  F.text_grid(shown, ncols, ("%s: %d image%s (%d x %d)"):format(o.title or o.name, n, n == 1 and "" or "s",
    math.ceil(n / ncols), ncols), ("(the text of the grid: give %s = \"%s.png\" for the picture)"):format(
    o.path_key or "path", o.name), pics, pic_w)
end

return F
