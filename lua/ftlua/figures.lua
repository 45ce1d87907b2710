-- figures.lua: where the image grids go (show_batch, plot_top_losses, show_results), by the
-- rule of docs/plot.md ("Where figures go"), shared with ft.plot's curves:
--   an explicit path  -> that PNG (written whole or not at all, by the data module's write_grid);
--   no path, FTLUA_PLOT_DIR set (--report, the notebook kernel) -> a fresh PNG in that folder;
--   no path otherwise (the REPL, any terminal) -> the grid as text on stdout: each image's number
--   and its label, wrapped, never cut. Never a file the user did not name.
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
local function strip(s) return (s:gsub("\27%[%d*m", "")) end
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

-- Print labels as a grid of numbered cells: ncols per row (fewer when the terminal is narrow),
-- each label wrapped to the cell's width. title heads it; hint follows it.
function F.text_grid(labels, ncols, title, hint)
  local tty = package.loaded.ftlua.plot._stdout_is_tty()
  local width = tonumber(os.getenv("COLUMNS") or "") or 100
  local longest = 8
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
      for part in (labels[i] .. "\n"):gmatch("([^\n]*)\n") do wrap(part, cw, lines) end
      cols[#cols + 1] = { i = i, lines = lines }
      height = math.max(height, #lines)
    end
    for l = 1, height do
      local row = {}
      for k, c in ipairs(cols) do
        local text = c.lines[l] or ""
        if not tty then text = strip(text) end
        local head = l == 1 and ("%" .. num_w .. "d "):format(c.i) or (" "):rep(num_w + 1)
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
  F.text_grid(shown, ncols, ("%s: %d image%s (%d x %d)"):format(o.title or o.name, n, n == 1 and "" or "s",
    math.ceil(n / ncols), ncols), ("(the text of the grid: give %s = \"%s.png\" for the picture)"):format(
    o.path_key or "path", o.name))
end

return F
