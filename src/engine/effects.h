/*
 * What the supervisor wants done after an instance change is stored:
 * steps to dispatch and lifecycle events to publish. Collecting them first
 * lets the caller store the change before anything leaves the node, and
 * throw them away when the store reports a conflict and the change is
 * applied again to fresh state.
 */
#ifndef CV_ENGINE_EFFECTS_H
#define CV_ENGINE_EFFECTS_H

#include <jansson.h>
#include <stddef.h>

#include "engine/instance.h"

typedef struct cv_dispatch_order {
    int step;
    int attempt;
    char token[CV_TOKEN_LEN + 1];
} cv_dispatch_order;

typedef struct cv_event_order {
    char kind[32]; /* "step.completed", ... */
    /* The attempt the event is about, "" for instance events: with the kind it names the event uniquely. */
    char token[CV_TOKEN_LEN + 1];
    json_t *body; /* owned */
} cv_event_order;

typedef struct cv_effects {
    size_t dispatch_count;
    size_t dispatch_capacity;
    cv_dispatch_order *dispatches;
    size_t event_count;
    size_t event_capacity;
    cv_event_order *events;
} cv_effects;

/* Empties the lists, releasing event bodies, and keeps the memory for reuse. */
void cv_effects_reset(cv_effects *effects);

void cv_effects_free(cv_effects *effects);

cv_status cv_effects_add_dispatch(cv_effects *effects, const cv_attempt *attempt);

/* Takes body. token is the attempt's token, or NULL for an event about the whole instance. */
cv_status cv_effects_add_event(cv_effects *effects, const char *kind, const char *token,
                               json_t *body);

#endif
