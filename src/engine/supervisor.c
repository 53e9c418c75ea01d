/*
 * How an instance moves. Each entry point (start, apply) ends with two
 * sweeps: waiting joins whose branches are all done are released, and an
 * instance with nothing in flight and nothing waiting completes.
 *
 * A join step ("join = all") waits until every step of its `prev` that this
 * instance has started is no longer in flight, then runs once; the branches
 * arriving meanwhile merge into the waiting entry.
 */
#include "engine/supervisor.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/jsonx.h"
#include "engine/decide.h"
#include "engine/reliability.h"

static const char *transport_names[] = {"nats", "http", "queue", "lua"};

json_t *cv_supervisor_event_base(const cv_instance *instance)
{
    char at[40];
    cv_clock_format_rfc3339(cv_clock_wall_ms(), at, sizeof at);
    return json_pack("{s:s, s:s, s:s}", "instance", instance->id, "process",
                     instance->process->name, "at", at);
}

json_t *cv_supervisor_output_form(const json_t *reply)
{
    if (reply == NULL)
        return json_object();
    if (json_is_object(reply))
        return json_incref((json_t *)reply);
    return json_pack("{s:O}", "value", (json_t *)reply);
}

static json_t *step_event(const cv_instance *instance, int step, int attempt)
{
    json_t *body = cv_supervisor_event_base(instance);
    json_object_set_new(body, "step", json_string(instance->process->steps[step].id));
    json_object_set_new(body, "attempt", json_integer(attempt));
    return body;
}

static void fail_instance(cv_instance *instance, cv_effects *effects, const char *reason)
{
    instance->status = CV_INSTANCE_FAILED;
    free(instance->error);
    instance->error = strdup(reason);
    instance->active_count = 0;
    instance->waiting_count = 0;

    json_t *body = cv_supervisor_event_base(instance);
    json_object_set_new(body, "error", cv_json_text(reason));
    json_object_set(body, "steps", instance->trail);
    json_object_set(body, "data", instance->data);
    cv_effects_add_event(effects, "instance.failed", NULL, body);
}

/* Orders attempt a sent now, with its step.dispatched event and its timeout timer. */
static cv_status send_attempt(cv_instance *instance, cv_attempt *a, cv_effects *effects)
{
    const cv_step *s = &instance->process->steps[a->step];
    a->due_ms = 0;
    a->started_ms = cv_clock_wall_ms();
    if (cv_effects_add_dispatch(effects, a) != CV_OK)
        return CV_ERR_NOMEM;
    int64_t timeout = cv_step_timeout_ms(s);
    if (timeout > 0 &&
        cv_effects_add_timer(effects, CV_TIMER_TIMEOUT, a, a->started_ms + timeout) != CV_OK)
        return CV_ERR_NOMEM;

    json_t *body = step_event(instance, a->step, a->attempt);
    json_object_set_new(body, "subsystem", json_string(s->subsystem));
    json_object_set_new(body, "transport", json_string(transport_names[s->transport]));
    return cv_effects_add_event(effects, "step.dispatched", a->token, body);
}

static cv_status dispatch_step(cv_instance *instance, int step, cv_effects *effects)
{
    const cv_process *process = instance->process;
    const cv_step *s = &process->steps[step];

    if (++instance->visits[step] > process->max_visits) {
        char reason[CV_ERROR_TEXT_MAX];
        snprintf(reason, sizeof reason,
                 "step \"%s\" was visited more than %d times (max_visits of process \"%s\")",
                 s->id, process->max_visits, process->name);
        fail_instance(instance, effects, reason);
        return CV_OK;
    }
    cv_attempt *a = cv_instance_add_attempt(instance, step, 1);
    return a == NULL ? CV_ERR_NOMEM : send_attempt(instance, a, effects);
}

static bool is_waiting(const cv_instance *instance, int step)
{
    for (size_t i = 0; i < instance->waiting_count; i++) {
        if (instance->waiting[i] == step)
            return true;
    }
    return false;
}

static bool join_ready(const cv_instance *instance, const cv_step *s)
{
    for (size_t i = 0; i < s->prev.count; i++) {
        int p = s->prev.steps[i];
        if (instance->visits[p] > 0 && cv_instance_step_active(instance, p))
            return false;
    }
    return true;
}

