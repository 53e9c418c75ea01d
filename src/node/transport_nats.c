/*
 * The NATS transport: the step body goes to <prefix>.dispatch.<subsystem>
 * with the attempt's reply subject, which the module treats as opaque.
 * When no module is subscribed, the server answers on the reply subject with
 * a no-responders status, which the reply handler turns into a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonx.h"
#include "node/node_internal.h"
#include "node/subjects.h"

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

cv_status cv_transport_nats_send(cv_worker *worker, const cv_instance *instance,
                                 const cv_dispatch_order *order, cv_error *err)
{
    const char *prefix = worker->node->config.prefix;
    const cv_step *step = &instance->process->steps[order->step];
    char subject[CV_SUBJECT_MAX], reply[CV_SUBJECT_MAX];
    if (!cv_subject_dispatch(subject, prefix, step->subsystem) ||
        !cv_subject_reply(reply, prefix, instance->id, step->id, order->attempt, order->token))
        return cv_error_set(err, CV_ERR_LIMIT, "subject too long for step %s", step->id);

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
    if (s == NATS_OK && set_headers(msg, instance, step, order->attempt) != CV_OK)
        s = NATS_ERR;
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(worker->node->nc, msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "publish to %s failed: %s", subject,
                            natsStatus_GetText(s));
    return CV_OK;
}
