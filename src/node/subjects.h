/*
 * Building and parsing conveyor's subjects under a configurable prefix:
 *   <prefix>.request.<process>
 *   <prefix>.dispatch.<subsystem>
 *   <prefix>.reply.<instance>.<step>.<attempt>.<token>
 *   <prefix>.event.<process>.<instance>.<kind>
 *   <prefix>.task.<subsystem>        (stream <PREFIX>_TASKS)
 *   <prefix>.timer.<instance>        (stream <PREFIX>_TIMERS)
 */
#ifndef CV_NODE_SUBJECTS_H
#define CV_NODE_SUBJECTS_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/instance.h"

/* Longest subject conveyor builds; ids and names are bounded well below it. */
#define CV_SUBJECT_MAX 512

typedef struct cv_reply_address {
    char instance[CV_INSTANCE_ID_MAX + 1];
    char step[256];
    int attempt;
    char token[CV_TOKEN_LEN + 1];
} cv_reply_address;

/*
 * Returns the process token of "<prefix>.request.<process>", or NULL when
 * subject has another shape. The result points into subject.
 */
const char *cv_subject_request_process(const char *prefix, const char *subject);

/*
 * Returns why subject cannot receive the answer to a request (too long,
 * wildcards or spaces, under "<prefix>."), or NULL when it can. A request's
 * answer subject may come from a header any client can set.
 */
const char *cv_subject_answer_fault(const char *prefix, const char *subject);

/* Parses a reply subject; returns false when it is not one of conveyor's. */
bool cv_subject_parse_reply(const char *prefix, const char *subject, cv_reply_address *out);

/* Each writes into buf (CV_SUBJECT_MAX bytes) and returns false when it does not fit. */
bool cv_subject_reply(char *buf, const char *prefix, const char *instance, const char *step,
                      int attempt, const char *token);
bool cv_subject_dispatch(char *buf, const char *prefix, const char *subsystem);
bool cv_subject_event(char *buf, const char *prefix, const char *process, const char *instance,
                      const char *kind);
bool cv_subject_request(char *buf, const char *prefix, const char *process);
bool cv_subject_task(char *buf, const char *prefix, const char *subsystem);
bool cv_subject_timer(char *buf, const char *prefix, const char *instance);

/* Returns the instance token of "<prefix>.timer.<instance>", or NULL. Points into subject. */
const char *cv_subject_timer_instance(const char *prefix, const char *subject);

#endif
