/*
 * Sending a dispatched step to its module through the step's transport. A
 * step that cannot be sent is not lost: its attempt fails with the cause,
 * through the same path as a module's error reply.
 */
#include <stdlib.h>
#include <string.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "node/node_internal.h"

json_t *cv_dispatch_body(const cv_instance *instance, const cv_dispatch_order *order,
                         cv_error *err)
{
    const cv_step *step = &instance->process->steps[order->step];
    json_t *data = instance->data;
    if (step->input_count > 0) {
        data = json_object();
        for (size_t i = 0; i < step->input_count; i++) {
            if (cv_path_copy_into(&step->input[i], instance->data, data, err) != CV_OK) {
                json_decref(data);
                return NULL;
            }
        }
    } else {
        json_incref(data);
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:i, s:O, s:o}", "instance", instance->id,
                             "process", instance->process->name, "step", step->id, "attempt",
                             order->attempt, "params", step->params, "data", data);
    if (body == NULL)
        cv_error_set(err, CV_ERR_NOMEM, "out of memory building the step body");
    return body;
}

static cv_status set_headers(natsMsg *msg, const cv_instance *instance, const cv_step *step,
                             int attempt)
{
    char number[16];
    snprintf(number, sizeof number, "%d", attempt);
    if (natsMsgHeader_Set(msg, "Orch-Instance", instance->id) != NATS_OK ||
        natsMsgHeader_Set(msg, "Orch-Process", instance->process->name) != NATS_OK ||
        natsMsgHeader_Set(msg, "Orch-Step", step->id) != NATS_OK ||
        natsMsgHeader_Set(msg, "Orch-Attempt", number) != NATS_OK)
        return CV_ERR_NATS;
    return CV_OK;
}

cv_status cv_dispatch_message(natsMsg **out, const cv_instance *instance,
                              const cv_dispatch_order *order, const char *subject,
                              const char *reply, cv_error *err)
{
    json_t *body = cv_dispatch_body(instance, order, err);
    if (body == NULL)
        return err->status;
    char *text = cv_json_dump(body);
    json_decref(body);
    if (text == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory encoding the step body");

    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create(&msg, subject, reply, text, (int)strlen(text));
    free(text);
    if (s == NATS_OK &&
        set_headers(msg, instance, &instance->process->steps[order->step], order->attempt) != CV_OK)
        s = NATS_NO_MEMORY;
    if (s != NATS_OK) {
        natsMsg_Destroy(msg);
        return cv_error_set(err, CV_ERR_NOMEM, "cannot build the message for %s: %s", subject,
                            natsStatus_GetText(s));
    }
    *out = msg;
    return CV_OK;
}

/* A step that could not be sent fails like a module's error reply, and may be retried. */
static void send_failed(cv_worker *worker, cv_instance *instance, const cv_dispatch_order *order,
                        const cv_error *err)
{
    CV_WARN("step not sent instance=%s step=%s attempt=%d error=%s", instance->id,
            instance->process->steps[order->step].id, order->attempt, cv_log_quote(err->text));
    cv_dispatch_local_result(worker, instance, order, NULL, err->text,
                             err->status == CV_ERR_INVALID || err->status == CV_ERR_LIMIT);
}

void cv_dispatch_send(cv_worker *worker, cv_instance *instance, const cv_dispatch_order *order)
{
    const cv_step *step = &instance->process->steps[order->step];
    cv_error err;
    if (order->queued || step->transport == CV_TRANSPORT_QUEUE) {
        if (cv_transport_queue_send(worker, instance, order, &err) != CV_OK)
            send_failed(worker, instance, order, &err);
        return;
    }
    switch (step->transport) {
    case CV_TRANSPORT_LUA:
        cv_transport_lua_run(worker, instance, order);
        return;
    case CV_TRANSPORT_NATS:
        if (cv_transport_nats_send(worker, instance, order, &err) == CV_OK)
            cv_resend_note(worker, instance, order);
        else
            send_failed(worker, instance, order, &err);
        return;
    case CV_TRANSPORT_HTTP:
        cv_transport_http_send(worker, instance, order);
        return;
    case CV_TRANSPORT_QUEUE:
        return; /* sent above */
    }
}
