-- gplog.lua: read what ft.plot sent to gnuplot (logged by tests/lua/gnuplot_log.sh) back into
-- plots, so that tests compare the data and labels sent with an independent computation.
-- (require "gplog"; not a test itself.)
local G = {}

-- The plots in a log, in order. Each: {set = {command lines}, plot = "plot ..." line,
-- series = {{{x, y}, ...}, ...} (line plots), matrix = {{...}, ...} (imagesc),
-- labels = {[row] = {[col] = text}} (set label ... at col,row), xtics/ytics = {names}, output =}
function G.plots(path)
  local f = assert(io.open(path, "r"), "no gnuplot log " .. path)
  local text = f:read("a")
  f:close()
  local plots, cur, data = {}, nil, nil
  for line in text:gmatch("([^\n]*)\n") do
    if line == "reset" then
      cur = { set = {}, series = {}, labels = {} }
      plots[#plots + 1] = cur
      data = nil
    elseif cur and data then
      if line == "e" then
        data = nil
        if cur.left and cur.left > 0 then
          cur.left = cur.left - 1
          cur.series[#cur.series + 1] = {}
          data = cur.matrix and cur.matrix or cur.series[#cur.series]
        end
      else
        local row = {}
        for v in line:gmatch("%S+") do row[#row + 1] = tonumber(v) or (0 / 0) end
        data[#data + 1] = row
      end
    elseif cur and line:match("^plot '%-'") then
      cur.plot = line
      if line:find(" matrix ") then
        cur.matrix = {}
        data = cur.matrix
      else
        local n = select(2, line:gsub("'%-'", ""))
        cur.series[1] = {}
        cur.left = n - 1
        data = cur.series[1]
      end
    elseif cur then
      cur.set[#cur.set + 1] = line
      local txt, col, row = line:match("^set label '(.-)' at (%d+),(%d+)")
      if txt then
        row, col = tonumber(row), tonumber(col)
        cur.labels[row] = cur.labels[row] or {}
        cur.labels[row][col] = txt
      end
      local axis, list = line:match("^set (%a)tics %((.*)%)")
      if axis then
        local names = {}
        for name, i in list:gmatch("'(.-)' (%d+)") do names[tonumber(i)] = name end
        cur[axis .. "tics"] = names
      end
      local out = line:match("^set output '(.*)'$")
      if out then cur.output = out end
    end
  end
  return plots
end

-- The plot commands as one string (to look for a setting).
function G.settings(p) return table.concat(p.set, "\n") end

return G
