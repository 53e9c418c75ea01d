#include "support/module.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
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

static void on_step(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    cv_test_module *module = closure;
    atomic_fetch_add(&module->received, 1);
    json_t *step = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    char scratch[4096];
    cv_test_answer answer = module->handler(step, msg, scratch, module->context);
    int copies = answer.copies == 0 ? 1 : answer.copies;
    for (int i = 0; i < copies; i++) {
        natsMsg *reply = NULL;
        const char *body = answer.body ? answer.body : "";
        natsMsg_Create(&reply, natsMsg_GetReply(msg), NULL, body, (int)strlen(body));
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
    atomic_init(&module->received, 0);
    assert_int_equal(natsConnection_Subscribe(&module->sub, nc, subject, on_step, module), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(nc, 5000), NATS_OK);
}

void cv_test_module_confirm_replies(cv_test_module *module)
{
    assert_int_equal(natsConnection_JetStream(&module->js, module->nc, NULL), NATS_OK);
}

void cv_test_module_stop(cv_test_module *module)
{
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
