/*
 * The kv store keeps each instance as one JSON document in a JetStream
 * key-value bucket (key: the instance id). Every node reads and writes the
 * same bucket. A write names the revision it was read at, so when two
 * nodes change one instance the second write fails with CV_ERR_CONFLICT,
 * and that node reads the instance again and re-applies its change.
 *
 * Reads go through kvStore_Get (a direct get) when the bucket has one
 * replica, and through the stream leader when it has more (read_last).
 * Writes publish to the bucket's subject "$KV.<bucket>.<key>" with
 * js_Publish rather than kvStore_Create/kvStore_Update, because only
 * js_Publish returns the JetStream error code: a revision mismatch is
 * 10071 on one server and 10164 on a cluster, and the code is the only
 * reliable way to tell it from other failures.
 *
 * Every commit serialises the whole instance (data document included), so
 * a step costs time in proportion to everything the instance has gathered.
 * An acquire reads the bucket every time, but skips parsing when the
 * revision there is the one this node committed last (kv_cache.h). Large
 * data would want the data split into keys of its own.
 *
 * An operator may delete the bucket while nodes run. When a read or a
 * write fails and JetStream then reports the bucket's stream missing, the
 * store creates the bucket again with its start-up settings and repeats the
 * operation once (restore_bucket). The instances the bucket contained are
 * lost, so their replies and timers find no instance, and new requests
 * start.
 *
 * All other fields are set before the store is handed out and never change
 * afterwards, nats.c's jsCtx and kvStore may be used from several threads
 * at once, and the cache has a lock of its own. Only a failed operation
 * takes the store's lock, to find out whether the bucket is gone.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "core/natsx.h"
#include "core/text.h"
#include "store/kv_cache.h"
#include "store/kv_claims.h"
#include "store/store.h"

/* "wrong last sequence" from a clustered stream; nats.c 3.4 has no name for it. */
#define KV_WRONG_LAST_SEQUENCE_CLUSTERED 10164

#define KV_DEFAULT_TIMEOUT_MS 5000

/* Wait for the stream leader before a read falls back to a direct get (read_last). */
#define KV_LEADER_READ_WAIT_MS 1000

/*
 * Wait for the stream info that shows whether the bucket still exists after
 * a failed operation. Kept short because most failures are timeouts with
 * the bucket in place, and the check adds to their delay.
 */
#define KV_BUCKET_CHECK_WAIT_MS 1000

/* Bucket names are limited so that "$KV.<bucket>.<key>" always fits a subject buffer. */
#define KV_BUCKET_MAX 160
#define KV_SUBJECT_MAX (8 + KV_BUCKET_MAX + 256)

typedef struct kv_store {
    cv_store base;
    natsConnection *nc; /* borrowed: the node owns the connection */
    jsCtx *js;
    kvStore *kv;
    int64_t timeout_ms;
    cv_kv_cache *cache; /* instances this node wrote, by the revision it wrote */
    cv_kv_claims *claims; /* NULL unless the bucket has replicas: see put_value */
    bool leader_reads;  /* the bucket has replicas: see read_last */
    jsStorageType storage; /* for creating the bucket, at start-up or again */
    int replicas;
    pthread_mutex_t restore_lock; /* one recreation at a time: see restore_bucket */
    atomic_uint_fast64_t recreations; /* how often this store created the bucket again */
    char bucket[KV_BUCKET_MAX + 1];
    char stream[KV_BUCKET_MAX + 4]; /* "KV_<bucket>" */
} kv_store;

/* Instances kept between a commit and the next acquire of the same id. */
#define KV_CACHE_SLOTS 1024

/*
 * The instance this thread created or committed last, its revision and
 * the hash of its stored text. Release caches only that instance: any other
 * was not written, or was changed after it was, so the bucket may not
 * contain what it contains.
 */
static _Thread_local const cv_instance *written_last;
static _Thread_local uint64_t written_revision;
static _Thread_local uint64_t written_hash;

