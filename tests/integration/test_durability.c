/*
 * Losing parts of the system mid-run: a node killed with SIGKILL while
 * three share the work, requests published while no node runs, and a
 * nats-server restarted on the same store. Every instance must complete
 * and, by the audit log in ORCH_EVENTS, every step must complete once.
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
#include "support/cluster.h"
#include "support/history.h"
#include "support/module.h"

/* Four steps an instance: split, left and right in parallel, then the merge join. */
#define STEPS_PER_INSTANCE 4

static char *node_args[] = {"--workers", "2", "--ack-wait", "2s", NULL};

static void publish_requests(natsConnection *nc, const char *run, int from, int count)
{
    for (int i = from; i < from + count; i++) {
        char id[64], body[64];
        snprintf(id, sizeof id, "%s-%04d", run, i);
        snprintf(body, sizeof body, "{\"n\": %d}", i);
        natsMsg *msg = NULL;
        assert_int_equal(natsMsg_Create(&msg, "orch.request.durable", NULL, body,
                                        (int)strlen(body)),
                         NATS_OK);
        assert_int_equal(natsMsgHeader_Set(msg, "Orch-Request-Id", id), NATS_OK);
        assert_int_equal(natsConnection_PublishMsg(nc, msg), NATS_OK);
        natsMsg_Destroy(msg);
    }
    assert_int_equal(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
}

/* Counts instances of run with an instance.completed event in the audit log. */
static int completed_in_history(natsConnection *nc, const char *run)
{
    char filter[128];
    snprintf(filter, sizeof filter, "orch.event.durable.*.instance.completed");
    json_t *counts = cv_test_history_count(nc, "ORCH_EVENTS", filter, 5000);
    if (counts == NULL)
        return -1;
    int completed = 0;
    const char *subject;
    json_t *value;
    json_object_foreach(counts, subject, value) {
        completed += strstr(subject, run) != NULL;
    }
    json_decref(counts);
    return completed;
}

static void wait_completed(natsConnection *nc, const char *run, int want, int timeout_ms)
{
    int64_t deadline = cv_clock_mono_ms() + timeout_ms;
    int seen = 0;
    while (cv_clock_mono_ms() < deadline) {
        seen = completed_in_history(nc, run);
        if (seen >= want)
            return;
        usleep(250000);
    }
    fail_msg("%d of %d instances of %s completed within %d ms", seen, want, run, timeout_ms);
}

/* Checks the audit log: one instance.completed and one step.completed per step, for each. */
static void assert_each_step_once(natsConnection *nc, const char *run, int count)
{
    json_t *counts = cv_test_history_count(nc, "ORCH_EVENTS", "orch.event.durable.>", 10000);
    assert_non_null(counts);
    int completed_steps = 0, completed_instances = 0;
    const char *subject;
    json_t *value;
    json_object_foreach(counts, subject, value) {
        if (strstr(subject, run) == NULL)
            continue;
        if (strstr(subject, ".instance.completed") != NULL)
            assert_int_equal(json_integer_value(value), 1);
        if (strstr(subject, ".step.completed") != NULL)
            completed_steps++;
        if (strstr(subject, ".instance.completed") != NULL)
            completed_instances++;
    }
    json_decref(counts);
    assert_int_equal(completed_instances, count);
    /* Subjects do not name the step: assert_steps_in_bodies counts each step. */
    assert_int_equal(completed_steps, count);
}

/* Checks the per-step count through the events' bodies, which name the step. */
static void assert_steps_in_bodies(natsConnection *nc, const char *run, int count)
{
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = "ORCH_EVENTS";
    options.Ordered = true;
    assert_int_equal(js_SubscribeSync(&sub, js, "orch.event.durable.*.step.completed", NULL,
                                      &options, NULL),
                     NATS_OK);
    json_t *seen = json_object();
    for (;;) {
        natsMsg *msg = NULL;
        if (natsSubscription_NextMsg(&msg, sub, 2000) != NATS_OK)
            break;
        json_t *body = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0,
                                  NULL);
        const char *instance = json_string_value(json_object_get(body, "instance"));
        if (instance != NULL && strstr(instance, run) != NULL) {
            char key[160];
            snprintf(key, sizeof key, "%s/%s", instance,
                     json_string_value(json_object_get(body, "step")));
            json_object_set_new(seen, key,
                                json_integer(json_integer_value(json_object_get(seen, key)) + 1));
        }
        json_decref(body);
        natsMsg_Destroy(msg);
    }
    const char *key;
    json_t *value;
    json_object_foreach(seen, key, value) {
        if (json_integer_value(value) != 1)
            fail_msg("step %s completed %lld times", key, (long long)json_integer_value(value));
    }
    assert_int_equal(json_object_size(seen), (size_t)count * STEPS_PER_INSTANCE);
    json_decref(seen);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
}

