#include "node/streams.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>

/* JetStream's error code for a stream that does not exist. */
#define CV_JS_STREAM_NOT_FOUND 10059

void cv_streams_name(char *buf, const char *prefix, const char *kind)
{
    size_t n = 0;
    for (; prefix[n] != '\0' && n < CV_STREAM_NAME_MAX / 2; n++)
        buf[n] = (char)toupper((unsigned char)prefix[n]);
    snprintf(buf + n, CV_STREAM_NAME_MAX - n, "_%s", kind);
}

void cv_streams_bucket_name(char *buf, const char *prefix)
{
    snprintf(buf, CV_STREAM_NAME_MAX, "%.*s_instances", CV_STREAM_NAME_MAX / 2, prefix);
}

static cv_status ensure_stream(jsCtx *js, const cv_streams_config *config, const char *name,
                               const char *kind, jsRetentionPolicy retention, int64_t max_age_ms,
                               bool acknowledge, cv_error *err)
{
    jsStreamInfo *info = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetStreamInfo(&info, js, name, NULL, &code);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(info);
        return CV_OK;
    }
    if (s != NATS_NOT_FOUND && code != CV_JS_STREAM_NOT_FOUND)
        return cv_error_set(err, CV_ERR_NATS, "cannot look up stream %s: %s (error %d)", name,
                            natsStatus_GetText(s), (int)code);

    char subject[256];
    snprintf(subject, sizeof subject, "%s.%s.>", config->prefix, kind);
    const char *subjects[] = {subject};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = retention;
    sc.Storage = config->memory_storage ? js_MemoryStorage : js_FileStorage;
    sc.Replicas = config->replicas;
    sc.MaxAge = max_age_ms * 1000000;
    /*
     * Requesters get the node's answer, not a stream acknowledgement in its
     * place. Events and replies are acknowledged: a node waits until its
     * events are stored, and a module may wait until its reply is.
     */
    sc.NoAck = !acknowledge;
    s = js_AddStream(&info, js, &sc, NULL, &code);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "cannot create stream %s: %s (error %d)", name,
                            natsStatus_GetText(s), (int)code);
    jsStreamInfo_Destroy(info);
    return CV_OK;
}

/* Settings that differ between consumers; zero values take the node's defaults. */
typedef struct consumer_shape {
    const char *filter;   /* NULL: the whole stream */
    int64_t max_pending;  /* 0: 20000 */
    int64_t ack_wait_ms;  /* 0: the node's --ack-wait */
} consumer_shape;

static cv_status ensure_consumer(jsCtx *js, const cv_streams_config *config, const char *stream,
                                 const char *durable, consumer_shape shape, cv_error *err)
{
    jsConsumerInfo *info = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetConsumerInfo(&info, js, stream, durable, NULL, &code);
    if (s == NATS_OK) {
        jsConsumerInfo_Destroy(info);
        return CV_OK;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (shape.ack_wait_ms != 0 ? shape.ack_wait_ms : config->ack_wait_ms) * 1000000;
    cc.MaxDeliver = -1;
    cc.MaxAckPending = shape.max_pending != 0 ? shape.max_pending : 20000;
    cc.FilterSubject = shape.filter;
    cc.Replicas = config->replicas;
    s = js_AddConsumer(&info, js, stream, &cc, NULL, &code);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "cannot create consumer %s on %s: %s (error %d)",
                            durable, stream, natsStatus_GetText(s), (int)code);
    jsConsumerInfo_Destroy(info);
    return CV_OK;
}

/*
 * Timers wait as unacknowledged messages handed back with a delay, and a
 * step's timeout timer stays until it falls due even when the step ended
 * long before. The consumer therefore has steps per second times the
 * timeout of them pending.
 * Any pending limit would stop every timer once reached, and nats-server
 * 2.9 reads -1 as its default of 1000, so the limit is the largest it
 * accepts. A node hands a timer back or fires it within moments of taking
 * it, so a short ack wait bounds how late a timer is when its node dies
 * holding it; firing one twice is harmless.
 *
 * NOTE: the server keeps every pending timer in memory. Removing a
 * timeout's message when its step ends, or keeping timers in one stream
 * subject per time slot read only once due, would bound that.
 */
static const consumer_shape timers_shape = {.max_pending = INT32_MAX, .ack_wait_ms = 5000};

cv_status cv_streams_ensure(jsCtx *js, const cv_streams_config *config, cv_error *err)
{
    char requests[CV_STREAM_NAME_MAX], replies[CV_STREAM_NAME_MAX], events[CV_STREAM_NAME_MAX];
    char timers[CV_STREAM_NAME_MAX];
    cv_streams_name(requests, config->prefix, "REQUESTS");
    cv_streams_name(replies, config->prefix, "REPLIES");
    cv_streams_name(events, config->prefix, "EVENTS");
    cv_streams_name(timers, config->prefix, "TIMERS");

    cv_status st =
        ensure_stream(js, config, requests, "request", js_WorkQueuePolicy, 0, false, err);
    if (st == CV_OK)
        st = ensure_stream(js, config, replies, "reply", js_WorkQueuePolicy, 0, true, err);
    if (st == CV_OK)
        st = ensure_stream(js, config, events, "event", js_LimitsPolicy,
                           config->events_max_age_ms, true, err);
    if (st == CV_OK)
        st = ensure_stream(js, config, timers, "timer", js_WorkQueuePolicy, 0, true, err);
    if (st == CV_OK)
        st = cv_streams_ensure_tasks(js, config, err);
    if (st == CV_OK)
        st = ensure_consumer(js, config, requests, CV_CONSUMER_REQUESTS, (consumer_shape){0}, err);
    if (st == CV_OK)
        st = ensure_consumer(js, config, replies, CV_CONSUMER_REPLIES, (consumer_shape){0}, err);
    if (st == CV_OK)
        st = ensure_consumer(js, config, timers, CV_CONSUMER_TIMERS, timers_shape, err);
    return st;
}

cv_status cv_streams_ensure_tasks(jsCtx *js, const cv_streams_config *config, cv_error *err)
{
    char tasks[CV_STREAM_NAME_MAX];
    cv_streams_name(tasks, config->prefix, "TASKS");
    return ensure_stream(js, config, tasks, "task", js_WorkQueuePolicy, 0, true, err);
}

cv_status cv_streams_ensure_task_consumer(jsCtx *js, const cv_streams_config *config,
                                          const char *subsystem, cv_error *err)
{
    char tasks[CV_STREAM_NAME_MAX], filter[320];
    cv_streams_name(tasks, config->prefix, "TASKS");
    snprintf(filter, sizeof filter, "%s.task.%s", config->prefix, subsystem);
    return ensure_consumer(js, config, tasks, subsystem, (consumer_shape){.filter = filter}, err);
}
