/*
 * Step reliability on a real node and nats-server: the retry schedule as
 * the module sees it, timeouts followed by retries, a late reply to an
 * attempt that timed out, on_error after the retries are spent, and (with
 * the kv store) a node killed during a back-off, whose wait another node
 * finishes from the timer kept in NATS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/text.h"
#include "support/cluster.h"
#include "support/module.h"

static const char rules_text[] =
    "process \"schedule\" {\n"
    "  start = \"call\",\n"
    "  steps = {\n"
    "    call = { subsystem = \"flaky\", timeout = \"5s\",\n"
    "             retry = { max = 3, backoff = \"200ms\", factor = 2, max_backoff = \"500ms\" } },\n"
    "  },\n"
    "}\n"
    "process \"timeouts\" {\n"
    "  start = \"call\",\n"
    "  steps = {\n"
    "    call = { subsystem = \"sleepy\", timeout = \"300ms\", retry = { max = 1, backoff = \"100ms\" } },\n"
    "  },\n"
    "}\n"
    "process \"spent\" {\n"
    "  start = \"call\",\n"
    "  steps = {\n"
    "    call = { subsystem = \"broken\", retry = { max = 2, backoff = \"50ms\" },\n"
    "             on_error = { \"apologise\" } },\n"
    "    apologise = { subsystem = \"echo\" },\n"
    "  },\n"
    "}\n"
    "process \"patient\" {\n"
    "  start = \"call\",\n"
    "  steps = {\n"
    "    call = { subsystem = \"once-broken\", retry = { max = 1, backoff = \"4s\" } },\n"
    "  },\n"
    "}\n";

#define MAX_SEEN 64

/* What the modules saw: the wall time of each attempt they received, per step body. */
typedef struct seen {
    pthread_mutex_t lock;
    int count;
    int attempts[MAX_SEEN];
    int64_t at_ms[MAX_SEEN];
    char reply[MAX_SEEN][512];
} seen;

typedef struct fixture {
    cv_test_server server;
    cv_test_node nodes[2];
    bool node_running[2];
    char *rules_dir;
    natsConnection *nc;
    cv_test_recorder events;
    cv_test_module modules[8];
    int module_count;
    seen seen;
} fixture;

static fixture fx;

static void note(const json_t *step, natsMsg *msg)
{
    pthread_mutex_lock(&fx.seen.lock);
    if (fx.seen.count < MAX_SEEN) {
        int i = fx.seen.count++;
        fx.seen.attempts[i] = (int)json_integer_value(json_object_get(step, "attempt"));
        fx.seen.at_ms[i] = cv_clock_wall_ms();
        snprintf(fx.seen.reply[i], sizeof fx.seen.reply[i], "%s", natsMsg_GetReply(msg));
    }
    pthread_mutex_unlock(&fx.seen.lock);
}

/* Copies what the modules saw, so that no assertion fails with the lock held. */
static seen seen_copy(void)
{
    seen copy;
    pthread_mutex_lock(&fx.seen.lock);
    memcpy(&copy, &fx.seen, sizeof copy);
    pthread_mutex_unlock(&fx.seen.lock);
    return copy;
}

/* Fails the first three attempts, answers the fourth. */
static cv_test_answer flaky_handler(const json_t *step, natsMsg *msg, char *scratch, void *ctx)
{
    note(step, msg);
    if (json_integer_value(json_object_get(step, "attempt")) < 4)
        return (cv_test_answer){.error = "busy, try later"};
    return cv_test_echo_handler(step, msg, scratch, ctx);
}

/* Never answers the first attempt; answers the second. */
static cv_test_answer sleepy_handler(const json_t *step, natsMsg *msg, char *scratch, void *ctx)
{
    note(step, msg);
    if (json_integer_value(json_object_get(step, "attempt")) == 1)
        return (cv_test_answer){.copies = -1};
    return cv_test_echo_handler(step, msg, scratch, ctx);
}

static cv_test_answer broken_handler(const json_t *step, natsMsg *msg, char *scratch, void *ctx)
{
    (void)scratch;
    (void)ctx;
    note(step, msg);
    return (cv_test_answer){.error = "database unreachable"};
}

