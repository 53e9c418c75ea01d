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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/instance.h"

typedef struct cv_dispatch_order {
    int step;
    int attempt;
    char token[CV_TOKEN_LEN + 1];
    bool queued; /* send through the queue, whatever the step's transport */
} cv_dispatch_order;

/* Room for an attempt's token and a short suffix such as ".queue". */
#define CV_EVENT_TOKEN_MAX 40

typedef struct cv_event_order {
    char kind[32]; /* "step.completed", ... */
    /* The attempt the event is about, "" for instance events: with the kind it names the event uniquely. */
    char token[CV_EVENT_TOKEN_MAX];
    json_t *body; /* owned */
} cv_event_order;

typedef enum cv_timer_kind {
    CV_TIMER_TIMEOUT, /* the attempt has taken too long */
    CV_TIMER_RETRY,   /* the attempt's back-off is over: send it */
} cv_timer_kind;

/* A moment at which an attempt needs looking at again. */
typedef struct cv_timer_order {
    cv_timer_kind kind;
    int step;
    int attempt;
    char token[CV_TOKEN_LEN + 1];
    int64_t due_ms; /* wall clock */
} cv_timer_order;

typedef struct cv_effects {
    size_t dispatch_count;
    size_t dispatch_capacity;
    cv_dispatch_order *dispatches;
    size_t event_count;
    size_t event_capacity;
    cv_event_order *events;
    size_t timer_count;
    size_t timer_capacity;
    cv_timer_order *timers;
} cv_effects;

/* Empties the lists, releasing event bodies, and keeps the memory for reuse. */
void cv_effects_reset(cv_effects *effects);

void cv_effects_free(cv_effects *effects);

/* Orders attempt sent (through the queue when attempt->queued). */
cv_status cv_effects_add_dispatch(cv_effects *effects, const cv_attempt *attempt);

cv_status cv_effects_add_timer(cv_effects *effects, cv_timer_kind kind, const cv_attempt *attempt,
                               int64_t due_ms);

/* True when nothing was ordered: the instance did not change. */
bool cv_effects_empty(const cv_effects *effects);

/* Takes body. token is the attempt's token, or NULL for an event about the whole instance. */
cv_status cv_effects_add_event(cv_effects *effects, const char *kind, const char *token,
                               json_t *body);

#endif
