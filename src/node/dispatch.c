/*
 * Sending a dispatched step to its module through the step's transport. A
 * step that cannot be sent is not lost: its attempt fails with the cause,
 * through the same path as a module's error reply.
 */
#include <stdlib.h>
#include <string.h>

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

void cv_dispatch_local_result(cv_worker *worker, const cv_instance *instance,
                              const cv_dispatch_order *order, json_t *output, const char *error,
                              bool permanent)
{
    cv_work *item = calloc(1, sizeof *item);
    if (item == NULL) {
        json_decref(output);
        CV_ERROR("step result lost instance=%s step=%s error=\"out of memory\"", instance->id,
                 instance->process->steps[order->step].id);
        return;
    }
    item->kind = CV_WORK_LOCAL_RESULT;
    snprintf(item->instance, sizeof item->instance, "%s", instance->id);
    item->step = strdup(instance->process->steps[order->step].id);
    item->attempt = order->attempt;
    memcpy(item->token, order->token, sizeof item->token);
    item->output = output;
    item->error = error ? strdup(error) : NULL;
    item->permanent = permanent;
    /* Queued, not applied here, so a chain of in-node steps runs as a loop, not a recursion. */
    cv_work_queue_push(&worker->queue, item);
}

void cv_dispatch_send(cv_worker *worker, cv_instance *instance, const cv_dispatch_order *order)
{
    const cv_step *step = &instance->process->steps[order->step];
    cv_error err;
    switch (step->transport) {
    case CV_TRANSPORT_LUA:
        cv_transport_lua_run(worker, instance, order);
        return;
    case CV_TRANSPORT_NATS:
        if (cv_transport_nats_send(worker, instance, order, &err) == CV_OK) {
            cv_resend_note(worker, instance, order);
        } else {
            CV_WARN("step not sent instance=%s step=%s attempt=%d error=%s", instance->id,
                    step->id, order->attempt, cv_log_quote(err.text));
            cv_dispatch_local_result(worker, instance, order, NULL, err.text, false);
        }
        return;
    case CV_TRANSPORT_HTTP:
    case CV_TRANSPORT_QUEUE:
        /* NOTE: the http and queue transports are not built yet; such a step fails at once. */
        cv_dispatch_local_result(worker, instance, order, NULL,
                                 step->transport == CV_TRANSPORT_HTTP
                                     ? "the http transport is not available in this version"
                                     : "the queue transport is not available in this version",
                                 true);
        return;
    }
}
