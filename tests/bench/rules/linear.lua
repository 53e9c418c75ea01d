-- bench-linear: three steps on one module, each followed by the next, and
-- no rules to evaluate. Scenario 1 of tests/bench/run.sh measures conveyor
-- on it against the floor, which chains the same module three times.
process "bench-linear" {
  start = "s1",
  steps = {
    s1 = { subsystem = "bench-echo", next = { "s2" } },
    s2 = { subsystem = "bench-echo", prev = { "s1" }, next = { "s3" } },
    s3 = { subsystem = "bench-echo", prev = { "s2" } },
  },
}
