/*
 * An operator deletes the instance bucket while a node runs, as
 * `nats kv del orch_instances` does. The node creates the bucket again the
 * next time a read or a write fails and logs one warning. It acknowledges
 * replies for the lost instances as replies for unknown instances, and
 * starts new requests, all without a restart.
 */
#include <pthread.h>
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

#define BUCKET "orch_instances"
#define BUCKET_STREAM "KV_orch_instances"
#define RECREATED_LINE "msg=\"bucket not found, created it again\""
#define RECREATED_CONTEXT "bucket=" BUCKET " stream=" BUCKET_STREAM " storage=file replicas=1"

/* Instances left waiting for a reply: several, so that several workers find the bucket gone. */
#define WAITING 6

/* Reply subjects of the steps the "never-answers" module received. */
typedef struct unanswered_steps {
    pthread_mutex_t lock;
    int count;
    char subjects[WAITING][512];
} unanswered_steps;

typedef struct fixture {
    cv_test_server server;
    cv_test_node node;
    natsConnection *nc;
    jsCtx *js;
    cv_test_recorder events;
    cv_test_module echo;
    cv_test_module never_answers;
    unanswered_steps unanswered;
} fixture;

static fixture fx;

/* Keeps the reply subject and sends nothing, so the step waits until the test sends the reply. */
static cv_test_answer withhold_reply_handler(const json_t *step, natsMsg *msg, char *scratch,
                                             void *context)
{
    (void)step;
    (void)scratch;
    unanswered_steps *unanswered = context;
    pthread_mutex_lock(&unanswered->lock);
    if (unanswered->count < WAITING) {
        snprintf(unanswered->subjects[unanswered->count], sizeof unanswered->subjects[0], "%s",
                 natsMsg_GetReply(msg));
        unanswered->count++;
    }
    pthread_mutex_unlock(&unanswered->lock);
    return (cv_test_answer){.copies = -1};
}

static int unanswered_count(void)
{
    pthread_mutex_lock(&fx.unanswered.lock);
    int count = fx.unanswered.count;
    pthread_mutex_unlock(&fx.unanswered.lock);
    return count;
}

static int setup(void **state)
{
    (void)state;
    pthread_mutex_init(&fx.unanswered.lock, NULL);
    cv_test_server_start(&fx.server);
    char *extra[] = {"--workers", "4", NULL};
    cv_test_node_start(&fx.node, &fx.server, cv_test_source_path("tests/integration/rules"),
                       "bucket-deleted", extra);
    fx.nc = cv_test_connect(&fx.server);
    assert_int_equal(natsConnection_JetStream(&fx.js, fx.nc, NULL), NATS_OK);
    cv_test_recorder_start(&fx.events, fx.nc, "orch.event.>");
    cv_test_module_start(&fx.echo, fx.nc, "echo", cv_test_echo_handler, NULL);
    cv_test_module_start(&fx.never_answers, fx.nc, "never-answers", withhold_reply_handler,
                         &fx.unanswered);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cv_test_module_stop(&fx.never_answers);
    cv_test_module_stop(&fx.echo);
    cv_test_recorder_stop(&fx.events);
    jsCtx_Destroy(fx.js);
    natsConnection_Destroy(fx.nc);
    cv_test_node_stop(&fx.node);
    cv_test_server_stop(&fx.server);
    pthread_mutex_destroy(&fx.unanswered.lock);
    return 0;
}

static void delete_bucket(void)
{
    jsErrCode code = 0;
    natsStatus s = js_DeleteStream(fx.js, BUCKET_STREAM, NULL, &code);
    if (s != NATS_OK)
        fail_msg("cannot delete stream %s: %s (error %d)", BUCKET_STREAM, natsStatus_GetText(s),
                 (int)code);
}

static int recreated_count(void)
{
    return cv_test_process_count_log(&fx.node.process, RECREATED_LINE);
}

/* Messages of the replies consumer not yet acknowledged: waiting plus delivered. */
static int64_t replies_unacknowledged(void)
{
    jsConsumerInfo *info = NULL;
    assert_int_equal(js_GetConsumerInfo(&info, fx.js, "ORCH_REPLIES", "conveyor-replies", NULL,
                                        NULL),
                     NATS_OK);
    int64_t count = (int64_t)info->NumPending + info->NumAckPending;
    jsConsumerInfo_Destroy(info);
    return count;
}