static void mark_written(const cv_instance *instance, const char *text, size_t length)
{
    written_last = instance;
    written_revision = instance->revision;
    written_hash = cv_kv_cache_text_hash(text, length);
}

bool cv_store_kv_parse_storage(const char *text, cv_store_kv_storage *out)
{
    if (strcmp(text, "file") == 0) {
        *out = CV_STORE_KV_FILE;
        return true;
    }
    if (strcmp(text, "memory") == 0) {
        *out = CV_STORE_KV_MEMORY;
        return true;
    }
    return false;
}


static bool is_revision_mismatch(jsErrCode code)
{
    return code == JSStreamWrongLastSequenceErr || code == KV_WRONG_LAST_SEQUENCE_CLUSTERED;
}

static cv_status check_key(const char *id, cv_error *err)
{
    if (!cv_text_is_token(id) || strlen(id) > 255)
        return cv_error_set(err, CV_ERR_INVALID,
                            "instance id \"%s\" is not 1 to 255 characters of [A-Za-z0-9_-]", id);
    return CV_OK;
}

/* Serialises instance into a new malloc'd string (the caller frees it). */
static cv_status encode(const cv_instance *instance, char **out, size_t *out_len, cv_error *err)
{
    json_t *doc = cv_instance_to_json(instance);
    char *text = doc != NULL ? cv_json_dump(doc) : NULL;
    json_decref(doc);
    if (text == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory encoding instance %s", instance->id);
    size_t len = strlen(text);
    if (len > INT_MAX) {
        free(text);
        return cv_error_set(err, CV_ERR_LIMIT, "instance %s is %zu bytes, over %d", instance->id,
                            len, INT_MAX);
    }
    *out = text;
    *out_len = len;
    return CV_OK;
}

/* Writes the bucket subject of key, "$KV.<bucket>.<key>", into buf. */
static void key_subject(const kv_store *k, const char *key, char buf[KV_SUBJECT_MAX])
{
    snprintf(buf, KV_SUBJECT_MAX, "$KV.%s.%s", k->bucket, key);
}

/* ---- the bucket itself ---- */

/*
 * Revisions the bucket keeps per instance. A server started again after
 * being killed decides once more on the writes at the end of its log, and
 * drops an update there by its message id only while it still stores the
 * message carrying that id. Revision claims (kv_claims.h) keep rejected
 * writes out of a replicated bucket's log, which is what made such a
 * replay differ. The history covers the rare rejection left: a claim that
 * expired while its writer was still writing.
 */
#define KV_HISTORY 8

/* Settings the bucket is created with, at start-up and after an operator deleted it. */
static void bucket_config(const kv_store *k, kvConfig *config)
{
    kvConfig_Init(config);
    config->Bucket = k->bucket;
    config->Description = "conveyor instance state: one key per instance id";
    config->History = KV_HISTORY;
    config->StorageType = k->storage;
    config->Replicas = k->replicas;
}

typedef enum bucket_presence {
    BUCKET_PRESENT,
    BUCKET_MISSING,
    BUCKET_UNKNOWN, /* no reply: the connection or JetStream is down */
} bucket_presence;

static bucket_presence find_bucket(kv_store *k)
{
    if (natsConnection_Status(k->nc) != NATS_CONN_STATUS_CONNECTED)
        return BUCKET_UNKNOWN;
    jsOptions options;
    jsOptions_Init(&options);
    options.Wait = KV_BUCKET_CHECK_WAIT_MS;
    jsStreamInfo *info = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetStreamInfo(&info, k->js, k->stream, &options, &code);
    jsStreamInfo_Destroy(info);
    if (s == NATS_OK)
        return BUCKET_PRESENT;
    return code == JSStreamNotFoundErr ? BUCKET_MISSING : BUCKET_UNKNOWN;
}

/*
 * Creates the bucket again with the start-up settings. Workers go on using
 * k->kv: nats.c's kvStore contains only the bucket's names and read mode,
 * the same for the new bucket, and replacing it would race with their reads.
 *
 * NOTE: leader_reads keeps the mode of the bucket found at start-up. If
 * another node had created that one with a different replica count, reads
 * of the new bucket go the other way: correct, but a replicated bucket read
 * directly may cost failed compare-and-sets.
 */
static bool recreate_bucket(kv_store *k)
{
    kvConfig config;
    bucket_config(k, &config);
    kvStore *created = NULL;
    natsStatus s = js_CreateKeyValue(&created, k->js, &config);
    kvStore_Destroy(created);
    /* Another node may have created it first, with settings of its own. */
    if (s != NATS_OK && find_bucket(k) == BUCKET_PRESENT)
        return true;
    if (s != NATS_OK) {
        CV_ERROR("creating the missing bucket again failed bucket=%s error=%s", k->bucket,
                 cv_log_quote(cv_nats_failure_text(s)));
        return false;
    }
    /*
     * Not needed for correctness: an entry is reused only when the new
     * bucket contains the same text at the same revision. It frees the
     * memory of instances that no longer exist.
     */
    cv_kv_cache_clear(k->cache);
    atomic_fetch_add(&k->recreations, 1);
    CV_WARN("bucket not found, created it again bucket=%s stream=%s storage=%s replicas=%d "
            "history=%d lost=\"every instance stored in it before\"",
            k->bucket, k->stream, k->storage == js_MemoryStorage ? "memory" : "file",
            k->replicas, (int)config.History);
    return true;
}

/*
 * Checks, after an operation on the bucket failed, whether the bucket was
 * deleted, and creates it again if so. seen is k->recreations as read
 * before the operation began. Returns true when the bucket exists again, so
 * the caller repeats the operation once, and false when the failure had
 * another cause.
 */
static bool restore_bucket(kv_store *k, uint_fast64_t seen)
{
    /* Another worker created the bucket again while this operation was under way. */
    if (atomic_load(&k->recreations) != seen)
        return true;
    /* Asked without the lock, because most failures find the bucket in place. */
    bucket_presence presence = find_bucket(k);
    /*
     * A worker that creates the bucket holds the lock from before the
     * creation until it counts it. So a worker that found the bucket back
     * just now, or gone at the same moment as another, sees the count
     * changed once it has the lock, and only repeats its operation.
     */
    pthread_mutex_lock(&k->restore_lock);
    bool restored = atomic_load(&k->recreations) != seen;
    if (!restored && presence == BUCKET_MISSING) {
        /* Asked again: another node may have created it meanwhile. */
        presence = find_bucket(k);
        restored = presence == BUCKET_PRESENT ||
                   (presence == BUCKET_MISSING && recreate_bucket(k));
    }
    pthread_mutex_unlock(&k->restore_lock);
    return restored;
}

/* ---- reads and writes ---- */

/*
 * Writes text under key if the key's last revision is expected (0: the key
 * has never been written or was purged). *code receives the JetStream error
 * code of a rejected write, 0 otherwise.
 *
 * nats-server 2.9.10 checks the expected revision of a write to a
 * clustered stream only before proposing it (server/jetstream_cluster.go,
 * processClusteredInboundMsg), so two writes from one revision proposed
 * together can both be accepted: a lost update. On a replicated bucket a
 * revision claim (kv_claims.h) lets only one writer go on. The message id
 * "<key>@<revision>" stays as a second guard, because every replica drops
 * a repeated id when it applies the write. A repeat comes back as a
 * duplicate and is reported as a revision mismatch. A create needs no id:
 * the servers check "no message yet" when applying.
 */
static natsStatus write_value(kv_store *k, const char *key, const char *text, size_t len,
                              uint64_t expected, uint64_t *revision, jsErrCode *code)
{
    char subject[KV_SUBJECT_MAX];
    key_subject(k, key, subject);

    char msg_id[KV_SUBJECT_MAX];
    snprintf(msg_id, sizeof msg_id, "%s@%" PRIu64, key, expected);

    jsPubOptions po;
    jsPubOptions_Init(&po);
    if (expected == 0) {
        po.ExpectNoMessage = true;
    } else {
        po.ExpectLastSubjectSeq = expected;
        po.MsgId = msg_id;
    }

    jsPubAck *ack = NULL;
    *code = 0;
    natsStatus s = js_Publish(&ack, k->js, subject, text, (int)len, &po, code);
    if (s == NATS_OK && ack->Duplicate) {
        s = NATS_ERR;
        *code = JSStreamWrongLastSequenceErr;
    } else if (s == NATS_OK) {
        *revision = ack->Sequence;
    }
    jsPubAck_Destroy(ack);
    return s;
}

/* Reads the last entry of key, a value or a marker, through the stream leader. */
static natsStatus last_entry(kv_store *k, const char *key, natsMsg **out)
{
    char subject[KV_SUBJECT_MAX];
    key_subject(k, key, subject);
    jsOptions options;
    jsOptions_Init(&options);
    options.Wait = k->timeout_ms;
    return js_GetLastMsg(out, k->js, k->stream, subject, &options, NULL);
}

/* Sets *revision to that of the last entry of key, a value or a marker; 0 when it has none. */
static natsStatus last_revision(kv_store *k, const char *key, uint64_t *revision)
{
    natsMsg *msg = NULL;
    natsStatus s = last_entry(k, key, &msg);
    *revision = s == NATS_OK ? natsMsg_GetSequence(msg) : 0;
    natsMsg_Destroy(msg);
    return s == NATS_NOT_FOUND ? NATS_OK : s;
}

/*
 * Outcomes of put_value that are not JetStream error codes, which start at
 * 10000: the claim itself failed, or another writer claimed the revision
 * and has not written it within KV_CLAIM_SETTLE_MS.
 */
#define KV_CLAIM_FAILED ((jsErrCode)1)
#define KV_CLAIM_HELD ((jsErrCode)2)

/*
 * How long a writer that lost a claim waits for the winner's write. A
 * winner writes within milliseconds unless it died, and then its claim
 * keeps others from the key until it expires (kv_claims.h).
 */
#define KV_CLAIM_SETTLE_MS 500
#define KV_CLAIM_POLL_MS 20

/*
 * Waits until the last revision of key is no longer expected, which means
 * the claim's winner wrote it. Sets *moved, false after KV_CLAIM_SETTLE_MS.
 */
static natsStatus wait_for_claimed_write(kv_store *k, const char *key, uint64_t expected,
                                         bool *moved)
{
    int64_t deadline = nats_Now() + KV_CLAIM_SETTLE_MS;
    for (;;) {
        uint64_t last = 0;
        natsStatus s = last_revision(k, key, &last);
        if (s != NATS_OK)
            return s;
        *moved = last != expected;
        if (*moved || nats_Now() >= deadline)
            return NATS_OK;
        nats_Sleep(KV_CLAIM_POLL_MS);
    }
}

/*
 * write_value, after a revision claim on a replicated bucket. A writer that
 * loses the claim, or finds that its claimed create would fail, writes
 * nothing, so the bucket's log contains no rejected write (kv_claims.h).
 * The loser reports a revision mismatch once the winner's write is there,
 * and KV_CLAIM_HELD while it is not.
 */
static natsStatus put_value(kv_store *k, const char *key, const char *text, size_t len,
                            uint64_t expected, uint64_t *revision, jsErrCode *code)
{
    *code = 0;
    if (k->claims == NULL)
        return write_value(k, key, text, len, expected, revision, code);

    natsStatus s = NATS_OK;
    cv_kv_claim claim = cv_kv_claims_take(k->claims, key, expected, &s);
    if (claim == CV_KV_CLAIM_FAILED) {
        *code = KV_CLAIM_FAILED;
        return s;
    }
    bool moved = false;
    uint64_t last = 0;
    if (claim == CV_KV_CLAIM_TAKEN) {
        s = wait_for_claimed_write(k, key, expected, &moved);
    } else if (expected == 0) {
        /* A create is claimed again once an earlier claim of it expired, when the key may exist. */
        s = last_revision(k, key, &last);
        moved = last != 0;
    }
    if (s != NATS_OK)
        return s;
    if (moved) {
        *code = JSStreamWrongLastSequenceErr;
        return NATS_ERR;
    }
    if (claim == CV_KV_CLAIM_TAKEN) {
        *code = KV_CLAIM_HELD;
        return NATS_ERR;
    }
    return write_value(k, key, text, len, expected, revision, code);
}

/*
 * put_value, repeated once when it failed because the bucket was deleted
 * and restore_bucket created it again. A write to a deleted stream fails
 * with "no responders", not with an error code of its own.
 */
static natsStatus put_restoring(kv_store *k, const char *key, const char *text, size_t len,
                                uint64_t expected, uint64_t *revision, jsErrCode *code)
{
    uint_fast64_t recreations = atomic_load(&k->recreations);
    natsStatus s = put_value(k, key, text, len, expected, revision, code);
    if (s != NATS_OK && s != NATS_MAX_PAYLOAD && !is_revision_mismatch(*code) &&
        *code != KV_CLAIM_HELD && restore_bucket(k, recreations))
        s = put_value(k, key, text, len, expected, revision, code);
    return s;
}

/* Describes a failed write of instance id that was not a revision mismatch. */
static cv_status write_failure(kv_store *k, natsStatus s, jsErrCode code, const char *id,
                               size_t len, cv_error *err)
{
    if (code == KV_CLAIM_HELD)
        return cv_error_set(err, CV_ERR_BUSY,
                            "instance %s: another writer claimed its next revision and has not "
                            "written it; the claim expires within %d s",
                            id, CV_KV_CLAIM_KEEP_MS / 1000);
    if (code == KV_CLAIM_FAILED)
        return cv_error_set(err, CV_ERR_NATS,
                            "claiming the next revision of instance %s in stream CLAIMS_%s "
                            "failed: %s",
                            id, k->bucket, cv_nats_failure_text(s));
    if (s == NATS_MAX_PAYLOAD)
        return cv_error_set(err, CV_ERR_LIMIT,
                            "instance %s is %zu bytes, over the server's max_payload of %" PRId64
                            " bytes",
                            id, len, natsConnection_GetMaxPayload(k->nc));
    return cv_error_set(err, CV_ERR_NATS, "writing instance %s to bucket %s failed: %s", id,
                        k->bucket, cv_nats_failure_text(s));
}

/* True for the delete and purge markers the bucket keeps in place of a value. */
static bool is_marker(natsMsg *msg)
{
    const char *operation = NULL;
    return natsMsgHeader_Get(msg, "KV-Operation", &operation) == NATS_OK;
}

/*
 * Finds the revision of the delete or purge marker that is the last entry
 * of key, so that create can write over it. False when the last entry is a
 * value (the instance exists) or there is none.
 */
static bool find_delete_marker(kv_store *k, const char *key, uint64_t *out)
{
    natsMsg *msg = NULL;
    if (last_entry(k, key, &msg) != NATS_OK)
        return false;
    bool found = is_marker(msg);
    if (found)
        *out = natsMsg_GetSequence(msg);
    natsMsg_Destroy(msg);
    return found;
}

static cv_status kv_create(cv_store *store, cv_instance *instance, cv_error *err)
{
    kv_store *k = (kv_store *)store;
    cv_status st = check_key(instance->id, err);
    char *text = NULL;
    size_t len = 0;
    if (st == CV_OK)
        st = encode(instance, &text, &len, err);
    if (st != CV_OK)
        return st;

    uint64_t revision = 0;
    jsErrCode code = 0;
    natsStatus s = put_restoring(k, instance->id, text, len, 0, &revision, &code);

    /* An instance deleted by an operator leaves a marker; its id may be used again. */
    uint64_t marker = 0;
    if (s != NATS_OK && is_revision_mismatch(code) && find_delete_marker(k, instance->id, &marker))
        s = put_value(k, instance->id, text, len, marker, &revision, &code);

    if (s == NATS_OK) {
        instance->revision = revision;
        mark_written(instance, text, len);
    } else if (is_revision_mismatch(code)) {
        st = cv_error_set(err, CV_ERR_EXISTS, "instance %s already exists in bucket %s",
                          instance->id, k->bucket);
    } else {
        st = write_failure(k, s, code, instance->id, len, err);
    }
    free(text);
    return st;
}

/* Rebuilds the stored document doc of instance id against rules. */
static cv_status decode(const json_t *doc, const char *id, const cv_rules *rules,
                        cv_instance **out, cv_error *err)
{
    const char *stored_id = json_string_value(json_object_get(doc, "id"));
    const char *name = json_string_value(json_object_get(doc, "process"));
    if (stored_id == NULL || strcmp(stored_id, id) != 0)
        return cv_error_set(err, CV_ERR_INVALID, "stored instance %s has id \"%s\"", id,
                            stored_id != NULL ? stored_id : "(missing)");
    if (name == NULL)
        return cv_error_set(err, CV_ERR_INVALID, "stored instance %s names no process", id);

    const cv_process *process = cv_rules_find_process(rules, name);
    if (process == NULL)
        return cv_error_set(err, CV_ERR_INVALID,
                            "instance %s belongs to process \"%s\", which the rules do not define",
                            id, name);
    cv_status st = cv_instance_from_json(out, doc, process, err);
    if (st != CV_OK)
        cv_error_prefix(err, "stored instance %s", id);
    return st;
}

/* The last entry of a key: a copy of its value and its revision. */
typedef struct stored_value {
    natsMsg *msg;     /* leader reads */
    kvEntry *entry;   /* direct reads */
    const char *data;
    int length;
    uint64_t revision;
} stored_value;

static void stored_value_free(stored_value *v)
{
    natsMsg_Destroy(v->msg);
    kvEntry_Destroy(v->entry);
}

/* Reads the last entry of key with kvStore_Get, a direct get that any replica may serve. */
static natsStatus read_direct(kv_store *k, const char *key, stored_value *out)
{
    natsStatus s = kvStore_Get(&out->entry, k->kv, key);
    if (s == NATS_OK) {
        out->data = kvEntry_Value(out->entry);
        out->length = kvEntry_ValueLen(out->entry);
        out->revision = kvEntry_Revision(out->entry);
    }
    return s;
}

/*
 * Reads the last entry of key. A replicated bucket is read through its
 * stream leader, because a replica that has not applied the latest write
 * yet returns the revision before it. Acting on that costs a failed
 * compare-and-set, and a read-only caller would report an old state.
 */
static natsStatus read_last(kv_store *k, const char *key, stored_value *out)
{
    memset(out, 0, sizeof *out);
    if (!k->leader_reads)
        return read_direct(k, key, out);
    char subject[KV_SUBJECT_MAX];
    key_subject(k, key, subject);
    /*
     * While the stream elects a new leader, no server serves a leader read,
     * but a replica still serves a direct get. A stale value costs a failed
     * compare-and-set, not a wrong change, so it beats a worker blocked for
     * the whole request timeout.
     */
    jsOptions options;
    jsOptions_Init(&options);
    options.Wait = KV_LEADER_READ_WAIT_MS;
    natsStatus s = js_GetLastMsg(&out->msg, k->js, k->stream, subject, &options, NULL);
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS)
        return read_direct(k, key, out);
    if (s == NATS_OK && is_marker(out->msg)) {
        stored_value_free(out);
        memset(out, 0, sizeof *out);
        return NATS_NOT_FOUND;
    }
    if (s == NATS_OK) {
        out->data = natsMsg_GetData(out->msg);
        out->length = natsMsg_GetDataLength(out->msg);
        out->revision = natsMsg_GetSequence(out->msg);
    }
    return s;
}

