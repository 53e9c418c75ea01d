/*
 * The instance life cycle on hand-built processes: dispatch, completion,
 * joins, max_visits, failures and ignored replies, checked through the
 * effects the supervisor asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/supervisor.h"

#define MAX_STEPS 8

typedef struct built {
    cv_process process;
    cv_step steps[MAX_STEPS];
    int lists[MAX_STEPS][3][4]; /* next, prev, on_error */
} built;

static void add_step(built *b, const char *id, const int *next, size_t next_count,
                     const int *prev, size_t prev_count)
{
    size_t i = b->process.step_count++;
    cv_step *s = &b->steps[i];
    memset(s, 0, sizeof *s);
    s->id = (char *)id;
    s->subsystem = (char *)"echo";
    s->route_ref = CV_NO_REF;
    s->params = json_object();
    s->has_next = next != NULL;
    if (next_count > 0)
        memcpy(b->lists[i][0], next, next_count * sizeof(int));
    s->next = (cv_step_list){next_count, b->lists[i][0]};
    if (prev_count > 0)
        memcpy(b->lists[i][1], prev, prev_count * sizeof(int));
    s->prev = (cv_step_list){prev_count, b->lists[i][1]};
}

static void init_process(built *b, const char *name)
{
    memset(b, 0, sizeof *b);
    b->process.name = (char *)name;
    b->process.steps = b->steps;
    b->process.max_visits = CV_DEFAULT_MAX_VISITS;
}

static void free_process(built *b)
{
    for (size_t i = 0; i < b->process.step_count; i++)
        json_decref(b->steps[i].params);
}

static size_t count_kind(const cv_effects *fx, const char *kind)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->event_count; i++)
        n += strcmp(fx->events[i].kind, kind) == 0;
    return n;
}

/* Completes the in-flight attempt of step with output {"ok": true}. */
static void complete(cv_instance *inst, int step, cv_effects *fx)
{
    int index = -1;
    for (size_t i = 0; i < inst->active_count; i++) {
        if (inst->active[i].step == step)
            index = (int)i;
    }
    assert_true(index >= 0);
    cv_attempt a = inst->active[index];
    json_t *out = json_pack("{s:b}", "ok", 1);
    cv_step_result r = {.step = inst->process->steps[step].id, .attempt = a.attempt,
                        .token = a.token, .output = out};
    cv_effects_reset(fx);
    assert_int_equal(cv_supervisor_apply(inst, &r, NULL, fx, NULL), CV_OK);
    json_decref(out);
}

