/*
 * The NATS transport: the step body goes to <prefix>.dispatch.<subsystem>
 * with the attempt's reply subject, which the module treats as opaque.
 * When no module is subscribed, the server answers on the reply subject with
 * a no-responders status, which the reply handler turns into a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_internal.h"
#include "node/subjects.h"

cv_status cv_transport_nats_send(cv_worker *worker, const cv_instance *instance,
                                 const cv_dispatch_order *order, cv_error *err)
{
    const char *prefix = worker->node->config.prefix;
    const cv_step *step = &instance->process->steps[order->step];
    char subject[CV_SUBJECT_MAX], reply[CV_SUBJECT_MAX];
    if (!cv_subject_dispatch(subject, prefix, step->subsystem) ||
        !cv_subject_reply(reply, prefix, instance->id, step->id, order->attempt, order->token))
        return cv_error_set(err, CV_ERR_LIMIT, "subject too long for step %s", step->id);

    natsMsg *msg = NULL;
    if (cv_dispatch_message(&msg, instance, order, subject, reply, err) != CV_OK)
        return err->status;
    natsStatus s = natsConnection_PublishMsg(worker->node->nc, msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "publish to %s failed: %s", subject,
                            natsStatus_GetText(s));
    return CV_OK;
}
