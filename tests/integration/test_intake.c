/*
 * Requests as users and broken clients send them: every malformed request
 * gets an answer naming the fault, repeated request ids start one instance,
 * and nothing stops the node.
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

static cv_test_server server;
static cv_test_node node;
static natsConnection *nc;
static cv_test_recorder events;
static cv_test_module echo;

static int setup(void **state)
{
    (void)state;
    cv_test_server_start(&server);
    char *extra[] = {"--max-body", "4k", NULL};
    cv_test_node_start(&node, &server, cv_test_source_path("tests/integration/rules"), "intake",
                       extra);
    nc = cv_test_connect(&server);
    cv_test_recorder_start(&events, nc, "orch.event.>");
    cv_test_module_start(&echo, nc, "echo", cv_test_echo_handler, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cv_test_module_stop(&echo);
    cv_test_recorder_stop(&events);
    natsConnection_Destroy(nc);
    cv_test_node_stop(&node);
    cv_test_server_stop(&server);
    return 0;
}

/* Sends body and returns the "error" of the answer (static copy), failing if there is none. */
static const char *error_for(const char *process, const char *request_id, const char *body,
                             int length)
{
    static char text[1024];
    json_t *answer = cv_test_request(nc, process, request_id, body, length);
    const char *error = json_string_value(json_object_get(answer, "error"));
    if (error == NULL)
        fail_msg("expected an error answer for %.80s", body);
    snprintf(text, sizeof text, "%s", error);
    json_decref(answer);
    return text;
}

static void unknown_process_is_named(void **state)
{
    (void)state;
    const char *error = error_for("no-such-process", NULL, "{}", 2);
    assert_non_null(strstr(error, "unknown process \"no-such-process\" (known: "));
    assert_non_null(strstr(error, "linear"));
}

static void malformed_json_names_position(void **state)
{
    (void)state;
    const char *error = error_for("linear", NULL, "{\"deal\": ", 9);
    assert_non_null(strstr(error, "request body rejected: invalid JSON at line 1"));
}

static void non_object_body_is_rejected(void **state)
{
    (void)state;
    assert_string_equal(error_for("linear", NULL, "[1, 2]", 6),
                        "request body must be a JSON object, got array");
    assert_string_equal(error_for("linear", NULL, "\"text\"", 6),
                        "request body must be a JSON object, got string");
    assert_non_null(strstr(error_for("linear", NULL, "", 0), "invalid JSON"));
}

static void oversized_body_names_limit(void **state)
{
    (void)state;
    char body[5000];
    memset(body, ' ', sizeof body);
    memcpy(body, "{\"a\": 1}", 8);
    const char *error = error_for("linear", NULL, body, (int)sizeof body);
    assert_string_equal(error,
                        "request body rejected: body is 5000 bytes, over the limit of 4096 bytes");
}

static void deep_nesting_is_rejected(void **state)
{
    (void)state;
    char body[300];
    int n = 0;
    body[n++] = '{';
    body[n++] = '"';
    body[n++] = 'a';
    body[n++] = '"';
    body[n++] = ':';
    for (int i = 0; i < 100; i++)
        body[n++] = '[';
    for (int i = 0; i < 100; i++)
        body[n++] = ']';
    body[n++] = '}';
    assert_non_null(strstr(error_for("linear", NULL, body, n), "deeper than the limit of 64"));
}

static void duplicate_keys_are_rejected(void **state)
{
    (void)state;
    const char *body = "{\"ID\": \"1\", \"ID\": \"2\"}";
    assert_non_null(strstr(error_for("linear", NULL, body, (int)strlen(body)), "duplicate"));
}

static void invalid_request_id_is_rejected(void **state)
{
    (void)state;
    assert_non_null(strstr(error_for("linear", "bad id!", "{}", 2), "invalid Orch-Request-Id"));
    char long_id[100];
    memset(long_id, 'x', 99);
    long_id[99] = '\0';
    assert_non_null(strstr(error_for("linear", long_id, "{}", 2), "invalid Orch-Request-Id"));
}

static void repeated_request_id_starts_one_instance(void **state)
{
    (void)state;
    char id[32];
    cv_text_random_token(id, 22);
    json_t *first = cv_test_request(nc, "linear", id, "{}", 2);
    assert_string_equal(json_string_value(json_object_get(first, "instance")), id);
    assert_null(json_object_get(first, "duplicate"));
    json_t *second = cv_test_request(nc, "linear", id, "{}", 2);
    assert_string_equal(json_string_value(json_object_get(second, "instance")), id);
    assert_true(json_is_true(json_object_get(second, "duplicate")));

    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&events, infix, "instance.completed", 1, 10000));
    assert_int_equal(cv_test_recorder_count(&events, infix, "instance.started"), 1);

    json_t *third = cv_test_request(nc, "linear", id, "{}", 2);
    assert_string_equal(json_string_value(json_object_get(third, "status")), "completed");
    json_decref(first);
    json_decref(second);
    json_decref(third);
}

static void garbage_without_reply_is_logged(void **state)
{
    (void)state;
    int before = cv_test_process_count_log(&node.process, "request rejected");
    assert_int_equal(natsConnection_PublishString(nc, "orch.request.linear", "not json"), NATS_OK);
    assert_int_equal(natsConnection_PublishString(nc, "orch.reply.nonsense", "{}"), NATS_OK);
    assert_int_equal(
        natsConnection_PublishString(nc, "orch.reply.unknown.a.1.abcdefghijABCDEFGHIJ01", "{}"),
        NATS_OK);
    natsConnection_FlushTimeout(nc, 5000);
    assert_true(cv_test_process_wait_log(&node.process, "reason=\"unknown instance\"", 5000));
    assert_true(cv_test_process_wait_log(&node.process, "not a conveyor reply subject", 5000));
    /* Each message may go to a different worker, so the lines come in any order. */
    int64_t deadline = cv_clock_mono_ms() + 5000;
    while (cv_test_process_count_log(&node.process, "request rejected") <= before &&
           cv_clock_mono_ms() < deadline)
        usleep(20000);
    assert_true(cv_test_process_count_log(&node.process, "request rejected") > before);
}

static void node_still_serves_after_bad_input(void **state)
{
    (void)state;
    char id[32];
    cv_text_random_token(id, 22);
    json_t *answer = cv_test_request(nc, "linear", id, "{\"ok\": true}", 12);
    assert_string_equal(json_string_value(json_object_get(answer, "instance")), id);
    json_decref(answer);
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_true(cv_test_recorder_wait(&events, infix, "instance.completed", 1, 10000));
    assert_true(cv_test_process_alive(&node.process));
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_process_is_named),
        cmocka_unit_test(malformed_json_names_position),
        cmocka_unit_test(non_object_body_is_rejected),
        cmocka_unit_test(oversized_body_names_limit),
        cmocka_unit_test(deep_nesting_is_rejected),
        cmocka_unit_test(duplicate_keys_are_rejected),
        cmocka_unit_test(invalid_request_id_is_rejected),
        cmocka_unit_test(repeated_request_id_starts_one_instance),
        cmocka_unit_test(garbage_without_reply_is_logged),
        cmocka_unit_test(node_still_serves_after_bad_input),
    };
    return cmocka_run_group_tests_name("integration/intake", tests, setup, teardown);
}