static void sigkill_of_one_node_loses_nothing(void **state)
{
    (void)state;
    cv_test_server server;
    cv_test_server_start(&server);
    const char *rules = cv_test_source_path("tests/integration/rules");
    cv_test_node nodes[3];
    cv_test_node_start(&nodes[0], &server, rules, "n1", node_args);
    cv_test_node_start(&nodes[1], &server, rules, "n2", node_args);
    cv_test_node_start(&nodes[2], &server, rules, "n3", node_args);
    natsConnection *nc = cv_test_connect(&server);
    cv_test_module echo;
    cv_test_module_start(&echo, nc, "echo", cv_test_echo_handler, NULL);

    const int total = 400;
    publish_requests(nc, "kill", 0, total);
    wait_completed(nc, "kill", 60, 30000);
    cv_test_process_kill(&nodes[1].process);
    wait_completed(nc, "kill", total, 90000);
    assert_true(cv_test_process_count_log(&nodes[0].process, "instance completed") +
                    cv_test_process_count_log(&nodes[2].process, "instance completed") >
                0);

    assert_each_step_once(nc, "kill", total);
    assert_steps_in_bodies(nc, "kill", total);
    cv_test_module_stop(&echo);
    natsConnection_Destroy(nc);
    cv_test_node_stop(&nodes[0]);
    cv_test_node_stop(&nodes[2]);
    cv_test_server_stop(&server);
}

static void requests_wait_for_a_node(void **state)
{
    (void)state;
    cv_test_server server;
    cv_test_server_start(&server);
    const char *rules = cv_test_source_path("tests/integration/rules");
    cv_test_node node;
    /* The first node creates the streams; then no node runs while requests arrive. */
    cv_test_node_start(&node, &server, rules, "first", node_args);
    cv_test_node_stop(&node);

    natsConnection *nc = cv_test_connect(&server);
    cv_test_module echo;
    cv_test_module_start(&echo, nc, "echo", cv_test_echo_handler, NULL);
    publish_requests(nc, "offline", 0, 50);
    usleep(300000);
    assert_int_equal(completed_in_history(nc, "offline"), 0);

    cv_test_node_start(&node, &server, rules, "second", node_args);
    wait_completed(nc, "offline", 50, 30000);
    assert_each_step_once(nc, "offline", 50);

    cv_test_module_stop(&echo);
    natsConnection_Destroy(nc);
    cv_test_node_stop(&node);
    cv_test_server_stop(&server);
}

static void server_restart_is_survived(void **state)
{
    (void)state;
    cv_test_server server;
    cv_test_server_start(&server);
    const char *rules = cv_test_source_path("tests/integration/rules");
    cv_test_node nodes[2];
    cv_test_node_start(&nodes[0], &server, rules, "r1", node_args);
    cv_test_node_start(&nodes[1], &server, rules, "r2", node_args);
    natsConnection *nc = cv_test_connect(&server);
    cv_test_module echo;
    cv_test_module_start(&echo, nc, "echo", cv_test_echo_handler, NULL);

    const int total = 300;
    publish_requests(nc, "restart", 0, total);
    wait_completed(nc, "restart", 40, 30000);
    cv_test_server_restart(&server);
    wait_completed(nc, "restart", total, 90000);
    assert_each_step_once(nc, "restart", total);
    assert_steps_in_bodies(nc, "restart", total);

    cv_test_module_stop(&echo);
    natsConnection_Destroy(nc);
    cv_test_node_stop(&nodes[0]);
    cv_test_node_stop(&nodes[1]);
    cv_test_server_stop(&server);
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigkill_of_one_node_loses_nothing),
        cmocka_unit_test(requests_wait_for_a_node),
        cmocka_unit_test(server_restart_is_survived),
    };
    return cmocka_run_group_tests_name("integration/durability", tests, NULL, NULL);
}