/*
 * read_last, repeated once when it failed because the bucket was deleted
 * and restore_bucket created it again. A direct get from a deleted stream
 * times out, and a leader read fails with "stream not found".
 */
static natsStatus read_restoring(kv_store *k, const char *key, stored_value *out)
{
    uint_fast64_t recreations = atomic_load(&k->recreations);
    natsStatus s = read_last(k, key, out);
    if (s != NATS_OK && s != NATS_NOT_FOUND && restore_bucket(k, recreations))
        s = read_last(k, key, out);
    return s;
}

/* Builds an instance from the stored text of instance id. */
static cv_status parse_value(const stored_value *value, const char *id, const cv_rules *rules,
                             cv_instance **out, cv_error *err)
{
    /* The value was written by a node, but the bucket is open to anyone with access. */
    cv_json_limits limits = {.max_bytes = 0, .max_depth = CV_JSON_MAX_DEPTH};
    json_t *doc = NULL;
    cv_status st = cv_json_parse(&doc, value->data, (size_t)value->length, &limits, err);
    if (st != CV_OK) {
        cv_error_prefix(err, "stored instance %s", id);
        return st;
    }
    cv_instance *instance = NULL;
    st = decode(doc, id, rules, &instance, err);
    json_decref(doc);
    if (st == CV_OK) {
        instance->revision = value->revision;
        *out = instance;
    }
    return st;
}

