/*
 * A real node on a real nats-server, with modules played by this process:
 * routing, fan-out and joins, loops, module errors, reply shapes, duplicate
 * replies and Lua modules, each checked through the events a user sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/text.h"
#include "support/cluster.h"
#include "support/module.h"

typedef struct fixture {
    cv_test_server server;
    cv_test_node node;
    natsConnection *nc;
    cv_test_recorder events;
    cv_test_module modules[16];
    int module_count;
} fixture;

static fixture fx;

/* "slow": answers after 150 ms, so the other branch of a fan-out finishes first. */
static cv_test_answer slow_handler(const json_t *step, natsMsg *msg, char *scratch, void *context)
{
    usleep(150000);
    return cv_test_echo_handler(step, msg, scratch, context);
}

static cv_test_answer classify_handler(const json_t *step, natsMsg *msg, char *scratch,
                                       void *context)
{
    (void)msg;
    (void)context;
    const char *kind = json_string_value(
        json_object_get(json_object_get(json_object_get(step, "data"), "request"), "kind"));
    snprintf(scratch, 4096, "{\"kind\": \"%s\"}", kind ? kind : "");
    return (cv_test_answer){.body = scratch};
}

static cv_test_answer fails_handler(const json_t *step, natsMsg *msg, char *scratch,
                                    void *context)
{
    (void)step;
    (void)msg;
    (void)scratch;
    (void)context;
    return (cv_test_answer){.error = "CRM returned 409: deal is locked", .permanent = true};
}

/* Answers according to request.shape, to check how each reply form is stored. */
static cv_test_answer shape_handler(const json_t *step, natsMsg *msg, char *scratch,
                                    void *context)
{
    (void)msg;
    (void)scratch;
    (void)context;
    const char *shape = json_string_value(
        json_object_get(json_object_get(json_object_get(step, "data"), "request"), "shape"));
    static const struct {
        const char *shape;
        const char *body;
    } bodies[] = {{"number", "42"},         {"string", "\"4127\""}, {"null", "null"},
                  {"empty", ""},            {"object", "{\"ID\": \"17\"}"},
                  {"array", "[1, 2]"},      {"bad", "{\"ID\": "},
                  {"dupkeys", "{\"a\": 1, \"a\": 2}"}};
    for (size_t i = 0; shape != NULL && i < sizeof bodies / sizeof bodies[0]; i++) {
        if (strcmp(shape, bodies[i].shape) == 0)
            return (cv_test_answer){.body = bodies[i].body};
    }
    return (cv_test_answer){.body = "{}"};
}

/* Returns what the module received, so the test can check params and input. */
static cv_test_answer inspect_handler(const json_t *step, natsMsg *msg, char *scratch,
                                      void *context)
{
    (void)context;
    const char *header = NULL;
    natsMsgHeader_Get(msg, "Orch-Step", &header);
    json_t *seen = json_pack("{s:O, s:O, s:s}", "params", json_object_get(step, "params"), "data",
                             json_object_get(step, "data"), "header_step", header ? header : "");
    char *text = json_dumps(seen, JSON_COMPACT);
    snprintf(scratch, 4096, "%s", text);
    free(text);
    json_decref(seen);
    return (cv_test_answer){.body = scratch};
}

static cv_test_answer twice_handler(const json_t *step, natsMsg *msg, char *scratch,
                                    void *context)
{
    cv_test_answer answer = cv_test_echo_handler(step, msg, scratch, context);
    answer.copies = 2;
    return answer;
}

/* "late": answers and remembers the reply subject, so the test can answer again later. */
static char late_reply_subject[512];

static cv_test_answer late_handler(const json_t *step, natsMsg *msg, char *scratch, void *context)
{
    snprintf(late_reply_subject, sizeof late_reply_subject, "%s", natsMsg_GetReply(msg));
    return cv_test_echo_handler(step, msg, scratch, context);
}

/* "odd-error": fails with an error text that is not valid UTF-8. */
static cv_test_answer odd_error_handler(const json_t *step, natsMsg *msg, char *scratch,
                                        void *context)
{
    (void)step;
    (void)msg;
    (void)context;
    snprintf(scratch, 4096, "CRM said \xff\xfe \"no\"");
    return (cv_test_answer){.error = scratch, .permanent = true};
}

