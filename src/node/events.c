/*
 * Lifecycle events on <prefix>.event.<process>.<instance>.<kind>. An event
 * whose body would exceed the server's max_payload is sent with its "data"
 * and "output" replaced by a note, so the event itself is never lost.
 */
#include <stdio.h>
#include <string.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "node/node_internal.h"
#include "node/subjects.h"

static char *shrink(json_t *body, size_t limit, size_t size)
{
    json_t *copy = json_copy(body);
    char note[128];
    snprintf(note, sizeof note, "omitted: the event was %zu bytes, over the %zu-byte max_payload",
             size, limit);
    if (json_object_get(copy, "data") != NULL)
        json_object_set_new(copy, "data", json_string(note));
    if (json_object_get(copy, "output") != NULL)
        json_object_set_new(copy, "output", json_string(note));
    char *text = cv_json_dump(copy);
    json_decref(copy);
    return text;
}

/*
 * Sends text with a Nats-Msg-Id that names the event, so ORCH_EVENTS keeps
 * one copy when an event is published again after a redelivery. Ignored
 * replies carry none: two of them are two facts.
 */
static natsStatus send_event(cv_worker *worker, const char *subject, const char *text,
                             const cv_instance *instance, const char *kind, const char *token)
{
    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create(&msg, subject, NULL, text, (int)strlen(text));
    if (s == NATS_OK && strcmp(kind, "reply.ignored") != 0) {
        char id[160];
        snprintf(id, sizeof id, "%s.%s%s%s", instance->id, kind, token[0] ? "." : "", token);
        s = natsMsgHeader_Set(msg, "Nats-Msg-Id", id);
    }
    if (s == NATS_OK && worker->js != NULL)
        s = js_PublishMsgAsync(worker->js, &msg, NULL); /* takes msg on success */
    else if (s == NATS_OK)
        s = natsConnection_PublishMsg(worker->node->nc, msg);
    natsMsg_Destroy(msg);
    return s;
}

static void on_event_refused(jsCtx *js, jsPubAckErr *refusal, void *closure)
{
    (void)js;
    cv_worker *worker = closure;
    atomic_store(&worker->event_failed, true);
    CV_WARN("event not stored subject=%s error=%s", natsMsg_GetSubject(refusal->Msg),
            cv_log_quote(refusal->ErrText ? refusal->ErrText : natsStatus_GetText(refusal->Err)));
}

cv_status cv_events_open(cv_worker *worker, cv_error *err)
{
    jsOptions options;
    jsOptions_Init(&options);
    options.PublishAsync.ErrHandler = on_event_refused;
    options.PublishAsync.ErrHandlerClosure = worker;
    natsStatus s = natsConnection_JetStream(&worker->js, worker->node->nc, &options);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "JetStream is not available for events: %s",
                            natsStatus_GetText(s));
    return CV_OK;
}

bool cv_events_confirm(cv_worker *worker)
{
    if (worker->js == NULL)
        return true;
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MaxWait = 5000;
    natsStatus s = js_PublishAsyncComplete(worker->js, &options);
    bool refused = atomic_exchange(&worker->event_failed, false);
    if (s != NATS_OK) {
        /*
         * Publishes sent to a server that died will never be acknowledged.
         * Forget them: the message that caused them is delivered again and
         * its outbox replays them, deduplicated by their Nats-Msg-Id.
         */
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, worker->js) == NATS_OK)
            natsMsgList_Destroy(&pending);
        CV_WARN("events not confirmed worker=%d error=%s", worker->index,
                cv_log_quote(natsStatus_GetText(s)));
    }
    return s == NATS_OK && !refused;
}

/* The operator's line for an event: lifecycle at info, failures at warn, step traffic at debug. */
static void log_event(const cv_instance *instance, const char *kind, const json_t *body)
{
    const char *step = json_string_value(json_object_get(body, "step"));
    const char *error = json_string_value(json_object_get(body, "error"));
    long long attempt = (long long)json_integer_value(json_object_get(body, "attempt"));
    const char *process = instance->process->name;

    if (strcmp(kind, "instance.started") == 0)
        CV_INFO("instance started instance=%s process=%s", instance->id, process);
    else if (strcmp(kind, "instance.completed") == 0)
        CV_INFO("instance completed instance=%s process=%s steps=%zu", instance->id, process,
                json_array_size(json_object_get(body, "steps")));
    else if (strcmp(kind, "instance.failed") == 0)
        CV_WARN("instance failed instance=%s process=%s error=%s", instance->id, process,
                cv_log_quote(error));
    else if (strcmp(kind, "step.failed") == 0)
        CV_WARN("step failed instance=%s process=%s step=%s attempt=%lld error=%s", instance->id,
                process, step, attempt, cv_log_quote(error));
    else if (strcmp(kind, "step.retrying") == 0)
        CV_INFO("step retrying instance=%s process=%s step=%s attempt=%lld delay_ms=%lld error=%s",
                instance->id, process, step, attempt,
                (long long)json_integer_value(json_object_get(body, "delay_ms")),
                cv_log_quote(error));
    else if (strcmp(kind, "reply.ignored") == 0)
        CV_INFO("reply ignored instance=%s process=%s step=%s attempt=%lld reason=%s",
                instance->id, process, step, attempt,
                cv_log_quote(json_string_value(json_object_get(body, "reason"))));
    else
        CV_DEBUG("%s instance=%s process=%s step=%s attempt=%lld", kind, instance->id, process,
                 step ? step : "-", attempt);
}

void cv_events_publish(cv_worker *worker, const cv_instance *instance, const char *kind,
                       const char *token, json_t *body)
{
    cv_node *node = worker->node;
    if (!worker->replaying)
        log_event(instance, kind, body);
    char subject[CV_SUBJECT_MAX];
    if (!cv_subject_event(subject, node->config.prefix, instance->process->name, instance->id,
                          kind))
        return;
    json_object_set_new(body, "node", json_string(node->config.name));

    char *text = cv_json_dump(body);
    size_t size = text ? strlen(text) : 0;
    size_t limit = (size_t)atomic_load(&node->max_payload);
    if (text != NULL && limit > 0 && size > limit) {
        free(text);
        text = shrink(body, limit, size);
    }
    if (text == NULL) {
        CV_ERROR("event not sent instance=%s kind=%s error=\"out of memory\"", instance->id, kind);
        return;
    }
    natsStatus s = send_event(worker, subject, text, instance, kind, token);
    if (s != NATS_OK)
        CV_ERROR("event not sent instance=%s kind=%s error=%s", instance->id, kind,
                 cv_log_quote(natsStatus_GetText(s)));
    free(text);
}