static cv_status kv_acquire(cv_store *store, const char *id, const cv_rules *rules,
                            cv_instance **out, cv_error *err)
{
    kv_store *k = (kv_store *)store;
    cv_status st = check_key(id, err);
    if (st != CV_OK)
        return st;

    stored_value value;
    natsStatus s = read_restoring(k, id, &value);
    if (s == NATS_NOT_FOUND)
        return cv_error_set(err, CV_ERR_NOT_FOUND, "no instance %s in bucket %s", id, k->bucket);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "reading instance %s from bucket %s failed: %s", id,
                            k->bucket, cv_nats_failure_text(s));

    cv_instance *cached =
        cv_kv_cache_take(k->cache, id, value.revision, value.data, (size_t)value.length, rules);
    if (cached != NULL)
        *out = cached;
    else
        st = parse_value(&value, id, rules, out, err);
    stored_value_free(&value);
    return st;
}

static cv_status kv_commit(cv_store *store, cv_instance *instance, cv_error *err)
{
    kv_store *k = (kv_store *)store;
    if (instance->revision == 0)
        return cv_error_set(err, CV_ERR_INVALID, "instance %s was never stored, so it has no "
                            "revision to commit against", instance->id);
    char *text = NULL;
    size_t len = 0;
    cv_status st = encode(instance, &text, &len, err);
    if (st != CV_OK)
        return st;

    uint64_t revision = 0;
    jsErrCode code = 0;
    natsStatus s =
        put_restoring(k, instance->id, text, len, instance->revision, &revision, &code);
    if (s == NATS_OK) {
        instance->revision = revision;
        mark_written(instance, text, len);
    } else if (is_revision_mismatch(code)) {
        st = cv_error_set(err, CV_ERR_CONFLICT,
                          "instance %s changed in bucket %s since revision %" PRIu64
                          " was read, or another writer claimed that revision",
                          instance->id, k->bucket, instance->revision);
    } else {
        st = write_failure(k, s, code, instance->id, len, err);
    }
    free(text);
    return st;
}