static void start_module(const char *subsystem, cv_test_handler handler)
{
    assert_true(fx.module_count < (int)(sizeof fx.modules / sizeof fx.modules[0]));
    cv_test_module_start(&fx.modules[fx.module_count++], fx.nc, subsystem, handler, NULL);
}

static int setup(void **state)
{
    (void)state;
    cv_test_server_start(&fx.server);
    cv_test_node_start(&fx.node, &fx.server, cv_test_source_path("tests/integration/rules"),
                       "flow-test", NULL);
    fx.nc = cv_test_connect(&fx.server);
    cv_test_recorder_start(&fx.events, fx.nc, "orch.event.>");
    start_module("echo", cv_test_echo_handler);
    start_module("slow", slow_handler);
    start_module("classify", classify_handler);
    start_module("fails", fails_handler);
    start_module("shape", shape_handler);
    start_module("inspect", inspect_handler);
    start_module("twice", twice_handler);
    start_module("late", late_handler);
    start_module("odd-error", odd_error_handler);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < fx.module_count; i++)
        cv_test_module_stop(&fx.modules[i]);
    cv_test_recorder_stop(&fx.events);
    natsConnection_Destroy(fx.nc);
    cv_test_node_stop(&fx.node);
    cv_test_server_stop(&fx.server);
    return 0;
}

/*
 * Submits body to process under a fresh id, waits for the instance to end
 * and returns the final event's body (new reference). *id receives the id.
 */
static json_t *run_instance(const char *process, const char *body, char *id)
{
    cv_text_random_token(id, 22);
    json_t *answer = cv_test_request(fx.nc, process, id, body, (int)strlen(body));
    assert_string_equal(json_string_value(json_object_get(answer, "instance")), id);
    assert_string_equal(json_string_value(json_object_get(answer, "process")), process);
    json_decref(answer);

    return cv_test_wait_instance_end(&fx.events, id, 10000);
}

static size_t count_events(const char *id, const char *kind)
{
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    return cv_test_recorder_count(&fx.events, infix, kind);
}

static json_t *find_event(const char *id, const char *step, const char *kind)
{
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    pthread_mutex_lock(&fx.events.lock);
    json_t *found = NULL;
    for (size_t i = 0; i < fx.events.count && found == NULL; i++) {
        json_t *body = fx.events.bodies[i];
        const char *s = fx.events.subjects[i];
        size_t n = strlen(s), m = strlen(kind);
        if (strstr(s, infix) != NULL && n >= m && strcmp(s + n - m, kind) == 0 &&
            (step == NULL || strcmp(json_string_value(json_object_get(body, "step")), step) == 0))
            found = json_incref(body);
    }
    pthread_mutex_unlock(&fx.events.lock);
    return found;
}

static void assert_trail(const json_t *end, const char *const *expected, size_t count)
{
    json_t *steps = json_object_get(end, "steps");
    assert_int_equal(json_array_size(steps), count);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(json_string_value(json_array_get(steps, i)), expected[i]);
}

static void linear_process_completes_in_order(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("linear", "{\"deal_id\": \"4127\"}", id);
    static const char *const trail[] = {"a", "b", "c"};
    assert_trail(end, trail, 3);
    json_t *data = json_object_get(end, "data");
    assert_string_equal(json_string_value(json_object_get(json_object_get(data, "request"),
                                                          "deal_id")),
                        "4127");
    assert_string_equal(json_string_value(json_object_get(json_object_get(data, "b"), "echo")),
                        "b");
    assert_string_equal(json_string_value(json_object_get(end, "process")), "linear");
    assert_string_equal(json_string_value(json_object_get(end, "node")), "flow-test");
    assert_non_null(json_object_get(end, "at"));
    assert_int_equal(count_events(id, "instance.started"), 1);
    assert_int_equal(count_events(id, "step.dispatched"), 3);
    assert_int_equal(count_events(id, "step.completed"), 3);

    json_t *completed = find_event(id, "a", "step.completed");
    json_t *decision = json_object_get(completed, "decision");
    assert_string_equal(json_string_value(json_object_get(decision, "by")), "next");
    assert_string_equal(json_string_value(json_array_get(json_object_get(decision, "next"), 0)),
                        "b");
    json_decref(completed);
    json_t *last = find_event(id, "c", "step.completed");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(last, "decision"), "by")), "end");
    json_decref(last);
    json_decref(end);
}

