/*
 * Reading the audit log: every event kept in the ORCH_EVENTS stream whose
 * subject matches a filter, counted by subject. Tests use it to prove that
 * each step completed exactly once, whatever nodes died on the way.
 */
#ifndef CV_TEST_HISTORY_H
#define CV_TEST_HISTORY_H

#include <jansson.h>
#include <nats/nats.h>

/*
 * Returns a new object mapping each matching subject to the number of
 * events stored under it, read from the start of stream. NULL when the
 * stream cannot be read within timeout_ms.
 */
json_t *cv_test_history_count(natsConnection *nc, const char *stream, const char *filter,
                              int timeout_ms);

#endif
