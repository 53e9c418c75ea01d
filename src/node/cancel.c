/*
 * Cancellation: a request on <prefix>.cancel.<instance>, with an optional
 * body {"reason": "..."}, stops a running instance. Replies still on their
 * way are then recorded as ignored. The answer is {"instance", "status"},
 * or {"error"} naming why nothing was cancelled.
 */
#include <stdio.h>
#include <string.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "node/node_internal.h"

#define CV_DEFAULT_CANCEL_REASON "cancelled by an operator"

static void answer(cv_node *node, natsMsg *msg, json_t *body)
{
    const char *reply = natsMsg_GetReply(msg);
    char *text = cv_json_dump(body);
    json_decref(body);
    if (reply != NULL && reply[0] != '\0' && text != NULL)
        natsConnection_PublishString(node->nc, reply, text);
    free(text);
}

static void reason_of(natsMsg *msg, char *buf, size_t size)
{
    snprintf(buf, size, "%s", CV_DEFAULT_CANCEL_REASON);
    json_t *body = NULL;
    cv_json_limits limits = {.max_bytes = 64 * 1024};
    if (natsMsg_GetDataLength(msg) == 0 ||
        cv_json_parse(&body, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &limits,
                      NULL) != CV_OK)
        return;
    const char *reason = json_string_value(json_object_get(body, "reason"));
    if (reason != NULL && reason[0] != '\0')
        snprintf(buf, size, "%s", reason);
    json_decref(body);
}

/* One try: acquire, cancel, commit, publish. */
static cv_status cancel_once(cv_worker *worker, const char *id, const char *reason,
                             cv_error *err)
{
    cv_store *store = worker->node->store;
    cv_instance *instance = NULL;
    cv_status st = store->ops->acquire(store, id, worker->rules, &instance, err);
    if (st != CV_OK)
        return st;
    cv_effects_reset(&worker->effects);
    st = cv_supervisor_cancel(instance, reason, &worker->effects, err);
    if (st == CV_OK && store->durable)
        st = cv_worker_record_outbox(worker, instance, "cancel");
    if (st == CV_OK)
        st = store->ops->commit(store, instance, err);
    if (st == CV_OK)
        cv_worker_run_effects(worker, instance);
    store->ops->release(store, instance);
    return st;
}

void cv_cancel_handle(cv_worker *worker, cv_work *item)
{
    char reason[512];
    reason_of(item->msg, reason, sizeof reason);
    cv_error err;
    cv_status st = CV_ERR_CONFLICT;
    for (int attempt = 0; attempt < 16 && st == CV_ERR_CONFLICT; attempt++)
        st = cancel_once(worker, item->instance, reason, &err);

    if (st == CV_ERR_NOT_FOUND)
        snprintf(err.text, sizeof err.text, "unknown instance \"%s\"", item->instance);
    if (st != CV_OK) {
        CV_WARN("cancel rejected instance=%s reason=%s", item->instance, cv_log_quote(err.text));
        answer(worker->node, item->msg, json_pack("{s:s}", "error", err.text));
        return;
    }
    answer(worker->node, item->msg,
           json_pack("{s:s, s:s}", "instance", item->instance, "status", "cancelled"));
}