static cv_status enter_step(cv_instance *instance, int step, cv_effects *effects)
{
    if (instance->status != CV_INSTANCE_RUNNING)
        return CV_OK;
    const cv_step *s = &instance->process->steps[step];
    if (s->join == CV_JOIN_ALL) {
        if (is_waiting(instance, step))
            return CV_OK; /* this branch merges into the one already waiting */
        if (!join_ready(instance, s)) {
            instance->waiting[instance->waiting_count++] = step;
            return CV_OK;
        }
    }
    return dispatch_step(instance, step, effects);
}

static cv_status enter_steps(cv_instance *instance, const int *steps, size_t count,
                             cv_effects *effects)
{
    for (size_t i = 0; i < count; i++) {
        cv_status st = enter_step(instance, steps[i], effects);
        if (st != CV_OK)
            return st;
    }
    return CV_OK;
}

static cv_status release_ready_joins(cv_instance *instance, cv_effects *effects)
{
    size_t i = 0;
    while (instance->status == CV_INSTANCE_RUNNING && i < instance->waiting_count) {
        int step = instance->waiting[i];
        if (!join_ready(instance, &instance->process->steps[step])) {
            i++;
            continue;
        }
        instance->waiting_count--;
        memmove(&instance->waiting[i], &instance->waiting[i + 1],
                (instance->waiting_count - i) * sizeof *instance->waiting);
        cv_status st = dispatch_step(instance, step, effects);
        if (st != CV_OK)
            return st;
        i = 0; /* the new attempt may hold back a join already passed over */
    }
    return CV_OK;
}

static void complete_if_done(cv_instance *instance, cv_effects *effects)
{
    if (instance->status != CV_INSTANCE_RUNNING || instance->active_count > 0 ||
        instance->waiting_count > 0)
        return;
    instance->status = CV_INSTANCE_COMPLETED;
    json_t *body = cv_supervisor_event_base(instance);
    json_object_set(body, "steps", instance->trail);
    json_object_set(body, "data", instance->data);
    cv_effects_add_event(effects, "instance.completed", NULL, body);
}

static cv_status finish_change(cv_instance *instance, cv_effects *effects)
{
    cv_status st = release_ready_joins(instance, effects);
    if (st != CV_OK)
        return st;
    complete_if_done(instance, effects);
    instance->updated_ms = cv_clock_wall_ms();
    return CV_OK;
}

cv_status cv_supervisor_start(cv_instance *instance, cv_script *script, cv_effects *effects,
                              cv_error *err)
{
    (void)script;
    cv_status st = cv_effects_add_event(effects, "instance.started", NULL,
                                        cv_supervisor_event_base(instance));
    if (st == CV_OK)
        st = enter_step(instance, instance->process->start, effects);
    if (st == CV_OK)
        st = finish_change(instance, effects);
    if (st != CV_OK)
        return cv_error_set(err, st, "out of memory starting instance %s", instance->id);
    return CV_OK;
}

static cv_status ignore_result(cv_instance *instance, const cv_step_result *result,
                               const char *reason, cv_effects *effects)
{
    json_t *body = cv_supervisor_event_base(instance);
    json_object_set_new(body, "step", cv_json_text(result->step));
    json_object_set_new(body, "attempt", json_integer(result->attempt));
    json_object_set_new(body, "reason", json_string(reason));
    return cv_effects_add_event(effects, "reply.ignored", result->token, body);
}

/* A step's final failure: its error becomes its output, then on_error decides, or the instance fails. */
static cv_status fail_step(cv_instance *instance, int step, int attempt, const char *token,
                           const char *error, bool permanent, cv_effects *effects)
{
    const cv_step *s = &instance->process->steps[step];
    json_object_set_new(instance->data, s->id,
                        json_pack("{s:o, s:i}", "error", cv_json_text(error), "attempts", attempt));

    json_t *body = step_event(instance, step, attempt);
    json_object_set_new(body, "error", cv_json_text(error));
    json_object_set_new(body, "permanent", json_boolean(permanent));
    if (s->has_on_error) {
        cv_decision decision = {.by = CV_DECIDED_BY_NEXT, .count = s->on_error.count,
                                .steps = s->on_error.steps};
        json_t *explained = cv_decision_to_json(&decision, instance->process);
        json_object_set_new(explained, "by", json_string("on_error"));
        json_object_set_new(explained, "path", json_string("on_error"));
        json_object_set_new(body, "decision", explained);
    }
    cv_status st = cv_effects_add_event(effects, "step.failed", token, body);
    if (st != CV_OK)
        return st;

    if (s->has_on_error)
        return enter_steps(instance, s->on_error.steps, s->on_error.count, effects);

    char reason[CV_ERROR_TEXT_MAX];
    snprintf(reason, sizeof reason, "step \"%s\" failed: %s", s->id, error);
    fail_instance(instance, effects, reason);
    return CV_OK;
}

