-- transcript.lua: the helper of test_repl_session.sh (not a test itself: run.sh runs test_*).
--
--   ftlua transcript.lua inputs  SESSION.md             the lines typed in the session, one a line
--   ftlua transcript.lua compare SESSION.md SCREEN.txt  "ok"/"FAIL" lines: does the screen match?
--   ftlua transcript.lua update  SESSION.md SCREEN.txt  write the screen into SESSION.md
--
-- The session is the first ```text block of SESSION.md after the line `<!-- session -->`:
-- what the screen showed, prompts included. A line starting with "> " or ">> " is input (the
-- text after the prompt); every other line is output.
--
-- Before comparing, both sides are masked: timing lines ("[0.53s]", printed only for commands
-- slower than 0.1 s, so present or not), the time column of the epoch table ("00:01"), the
-- versions in the banner, and trailing blanks.
local mode, md_path, screen_path = ...

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function lines(s)
  local out = {}
  for l in (s:gsub("\r", "") .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

-- Returns the session's lines, and the text before and after them in the file.
local function session(md)
  local start = md:find("<!-- session -->", 1, true)
  assert(start, md_path .. ": no `<!-- session -->` marker")
  local open_s, open_e = md:find("```text\n", start, true)
  assert(open_s, md_path .. ": no ```text block after the marker")
  local close_s = md:find("\n```", open_e, true)
  assert(close_s, md_path .. ": the ```text block is not closed")
  return lines(md:sub(open_e + 1, close_s - 1)), md:sub(1, open_e), md:sub(close_s + 1)
end

local function is_input(l) return l:match("^>> ") or l:match("^> ") or l == ">" or l == ">>" end

local function mask(ls)
  local out = {}
  for i, l in ipairs(ls) do
    l = l:gsub("%s+$", "")
    if i == 1 then l = l:gsub("^ftlua %S+ %b()", "ftlua VERSION (VERSIONS)") end
    if not l:match("^%[%d+%.%d+s%]$") then
      -- the epoch table's time column: mm:ss (or h:mm:ss) at the end of a row
      if l:match("^%d+%s") and l:match("%d:%d%d$") then l = l:gsub("[%d:]+$", "TIME") end
      out[#out + 1] = l
    end
  end
  while #out > 0 and out[#out] == "" do out[#out] = nil end
  return out
end

if mode == "inputs" then
  local ls = session(read(md_path))
  for _, l in ipairs(ls) do
    if is_input(l) then
      local text = l:match("^>> ?(.*)$") or l:match("^> ?(.*)$")
      io.write(text, "\n")
    end
  end
elseif mode == "compare" then
  local want = mask((session(read(md_path))))
  local got = mask(lines(read(screen_path)))
  -- The screen ends at the prompt waiting for the next line (after the last input).
  if got[#got] == ">" then got[#got] = nil end
  local first
  for i = 1, math.max(#want, #got) do
    if want[i] ~= got[i] then first = i break end
  end
  if not first then
    print(("ok repl_session_transcript (%d lines)"):format(#want))
  else
    local ctx = {}
    for i = math.max(1, first - 3), math.min(math.max(#want, #got), first + 3) do
      ctx[#ctx + 1] = ("%4d %s want: %s"):format(i, i == first and "*" or " ", want[i] or "(end)")
      ctx[#ctx + 1] = ("%4d %s got:  %s"):format(i, i == first and "*" or " ", got[i] or "(end)")
    end
    print(("FAIL repl_session_transcript: line %d of the session differs (after masking; %d lines wanted, %d got). "
      .. "If the change is intended: FTLUA_TRANSCRIPT_UPDATE=1 sh tests/repl/test_repl_session.sh\n%s")
      :format(first, #want, #got, table.concat(ctx, "\n")))
    os.exit(1)
  end
elseif mode == "update" then
  local md = read(md_path)
  local _, before, after = session(md)
  local got = lines(read(screen_path))
  for i, l in ipairs(got) do got[i] = l:gsub("%s+$", "") end
  while #got > 0 and (got[#got] == "" or got[#got] == ">") do got[#got] = nil end
  local f = assert(io.open(md_path, "wb"))
  f:write(before, table.concat(got, "\n"), "\n", after)
  f:close()
  print("updated " .. md_path)
else
  io.stderr:write("usage: ftlua transcript.lua inputs|compare|update SESSION.md [SCREEN.txt]\n")
  os.exit(2)
end