static bool wait_replies_acknowledged(int timeout_ms)
{
    int64_t deadline = cv_clock_mono_ms() + timeout_ms;
    while (replies_unacknowledged() > 0) {
        if (cv_clock_mono_ms() > deadline)
            return false;
        usleep(100000);
    }
    return true;
}

/* Starts a "linear" instance and checks that it completes. */
static void assert_request_completes(void)
{
    char id[32];
    cv_text_random_token(id, 22);
    json_t *answer = cv_test_request(fx.nc, "linear", id, "{}", 2);
    const char *error = json_string_value(json_object_get(answer, "error"));
    if (error != NULL)
        fail_msg("request for instance %s rejected: %s", id, error);
    assert_string_equal(json_string_value(json_object_get(answer, "instance")), id);
    json_decref(answer);

    json_t *end = cv_test_wait_instance_end(&fx.events, id, 15000);
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    assert_int_equal(cv_test_recorder_count(&fx.events, infix, "instance.completed"), 1);
    json_decref(end);
}

static void assert_bucket_settings(void)
{
    jsStreamInfo *info = NULL;
    assert_int_equal(js_GetStreamInfo(&info, fx.js, BUCKET_STREAM, NULL, NULL), NATS_OK);
    assert_int_equal(info->Config->Storage, js_FileStorage);
    assert_int_equal(info->Config->Replicas, 1);
    assert_int_equal(info->Config->MaxMsgsPerSubject, 8);
    jsStreamInfo_Destroy(info);
}

static void replies_for_lost_instances_are_acknowledged(void **state)
{
    (void)state;
    char ids[WAITING][32];
    for (int i = 0; i < WAITING; i++) {
        cv_text_random_token(ids[i], 22);
        json_t *answer = cv_test_request(fx.nc, "silent", ids[i], "{}", 2);
        assert_string_equal(json_string_value(json_object_get(answer, "instance")), ids[i]);
        json_decref(answer);
    }
    int64_t deadline = cv_clock_mono_ms() + 10000;
    while (unanswered_count() < WAITING && cv_clock_mono_ms() < deadline)
        usleep(20000);
    assert_int_equal(unanswered_count(), WAITING);

    delete_bucket();
    for (int i = 0; i < WAITING; i++)
        assert_int_equal(
            natsConnection_PublishString(fx.nc, fx.unanswered.subjects[i], "{\"ok\": 1}"), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(fx.nc, 5000), NATS_OK);

    /* A direct get from a deleted stream times out (5 s), and only then is the bucket checked. */
    assert_true(wait_replies_acknowledged(20000));
    for (int i = 0; i < WAITING; i++) {
        char line[320];
        snprintf(line, sizeof line, "instance=%s step=wait attempt=1 reason=\"unknown instance\"",
                 ids[i]);
        assert_int_equal(cv_test_process_count_log(&fx.node.process, line), 1);
    }
    assert_int_equal(cv_test_process_count_log(&fx.node.process, "msg=\"reply ignored\""),
                     WAITING);
    assert_int_equal(recreated_count(), 1);
    assert_int_equal(cv_test_process_count_log(&fx.node.process, RECREATED_CONTEXT), 1);
    assert_int_equal(cv_test_process_count_log(&fx.node.process, "reply not applied"), 0);
    assert_bucket_settings();

    assert_request_completes();
    assert_true(cv_test_process_alive(&fx.node.process));
}

/* The first store operation after the deletion is a write: creating the new instance. */
static void request_after_deletion_starts(void **state)
{
    (void)state;
    int before = recreated_count();
    delete_bucket();
    assert_request_completes();
    assert_int_equal(recreated_count(), before + 1);
    assert_bucket_settings();
    assert_int_equal(cv_test_process_count_log(&fx.node.process, "instance not started"), 0);
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replies_for_lost_instances_are_acknowledged),
        cmocka_unit_test(request_after_deletion_starts),
    };
    return cmocka_run_group_tests_name("integration/bucket_deleted", tests, setup, teardown);
}
