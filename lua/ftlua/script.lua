-- script.lua: ft.script, the command line of a script run as `ftlua my.lua --name value ...`.
-- scripts/pets.lua and scripts/main.lua use it; so can a user's own script.
local S = {}

-- parse_args(arg, options, usage) -> opts, usage_error
--   arg:     the script's arg table (nil: no arguments)
--   options: a list of {name, default, what it does}; default nil: no default
--   usage:   {name = "my.lua", help = "the text --help prints before the option list"}
-- Takes --name value and --name=value. --help (or -h) prints usage.help, one line per option
-- and exits 0; a usage error prints "<name>: <message> (see --help)" on stderr and exits 2.
-- opts maps each option name to its string value (or default); usage_error(msg) reports a
-- script's own checks the same way.
function S.parse_args(arg, options, usage)
  local name, help = usage.name, usage.help
  local function usage_error(msg)
    io.stderr:write(name, ": ", msg, " (see --help)\n")
    os.exit(2)
  end
  local opts, known = {}, {}
  for _, o in ipairs(options) do opts[o[1]], known[o[1]] = o[2], true end
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--help" or a == "-h" then
      print(help)
      for _, o in ipairs(options) do
        print(("  --%-11s %s%s"):format(o[1], o[3], o[2] and (" (default " .. o[2] .. ")") or ""))
      end
      print("  --help        this text")
      os.exit(0)
    end
    local key, value = a:match("^%-%-([%w_]+)=(.*)$")
    if not key then key, value = a:match("^%-%-([%w_]+)$"), arg[i + 1] i = i + 1 end
    if not key then usage_error(("unexpected argument %q: options are --name value"):format(a)) end
    if not known[key] then usage_error(("unknown option --%s"):format(key)) end
    if value == nil then usage_error(("--%s needs a value"):format(key)) end
    opts[key] = value
    i = i + 1
  end
  return opts, usage_error
end

return S