static cv_test_answer once_broken_handler(const json_t *step, natsMsg *msg, char *scratch,
                                          void *ctx)
{
    note(step, msg);
    if (json_integer_value(json_object_get(step, "attempt")) == 1)
        return (cv_test_answer){.error = "restarting"};
    return cv_test_echo_handler(step, msg, scratch, ctx);
}

static void add_module(const char *subsystem, cv_test_handler handler)
{
    cv_test_module_start(&fx.modules[fx.module_count++], fx.nc, subsystem, handler, NULL);
}

static void start_node(int i, const char *name)
{
    cv_test_node_start(&fx.nodes[i], &fx.server, fx.rules_dir, name, NULL);
    fx.node_running[i] = true;
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    pthread_mutex_init(&fx.seen.lock, NULL);
    fx.rules_dir = cv_test_temp_dir("conveyor-reliability-rules");
    char path[600];
    snprintf(path, sizeof path, "%s/reliability.lua", fx.rules_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(rules_text, f);
    fclose(f);

    cv_test_server_start(&fx.server);
    start_node(0, "node-a");
    fx.nc = cv_test_connect(&fx.server);
    cv_test_recorder_start(&fx.events, fx.nc, "orch.event.>");
    add_module("flaky", flaky_handler);
    add_module("sleepy", sleepy_handler);
    add_module("broken", broken_handler);
    add_module("echo", cv_test_echo_handler);
    add_module("once-broken", once_broken_handler);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < fx.module_count; i++)
        cv_test_module_stop(&fx.modules[i]);
    cv_test_recorder_stop(&fx.events);
    natsConnection_Destroy(fx.nc);
    for (int i = 0; i < 2; i++) {
        if (fx.node_running[i])
            cv_test_node_stop(&fx.nodes[i]);
    }
    cv_test_server_stop(&fx.server);
    cv_test_remove_tree(fx.rules_dir);
    free(fx.rules_dir);
    pthread_mutex_destroy(&fx.seen.lock);
    return 0;
}

static void reset_seen(void)
{
    pthread_mutex_lock(&fx.seen.lock);
    fx.seen.count = 0;
    pthread_mutex_unlock(&fx.seen.lock);
}

/* Starts process; returns the final event body (new reference) once the instance ended. */
static json_t *run_instance(const char *process, char *id, int timeout_ms)
{
    cv_text_random_token(id, 22);
    json_decref(cv_test_request(fx.nc, process, id, "{}", 2));
    return cv_test_wait_instance_end(&fx.events, id, timeout_ms);
}

static json_t *event_of_attempt(const char *id, const char *kind, int attempt)
{
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    json_t *found = NULL;
    pthread_mutex_lock(&fx.events.lock);
    for (size_t i = 0; i < fx.events.count && found == NULL; i++) {
        const char *s = fx.events.subjects[i];
        json_t *body = fx.events.bodies[i];
        if (strstr(s, infix) != NULL && strcmp(s + strlen(s) - strlen(kind), kind) == 0 &&
            json_integer_value(json_object_get(body, "attempt")) == attempt)
            found = json_incref(body);
    }
    pthread_mutex_unlock(&fx.events.lock);
    return found;
}

static void retry_schedule_follows_formula(void **state)
{
    (void)state;
    reset_seen();
    char id[32];
    json_t *end = run_instance("schedule", id, 15000);
    assert_string_equal(json_string_value(json_object_get(end, "instance")), id);
    assert_non_null(strstr(json_string_value(json_object_get(end, "at")), "T"));
    json_t *output = json_object_get(json_object_get(end, "data"), "call");
    assert_int_equal(json_integer_value(json_object_get(output, "attempt")), 4);
    json_decref(end);

    /*
     * min(200 * 2^(n-1), 500): 200, 400, 500 ms between the attempts the module
     * received, less 2 ms for the two processes reading the clock in whole ms.
     */
    static const int64_t delays[] = {200, 400, 500};
    seen got = seen_copy();
    assert_int_equal(got.count, 4);
    for (int n = 1; n <= 3; n++) {
        int64_t gap = got.at_ms[n] - got.at_ms[n - 1];
        assert_int_equal(got.attempts[n - 1], n);
        if (gap < delays[n - 1] - 2 || gap > delays[n - 1] + 400)
            fail_msg("attempt %d came %lld ms after attempt %d; the schedule says %lld ms",
                     n + 1, (long long)gap, n, (long long)delays[n - 1]);
    }
    for (int n = 1; n <= 3; n++) {
        json_t *retrying = event_of_attempt(id, "step.retrying", n);
        assert_non_null(retrying);
        assert_int_equal(json_integer_value(json_object_get(retrying, "delay_ms")), delays[n - 1]);
        assert_int_equal(json_integer_value(json_object_get(retrying, "next_attempt")), n + 1);
        assert_string_equal(json_string_value(json_object_get(retrying, "error")),
                            "busy, try later");
        json_decref(retrying);
    }
}

