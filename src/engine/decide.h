/*
 * Choosing the next steps after a step completes, in the order of the rules
 * language: `route`, then `condition`, then `next`, else the branch ends.
 */
#ifndef CV_ENGINE_DECIDE_H
#define CV_ENGINE_DECIDE_H

#include <jansson.h>

#include "engine/condition.h"
#include "engine/script.h"
#include "rules/definition.h"

typedef enum cv_decided_by {
    CV_DECIDED_BY_ROUTE,
    CV_DECIDED_BY_CONDITION,
    CV_DECIDED_BY_NEXT,
    CV_DECIDED_BY_END,
} cv_decided_by;

typedef struct cv_decision {
    cv_decided_by by;
    char path[CV_DECISION_PATH_MAX]; /* "route", "condition[2].success[1]", "next" or "" */
    size_t count;
    int *steps; /* owned indices into the process's steps */
} cv_decision;

/*
 * Decides what follows step in process given data (borrowed). A route that
 * names an unknown step is an error naming the step and the route's result.
 * On success the caller frees out with cv_decision_free.
 */
cv_status cv_decide(cv_decision *out, const cv_process *process, const cv_step *step,
                    const json_t *data, cv_script *script, cv_error *err);

void cv_decision_free(cv_decision *decision);

/* "route", "condition", "next" or "end". */
const char *cv_decided_by_name(cv_decided_by by);

/*
 * Builds the explanation carried by step.completed:
 * {"by": ..., "path": ..., "next": [step ids]}. Returns a new reference.
 */
json_t *cv_decision_to_json(const cv_decision *decision, const cv_process *process);

#endif
