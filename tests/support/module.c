#include "support/module.h"

#include "node/pull.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

static void publish_confirmed(jsCtx *js, natsMsg *reply)
{
    for (int tries = 0; tries < 60; tries++) {
        jsPubAck *ack = NULL;
        if (js_PublishMsg(&ack, js, reply, NULL, NULL) == NATS_OK) {
            jsPubAck_Destroy(ack);
            return;
        }
        usleep(500000);
    }
}

/* Runs the handler on one step and sends its answer to reply_to. */
static void answer_step(cv_test_module *module, natsMsg *msg, const char *reply_to)
{
    natsConnection *nc = module->nc;
    atomic_fetch_add(&module->received, 1);
    json_t *step = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    char scratch[4096];
    cv_test_answer answer = module->handler(step, msg, scratch, module->context);
    int copies = answer.copies == 0 ? 1 : answer.copies;
    for (int i = 0; i < copies; i++) {
        natsMsg *reply = NULL;
        const char *body = answer.body ? answer.body : "";
        natsMsg_Create(&reply, reply_to, NULL, body, (int)strlen(body));
        if (answer.error != NULL)
            natsMsgHeader_Set(reply, "Orch-Error", answer.error);
        if (answer.permanent)
            natsMsgHeader_Set(reply, "Orch-Retry", "false");
        if (module->js != NULL)
            publish_confirmed(module->js, reply);
        else
            natsConnection_PublishMsg(nc, reply);
        natsMsg_Destroy(reply);
    }
    json_decref(step);
}

static void on_step(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    answer_step(closure, msg, natsMsg_GetReply(msg));
    natsMsg_Destroy(msg);
}

void cv_test_module_start(cv_test_module *module, natsConnection *nc, const char *subsystem,
                          cv_test_handler handler, void *context)
{
    char subject[256];
    snprintf(subject, sizeof subject, "orch.dispatch.%s", subsystem);
    module->nc = nc;
    module->handler = handler;
    module->context = context;
    module->js = NULL;
    module->queue = false;
    atomic_init(&module->received, 0);
    assert_int_equal(natsConnection_Subscribe(&module->sub, nc, subject, on_step, module), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(nc, 5000), NATS_OK);
}

void cv_test_module_confirm_replies(cv_test_module *module)
{
    assert_int_equal(natsConnection_JetStream(&module->js, module->nc, NULL), NATS_OK);
}

static void *queue_main(void *arg)
{
    cv_test_module *module = arg;
    /* Bounded: the stop flag ends it, and each fetch waits at most 200 ms. */
    while (!atomic_load(&module->stopping)) {
        natsMsgList list = {0};
        int batch = cv_pull_batch_size(module->sub, 16);
        if (natsSubscription_Fetch(&list, module->sub, batch, 200, NULL) != NATS_OK)
            continue;
        for (int i = 0; i < list.Count; i++) {
            const char *reply_to = NULL;
            natsMsgHeader_Get(list.Msgs[i], "Orch-Reply-To", &reply_to);
            if (reply_to != NULL)
                answer_step(module, list.Msgs[i], reply_to);
            natsMsg_Ack(list.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

void cv_test_queue_worker_start(cv_test_module *module, natsConnection *nc, const char *subsystem,
                                cv_test_handler handler, void *context)
{
    module->nc = nc;
    module->handler = handler;
    module->context = context;
    module->js = NULL;
    module->queue = true;
    atomic_init(&module->received, 0);
    atomic_init(&module->stopping, false);
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = "ORCH_TASKS";
    options.Consumer = subsystem;
    options.ManualAck = true;
    jsErrCode code = 0;
    natsStatus s = NATS_ERR;
    /* The node may still be creating the consumer: try for up to 5 s. */
    for (int tries = 0; tries < 50 && s != NATS_OK; tries++) {
        s = js_PullSubscribe(&module->sub, js, NULL, subsystem, NULL, &options, &code);
        if (s != NATS_OK)
            usleep(100000);
    }
    if (s != NATS_OK)
        fprintf(stderr, "queue worker %s: %s (error %d)\n", subsystem, natsStatus_GetText(s),
                (int)code);
    assert_int_equal(s, NATS_OK);
    jsCtx_Destroy(js);
    assert_int_equal(pthread_create(&module->thread, NULL, queue_main, module), 0);
}

void cv_test_module_stop(cv_test_module *module)
{
    if (module->queue) {
        atomic_store(&module->stopping, true);
        pthread_join(module->thread, NULL);
        module->queue = false;
    }
    natsSubscription_Unsubscribe(module->sub);
    natsSubscription_Destroy(module->sub);
    module->sub = NULL;
    jsCtx_Destroy(module->js);
    module->js = NULL;
}

cv_test_answer cv_test_echo_handler(const json_t *step, natsMsg *msg, char *scratch,
                                    void *context)
{
    (void)msg;
    (void)context;
    snprintf(scratch, 4096, "{\"echo\": \"%s\", \"attempt\": %lld}",
             json_string_value(json_object_get(step, "step")),
             (long long)json_integer_value(json_object_get(step, "attempt")));
    return (cv_test_answer){.body = scratch};
}
