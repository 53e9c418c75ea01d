-- The rules DSL: `process "name" { ... }`, `module "name" { ... }` and
-- `operation "name" (function(v, arg) ... end)`.
--
-- These functions only record what a rules file declares, with the file and
-- line of each call. The loader (src/rules) checks and builds the records
-- after every file has run, so that one run reports every fault. Wrong types
-- are recorded as they are, for the loader to report, rather than raised,
-- which would stop the file at its first fault.
--
-- This chunk runs once per Lua state as a trusted engine chunk, with the
-- full globals (it keeps debug.getinfo), before any rules file. Its argument
-- is the table of globals that rules see; it returns the declarations list
-- and a function that closes the DSL once loading is over.

local globals = ...
local getinfo = debug.getinfo
local error = error
local format = string.format

local declarations = {}
local open = true

-- Returns a DSL function for kind: f(name) records a declaration and
-- returns a function that takes its definition.
local function definer(kind)
  return function(name)
    if not open then
      error(format("%s can only be called while the rules load", kind), 2)
    end
    -- Level 2 is the code that called `process` and friends.
    local caller = getinfo(2, "Sl")
    local declaration = {
      kind = kind,
      name = name,
      source = caller.source,
      line = caller.currentline,
      given = false,
    }
    declarations[#declarations + 1] = declaration
    return function(definition)
      if declaration.given then
        error(format("%s %q already has its definition", kind, tostring(name)), 2)
      end
      declaration.given = true
      declaration.definition = definition
    end
  end
end

globals.process = definer("process")
globals.module = definer("module")
globals.operation = definer("operation")

return {
  declarations = declarations,
  close = function()
    open = false
  end,
}
