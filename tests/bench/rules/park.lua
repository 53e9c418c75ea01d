-- bench-park: one step on a module that never replies, so every instance
-- stays parked on it. Scenario 3 of tests/bench/run.sh reads the node's
-- memory with 10,000 and 100,000 of them.
process "bench-park" {
  start = "wait",
  steps = {
    wait = { subsystem = "bench-park" },
  },
}