/*
 * Replaces the failed attempt with the next one, held back until its
 * back-off ends; the retry timer sends it. The step.retrying event carries
 * the failed attempt's token, so each failure is recorded once.
 */
static cv_status schedule_retry(cv_instance *instance, const cv_attempt *failed,
                                const char *error, cv_effects *effects)
{
    const cv_step *s = &instance->process->steps[failed->step];
    int64_t delay = cv_retry_delay_ms(&s->retry, failed->attempt, cv_retry_random_unit());
    cv_attempt *next = cv_instance_add_attempt(instance, failed->step, failed->attempt + 1);
    if (next == NULL)
        return CV_ERR_NOMEM;
    next->due_ms = cv_clock_wall_ms() + delay;
    if (cv_effects_add_timer(effects, CV_TIMER_RETRY, next, next->due_ms) != CV_OK)
        return CV_ERR_NOMEM;

    char due[40];
    cv_clock_format_rfc3339(next->due_ms, due, sizeof due);
    json_t *body = step_event(instance, failed->step, failed->attempt);
    json_object_set_new(body, "error", cv_json_text(error));
    json_object_set_new(body, "next_attempt", json_integer(next->attempt));
    json_object_set_new(body, "delay_ms", json_integer(delay));
    json_object_set_new(body, "due", json_string(due));
    return cv_effects_add_event(effects, "step.retrying", failed->token, body);
}

/* A failed attempt (already removed from the active list): retried while the step allows, else final. */
static cv_status attempt_failed(cv_instance *instance, const cv_attempt *failed, const char *error,
                                bool permanent, cv_effects *effects)
{
    const cv_step *s = &instance->process->steps[failed->step];
    if (!permanent && s->has_retry && failed->attempt <= s->retry.max)
        return schedule_retry(instance, failed, error, effects);
    return fail_step(instance, failed->step, failed->attempt, failed->token, error, permanent,
                     effects);
}

static cv_status complete_step(cv_instance *instance, int step, int attempt, const char *token,
                               const json_t *reply, cv_script *script, cv_effects *effects)
{
    const cv_process *process = instance->process;
    const cv_step *s = &process->steps[step];
    json_t *output = cv_supervisor_output_form(reply);
    if (output == NULL || json_object_set_new(instance->data, s->id, output) != 0)
        return CV_ERR_NOMEM;

    cv_decision decision;
    cv_error rule_err;
    if (cv_decide(&decision, process, s, instance->data, script, &rule_err) != CV_OK) {
        char error[CV_ERROR_TEXT_MAX + 16];
        snprintf(error, sizeof error, "rule failed: %s", rule_err.text);
        return fail_step(instance, step, attempt, token, error, true, effects);
    }

    json_array_append_new(instance->trail, json_string(s->id));
    json_t *body = step_event(instance, step, attempt);
    json_object_set(body, "output", output);
    json_object_set_new(body, "decision", cv_decision_to_json(&decision, process));
    cv_status st = cv_effects_add_event(effects, "step.completed", token, body);
    if (st == CV_OK)
        st = enter_steps(instance, decision.steps, decision.count, effects);
    cv_decision_free(&decision);
    return st;
}

/* A module's answer to an attempt in flight. */
static cv_status apply_reply(cv_instance *instance, size_t index, const cv_step_result *result,
                             cv_script *script, cv_effects *effects)
{
    cv_attempt a = instance->active[index];
    cv_instance_remove_attempt(instance, index);
    if (result->error != NULL)
        return attempt_failed(instance, &a, result->error, result->permanent, effects);
    return complete_step(instance, a.step, a.attempt, a.token, result->output, script, effects);
}

static cv_status apply_timeout(cv_instance *instance, size_t index, cv_effects *effects)
{
    cv_attempt a = instance->active[index];
    char limit[32], error[64];
    cv_duration_format(cv_step_timeout_ms(&instance->process->steps[a.step]), limit,
                       sizeof limit);
    snprintf(error, sizeof error, "timed out after %s", limit);
    cv_instance_remove_attempt(instance, index);
    return attempt_failed(instance, &a, error, false, effects);
}

