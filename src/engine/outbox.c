#include "engine/outbox.h"

#include <string.h>

static json_t *effects_to_json(const cv_effects *effects, const cv_process *process)
{
    json_t *events = json_array();
    for (size_t i = 0; i < effects->event_count; i++) {
        const cv_event_order *e = &effects->events[i];
        json_array_append_new(events, json_pack("{s:s, s:s, s:O}", "kind", e->kind, "token",
                                                e->token, "body", e->body));
    }
    json_t *dispatches = json_array();
    for (size_t i = 0; i < effects->dispatch_count; i++) {
        const cv_dispatch_order *d = &effects->dispatches[i];
        json_array_append_new(dispatches,
                              json_pack("{s:s, s:i, s:s, s:b}", "step", process->steps[d->step].id,
                                        "attempt", d->attempt, "token", d->token, "queued",
                                        d->queued));
    }
    json_t *timers = json_array();
    for (size_t i = 0; i < effects->timer_count; i++) {
        const cv_timer_order *t = &effects->timers[i];
        json_array_append_new(timers, json_pack("{s:s, s:i, s:s, s:b, s:I}", "step",
                                                process->steps[t->step].id, "attempt", t->attempt,
                                                "token", t->token, "retry",
                                                t->kind == CV_TIMER_RETRY, "due_ms",
                                                (json_int_t)t->due_ms));
    }
    return json_pack("{s:o, s:o, s:o}", "events", events, "dispatches", dispatches, "timers",
                     timers);
}

/* Drops the oldest entries beyond what the keep rules ask for; returns how many were young. */
static size_t prune(json_t *outbox, cv_outbox_clock clock)
{
    size_t young = 0;
    while (json_array_size(outbox) > CV_OUTBOX_KEEP) {
        json_t *oldest = json_array_get(outbox, 0);
        int64_t at = json_integer_value(json_object_get(oldest, "at"));
        bool expired = at < clock.now_ms - clock.keep_ms;
        if (!expired && json_array_size(outbox) <= CV_OUTBOX_MAX)
            break;
        young += !expired;
        json_array_remove(outbox, 0);
    }
    return young;
}

cv_status cv_outbox_record(cv_instance *instance, const char *key, const cv_effects *effects,
                           cv_outbox_clock clock, size_t *dropped_young)
{
    *dropped_young = 0;
    if (instance->outbox == NULL)
        instance->outbox = json_array();
    json_t *entry = json_pack("{s:s, s:I, s:o}", "key", key, "at", (json_int_t)clock.now_ms,
                              "effects", effects_to_json(effects, instance->process));
    if (instance->outbox == NULL || entry == NULL ||
        json_array_append_new(instance->outbox, entry) != 0)
        return CV_ERR_NOMEM;
    *dropped_young = prune(instance->outbox, clock);
    return CV_OK;
}

/* Reads the step, attempt and token of a recorded dispatch or timer; false when malformed. */
static bool read_attempt(const json_t *item, const cv_process *process, cv_attempt *out)
{
    memset(out, 0, sizeof *out);
    out->step = cv_instance_find_step(process, json_string_value(json_object_get(item, "step")));
    out->attempt = (int)json_integer_value(json_object_get(item, "attempt"));
    const char *token = json_string_value(json_object_get(item, "token"));
    if (out->step < 0 || token == NULL || strlen(token) != CV_TOKEN_LEN)
        return false;
    memcpy(out->token, token, sizeof out->token);
    return true;
}

static void replay_entry(const json_t *recorded, const cv_process *process, cv_effects *out)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(recorded, "events"), i, item) {
        const char *token = json_string_value(json_object_get(item, "token"));
        cv_effects_add_event(out, json_string_value(json_object_get(item, "kind")),
                             token && token[0] ? token : NULL,
                             json_deep_copy(json_object_get(item, "body")));
    }
    json_array_foreach(json_object_get(recorded, "dispatches"), i, item) {
        cv_attempt attempt;
        if (read_attempt(item, process, &attempt)) {
            attempt.queued = json_is_true(json_object_get(item, "queued"));
            cv_effects_add_dispatch(out, &attempt);
        }
    }
    json_array_foreach(json_object_get(recorded, "timers"), i, item) {
        cv_attempt attempt;
        if (read_attempt(item, process, &attempt))
            cv_effects_add_timer(out,
                                 json_is_true(json_object_get(item, "retry")) ? CV_TIMER_RETRY
                                                                              : CV_TIMER_TIMEOUT,
                                 &attempt, json_integer_value(json_object_get(item, "due_ms")));
    }
}

bool cv_outbox_replay(const cv_instance *instance, const char *key, cv_effects *out)
{
    size_t i;
    json_t *entry;
    json_array_foreach(instance->outbox, i, entry) {
        const char *recorded = json_string_value(json_object_get(entry, "key"));
        if (recorded != NULL && strcmp(recorded, key) == 0) {
            replay_entry(json_object_get(entry, "effects"), instance->process, out);
            return true;
        }
    }
    return false;
}