static const char *decision_path(const char *id, const char *step)
{
    static char path[128];
    json_t *completed = find_event(id, step, "step.completed");
    assert_non_null(completed);
    snprintf(path, sizeof path, "%s",
             json_string_value(json_object_get(json_object_get(completed, "decision"), "path")));
    json_decref(completed);
    return path;
}

static void nested_conditions_pick_each_route(void **state)
{
    (void)state;
    char id[32];
    static const char *const big[] = {"classify", "big-vip"};
    json_t *end = run_instance("branching", "{\"kind\": \"vip\", \"amount\": \"1500\"}", id);
    assert_trail(end, big, 2);
    assert_string_equal(decision_path(id, "classify"), "condition[1].success[1]");
    json_decref(end);

    static const char *const small[] = {"classify", "small-vip"};
    end = run_instance("branching",
                       "{\"kind\": \"vip\", \"amount\": \"10\", \"NAME\": \"  ACME Corp\"}", id);
    assert_trail(end, small, 2);
    assert_string_equal(decision_path(id, "classify"), "condition[1].success[2].failure[1]");
    json_decref(end);

    static const char *const unknown[] = {"classify", "unknown"};
    end = run_instance("branching", "{\"kind\": \"\"}", id);
    assert_trail(end, unknown, 2);
    assert_string_equal(decision_path(id, "classify"), "condition[2]");
    json_decref(end);

    /* vip but no sub-rule matches: the search goes on to `next`. */
    static const char *const regular[] = {"classify", "regular"};
    end = run_instance("branching", "{\"kind\": \"vip\", \"amount\": \"10\", \"NAME\": \"Zed\"}",
                       id);
    assert_trail(end, regular, 2);
    assert_string_equal(decision_path(id, "classify"), "next");
    json_decref(end);
}

static void fanout_join_runs_merge_once(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("fanout", "{}", id);
    json_t *steps = json_object_get(end, "steps");
    assert_int_equal(json_array_size(steps), 4);
    assert_string_equal(json_string_value(json_array_get(steps, 3)), "merge");
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.instance.completed", id);
    assert_int_equal(cv_test_recorder_count(&fx.events, infix, NULL), 1);
    json_t *merge = find_event(id, "merge", "step.dispatched");
    assert_non_null(merge);
    json_decref(merge);
    size_t merges = 0;
    for (size_t i = 0; i < json_array_size(steps); i++)
        merges += strcmp(json_string_value(json_array_get(steps, i)), "merge") == 0;
    assert_int_equal(merges, 1);
    json_decref(end);
}

static void fanout_without_join_runs_merge_twice(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("fanout-nojoin", "{}", id);
    json_t *steps = json_object_get(end, "steps");
    assert_int_equal(json_array_size(steps), 5);
    size_t merges = 0;
    for (size_t i = 0; i < json_array_size(steps); i++)
        merges += strcmp(json_string_value(json_array_get(steps, i)), "merge") == 0;
    assert_int_equal(merges, 2);
    json_decref(end);
}

static void loop_stops_at_max_visits(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("loop", "{}", id);
    const char *error = json_string_value(json_object_get(end, "error"));
    assert_non_null(error);
    assert_non_null(strstr(error, "step \"again\" was visited more than 5 times"));
    assert_int_equal(count_events(id, "instance.failed"), 1);
    assert_int_equal(count_events(id, "step.completed"), 5);
    json_decref(end);
}

static void module_error_goes_to_on_error(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("failing", "{}", id);
    assert_int_equal(count_events(id, "instance.completed"), 1);
    json_t *try_output = json_object_get(json_object_get(end, "data"), "try");
    assert_string_equal(json_string_value(json_object_get(try_output, "error")),
                        "CRM returned 409: deal is locked");
    assert_int_equal(json_integer_value(json_object_get(try_output, "attempts")), 1);
    json_t *failed = find_event(id, "try", "step.failed");
    assert_non_null(failed);
    assert_true(json_is_true(json_object_get(failed, "permanent")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(failed, "decision"), "by")),
        "on_error");
    json_decref(failed);
    static const char *const trail[] = {"recover"};
    assert_trail(end, trail, 1);
    json_decref(end);
}

static void module_error_without_on_error_fails(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("failing-hard", "{}", id);
    assert_int_equal(count_events(id, "instance.failed"), 1);
    assert_string_equal(json_string_value(json_object_get(end, "error")),
                        "step \"try\" failed: CRM returned 409: deal is locked");
    json_decref(end);
}

