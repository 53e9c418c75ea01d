#include "node/streams.h"

#include <ctype.h>
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

static cv_status ensure_consumer(jsCtx *js, const cv_streams_config *config, const char *stream,
                                 const char *durable, cv_error *err)
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
    cc.AckWait = config->ack_wait_ms * 1000000;
    cc.MaxDeliver = -1;
    cc.MaxAckPending = 20000;
    cc.Replicas = config->replicas;
    s = js_AddConsumer(&info, js, stream, &cc, NULL, &code);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "cannot create consumer %s on %s: %s (error %d)",
                            durable, stream, natsStatus_GetText(s), (int)code);
    jsConsumerInfo_Destroy(info);
    return CV_OK;
}

cv_status cv_streams_ensure(jsCtx *js, const cv_streams_config *config, cv_error *err)
{
    char requests[CV_STREAM_NAME_MAX], replies[CV_STREAM_NAME_MAX], events[CV_STREAM_NAME_MAX];
    cv_streams_name(requests, config->prefix, "REQUESTS");
    cv_streams_name(replies, config->prefix, "REPLIES");
    cv_streams_name(events, config->prefix, "EVENTS");

    cv_status st =
        ensure_stream(js, config, requests, "request", js_WorkQueuePolicy, 0, false, err);
    if (st == CV_OK)
        st = ensure_stream(js, config, replies, "reply", js_WorkQueuePolicy, 0, true, err);
    if (st == CV_OK)
        st = ensure_stream(js, config, events, "event", js_LimitsPolicy,
                           config->events_max_age_ms, true, err);
    if (st == CV_OK)
        st = ensure_consumer(js, config, requests, CV_CONSUMER_REQUESTS, err);
    if (st == CV_OK)
        st = ensure_consumer(js, config, replies, CV_CONSUMER_REPLIES, err);
    return st;
}