static void kv_release(cv_store *store, cv_instance *instance)
{
    kv_store *k = (kv_store *)store;
    bool written = instance == written_last && instance->revision == written_revision;
    written_last = NULL;
    if (written)
        cv_kv_cache_put(k->cache, instance, written_hash);
    else
        cv_instance_destroy(instance); /* may differ from the stored copy */
}

static void kv_destroy(cv_store *store)
{
    kv_store *k = (kv_store *)store;
    cv_kv_cache_destroy(k->cache);
    cv_kv_claims_destroy(k->claims);
    kvStore_Destroy(k->kv);
    jsCtx_Destroy(k->js);
    pthread_mutex_destroy(&k->restore_lock);
    free(k);
}

static const cv_store_ops kv_ops = {
    .create = kv_create,
    .acquire = kv_acquire,
    .commit = kv_commit,
    .release = kv_release,
    .destroy = kv_destroy,
};

/* Binds to the bucket, creating it when missing. */
static cv_status open_bucket(kv_store *k, cv_error *err)
{
    natsStatus s = js_KeyValue(&k->kv, k->js, k->bucket);
    if (s == NATS_NOT_FOUND) {
        kvConfig config;
        bucket_config(k, &config);
        s = js_CreateKeyValue(&k->kv, k->js, &config);
        /* Another node may have created it first, with settings of its own. */
        if (s != NATS_OK && js_KeyValue(&k->kv, k->js, k->bucket) == NATS_OK)
            s = NATS_OK;
    }
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "cannot open or create key-value bucket %s: %s",
                            k->bucket, cv_nats_failure_text(s));
    kvStatus *status = NULL;
    int replicas = 1;
    if (kvStore_Status(&status, k->kv) == NATS_OK)
        replicas = (int)kvStatus_Replicas(status);
    kvStatus_Destroy(status);
    k->leader_reads = replicas > 1;
    if (replicas > 1)
        return cv_kv_claims_open(&k->claims, k->js, k->bucket, k->storage, replicas, err);
    return CV_OK;
}