static json_t *shape_output(const char *shape, char *id, json_t **end_out)
{
    char body[64];
    snprintf(body, sizeof body, "{\"shape\": \"%s\"}", shape);
    json_t *end = run_instance("shapes", body, id);
    *end_out = end;
    return json_object_get(json_object_get(end, "data"), "s");
}

static void reply_shapes_are_stored_as_contract_says(void **state)
{
    (void)state;
    char id[32];
    json_t *end;
    json_t *out = shape_output("number", id, &end);
    assert_int_equal(json_integer_value(json_object_get(out, "value")), 42);
    json_decref(end);

    out = shape_output("string", id, &end);
    assert_string_equal(json_string_value(json_object_get(out, "value")), "4127");
    json_decref(end);

    out = shape_output("null", id, &end);
    assert_true(json_is_null(json_object_get(out, "value")));
    json_decref(end);

    out = shape_output("empty", id, &end);
    assert_true(json_is_object(out));
    assert_int_equal(json_object_size(out), 0);
    json_decref(end);

    out = shape_output("object", id, &end);
    assert_string_equal(json_string_value(json_object_get(out, "ID")), "17");
    json_decref(end);

    out = shape_output("array", id, &end);
    assert_int_equal(json_array_size(json_object_get(out, "value")), 2);
    json_decref(end);
}

static void malformed_reply_fails_the_step(void **state)
{
    (void)state;
    char id[32];
    json_t *end;
    json_t *out = shape_output("bad", id, &end);
    assert_int_equal(count_events(id, "instance.failed"), 1);
    const char *error = json_string_value(json_object_get(out, "error"));
    assert_non_null(error);
    assert_non_null(strstr(error, "reply body rejected: invalid JSON"));
    json_decref(end);

    out = shape_output("dupkeys", id, &end);
    error = json_string_value(json_object_get(out, "error"));
    assert_non_null(error);
    assert_non_null(strstr(error, "duplicate"));
    json_decref(end);
}

static void lua_module_runs_inside_node(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("lua-step", "{\"NAME\": \"Irina Volkova\"}", id);
    json_t *out = json_object_get(json_object_get(end, "data"), "defaults");
    assert_string_equal(json_string_value(json_object_get(out, "STAGE_ID")), "NEW");
    assert_string_equal(json_string_value(json_object_get(out, "SOURCE_ID")), "web");
    assert_string_equal(json_string_value(json_object_get(out, "NAME")), "Irina Volkova");
    static const char *const trail[] = {"defaults", "after"};
    assert_trail(end, trail, 2);
    json_decref(end);
}

/*
 * With the kv store a Lua step's result travels as a reply through
 * ORCH_REPLIES, so a node that dies after running it does not lose it. A
 * subscriber to the reply subjects receives it like a module's reply.
 */
static void lua_module_error_fails_step(void **state)
{
    (void)state;
    cv_test_recorder replies;
    cv_test_recorder_start(&replies, fx.nc, "orch.reply.>");
    char id[32];
    json_t *end = run_instance("lua-broken", "{}", id);
    const char *error = json_string_value(json_object_get(end, "error"));
    assert_non_null(error);
    assert_non_null(strstr(error, "the defaults table is missing"));
    json_decref(end);
    char infix[64];
    snprintf(infix, sizeof infix, ".reply.%s.", id);
    size_t seen = cv_test_recorder_count(&replies, infix, NULL);
    cv_test_recorder_stop(&replies);
    assert_int_equal(seen, strcmp(cv_test_state, "kv") == 0 ? 1 : 0);
}

static void route_function_overrides_next(void **state)
{
    (void)state;
    char id[32];
    static const char *const to_b[] = {"a", "b"};
    json_t *end = run_instance("route-fn", "{\"go\": \"b\"}", id);
    assert_trail(end, to_b, 2);
    assert_string_equal(decision_path(id, "a"), "route");
    json_decref(end);

    static const char *const to_c[] = {"a", "c"};
    end = run_instance("route-fn", "{\"go\": \"elsewhere\"}", id);
    assert_trail(end, to_c, 2);
    assert_string_equal(decision_path(id, "a"), "next");
    json_decref(end);
}

/* What the ledger queue worker saw of its task. */
static char ledger_reply_to[512];
static char ledger_instance[64];

