#include "support/history.h"

#include <stdio.h>

#include "core/clock.h"

json_t *cv_test_history_count(natsConnection *nc, const char *stream, const char *filter,
                              int timeout_ms)
{
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    json_t *counts = json_object();
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = 20000; /* a busy cluster can take seconds to create a consumer */
    if (natsConnection_JetStream(&js, nc, &js_options) != NATS_OK)
        goto fail;

    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = stream;
    options.Config.DeliverPolicy = js_DeliverAll;
    options.Config.AckPolicy = js_AckNone;
    options.Config.MemoryStorage = true;
    options.Config.Replicas = 1;
    jsErrCode code = 0;
    natsStatus s = js_SubscribeSync(&sub, js, filter, NULL, &options, &code);
    if (s != NATS_OK) {
        fprintf(stderr, "history: cannot read %s (%s): %s, error %d\n", stream, filter,
                natsStatus_GetText(s), (int)code);
        goto fail;
    }

    int64_t deadline = cv_clock_mono_ms() + timeout_ms;
    for (;;) {
        natsMsg *msg = NULL;
        int64_t left = deadline - cv_clock_mono_ms();
        s = left > 0 ? natsSubscription_NextMsg(&msg, sub, left > 1000 ? 1000 : left)
                                : NATS_TIMEOUT;
        if (s != NATS_OK)
            break; /* nothing more within a second: the stream is read to its end */
        const char *subject = natsMsg_GetSubject(msg);
        json_int_t seen = json_integer_value(json_object_get(counts, subject));
        json_object_set_new(counts, subject, json_integer(seen + 1));
        jsMsgMetaData *meta = NULL;
        bool last = natsMsg_GetMetaData(&meta, msg) == NATS_OK && meta->NumPending == 0;
        jsMsgMetaData_Destroy(meta);
        natsMsg_Destroy(msg);
        if (last)
            break;
    }
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    return counts;

fail:
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    json_decref(counts);
    return NULL;
}