cv_status cv_store_kv_create(cv_store **out, natsConnection *nc,
                             const cv_store_kv_options *options, cv_error *err)
{
    static const cv_store_kv_options defaults = {0};
    if (options == NULL)
        options = &defaults;
    const char *bucket = options->bucket != NULL ? options->bucket : CV_STORE_KV_DEFAULT_BUCKET;
    if (!cv_text_is_token(bucket) || strlen(bucket) > KV_BUCKET_MAX)
        return cv_error_set(err, CV_ERR_INVALID,
                            "bucket name \"%s\" is not 1 to %d characters of [A-Za-z0-9_-]",
                            bucket, KV_BUCKET_MAX);
    if (options->replicas < 0 || options->timeout_ms < 0)
        return cv_error_set(err, CV_ERR_INVALID,
                            "kv store replicas and timeout must not be negative");

    kv_store *k = calloc(1, sizeof *k);
    if (k == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the kv store");
    k->base.ops = &kv_ops;
    k->base.name = "kv";
    k->base.durable = true;
    k->nc = nc;
    snprintf(k->bucket, sizeof k->bucket, "%s", bucket);
    snprintf(k->stream, sizeof k->stream, "KV_%s", bucket);
    k->storage = options->storage == CV_STORE_KV_MEMORY ? js_MemoryStorage : js_FileStorage;
    k->replicas = options->replicas > 0 ? options->replicas : 1;

    k->timeout_ms = options->timeout_ms > 0 ? options->timeout_ms : KV_DEFAULT_TIMEOUT_MS;
    k->cache = cv_kv_cache_create(KV_CACHE_SLOTS);
    if (k->cache == NULL) {
        free(k);
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the kv store");
    }
    pthread_mutex_init(&k->restore_lock, NULL);
    atomic_init(&k->recreations, 0);

    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = k->timeout_ms;
    natsStatus s = natsConnection_JetStream(&k->js, nc, &js_options);
    cv_status st = CV_OK;
    if (s != NATS_OK)
        st = cv_error_set(err, CV_ERR_NATS, "cannot get a JetStream context: %s", cv_nats_failure_text(s));
    if (st == CV_OK)
        st = open_bucket(k, err);
    if (st != CV_OK) {
        kv_destroy(&k->base);
        return st;
    }
    *out = &k->base;
    return CV_OK;
}