/*
 * No NATS module listens: the same attempt goes to the queue and waits
 * there for a worker, until the step's timeout, which stays in force.
 */
static cv_status apply_fallback(cv_instance *instance, size_t index, const char *reason,
                                cv_effects *effects)
{
    cv_attempt *a = &instance->active[index];
    const cv_step *s = &instance->process->steps[a->step];
    a->queued = true;
    if (cv_effects_add_dispatch(effects, a) != CV_OK)
        return CV_ERR_NOMEM;
    char token[CV_EVENT_TOKEN_MAX];
    snprintf(token, sizeof token, "%s.queue", a->token);
    json_t *body = step_event(instance, a->step, a->attempt);
    json_object_set_new(body, "subsystem", json_string(s->subsystem));
    json_object_set_new(body, "transport", json_string("queue"));
    json_object_set_new(body, "fallback", cv_json_text(reason ? reason : "no module answered"));
    return cv_effects_add_event(effects, "step.dispatched", token, body);
}

/* Timers and fallbacks for attempts no longer in that state are dropped without a trace. */
static bool still_applies(const cv_instance *instance, int index, const cv_step_result *result)
{
    if (instance->status != CV_INSTANCE_RUNNING || index < 0)
        return false;
    const cv_attempt *a = &instance->active[index];
    if (result->kind == CV_RESULT_RETRY_DUE)
        return a->due_ms > 0;
    if (result->kind == CV_RESULT_FALLBACK)
        return a->due_ms == 0 && !a->queued;
    return a->due_ms == 0;
}

static cv_status apply_signal(cv_instance *instance, int index, const cv_step_result *result,
                              cv_effects *effects)
{
    if (!still_applies(instance, index, result))
        return CV_OK;
    if (result->kind == CV_RESULT_TIMEOUT)
        return apply_timeout(instance, (size_t)index, effects);
    if (result->kind == CV_RESULT_RETRY_DUE)
        return send_attempt(instance, &instance->active[index], effects);
    return apply_fallback(instance, (size_t)index, result->error, effects);
}

static cv_status apply_any(cv_instance *instance, const cv_step_result *result,
                           cv_script *script, cv_effects *effects)
{
    int step = cv_instance_find_step(instance->process, result->step);
    int index = step < 0 ? -1
                         : cv_instance_find_attempt(instance, step, result->attempt,
                                                    result->token);
    if (result->kind != CV_RESULT_REPLY)
        return apply_signal(instance, index, result, effects);
    if (instance->status != CV_INSTANCE_RUNNING)
        return ignore_result(instance, result, "instance is no longer running", effects);
    if (step < 0)
        return ignore_result(instance, result, "the process has no such step", effects);
    if (index < 0 || instance->active[index].due_ms > 0)
        return ignore_result(instance, result,
                             "not an attempt in flight (late or duplicate reply)", effects);
    return apply_reply(instance, (size_t)index, result, script, effects);
}

cv_status cv_supervisor_apply(cv_instance *instance, const cv_step_result *result,
                              cv_script *script, cv_effects *effects, cv_error *err)
{
    bool running = instance->status == CV_INSTANCE_RUNNING;
    cv_status st = apply_any(instance, result, script, effects);
    if (st == CV_OK && running && !cv_effects_empty(effects))
        st = finish_change(instance, effects);
    if (st != CV_OK)
        return cv_error_set(err, st, "out of memory applying a reply to instance %s",
                            instance->id);
    return CV_OK;
}

cv_status cv_supervisor_cancel(cv_instance *instance, const char *reason, cv_effects *effects,
                               cv_error *err)
{
    if (instance->status != CV_INSTANCE_RUNNING)
        return cv_error_set(err, CV_ERR_INVALID, "instance %s is %s; nothing to cancel",
                            instance->id, cv_instance_status_name(instance->status));
    instance->status = CV_INSTANCE_CANCELLED;
    instance->active_count = 0;
    instance->waiting_count = 0;
    free(instance->error);
    instance->error = strdup(reason);
    instance->updated_ms = cv_clock_wall_ms();

    json_t *body = cv_supervisor_event_base(instance);
    json_object_set_new(body, "error", cv_json_text(reason));
    json_object_set(body, "steps", instance->trail);
    json_object_set(body, "data", instance->data);
    if (cv_effects_add_event(effects, "instance.cancelled", NULL, body) != CV_OK)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory cancelling instance %s",
                            instance->id);
    return CV_OK;
}
