-- bench-park: one step on a module that never replies, so every instance
-- stays parked on it. Scenario 3 of tests/bench/run.sh reads the node's
-- memory with 10,000 and 100,000 of them. The long timeout keeps them
-- parked for the whole run; its timer is part of what each one costs.
process "bench-park" {
  start = "wait",
  steps = {
    wait = { subsystem = "bench-park", timeout = "1h" },
  },
}
