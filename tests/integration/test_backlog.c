/*
 * A backlog: thousands of requests stored in ORCH_REQUESTS while no node
 * runs, then one node with a short ack wait. Handling them all takes far
 * longer than the ack wait. A node that fetched every stored message at
 * once would keep most of them past it, so the server would deliver them
 * again and each copy would dispatch its step again. The node must fetch
 * only what it can finish in time: every instance completes, every step is
 * dispatched once, and neither consumer delivers a message twice.
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
#include "support/module.h"

/* Enough that the plain build needs several ack waits to handle them all. */
#define BACKLOG 3000
/* The process "linear": three steps a, b and c, each sent to the echo module. */
#define STEPS_PER_INSTANCE 3

static char *node_args[] = {"--workers", "2", "--ack-wait", "2s", NULL};

/* Publishes BACKLOG requests and waits until ORCH_REQUESTS contains them all. */
static void publish_backlog(natsConnection *nc, jsCtx *js)
{
    for (int i = 0; i < BACKLOG; i++) {
        char id[32];
        snprintf(id, sizeof id, "backlog-%05d", i);
        natsMsg *msg = NULL;
        assert_int_equal(natsMsg_Create(&msg, "orch.request.linear", NULL, "{}", 2), NATS_OK);
        assert_int_equal(natsMsgHeader_Set(msg, "Orch-Request-Id", id), NATS_OK);
        assert_int_equal(natsConnection_PublishMsg(nc, msg), NATS_OK);
        natsMsg_Destroy(msg);
    }
    assert_int_equal(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
    int64_t deadline = cv_clock_mono_ms() + 10000;
    uint64_t stored = 0;
    while (stored < BACKLOG && cv_clock_mono_ms() < deadline) {
        jsStreamInfo *info = NULL;
        if (js_GetStreamInfo(&info, js, "ORCH_REQUESTS", NULL, NULL) == NATS_OK) {
            stored = info->State.Msgs;
            jsStreamInfo_Destroy(info);
        }
        if (stored < BACKLOG)
            usleep(100000);
    }
    assert_int_equal(stored, BACKLOG);
}

static void expect_count(const char *counted, uint64_t seen, uint64_t want)
{
    if (seen != want)
        fail_msg("%s: %llu, expected %llu", counted, (unsigned long long)seen,
                 (unsigned long long)want);
}

/* How many deliveries consumer has made, first deliveries and repeats together. */
static uint64_t deliveries(jsCtx *js, const char *stream, const char *consumer)
{
    jsConsumerInfo *info = NULL;
    assert_int_equal(js_GetConsumerInfo(&info, js, stream, consumer, NULL, NULL), NATS_OK);
    uint64_t delivered = info->Delivered.Consumer;
    jsConsumerInfo_Destroy(info);
    return delivered;
}

static void backlog_drains_without_redelivery(void **state)
{
    (void)state;
    cv_test_server server;
    cv_test_server_start(&server);
    const char *rules = cv_test_source_path("tests/integration/rules");
    cv_test_node node;
    /* The first node creates the streams and consumers with the short ack wait, then leaves. */
    cv_test_node_start(&node, &server, rules, "first", node_args);
    cv_test_node_stop(&node);

    natsConnection *nc = cv_test_connect(&server);
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    cv_test_recorder completions;
    cv_test_recorder_start(&completions, nc, "orch.event.linear.*.instance.completed");
    cv_test_module echo;
    cv_test_module_start(&echo, nc, "echo", cv_test_echo_handler, NULL);
    publish_backlog(nc, js);

    int64_t started = cv_clock_mono_ms();
    cv_test_node_start(&node, &server, rules, "second", node_args);
    if (!cv_test_recorder_wait(&completions, "backlog-", NULL, BACKLOG, 120000))
        fail_msg("%zu of %d instances completed",
                 cv_test_recorder_count(&completions, "backlog-", NULL), BACKLOG);
    int64_t took = cv_clock_mono_ms() - started;
    print_message("%d instances took %lld ms with an ack wait of 2 s\n", BACKLOG, (long long)took);
    /* A message kept past its ack wait would be delivered again by now. */
    usleep(2500000);

    expect_count("instance.completed events",
                 cv_test_recorder_count(&completions, "backlog-", NULL), BACKLOG);
    expect_count("steps dispatched", (uint64_t)atomic_load(&echo.received),
                 BACKLOG * STEPS_PER_INSTANCE);
    expect_count("requests delivered", deliveries(js, "ORCH_REQUESTS", "conveyor-requests"),
                 BACKLOG);
    expect_count("replies delivered", deliveries(js, "ORCH_REPLIES", "conveyor-replies"),
                 BACKLOG * STEPS_PER_INSTANCE);

    cv_test_module_stop(&echo);
    cv_test_recorder_stop(&completions);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    cv_test_node_stop(&node);
    cv_test_server_stop(&server);
}

/* A failed assertion skips a test's own cleanup: stop whatever it left running. */
static int stop_leftovers(void **state)
{
    (void)state;
    cv_test_process_kill_all();
    return 0;
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(backlog_drains_without_redelivery, stop_leftovers),
    };
    return cmocka_run_group_tests_name("integration/backlog", tests, NULL, NULL);
}
