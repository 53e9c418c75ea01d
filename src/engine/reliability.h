/*
 * The numbers behind step reliability: how long an attempt may take, and
 * how long to wait before the next one. Pure functions, so the schedule can
 * be checked against the contract's formula without a clock.
 */
#ifndef CV_ENGINE_RELIABILITY_H
#define CV_ENGINE_RELIABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/definition.h"

/*
 * The back-off after attempt number failed_attempt (from 1) failed:
 * min(backoff * factor^(failed_attempt-1), max_backoff), then, with jitter,
 * scaled by a factor between 0.8 and 1.2 picked by unit (0 <= unit < 1).
 */
int64_t cv_retry_delay_ms(const cv_retry *retry, int failed_attempt, double unit);

/* A uniform random number in [0, 1) for jitter. */
double cv_retry_random_unit(void);

/*
 * How long one attempt of step may take before it counts as failed, or 0
 * for no limit. A queue step waits for a worker as long as it takes unless
 * its rules give a timeout (resolved at load time). A Lua step has the
 * default: it finishes in far less under the rule budgets, so its timer
 * only matters when the node dies before recording the result, and then
 * another node fires it. A NATS step that moved to the queue keeps its own
 * timeout, so that when the NATS module comes back, `retry` reaches it.
 */
int64_t cv_step_timeout_ms(const cv_step *step);

/* Writes a duration the way rules write it: "300ms", "5s", "2m". */
void cv_duration_format(int64_t ms, char *buf, size_t size);

#endif