static void linear_instance_completes(void **state)
{
    (void)state;
    built b;
    init_process(&b, "linear");
    int to_b[] = {1};
    add_step(&b, "a", to_b, 1, NULL, 0);
    add_step(&b, "b", NULL, 0, NULL, 0);

    cv_instance *inst = cv_instance_create("i1", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    assert_int_equal(count_kind(&fx, "instance.started"), 1);
    assert_int_equal(fx.dispatch_count, 1);
    assert_int_equal(fx.dispatches[0].step, 0);
    assert_int_equal(fx.dispatches[0].attempt, 1);

    complete(inst, 0, &fx);
    assert_int_equal(count_kind(&fx, "step.completed"), 1);
    assert_int_equal(fx.dispatch_count, 1);
    assert_int_equal(fx.dispatches[0].step, 1);
    assert_int_equal(inst->status, CV_INSTANCE_RUNNING);

    complete(inst, 1, &fx);
    assert_int_equal(inst->status, CV_INSTANCE_COMPLETED);
    assert_int_equal(count_kind(&fx, "instance.completed"), 1);
    assert_int_equal(json_array_size(inst->trail), 2);
    assert_true(json_is_true(json_object_get(json_object_get(inst->data, "a"), "ok")));

    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void stale_token_is_ignored(void **state)
{
    (void)state;
    built b;
    init_process(&b, "one");
    add_step(&b, "a", NULL, 0, NULL, 0);
    cv_instance *inst = cv_instance_create("i2", &b.process, json_object());
    cv_effects fx = {0};
    cv_supervisor_start(inst, NULL, &fx, NULL);

    cv_step_result wrong_token = {.step = "a", .attempt = 1, .token = "xxxxxxxxxxxxxxxxxxxxxx"};
    cv_effects_reset(&fx);
    assert_int_equal(cv_supervisor_apply(inst, &wrong_token, NULL, &fx, NULL), CV_OK);
    assert_int_equal(count_kind(&fx, "reply.ignored"), 1);
    assert_int_equal(inst->active_count, 1);
    assert_int_equal(inst->status, CV_INSTANCE_RUNNING);

    cv_step_result wrong_step = {.step = "zzz", .attempt = 1, .token = inst->active[0].token};
    cv_effects_reset(&fx);
    cv_supervisor_apply(inst, &wrong_step, NULL, &fx, NULL);
    assert_int_equal(count_kind(&fx, "reply.ignored"), 1);
    assert_int_equal(inst->active_count, 1);

    char token[CV_TOKEN_LEN + 1];
    memcpy(token, inst->active[0].token, sizeof token);
    complete(inst, 0, &fx);
    assert_int_equal(inst->status, CV_INSTANCE_COMPLETED);

    cv_step_result late = {.step = "a", .attempt = 1, .token = token};
    cv_effects_reset(&fx);
    cv_supervisor_apply(inst, &late, NULL, &fx, NULL);
    assert_int_equal(count_kind(&fx, "reply.ignored"), 1);
    assert_int_equal(count_kind(&fx, "instance.completed"), 0);

    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void join_waits_for_started_branches(void **state)
{
    (void)state;
    built b;
    init_process(&b, "join");
    int split_next[] = {1, 2}, to_merge[] = {3}, merge_prev[] = {1, 2};
    add_step(&b, "split", split_next, 2, NULL, 0);
    add_step(&b, "left", to_merge, 1, NULL, 0);
    add_step(&b, "right", to_merge, 1, NULL, 0);
    add_step(&b, "merge", NULL, 0, merge_prev, 2);
    b.steps[3].join = CV_JOIN_ALL;

    cv_instance *inst = cv_instance_create("i3", &b.process, json_object());
    cv_effects fx = {0};
    cv_supervisor_start(inst, NULL, &fx, NULL);
    complete(inst, 0, &fx);
    assert_int_equal(fx.dispatch_count, 2);

    complete(inst, 1, &fx);
    assert_int_equal(fx.dispatch_count, 0); /* right is still in flight */
    assert_int_equal(inst->waiting_count, 1);

    complete(inst, 2, &fx);
    assert_int_equal(fx.dispatch_count, 1);
    assert_int_equal(fx.dispatches[0].step, 3);
    assert_int_equal(inst->waiting_count, 0);

    complete(inst, 3, &fx);
    assert_int_equal(inst->status, CV_INSTANCE_COMPLETED);
    assert_int_equal(inst->visits[3], 1);

    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void loop_fails_after_max_visits(void **state)
{
    (void)state;
    built b;
    init_process(&b, "loop");
    b.process.max_visits = 3;
    int self[] = {0};
    add_step(&b, "again", self, 1, NULL, 0);

    cv_instance *inst = cv_instance_create("i4", &b.process, json_object());
    cv_effects fx = {0};
    cv_supervisor_start(inst, NULL, &fx, NULL);
    complete(inst, 0, &fx);
    complete(inst, 0, &fx);
    assert_int_equal(inst->status, CV_INSTANCE_RUNNING);
    complete(inst, 0, &fx);
    assert_int_equal(inst->status, CV_INSTANCE_FAILED);
    assert_int_equal(count_kind(&fx, "instance.failed"), 1);
    assert_non_null(strstr(inst->error, "visited more than 3 times"));
    assert_int_equal(inst->active_count, 0);

    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void failure_follows_on_error(void **state)
{
    (void)state;
    built b;
    init_process(&b, "errors");
    add_step(&b, "try", NULL, 0, NULL, 0);
    add_step(&b, "notify", NULL, 0, NULL, 0);
    int to_notify[] = {1};
    memcpy(b.lists[0][2], to_notify, sizeof to_notify);
    b.steps[0].has_on_error = true;
    b.steps[0].on_error = (cv_step_list){1, b.lists[0][2]};

    cv_instance *inst = cv_instance_create("i5", &b.process, json_object());
    cv_effects fx = {0};
    cv_supervisor_start(inst, NULL, &fx, NULL);
    cv_step_result r = {.step = "try", .attempt = 1, .token = inst->active[0].token,
                        .error = "timeout talking to CRM"};
    cv_effects_reset(&fx);
    assert_int_equal(cv_supervisor_apply(inst, &r, NULL, &fx, NULL), CV_OK);
    assert_int_equal(count_kind(&fx, "step.failed"), 1);
    assert_int_equal(fx.dispatch_count, 1);
    assert_int_equal(fx.dispatches[0].step, 1);
    json_t *stored = json_object_get(inst->data, "try");
    assert_string_equal(json_string_value(json_object_get(stored, "error")),
                        "timeout talking to CRM");
    assert_int_equal(json_integer_value(json_object_get(stored, "attempts")), 1);

    b.steps[0].has_on_error = false;
    cv_instance *other = cv_instance_create("i6", &b.process, json_object());
    cv_supervisor_start(other, NULL, &fx, NULL);
    r.token = other->active[0].token;
    cv_effects_reset(&fx);
    cv_supervisor_apply(other, &r, NULL, &fx, NULL);
    assert_int_equal(other->status, CV_INSTANCE_FAILED);
    assert_string_equal(other->error, "step \"try\" failed: timeout talking to CRM");

    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    cv_instance_destroy(other);
    free_process(&b);
}

static void output_forms_follow_contract(void **state)
{
    (void)state;
    json_t *empty = cv_supervisor_output_form(NULL);
    assert_true(json_is_object(empty));
    assert_int_equal(json_object_size(empty), 0);
    json_decref(empty);

    json_t *scalar = json_integer(7);
    json_t *wrapped = cv_supervisor_output_form(scalar);
    assert_int_equal(json_integer_value(json_object_get(wrapped, "value")), 7);
    json_decref(wrapped);
    json_decref(scalar);

    json_t *object = json_pack("{s:s}", "ID", "0");
    json_t *same = cv_supervisor_output_form(object);
    assert_ptr_equal(same, object);
    json_decref(same);
    json_decref(object);
}

static void instance_json_round_trips(void **state)
{
    (void)state;
    built b;
    init_process(&b, "rt");
    int to_b[] = {1};
    add_step(&b, "a", to_b, 1, NULL, 0);
    add_step(&b, "b", NULL, 0, NULL, 0);
    cv_instance *inst = cv_instance_create("i7", &b.process, json_pack("{s:s}", "k", "v"));
    cv_effects fx = {0};
    cv_supervisor_start(inst, NULL, &fx, NULL);
    complete(inst, 0, &fx);

    json_t *doc = cv_instance_to_json(inst);
    cv_instance *back = NULL;
    assert_int_equal(cv_instance_from_json(&back, doc, &b.process, NULL), CV_OK);
    assert_string_equal(back->id, "i7");
    assert_int_equal(back->active_count, 1);
    assert_int_equal(back->active[0].step, 1);
    assert_string_equal(back->active[0].token, inst->active[0].token);
    assert_int_equal(back->visits[0], 1);
    assert_true(json_equal(back->data, inst->data));
    json_decref(doc);

    cv_effects_free(&fx);
    cv_instance_destroy(back);
    cv_instance_destroy(inst);
    free_process(&b);
}

/* Reports result kind with error on attempt index of inst. */
static void report(cv_instance *inst, size_t index, cv_result_kind kind, const char *error,
                   bool permanent, cv_effects *fx)
{
    cv_attempt a = inst->active[index];
    cv_step_result r = {.kind = kind, .step = inst->process->steps[a.step].id,
                        .attempt = a.attempt, .token = a.token, .error = error,
                        .permanent = permanent};
    cv_effects_reset(fx);
    assert_int_equal(cv_supervisor_apply(inst, &r, NULL, fx, NULL), CV_OK);
}

static void one_step_with_retry(built *b, int max)
{
    init_process(b, "retrying");
    add_step(b, "call", NULL, 0, NULL, 0);
    b->steps[0].timeout_ms = 2000;
    b->steps[0].has_retry = true;
    b->steps[0].retry = (cv_retry){.max = max, .backoff_ms = 100, .factor = 3,
                                   .max_backoff_ms = 250};
}

static void failed_attempt_waits_then_goes_again(void **state)
{
    (void)state;
    built b;
    one_step_with_retry(&b, 2);
    cv_instance *inst = cv_instance_create("r1", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    assert_int_equal(fx.timer_count, 1);
    assert_int_equal(fx.timers[0].kind, CV_TIMER_TIMEOUT);
    assert_true(fx.timers[0].due_ms - inst->active[0].started_ms == 2000);

    report(inst, 0, CV_RESULT_REPLY, "busy", false, &fx);
    assert_int_equal(count_kind(&fx, "step.retrying"), 1);
    assert_int_equal(fx.dispatch_count, 0);
    assert_int_equal(fx.timer_count, 1);
    assert_int_equal(fx.timers[0].kind, CV_TIMER_RETRY);
    assert_int_equal(fx.timers[0].attempt, 2);
    json_t *retrying = fx.events[0].body;
    assert_int_equal(json_integer_value(json_object_get(retrying, "delay_ms")), 100);
    assert_int_equal(json_integer_value(json_object_get(retrying, "next_attempt")), 2);
    assert_int_equal(inst->active_count, 1);
    assert_true(inst->active[0].due_ms > 0);
    assert_int_equal(inst->status, CV_INSTANCE_RUNNING);

    /* A timeout for the first attempt, arriving late, changes nothing and says nothing. */
    cv_step_result stale = {.kind = CV_RESULT_TIMEOUT, .step = "call", .attempt = 1,
                            .token = "0000000000000000000000"};
    cv_effects_reset(&fx);
    assert_int_equal(cv_supervisor_apply(inst, &stale, NULL, &fx, NULL), CV_OK);
    assert_true(cv_effects_empty(&fx));

    report(inst, 0, CV_RESULT_RETRY_DUE, NULL, false, &fx);
    assert_int_equal(fx.dispatch_count, 1);
    assert_int_equal(fx.dispatches[0].attempt, 2);
    assert_int_equal(count_kind(&fx, "step.dispatched"), 1);
    assert_int_equal(fx.timers[0].kind, CV_TIMER_TIMEOUT);
    assert_int_equal(inst->active[0].due_ms, 0);

    /* The second failure waits min(100 * 3, 250) ms. */
    report(inst, 0, CV_RESULT_TIMEOUT, NULL, false, &fx);
    assert_int_equal(count_kind(&fx, "step.retrying"), 1);
    assert_string_equal(json_string_value(json_object_get(fx.events[0].body, "error")),
                        "timed out after 2s");
    assert_int_equal(json_integer_value(json_object_get(fx.events[0].body, "delay_ms")), 250);

    report(inst, 0, CV_RESULT_RETRY_DUE, NULL, false, &fx);
    complete(inst, 0, &fx);
    assert_int_equal(inst->status, CV_INSTANCE_COMPLETED);
    assert_int_equal(count_kind(&fx, "step.completed"), 1);
    assert_int_equal(json_integer_value(json_object_get(fx.events[0].body, "attempt")), 3);

    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void spent_retries_fail_with_attempt_count(void **state)
{
    (void)state;
    built b;
    one_step_with_retry(&b, 1);
    cv_instance *inst = cv_instance_create("r2", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    report(inst, 0, CV_RESULT_REPLY, "down", false, &fx);
    report(inst, 0, CV_RESULT_RETRY_DUE, NULL, false, &fx);
    report(inst, 0, CV_RESULT_REPLY, "still down", false, &fx);
    assert_int_equal(count_kind(&fx, "step.retrying"), 0);
    assert_int_equal(count_kind(&fx, "step.failed"), 1);
    assert_int_equal(inst->status, CV_INSTANCE_FAILED);
    json_t *output = json_object_get(inst->data, "call");
    assert_string_equal(json_string_value(json_object_get(output, "error")), "still down");
    assert_int_equal(json_integer_value(json_object_get(output, "attempts")), 2);
    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void permanent_failure_is_not_retried(void **state)
{
    (void)state;
    built b;
    one_step_with_retry(&b, 3);
    cv_instance *inst = cv_instance_create("r3", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    report(inst, 0, CV_RESULT_REPLY, "no such customer", true, &fx);
    assert_int_equal(count_kind(&fx, "step.retrying"), 0);
    assert_int_equal(count_kind(&fx, "step.failed"), 1);
    assert_int_equal(inst->status, CV_INSTANCE_FAILED);
    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void late_reply_after_timeout_is_ignored(void **state)
{
    (void)state;
    built b;
    one_step_with_retry(&b, 1);
    cv_instance *inst = cv_instance_create("r4", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    cv_attempt first = inst->active[0];
    report(inst, 0, CV_RESULT_TIMEOUT, NULL, false, &fx);

    json_t *out = json_object();
    cv_step_result late = {.step = "call", .attempt = 1, .token = first.token, .output = out};
    cv_effects_reset(&fx);
    assert_int_equal(cv_supervisor_apply(inst, &late, NULL, &fx, NULL), CV_OK);
    json_decref(out);
    assert_int_equal(count_kind(&fx, "reply.ignored"), 1);
    assert_int_equal(fx.dispatch_count, 0);
    assert_null(json_object_get(inst->data, "call"));
    assert_int_equal(inst->active_count, 1);
    assert_true(inst->active[0].due_ms > 0);
    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void unanswered_step_moves_to_the_queue(void **state)
{
    (void)state;
    built b;
    one_step_with_retry(&b, 0);
    cv_instance *inst = cv_instance_create("q1", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    report(inst, 0, CV_RESULT_FALLBACK, "no module is subscribed", false, &fx);
    assert_int_equal(fx.dispatch_count, 1);
    assert_true(fx.dispatches[0].queued);
    assert_int_equal(fx.dispatches[0].attempt, 1);
    assert_int_equal(fx.timer_count, 0);
    assert_string_equal(fx.events[0].kind, "step.dispatched");
    assert_string_equal(json_string_value(json_object_get(fx.events[0].body, "transport")),
                        "queue");
    assert_non_null(strstr(fx.events[0].token, ".queue"));

    /* A second fallback is a no-op; the step's timeout still ends the wait in the queue. */
    report(inst, 0, CV_RESULT_FALLBACK, "again", false, &fx);
    assert_true(cv_effects_empty(&fx));
    report(inst, 0, CV_RESULT_TIMEOUT, NULL, false, &fx);
    assert_int_equal(count_kind(&fx, "step.retrying"), 0);
    assert_int_equal(count_kind(&fx, "step.failed"), 1);
    assert_int_equal(inst->status, CV_INSTANCE_FAILED);

    json_t *doc = cv_instance_to_json(inst);
    assert_non_null(doc);
    json_decref(doc);
    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

/* A Lua step runs inside the node; its timer is what recovers it when the node dies first. */
static void lua_step_has_crash_timer(void **state)
{
    (void)state;
    built b;
    init_process(&b, "local");
    add_step(&b, "calc", NULL, 0, NULL, 0);
    b.steps[0].transport = CV_TRANSPORT_LUA;
    b.steps[0].timeout_ms = CV_DEFAULT_STEP_TIMEOUT_MS;
    cv_instance *inst = cv_instance_create("l1", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    assert_int_equal(fx.timer_count, 1);
    assert_int_equal(fx.timers[0].kind, CV_TIMER_TIMEOUT);
    assert_int_equal(fx.timers[0].due_ms - inst->active[0].started_ms,
                     CV_DEFAULT_STEP_TIMEOUT_MS);
    cv_effects_free(&fx);
    cv_instance_destroy(inst);
    free_process(&b);
}

static void waiting_attempt_survives_serialisation(void **state)
{
    (void)state;
    built b;
    one_step_with_retry(&b, 2);
    cv_instance *inst = cv_instance_create("r5", &b.process, json_object());
    cv_effects fx = {0};
    assert_int_equal(cv_supervisor_start(inst, NULL, &fx, NULL), CV_OK);
    report(inst, 0, CV_RESULT_REPLY, "busy", false, &fx);
    json_t *doc = cv_instance_to_json(inst);
    cv_instance *back = NULL;
    assert_int_equal(cv_instance_from_json(&back, doc, &b.process, NULL), CV_OK);
    json_decref(doc);
    assert_int_equal(back->active_count, 1);
    assert_int_equal(back->active[0].due_ms, inst->active[0].due_ms);
    assert_int_equal(back->active[0].attempt, 2);
    report(back, 0, CV_RESULT_RETRY_DUE, NULL, false, &fx);
    assert_int_equal(fx.dispatch_count, 1);
    cv_effects_free(&fx);
    cv_instance_destroy(back);
    cv_instance_destroy(inst);
    free_process(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_instance_completes),
        cmocka_unit_test(stale_token_is_ignored),
        cmocka_unit_test(join_waits_for_started_branches),
        cmocka_unit_test(loop_fails_after_max_visits),
        cmocka_unit_test(failure_follows_on_error),
        cmocka_unit_test(output_forms_follow_contract),
        cmocka_unit_test(instance_json_round_trips),
        cmocka_unit_test(failed_attempt_waits_then_goes_again),
        cmocka_unit_test(spent_retries_fail_with_attempt_count),
        cmocka_unit_test(permanent_failure_is_not_retried),
        cmocka_unit_test(late_reply_after_timeout_is_ignored),
        cmocka_unit_test(unanswered_step_moves_to_the_queue),
        cmocka_unit_test(waiting_attempt_survives_serialisation),
        cmocka_unit_test(lua_step_has_crash_timer),
    };
    return cmocka_run_group_tests_name("unit/supervisor", tests, NULL, NULL);
}