static void timeout_retries_and_late_reply_is_ignored(void **state)
{
    (void)state;
    reset_seen();
    char id[32];
    json_t *end = run_instance("timeouts", id, 10000);
    assert_non_null(strstr(json_string_value(json_object_get(end, "instance")), id));
    json_t *output = json_object_get(json_object_get(end, "data"), "call");
    assert_int_equal(json_integer_value(json_object_get(output, "attempt")), 2);
    json_decref(end);
    json_t *retrying = event_of_attempt(id, "step.retrying", 1);
    assert_non_null(retrying);
    assert_string_equal(json_string_value(json_object_get(retrying, "error")),
                        "timed out after 300ms");
    json_decref(retrying);

    /* The module wakes up and answers attempt 1 after all. */
    seen got = seen_copy();
    assert_true(got.count >= 1);
    assert_int_equal(got.attempts[0], 1);
    assert_int_equal(natsConnection_PublishString(fx.nc, got.reply[0], "{\"late\": true}"),
                     NATS_OK);
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "reply.ignored", 1, 5000));
    json_t *ignored = cv_test_recorder_find(&fx.events, infix, "reply.ignored");
    assert_int_equal(json_integer_value(json_object_get(ignored, "attempt")), 1);
    assert_string_equal(json_string_value(json_object_get(ignored, "reason")),
                        "instance is no longer running");
    json_decref(ignored);
    assert_int_equal(cv_test_recorder_count(&fx.events, infix, "instance.completed"), 1);
}

static void spent_retries_follow_on_error(void **state)
{
    (void)state;
    reset_seen();
    char id[32];
    json_t *end = run_instance("spent", id, 10000);
    json_t *steps = json_object_get(end, "steps");
    assert_int_equal(json_array_size(steps), 1);
    assert_string_equal(json_string_value(json_array_get(steps, 0)), "apologise");
    json_t *call = json_object_get(json_object_get(end, "data"), "call");
    assert_string_equal(json_string_value(json_object_get(call, "error")), "database unreachable");
    assert_int_equal(json_integer_value(json_object_get(call, "attempts")), 3);
    json_decref(end);
    assert_int_equal(seen_copy().count, 3);
}

/* kv only: the retry timer lives in ORCH_TIMERS, so a second node fires it. */
static void backoff_survives_node_killed(void **state)
{
    (void)state;
    reset_seen();
    char id[32], infix[64];
    cv_text_random_token(id, 22);
    json_decref(cv_test_request(fx.nc, "patient", id, "{}", 2));
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "step.retrying", 1, 10000));
    cv_test_process_kill(&fx.nodes[0].process);
    fx.node_running[0] = false;
    start_node(1, "node-b");

    assert_true(cv_test_recorder_wait(&fx.events, infix, "instance.completed", 1, 20000));
    json_t *second = event_of_attempt(id, "step.dispatched", 2);
    assert_non_null(second);
    assert_string_equal(json_string_value(json_object_get(second, "node")), "node-b");
    json_decref(second);
    json_t *first = event_of_attempt(id, "step.retrying", 1);
    assert_string_equal(json_string_value(json_object_get(first, "node")), "node-a");
    json_decref(first);
    assert_int_equal(cv_test_recorder_count(&fx.events, infix, "step.completed"), 1);
    assert_int_equal(seen_copy().count, 2);
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_schedule_follows_formula),
        cmocka_unit_test(timeout_retries_and_late_reply_is_ignored),
        cmocka_unit_test(spent_retries_follow_on_error),
        cmocka_unit_test(backoff_survives_node_killed),
    };
    /* With the memory store a timer dies with its node, so the last test applies to kv alone. */
    size_t count = strcmp(cv_test_state, "memory") == 0 ? 3 : 4;
    return _cmocka_run_group_tests("integration/reliability", tests, count, setup, teardown);
}
