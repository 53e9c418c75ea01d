/*
 * `conveyor submit` as a user runs it: exit codes, the printed result, and
 * the errors for bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/cluster.h"
#include "support/module.h"

static cv_test_server server;
static cv_test_node node;
static natsConnection *nc;
static cv_test_module echo, fails, silent;

static cv_test_answer fails_handler(const json_t *step, natsMsg *msg, char *scratch,
                                    void *context)
{
    (void)step;
    (void)msg;
    (void)scratch;
    (void)context;
    return (cv_test_answer){.error = "contact not found", .permanent = true};
}

static cv_test_answer silent_handler(const json_t *step, natsMsg *msg, char *scratch,
                                     void *context)
{
    (void)step;
    (void)msg;
    (void)scratch;
    (void)context;
    return (cv_test_answer){.copies = -1};
}

static int setup(void **state)
{
    (void)state;
    cv_test_server_start(&server);
    cv_test_node_start(&node, &server, cv_test_source_path("tests/integration/rules"), "cli",
                       NULL);
    nc = cv_test_connect(&server);
    cv_test_module_start(&echo, nc, "echo", cv_test_echo_handler, NULL);
    cv_test_module_start(&fails, nc, "fails", fails_handler, NULL);
    cv_test_module_start(&silent, nc, "never-answers", silent_handler, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cv_test_module_stop(&echo);
    cv_test_module_stop(&fails);
    cv_test_module_stop(&silent);
    natsConnection_Destroy(nc);
    cv_test_node_stop(&node);
    cv_test_server_stop(&server);
    return 0;
}

typedef struct run_result {
    int code;
    char *out;
    char *err;
} run_result;

static run_result submit(const char *stdin_text, const char *a1, const char *a2, const char *a3,
                         const char *a4)
{
    char *argv[12] = {CV_TEST_BINARY, "submit", "--nats", server.url};
    int n = 4;
    const char *extra[] = {a1, a2, a3, a4};
    for (int i = 0; i < 4; i++) {
        if (extra[i] != NULL)
            argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    run_result r;
    r.code = cv_test_run(argv, stdin_text, &r.out, &r.err, 20000);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

static void submit_prints_instance_id(void **state)
{
    (void)state;
    run_result r = submit(NULL, "linear", "{\"deal_id\": \"1\"}", "--id", "cli-plain-1");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "cli-plain-1\n");
    run_free(&r);
}

static void submit_wait_prints_final_data(void **state)
{
    (void)state;
    run_result r = submit(NULL, "linear", "{\"deal_id\": \"4127\"}", "--wait=20", NULL);
    assert_int_equal(r.code, 0);
    json_t *result = json_loads(r.out, 0, NULL);
    assert_non_null(result);
    assert_string_equal(json_string_value(json_object_get(result, "status")), "completed");
    assert_string_equal(json_string_value(json_object_get(result, "process")), "linear");
    assert_int_equal(json_array_size(json_object_get(result, "steps")), 3);
    json_t *data = json_object_get(result, "data");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(data, "request"), "deal_id")), "4127");
    json_decref(result);
    run_free(&r);
}

/* The instance ended before submit asked: its answer must carry the result, not "running". */
static void submit_wait_after_plain_publish(void **state)
{
    (void)state;
    natsSubscription *sub = NULL;
    assert_int_equal(
        natsConnection_SubscribeSync(&sub, nc, "orch.event.linear.cli-fired-1.instance.completed"),
        NATS_OK);
    natsMsg *msg = NULL;
    assert_int_equal(natsMsg_Create(&msg, "orch.request.linear", NULL, "{}", 2), NATS_OK);
    assert_int_equal(natsMsgHeader_Set(msg, "Orch-Request-Id", "cli-fired-1"), NATS_OK);
    assert_int_equal(natsConnection_PublishMsg(nc, msg), NATS_OK);
    natsMsg_Destroy(msg);
    natsMsg *end = NULL;
    assert_int_equal(natsSubscription_NextMsg(&end, sub, 10000), NATS_OK);
    natsMsg_Destroy(end);
    natsSubscription_Destroy(sub);

    run_result r = submit(NULL, "linear", "{}", "--id=cli-fired-1", "--wait=10");
    assert_int_equal(r.code, 0);
    json_t *result = json_loads(r.out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(result, "status")), "completed");
    json_decref(result);
    run_free(&r);
}

