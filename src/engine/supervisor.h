/*
 * The instance life cycle: start an instance, apply a step's result, choose
 * the next steps, and finish. Functions here change only the instance and
 * collect effects (dispatches and events); they never talk to NATS, so the
 * same code runs on every node and can be applied again after a store
 * conflict.
 */
#ifndef CV_ENGINE_SUPERVISOR_H
#define CV_ENGINE_SUPERVISOR_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/effects.h"
#include "engine/instance.h"
#include "engine/script.h"

/* What reported on an attempt. */
typedef enum cv_result_kind {
    CV_RESULT_REPLY = 0,  /* the module answered, or the node failed to reach it */
    CV_RESULT_TIMEOUT,    /* the attempt's timeout timer fired */
    CV_RESULT_RETRY_DUE,  /* the attempt's back-off is over */
    CV_RESULT_FALLBACK,   /* no NATS module is subscribed: send the attempt through the queue */
} cv_result_kind;

/*
 * The outcome of one attempt, as a module or a timer reported it. A timer
 * or a fallback for an attempt that is no longer in that state changes
 * nothing and leaves no trace: it is the normal fate of most timers.
 */
typedef struct cv_step_result {
    cv_result_kind kind;
    const char *step;  /* step id, from the reply subject */
    int attempt;
    const char *token;
    const json_t *output; /* borrowed reply value; NULL for an empty body; unused on error */
    const char *error;    /* NULL when the attempt succeeded; with FALLBACK, why */
    bool permanent;       /* with error: do not retry */
} cv_step_result;

/* Records instance.started and dispatches the start step. */
cv_status cv_supervisor_start(cv_instance *instance, cv_script *script, cv_effects *effects,
                              cv_error *err);

/*
 * Applies result to instance. A reply for an attempt that is not in flight
 * (stale, duplicate, unknown step, finished instance) changes nothing but a
 * reply.ignored event. A failed attempt is retried as the step's `retry`
 * sets. The next attempt waits for its back-off (a step.retrying event and
 * a retry timer), then goes out when that timer fires. Fails only when
 * memory runs out.
 */
cv_status cv_supervisor_apply(cv_instance *instance, const cv_step_result *result,
                              cv_script *script, cv_effects *effects, cv_error *err);

/*
 * Cancels a running instance: nothing in flight or waiting is followed any
 * further, and instance.cancelled records reason. Returns CV_ERR_INVALID,
 * changing nothing, when the instance has already ended.
 */
cv_status cv_supervisor_cancel(cv_instance *instance, const char *reason, cv_effects *effects,
                               cv_error *err);

/*
 * Returns the stored form of a reply as a new reference: an object as it is,
 * any other value v as {"value": v}, and NULL (an empty body) as {}.
 */
json_t *cv_supervisor_output_form(const json_t *reply);

/* Builds {"instance", "process", "at"}: the fields every event carries. */
json_t *cv_supervisor_event_base(const cv_instance *instance);

#endif