static cv_test_answer ledger_handler(const json_t *step, natsMsg *msg, char *scratch,
                                     void *context)
{
    const char *value = NULL;
    if (natsMsgHeader_Get(msg, "Orch-Reply-To", &value) == NATS_OK)
        snprintf(ledger_reply_to, sizeof ledger_reply_to, "%s", value);
    if (natsMsgHeader_Get(msg, "Orch-Instance", &value) == NATS_OK)
        snprintf(ledger_instance, sizeof ledger_instance, "%s", value);
    const char *account =
        json_string_value(json_object_get(json_object_get(step, "params"), "account"));
    snprintf(scratch, 4096, "{\"booked\": \"%s\", \"subject\": \"%s\"}",
             account ? account : "", natsMsg_GetSubject(msg));
    (void)context;
    return (cv_test_answer){.body = scratch};
}

/* A queue step waits in ORCH_TASKS while no worker runs, then completes when one starts. */
static void queue_step_waits_for_late_worker(void **state)
{
    (void)state;
    char id[32], infix[64];
    cv_text_random_token(id, 22);
    json_decref(cv_test_request(fx.nc, "queued", id, "{}", 2));
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "step.dispatched", 1, 10000));
    json_t *sent = find_event(id, "book", "step.dispatched");
    assert_string_equal(json_string_value(json_object_get(sent, "transport")), "queue");
    assert_null(json_object_get(sent, "fallback"));
    json_decref(sent);
    usleep(500000);
    assert_int_equal(count_events(id, "instance.completed"), 0);
    assert_int_equal(count_events(id, "step.failed"), 0);

    assert_true(fx.module_count < (int)(sizeof fx.modules / sizeof fx.modules[0]));
    cv_test_queue_worker_start(&fx.modules[fx.module_count++], fx.nc, "ledger", ledger_handler,
                               NULL);
    snprintf(infix, sizeof infix, ".%s.instance.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "completed", 1, 10000));
    json_t *end = find_event(id, NULL, "instance.completed");
    json_t *output = json_object_get(json_object_get(end, "data"), "book");
    assert_string_equal(json_string_value(json_object_get(output, "booked")), "sales");
    assert_string_equal(json_string_value(json_object_get(output, "subject")),
                        "orch.task.ledger");
    json_decref(end);
    assert_string_equal(ledger_instance, id);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "orch.reply.%s.book.1.", id);
    assert_memory_equal(ledger_reply_to, prefix, strlen(prefix));
}

/* A step no NATS module answers moves to the queue, waits there, and runs when a worker comes. */
static void unanswered_step_waits_in_queue_for_worker(void **state)
{
    (void)state;
    char id[32], infix[64];
    cv_text_random_token(id, 22);
    json_t *answer = cv_test_request(fx.nc, "orphan", id, "{}", 2);
    json_decref(answer);
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "step.dispatched", 2, 10000));

    json_t *moved = NULL;
    pthread_mutex_lock(&fx.events.lock);
    for (size_t i = 0; i < fx.events.count && moved == NULL; i++) {
        json_t *fallback = json_object_get(fx.events.bodies[i], "fallback");
        if (strstr(fx.events.subjects[i], infix) != NULL && fallback != NULL)
            moved = json_incref(fx.events.bodies[i]);
    }
    pthread_mutex_unlock(&fx.events.lock);
    assert_non_null(moved);
    assert_string_equal(json_string_value(json_object_get(moved, "transport")), "queue");
    assert_int_equal(json_integer_value(json_object_get(moved, "attempt")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(moved, "fallback")),
                           "no module is subscribed"));
    json_decref(moved);
    assert_int_equal(count_events(id, "instance.failed"), 0);
    assert_int_equal(count_events(id, "step.failed"), 0);

    assert_true(fx.module_count < (int)(sizeof fx.modules / sizeof fx.modules[0]));
    cv_test_queue_worker_start(&fx.modules[fx.module_count++], fx.nc, "nobody-listens",
                               cv_test_echo_handler, NULL);
    snprintf(infix, sizeof infix, ".%s.instance.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "completed", 1, 10000));
    json_t *end = find_event(id, NULL, "instance.completed");
    assert_non_null(end);
    json_t *output = json_object_get(json_object_get(end, "data"), "x");
    assert_string_equal(json_string_value(json_object_get(output, "echo")), "x");
    json_decref(end);
}