static void submit_reads_file_and_stdin(void **state)
{
    (void)state;
    run_result r = submit("{\"from\": \"stdin\"}", "linear", "-", "--wait", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"from\": \"stdin\""));
    run_free(&r);

    char path[600];
    snprintf(path, sizeof path, "%s/request.json", server.dir);
    FILE *f = fopen(path, "w");
    fputs("{\"from\": \"file\"}", f);
    fclose(f);
    char arg[610];
    snprintf(arg, sizeof arg, "@%s", path);
    r = submit(NULL, "linear", arg, "--wait", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"from\": \"file\""));
    run_free(&r);
}

static void submit_wait_exits_1_on_failure(void **state)
{
    (void)state;
    run_result r = submit(NULL, "failing-hard", "{}", "--wait=20", NULL);
    assert_int_equal(r.code, 1);
    json_t *result = json_loads(r.out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(result, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(result, "error")),
                        "step \"try\" failed: contact not found");
    json_decref(result);
    run_free(&r);
}

static void submit_wait_exits_3_on_timeout(void **state)
{
    (void)state;
    run_result r = submit(NULL, "silent", "{}", "--wait=1", NULL);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "timed out after 1 s waiting for instance"));
    run_free(&r);
}

static void submit_rejects_bad_arguments(void **state)
{
    (void)state;
    run_result r = submit(NULL, "linear", "{\"a\": ", NULL, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "request argument: invalid JSON at line 1"));
    run_free(&r);

    r = submit(NULL, "linear", "[1]", NULL, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "must be a JSON object, got array"));
    run_free(&r);

    r = submit(NULL, "linear", "{}", "--id", "has space");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--id must be"));
    run_free(&r);

    r = submit(NULL, "linear", "@/nonexistent/request.json", NULL, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "cannot open /nonexistent/request.json"));
    run_free(&r);

    r = submit(NULL, "--bogus", NULL, NULL, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "unknown option '--bogus'"));
    run_free(&r);
}

static void submit_reports_unknown_process(void **state)
{
    (void)state;
    run_result r = submit(NULL, "nope", "{}", NULL, NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "request rejected: unknown process \"nope\""));
    run_free(&r);
}

static void submit_reports_missing_server(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", cv_test_free_port());
    char *argv[] = {CV_TEST_BINARY, "submit", "--nats", url, "linear", "{}", NULL};
    run_result r;
    r.code = cv_test_run(argv, NULL, &r.out, &r.err, 20000);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "cannot connect to NATS at"));
    run_free(&r);
}

static void cancel_stops_waiting_instance(void **state)
{
    (void)state;
    run_result r = submit(NULL, "silent", "{}", "--id", "cli-cancel-1");
    assert_int_equal(r.code, 0);
    run_free(&r);

    char *argv[] = {CV_TEST_BINARY, "cancel", "cli-cancel-1", "--nats", server.url, "--reason",
                    "customer withdrew", NULL};
    r.code = cv_test_run(argv, NULL, &r.out, &r.err, 20000);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "cli-cancel-1 cancelled\n");
    run_free(&r);

    /* A repeated request reports the final status and the reason. */
    r = submit(NULL, "silent", "{}", "--id", "cli-cancel-1");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.err, "status cancelled"));
    run_free(&r);
    r = submit(NULL, "silent", "{}", "--id=cli-cancel-1", "--wait=5");
    assert_int_equal(r.code, 1);
    json_t *result = json_loads(r.out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(result, "status")), "cancelled");
    assert_string_equal(json_string_value(json_object_get(result, "error")), "customer withdrew");
    json_decref(result);
    run_free(&r);

    r.code = cv_test_run(argv, NULL, &r.out, &r.err, 20000);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "instance cli-cancel-1 is cancelled; nothing to cancel"));
    run_free(&r);

    char *unknown[] = {CV_TEST_BINARY, "cancel", "no-such-instance", "--nats", server.url, NULL};
    r.code = cv_test_run(unknown, NULL, &r.out, &r.err, 20000);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "unknown instance \"no-such-instance\""));
    run_free(&r);
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(submit_prints_instance_id),
        cmocka_unit_test(submit_wait_prints_final_data),
        cmocka_unit_test(submit_wait_after_plain_publish),
        cmocka_unit_test(submit_reads_file_and_stdin),
        cmocka_unit_test(submit_wait_exits_1_on_failure),
        cmocka_unit_test(submit_wait_exits_3_on_timeout),
        cmocka_unit_test(submit_rejects_bad_arguments),
        cmocka_unit_test(submit_reports_unknown_process),
        cmocka_unit_test(submit_reports_missing_server),
        cmocka_unit_test(cancel_stops_waiting_instance),
    };
    return cmocka_run_group_tests_name("integration/cli_submit", tests, setup, teardown);
}
