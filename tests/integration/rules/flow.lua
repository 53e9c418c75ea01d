-- Processes used by the integration tests. Each exercises one part of the
-- rules language against a real node and real NATS modules.

module "local-defaults" {
  transport = "lua",
  run = function(input, params)
    return { STAGE_ID = "NEW", SOURCE_ID = params.source, NAME = input.request.NAME }
  end,
}

module "broken-lua" {
  transport = "lua",
  run = function(input, params)
    error("the defaults table is missing")
  end,
}

process "linear" {
  start = "a",
  steps = {
    a = { subsystem = "echo", next = { "b" } },
    b = { subsystem = "echo", next = { "c" } },
    c = { subsystem = "echo" },
  },
}

process "branching" {
  start = "classify",
  steps = {
    classify = {
      subsystem = "classify",
      condition = {
        { field = "classify.kind", operation = "eq", value = "vip",
          success = {
            { field = "request.amount", operation = "number|gte", value = 1000,
              result = { "big-vip" } },
            { field = "request.amount", operation = "number|lt", value = 0,
              failure = {
                { field = "request.NAME", operation = "trim|lower|starts", value = "acme",
                  result = { "small-vip" } },
              } },
          } },
        { field = "classify.kind", operation = "empty", result = { "unknown" } },
      },
      next = { "regular" },
    },
    ["big-vip"] = { subsystem = "echo" },
    ["small-vip"] = { subsystem = "echo" },
    unknown = { subsystem = "echo" },
    regular = { subsystem = "echo" },
  },
}

process "fanout" {
  start = "split",
  steps = {
    split = { subsystem = "echo", next = { "left", "right" } },
    left = { subsystem = "echo", next = { "merge" } },
    right = { subsystem = "slow", next = { "merge" } },
    merge = { subsystem = "echo", prev = { "left", "right" }, join = "all" },
  },
}

process "fanout-nojoin" {
  start = "split",
  steps = {
    split = { subsystem = "echo", next = { "left", "right" } },
    left = { subsystem = "echo", next = { "merge" } },
    right = { subsystem = "echo", next = { "merge" } },
    merge = { subsystem = "echo", prev = { "left", "right" } },
  },
}

process "loop" {
  max_visits = 5,
  start = "again",
  steps = {
    again = { subsystem = "echo", next = { "again" } },
  },
}

process "failing" {
  start = "try",
  steps = {
    try = { subsystem = "fails", on_error = { "recover" } },
    recover = { subsystem = "echo" },
  },
}

process "failing-hard" {
  start = "try",
  steps = {
    try = { subsystem = "fails" },
  },
}

process "lua-step" {
  start = "defaults",
  steps = {
    defaults = { subsystem = "local-defaults", params = { source = "web" }, next = { "after" } },
    after = { subsystem = "echo" },
  },
}

process "lua-broken" {
  start = "defaults",
  steps = {
    defaults = { subsystem = "broken-lua" },
  },
}

process "route-fn" {
  start = "a",
  steps = {
    a = {
      subsystem = "echo",
      route = function(data)
        if data.request.go == "b" then return { "b" } end
        return nil
      end,
      next = { "c" },
    },
    b = { subsystem = "echo" },
    c = { subsystem = "echo" },
  },
}

process "shapes" {
  start = "s",
  steps = {
    s = { subsystem = "shape" },
  },
}

module "ledger" { transport = "queue" }

process "queued" {
  start = "book",
  steps = {
    book = { subsystem = "ledger", params = { account = "sales" } },
  },
}

process "orphan" {
  start = "x",
  steps = {
    x = { subsystem = "nobody-listens" },
  },
}

process "inputs" {
  start = "a",
  steps = {
    a = { subsystem = "echo", next = { "b" } },
    b = { subsystem = "inspect", input = { "request.keep" }, params = { mode = "strict" } },
  },
}

-- "after" answers slowly, so the second copy of twice's reply arrives while the instance runs.
process "duplicates" {
  start = "twice",
  steps = {
    twice = { subsystem = "twice", next = { "after" } },
    after = { subsystem = "slow" },
  },
}

process "silent" {
  start = "wait",
  steps = {
    wait = { subsystem = "never-answers" },
  },
}

-- Served by tests/support/raw_module.py, a module written against the
-- message contract alone.
process "outside" {
  start = "probe",
  steps = {
    probe = { subsystem = "outside-echo", params = { source = "web" }, next = { "fail" } },
    fail = { subsystem = "outside-fail", on_error = { "after" } },
    after = { subsystem = "outside-answer" },
  },
}

-- Used by the durability tests: a fan-out and a join, four steps an instance.
-- A dispatch or reply sent over core NATS while a server restarts is lost;
-- the timeout and retry are what bring such a step back.
local again = { max = 5, backoff = "500ms" }
process "durable" {
  start = "split",
  steps = {
    split = { subsystem = "echo", next = { "left", "right" }, timeout = "5s", retry = again },
    left = { subsystem = "echo", next = { "merge" }, timeout = "5s", retry = again },
    right = { subsystem = "echo", next = { "merge" }, timeout = "5s", retry = again },
    merge = { subsystem = "echo", prev = { "left", "right" }, join = "all", timeout = "5s",
              retry = again },
  },
}

-- Used by the cluster test: its module leaves a claim on the instance
-- before it replies, so the reply and the timeout both wait for it.
process "claimed-reply" {
  start = "only",
  steps = {
    only = { subsystem = "claiming", timeout = "2s" },
  },
}

process "late-reply" {
  start = "only",
  steps = {
    only = { subsystem = "late" },
  },
}

process "odd-error" {
  start = "only",
  steps = {
    only = { subsystem = "odd-error" },
  },
}
