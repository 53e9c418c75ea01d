/*
 * Requests and replies built to hurt the node: answer headers a client
 * forged, and bodies or outputs that fit a message but not the stored
 * instance. The server's max_payload is 16 KiB so that the limits are
 * reached with small messages. Every case must end in one clear answer or
 * log line, and the node must go on serving.
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

#define MAX_PAYLOAD 16384

static cv_test_server server;
static cv_test_node node;
static natsConnection *nc;
static cv_test_recorder events;
static cv_test_module module;
static char padding[MAX_PAYLOAD];
static char big_request[MAX_PAYLOAD];

/* Writes {"pad": "xxx..."} of size bytes into buf. */
static void fill_padding(char *buf, size_t size)
{
    memset(buf, 0, MAX_PAYLOAD);
    strcpy(buf, "{\"pad\": \"");
    memset(buf + 9, 'x', size - 11);
    strcat(buf, "\"}");
}

/* Answers every step with an output of 15,000 bytes: it fits a message, not the instance. */
static cv_test_answer bulky_handler(const json_t *step, natsMsg *msg, char *scratch, void *ctx)
{
    (void)step;
    (void)msg;
    (void)scratch;
    (void)ctx;
    return (cv_test_answer){.body = padding};
}

static int setup(void **state)
{
    (void)state;
    cv_test_server_start_config(&server, "max_payload: 16384\n");
    char *extra[] = {"--max-body", "64k", "--ack-wait", "2s", NULL};
    cv_test_node_start(&node, &server, cv_test_source_path("tests/integration/rules"), "hostile",
                       extra);
    nc = cv_test_connect(&server);
    cv_test_recorder_start(&events, nc, "orch.event.>");
    fill_padding(padding, 15000);
    /* Fits a message with the relay's headers; the stored instance does not. */
    fill_padding(big_request, 16000);
    cv_test_module_start(&module, nc, "echo", bulky_handler, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cv_test_module_stop(&module);
    cv_test_recorder_stop(&events);
    natsConnection_Destroy(nc);
    cv_test_node_stop(&node);
    cv_test_server_stop(&server);
    return 0;
}

/* Publishes body to orch.request.<process> with reply subject (or none) and headers name=value. */
static void publish(const char *process, const char *reply, const char *body,
                    const char *const headers[][2], size_t header_count)
{
    char subject[128];
    snprintf(subject, sizeof subject, "orch.request.%s", process);
    natsMsg *msg = NULL;
    assert_int_equal(natsMsg_Create(&msg, subject, reply, body, (int)strlen(body)), NATS_OK);
    for (size_t i = 0; i < header_count; i++)
        assert_int_equal(natsMsgHeader_Set(msg, headers[i][0], headers[i][1]), NATS_OK);
    assert_int_equal(natsConnection_PublishMsg(nc, msg), NATS_OK);
    natsMsg_Destroy(msg);
    assert_int_equal(natsConnection_FlushTimeout(nc, 5000), NATS_OK);
}

/* Counts the messages that reach sub within wait_ms; keeps the first in *first when asked. */
static int count_answers(natsSubscription *sub, int wait_ms, json_t **first)
{
    int count = 0;
    int64_t deadline = cv_clock_mono_ms() + wait_ms;
    for (int64_t left = wait_ms; left > 0; left = deadline - cv_clock_mono_ms()) {
        natsMsg *msg = NULL;
        if (natsSubscription_NextMsg(&msg, sub, left) != NATS_OK)
            break;
        if (count++ == 0 && first != NULL)
            *first = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0,
                                NULL);
        natsMsg_Destroy(msg);
    }
    return count;
}

static void assert_node_serves(void)
{
    json_t *answer = cv_test_request(nc, "lua-step", NULL, "{}", 2);
    assert_non_null(json_string_value(json_object_get(answer, "instance")));
    json_decref(answer);
    assert_true(cv_test_process_alive(&node.process));
}

static void forged_answer_subjects_are_refused(void **state)
{
    (void)state;
    char *long_subject = malloc(5008);
    assert_non_null(long_subject);
    strcpy(long_subject, "victim.");
    memset(long_subject + 7, 'a', 5000);
    long_subject[5007] = '\0';
    const char *too_long[][2] = {{"Orch-Request-Id", "forged-long"},
                                 {"Orch-Relayed-By", "x"},
                                 {"Orch-Reply-To", long_subject}};
    publish("lua-step", NULL, "{}", too_long, 3);
    const char *own[][2] = {{"Orch-Request-Id", "forged-own"},
                            {"Orch-Relayed-By", "x"},
                            {"Orch-Reply-To", "orch.request.lua-step"}};
    publish("lua-step", NULL, "{}", own, 3);
    free(long_subject);

    assert_true(cv_test_process_wait_log(&node.process, "reason=\"longer than 511 bytes\"", 5000));
    assert_true(
        cv_test_process_wait_log(&node.process, "reason=\"inside conveyor's own subjects\"", 5000));
    /* Both requests still start; only their answers are withheld. */
    assert_true(cv_test_recorder_wait(&events, ".forged-long.", "instance.started", 1, 5000));
    assert_true(cv_test_recorder_wait(&events, ".forged-own.", "instance.started", 1, 5000));
    assert_node_serves();
}

static void relayed_mark_without_id_is_relayed(void **state)
{
    (void)state;
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    assert_int_equal(natsInbox_Create(&inbox), NATS_OK);
    assert_int_equal(natsConnection_SubscribeSync(&sub, nc, inbox), NATS_OK);
    const char *marked[][2] = {{"Orch-Relayed-By", "x"}};
    publish("lua-step", inbox, "{}", marked, 1);
    json_t *answer = NULL;
    assert_int_equal(count_answers(sub, 3000, &answer), 1);
    assert_non_null(json_string_value(json_object_get(answer, "instance")));
    json_decref(answer);
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
}

static void unstorable_request_is_answered_once(void **state)
{
    (void)state;
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    assert_int_equal(natsInbox_Create(&inbox), NATS_OK);
    assert_int_equal(natsConnection_SubscribeSync(&sub, nc, inbox), NATS_OK);
    const char *id[][2] = {{"Orch-Request-Id", "too-big-1"}};
    publish("linear", inbox, big_request, id, 1);

    /* A retry would answer again about every second. */
    json_t *answer = NULL;
    assert_int_equal(count_answers(sub, 4000, &answer), 1);
    const char *error = json_string_value(json_object_get(answer, "error"));
    assert_non_null(error);
    assert_non_null(strstr(error, "max_payload"));
    json_decref(answer);
    /* The request as sent and the relayed copy are each rejected once. */
    assert_true(cv_test_process_count_log(&node.process, "instance=too-big-1") <= 2);
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    assert_node_serves();
}

static void unstorable_output_fails_the_step(void **state)
{
    (void)state;
    const char *id[][2] = {{"Orch-Request-Id", "bulky-output-1"}};
    publish("linear", NULL, "{}", id, 1);
    json_t *end = cv_test_wait_instance_end(&events, "bulky-output-1", 15000);
    const char *error = json_string_value(json_object_get(end, "error"));
    assert_non_null(error);
    assert_non_null(strstr(error, "max_payload"));
    assert_true(cv_test_recorder_wait(&events, ".bulky-output-1.", "instance.failed", 1, 1000));
    json_decref(end);
    assert_true(cv_test_process_wait_log(&node.process, "step output not stored", 1000));
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forged_answer_subjects_are_refused),
        cmocka_unit_test(relayed_mark_without_id_is_relayed),
        cmocka_unit_test(unstorable_request_is_answered_once),
        cmocka_unit_test(unstorable_output_fails_the_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