static void input_and_params_reach_module(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("inputs", "{\"keep\": {\"x\": 1}, \"secret\": \"drop me\"}", id);
    json_t *seen = json_object_get(json_object_get(end, "data"), "b");
    assert_string_equal(json_string_value(json_object_get(json_object_get(seen, "params"), "mode")),
                        "strict");
    json_t *data = json_object_get(seen, "data");
    assert_int_equal(json_object_size(data), 1);
    json_t *request = json_object_get(data, "request");
    assert_int_equal(json_object_size(request), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(request, "keep"), "x")),
                     1);
    assert_string_equal(json_string_value(json_object_get(seen, "header_step")), "b");
    json_decref(end);
}

static void duplicate_reply_is_ignored(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("duplicates", "{}", id);
    static const char *const trail[] = {"twice", "after"};
    assert_trail(end, trail, 2);
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "reply.ignored", 1, 5000));
    json_t *ignored = find_event(id, "twice", "reply.ignored");
    assert_non_null(ignored);
    assert_non_null(strstr(json_string_value(json_object_get(ignored, "reason")), "duplicate"));
    json_decref(ignored);
    assert_int_equal(count_events(id, "step.completed"), 2);
    json_decref(end);
}

/* The bucket revision of instance id with the kv store; 0 with the memory store. */
static uint64_t stored_revision(const char *id)
{
    if (strcmp(cv_test_state, "kv") != 0)
        return 0;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    kvEntry *entry = NULL;
    assert_int_equal(natsConnection_JetStream(&js, fx.nc, NULL), NATS_OK);
    assert_int_equal(js_KeyValue(&kv, js, "orch_instances"), NATS_OK);
    assert_int_equal(kvStore_Get(&entry, kv, id), NATS_OK);
    uint64_t revision = kvEntry_Revision(entry);
    kvEntry_Destroy(entry);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    return revision;
}

static void late_reply_after_end_is_recorded(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("late-reply", "{}", id);
    json_decref(end);
    uint64_t stored_before = stored_revision(id);
    assert_true(late_reply_subject[0] != '\0');
    assert_int_equal(natsConnection_PublishString(fx.nc, late_reply_subject, "{\"again\": 1}"),
                     NATS_OK);
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&fx.events, infix, "reply.ignored", 1, 5000));
    json_t *ignored = find_event(id, "only", "reply.ignored");
    assert_string_equal(json_string_value(json_object_get(ignored, "reason")),
                        "instance is no longer running");
    json_decref(ignored);
    assert_int_equal(count_events(id, "instance.completed"), 1);
    /* An ignored reply changes nothing, so nothing is written to the store. */
    assert_int_equal(stored_revision(id), stored_before);
}

static void invalid_utf8_error_is_kept(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("odd-error", "{}", id);
    const char *stored = json_string_value(
        json_object_get(json_object_get(json_object_get(end, "data"), "only"), "error"));
    assert_non_null(stored);
    assert_string_equal(stored, "CRM said \xef\xbf\xbd\xef\xbf\xbd \"no\"");
    assert_non_null(strstr(json_string_value(json_object_get(end, "error")), "CRM said"));
    json_decref(end);
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_process_completes_in_order),
        cmocka_unit_test(nested_conditions_pick_each_route),
        cmocka_unit_test(fanout_join_runs_merge_once),
        cmocka_unit_test(fanout_without_join_runs_merge_twice),
        cmocka_unit_test(loop_stops_at_max_visits),
        cmocka_unit_test(module_error_goes_to_on_error),
        cmocka_unit_test(module_error_without_on_error_fails),
        cmocka_unit_test(reply_shapes_are_stored_as_contract_says),
        cmocka_unit_test(malformed_reply_fails_the_step),
        cmocka_unit_test(lua_module_runs_inside_node),
        cmocka_unit_test(lua_module_error_fails_step),
        cmocka_unit_test(route_function_overrides_next),
        cmocka_unit_test(unanswered_step_waits_in_queue_for_worker),
        cmocka_unit_test(queue_step_waits_for_late_worker),
        cmocka_unit_test(input_and_params_reach_module),
        cmocka_unit_test(duplicate_reply_is_ignored),
        cmocka_unit_test(late_reply_after_end_is_recorded),
        cmocka_unit_test(invalid_utf8_error_is_kept),
    };
    return cmocka_run_group_tests_name("integration/flow", tests, setup, teardown);
}
