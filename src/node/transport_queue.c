/*
 * The queue transport: the step goes into the stream <PREFIX>_TASKS on
 * <prefix>.task.<subsystem>, with the same body and Orch-* headers as over
 * NATS and the reply subject in Orch-Reply-To. A worker of the subsystem
 * pulls it from the durable consumer named after the subsystem, publishes
 * its answer to that subject, then acknowledges; the answer comes back
 * like any other reply. A task waits in the stream while no worker runs.
 *
 * The same path carries a NATS step that no module answered (a fallback):
 * its consumer is created on the spot, since the rules did not declare it.
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "node/node_internal.h"
#include "node/subjects.h"

static cv_status publish(cv_worker *worker, natsMsg **msg, const char *subject, cv_error *err)
{
    cv_node *node = worker->node;
    natsStatus s;
    jsErrCode code = 0;
    if (worker->js != NULL) {
        /* Confirmed with the events before the causing message is acknowledged. */
        s = js_PublishMsgAsync(worker->js, msg, NULL);
    } else {
        jsPubAck *ack = NULL;
        s = js_PublishMsg(&ack, node->js, *msg, NULL, &code);
        jsPubAck_Destroy(ack);
    }
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "publish to %s failed: %s (error %d)", subject,
                            natsStatus_GetText(s), (int)code);
    return CV_OK;
}

cv_status cv_transport_queue_send(cv_worker *worker, const cv_instance *instance,
                                  const cv_dispatch_order *order, cv_error *err)
{
    cv_node *node = worker->node;
    const cv_step *step = &instance->process->steps[order->step];
    if (!node->queue_available)
        return cv_error_set(err, CV_ERR_INVALID,
                            "the queue transport needs JetStream, which the NATS server does "
                            "not offer");
    if (step->transport != CV_TRANSPORT_QUEUE &&
        cv_streams_ensure_task_consumer(node->js, &node->streams, step->subsystem, err) != CV_OK)
        return err->status;

    char subject[CV_SUBJECT_MAX], reply[CV_SUBJECT_MAX], id[160];
    if (!cv_subject_task(subject, node->config.prefix, step->subsystem) ||
        !cv_subject_reply(reply, node->config.prefix, instance->id, step->id, order->attempt,
                          order->token))
        return cv_error_set(err, CV_ERR_LIMIT, "subject too long for step %s", step->id);
    natsMsg *msg = NULL;
    if (cv_dispatch_message(&msg, instance, order, subject, NULL, err) != CV_OK)
        return err->status;
    snprintf(id, sizeof id, "%s.task.%s", instance->id, order->token);
    cv_status st = CV_OK;
    if (natsMsgHeader_Set(msg, "Orch-Reply-To", reply) != NATS_OK ||
        natsMsgHeader_Set(msg, "Nats-Msg-Id", id) != NATS_OK)
        st = cv_error_set(err, CV_ERR_NOMEM, "out of memory setting the task headers");
    if (st == CV_OK)
        st = publish(worker, &msg, subject, err);
    natsMsg_Destroy(msg);
    return st;
}

cv_status cv_transport_queue_prepare(cv_node *node, cv_error *err)
{
    const cv_rules *rules = node->workers[0]->rules;
    for (size_t p = 0; p < cv_rules_process_count(rules); p++) {
        const cv_process *process = cv_rules_process_at(rules, p);
        for (size_t i = 0; i < process->step_count; i++) {
            const cv_step *step = &process->steps[i];
            if (step->transport != CV_TRANSPORT_QUEUE)
                continue;
            cv_status st =
                cv_streams_ensure_task_consumer(node->js, &node->streams, step->subsystem, err);
            if (st != CV_OK)
                return st;
        }
    }
    return CV_OK;
}
