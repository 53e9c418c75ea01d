#include "store/kv_claims.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/natsx.h"

/* Wait for a claim's own message when the claim was rejected (owned_by_us). */
#define CLAIM_READ_WAIT_MS 2000

#define CLAIM_SUBJECT_MAX 512

struct cv_kv_claims {
    jsCtx *js;
    jsStorageType storage;
    int replicas;
    char bucket[200];
    char stream[220]; /* "CLAIMS_<bucket>" */
    char owner[33];   /* random hex naming this store in its claims */
};

/*
 * The claim payload: the store's owner id and the number of the calling
 * thread. Two threads of one process may race for a key (two stores, or a
 * test), while a retry of a failed write comes from the same thread,
 * because one worker thread handles every message of an instance.
 */
static atomic_uint thread_count;
static _Thread_local unsigned thread_number;

static int claim_payload(const cv_kv_claims *c, char *buf, size_t size)
{
    if (thread_number == 0)
        thread_number = atomic_fetch_add(&thread_count, 1) + 1;
    return snprintf(buf, size, "%s.%u", c->owner, thread_number);
}

/* Fills owner with 32 random hex digits, so that no two stores, on any host, share it. */
static void make_owner(char owner[33])
{
    unsigned char bytes[16];
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) {
        /* Without the kernel's generator, time, pid and address still differ between stores. */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t mix[2] = {(uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec,
                           ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)owner};
        memcpy(bytes, mix, sizeof bytes);
    }
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(owner + 2 * i, 3, "%02x", bytes[i]);
}

static natsStatus ensure_stream(cv_kv_claims *c, jsErrCode *code)
{
    jsStreamInfo *info = NULL;
    natsStatus s = js_GetStreamInfo(&info, c->js, c->stream, NULL, code);
    jsStreamInfo_Destroy(info);
    if (s != NATS_NOT_FOUND)
        return s;

    char subject[CLAIM_SUBJECT_MAX];
    snprintf(subject, sizeof subject, "$CLAIMS.%s.>", c->bucket);
    const char *subjects[] = {subject};
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = c->stream;
    config.Description = "conveyor revision claims: which node writes the next revision of a key";
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = c->storage;
    config.Replicas = c->replicas;
    config.MaxAge = (int64_t)CV_KV_CLAIM_KEEP_MS * 1000000;
    info = NULL;
    s = js_AddStream(&info, c->js, &config, NULL, code);
    jsStreamInfo_Destroy(info);
    /* Another node may have created it at the same moment. */
    if (s != NATS_OK && js_GetStreamInfo(&info, c->js, c->stream, NULL, NULL) == NATS_OK) {
        jsStreamInfo_Destroy(info);
        s = NATS_OK;
    }
    return s;
}

cv_status cv_kv_claims_open(cv_kv_claims **out, jsCtx *js, const char *bucket,
                            jsStorageType storage, int replicas, cv_error *err)
{
    cv_kv_claims *c = calloc(1, sizeof *c);
    if (c == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory opening the claims of bucket %s",
                            bucket);
    c->js = js;
    c->storage = storage;
    c->replicas = replicas;
    snprintf(c->bucket, sizeof c->bucket, "%s", bucket);
    snprintf(c->stream, sizeof c->stream, "CLAIMS_%s", bucket);
    make_owner(c->owner);

    jsErrCode code = 0;
    natsStatus s = ensure_stream(c, &code);
    if (s != NATS_OK) {
        free(c);
        return cv_error_set(err, CV_ERR_NATS, "cannot open or create stream CLAIMS_%s: %s (error %d)",
                            bucket, cv_nats_failure_text(s), (int)code);
    }
    *out = c;
    return CV_OK;
}

void cv_kv_claims_destroy(cv_kv_claims *claims)
{
    free(claims);
}

/* True when the stored claim on subject was taken by this thread of this store, earlier. */
static bool owned_by_us(cv_kv_claims *c, const char *subject)
{
    jsOptions options;
    jsOptions_Init(&options);
    options.Wait = CLAIM_READ_WAIT_MS;
    natsMsg *msg = NULL;
    if (js_GetLastMsg(&msg, c->js, c->stream, subject, &options, NULL) != NATS_OK)
        return false;
    char payload[64];
    int len = claim_payload(c, payload, sizeof payload);
    bool ours = natsMsg_GetDataLength(msg) == len &&
                memcmp(natsMsg_GetData(msg), payload, (size_t)len) == 0;
    natsMsg_Destroy(msg);
    return ours;
}

static natsStatus publish_claim(cv_kv_claims *c, const char *subject, jsErrCode *code)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectNoMessage = true;
    char payload[64];
    int len = claim_payload(c, payload, sizeof payload);
    jsPubAck *ack = NULL;
    *code = 0;
    natsStatus s = js_Publish(&ack, c->js, subject, payload, len, &po, code);
    jsPubAck_Destroy(ack);
    return s;
}

cv_kv_claim cv_kv_claims_take(cv_kv_claims *claims, const char *key, uint64_t revision,
                              natsStatus *status)
{
    char subject[CLAIM_SUBJECT_MAX];
    snprintf(subject, sizeof subject, "$CLAIMS.%s.%s.%" PRIu64, claims->bucket, key, revision);
    jsErrCode code = 0;
    natsStatus s = publish_claim(claims, subject, &code);
    /* Someone deleted the stream: a publish to it finds no responders. */
    if (s == NATS_NO_RESPONDERS && ensure_stream(claims, &code) == NATS_OK)
        s = publish_claim(claims, subject, &code);
    if (s == NATS_OK)
        return CV_KV_CLAIM_WON;
    /* Replicas check "no message yet" when they apply the claim, and reject it with 10071. */
    if (code == JSStreamWrongLastSequenceErr)
        return owned_by_us(claims, subject) ? CV_KV_CLAIM_WON : CV_KV_CLAIM_TAKEN;
    *status = s;
    return CV_KV_CLAIM_FAILED;
}
