#include "engine/effects.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void cv_effects_reset(cv_effects *effects)
{
    for (size_t i = 0; i < effects->event_count; i++)
        json_decref(effects->events[i].body);
    effects->event_count = 0;
    effects->dispatch_count = 0;
    effects->timer_count = 0;
}

void cv_effects_free(cv_effects *effects)
{
    cv_effects_reset(effects);
    free(effects->dispatches);
    free(effects->events);
    free(effects->timers);
    memset(effects, 0, sizeof *effects);
}

static bool grow(void **items, size_t *capacity, size_t count, size_t item_size)
{
    if (count < *capacity)
        return true;
    size_t bigger = *capacity ? *capacity * 2 : 8;
    void *grown = realloc(*items, bigger * item_size);
    if (grown == NULL)
        return false;
    *items = grown;
    *capacity = bigger;
    return true;
}

cv_status cv_effects_add_dispatch(cv_effects *effects, const cv_attempt *attempt)
{
    if (!grow((void **)&effects->dispatches, &effects->dispatch_capacity, effects->dispatch_count,
              sizeof *effects->dispatches))
        return CV_ERR_NOMEM;
    cv_dispatch_order *order = &effects->dispatches[effects->dispatch_count++];
    order->step = attempt->step;
    order->attempt = attempt->attempt;
    memcpy(order->token, attempt->token, sizeof order->token);
    order->queued = attempt->queued;
    return CV_OK;
}

cv_status cv_effects_add_timer(cv_effects *effects, cv_timer_kind kind, const cv_attempt *attempt,
                               int64_t due_ms)
{
    if (!grow((void **)&effects->timers, &effects->timer_capacity, effects->timer_count,
              sizeof *effects->timers))
        return CV_ERR_NOMEM;
    cv_timer_order *timer = &effects->timers[effects->timer_count++];
    timer->kind = kind;
    timer->step = attempt->step;
    timer->attempt = attempt->attempt;
    memcpy(timer->token, attempt->token, sizeof timer->token);
    timer->due_ms = due_ms;
    return CV_OK;
}

bool cv_effects_empty(const cv_effects *effects)
{
    return effects->event_count == 0 && effects->dispatch_count == 0 && effects->timer_count == 0;
}

cv_status cv_effects_add_event(cv_effects *effects, const char *kind, const char *token,
                               json_t *body)
{
    if (body == NULL ||
        !grow((void **)&effects->events, &effects->event_capacity, effects->event_count,
              sizeof *effects->events)) {
        json_decref(body);
        return CV_ERR_NOMEM;
    }
    cv_event_order *event = &effects->events[effects->event_count++];
    snprintf(event->kind, sizeof event->kind, "%s", kind);
    snprintf(event->token, sizeof event->token, "%s", token ? token : "");
    event->body = body;
    return CV_OK;
}
