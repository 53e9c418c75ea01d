/*
 * A dispatch is a core NATS publish: if the server dies right after it,
 * the step is lost with no error, and so is the instance, which waits for
 * a reply that cannot come. After a reconnect each worker therefore sends
 * again every dispatch of the last minute whose attempt is still in
 * flight. A module may then see a step twice; its second reply is ignored.
 *
 * This covers only what this node sent. A module's reply lost the same way
 * is recovered by the step's timeout and retry, which also cover a node
 * that died before it could send again.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "node/node_internal.h"

/* How far back a reconnect looks: a publish older than this reached the server. */
#define CV_RESEND_WINDOW_MS 60000

void cv_resend_note(cv_worker *worker, const cv_instance *instance,
                    const cv_dispatch_order *order)
{
    if (worker->recent == NULL)
        return;
    cv_recent_dispatch *r = &worker->recent[worker->recent_next++ % CV_RECENT_DISPATCHES];
    snprintf(r->instance, sizeof r->instance, "%s", instance->id);
    snprintf(r->step, sizeof r->step, "%s", instance->process->steps[order->step].id);
    r->attempt = order->attempt;
    memcpy(r->token, order->token, sizeof r->token);
    r->sent_ms = cv_clock_mono_ms();
}

static void resend_one(cv_worker *worker, cv_recent_dispatch *r)
{
    cv_store *store = worker->node->store;
    cv_instance *instance = NULL;
    if (store->ops->acquire(store, r->instance, worker->rules, &instance, NULL) != CV_OK)
        return;
    for (size_t i = 0; i < instance->active_count; i++) {
        cv_attempt *a = &instance->active[i];
        if (a->attempt != r->attempt || a->queued || strcmp(a->token, r->token) != 0)
            continue;
        cv_dispatch_order order = {.step = a->step, .attempt = a->attempt};
        memcpy(order.token, a->token, sizeof order.token);
        cv_error err;
        if (cv_transport_nats_send(worker, instance, &order, &err) == CV_OK)
            CV_INFO("step sent again after reconnect instance=%s step=%s attempt=%d",
                    instance->id, r->step, r->attempt);
    }
    store->ops->release(store, instance);
}

void cv_resend_recent(cv_worker *worker)
{
    if (worker->recent == NULL)
        return;
    int64_t since = cv_clock_mono_ms() - CV_RESEND_WINDOW_MS;
    for (size_t i = 0; i < CV_RECENT_DISPATCHES; i++) {
        cv_recent_dispatch *r = &worker->recent[i];
        if (r->instance[0] != '\0' && r->sent_ms >= since)
            resend_one(worker, r);
        r->instance[0] = '\0';
    }
}
