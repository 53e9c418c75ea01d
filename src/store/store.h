/*
 * Where instance state lives. A store hands out an instance to change and
 * takes it back with compare-and-set on the revision it was read at, so two
 * writers never overwrite each other: the loser gets CV_ERR_CONFLICT,
 * releases its copy, acquires the instance again and re-applies its change.
 *
 * Within one node every message of an instance is handled by one worker
 * thread, so a store never sees two acquisitions of one instance from the
 * same node at once.
 */
#ifndef CV_STORE_STORE_H
#define CV_STORE_STORE_H

#include <stdbool.h>

#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "engine/instance.h"
#include "rules/rules.h"

typedef struct cv_store cv_store;

typedef struct cv_store_ops {
    /*
     * Stores a new instance; takes it on success, after which the caller
     * holds it as if acquired and must release it. CV_ERR_EXISTS when the
     * id is taken, CV_ERR_BUSY as for commit.
     */
    cv_status (*create)(cv_store *store, cv_instance *instance, cv_error *err);

    /*
     * Hands out instance id for a change, resolved against rules (the
     * calling worker's). CV_ERR_NOT_FOUND when there is none. The result
     * stays the caller's to commit and/or release.
     */
    cv_status (*acquire)(cv_store *store, const char *id, const cv_rules *rules,
                         cv_instance **out, cv_error *err);

    /*
     * Writes the changed instance if no other writer changed it since
     * acquire; else CV_ERR_CONFLICT. CV_ERR_BUSY (kv store with replicas)
     * when another writer claimed the next revision and has not written
     * it: that writer may have died, and its claim keeps others out until
     * it expires.
     */
    cv_status (*commit)(cv_store *store, cv_instance *instance, cv_error *err);

    /* Gives an acquired instance back, committed or not. */
    void (*release)(cv_store *store, cv_instance *instance);

    void (*destroy)(cv_store *store);
} cv_store_ops;

struct cv_store {
    const cv_store_ops *ops;
    const char *name; /* "memory" or "kv" */
    bool durable;     /* shared by nodes and kept across restarts: changes record an outbox */
};

/*
 * The memory store: one node, nothing survives a restart. Finished
 * instances are kept for idempotency up to keep_finished of them, the
 * oldest dropped first.
 */
cv_status cv_store_memory_create(cv_store **out, size_t keep_finished, cv_error *err);

/* Name of the kv store's bucket unless the options give another. */
#define CV_STORE_KV_DEFAULT_BUCKET "orch_instances"

typedef enum cv_store_kv_storage {
    CV_STORE_KV_FILE, /* survives a server restart */
    CV_STORE_KV_MEMORY,
} cv_store_kv_storage;

/* Settings of the kv store; a zeroed struct gives every default. */
typedef struct cv_store_kv_options {
    const char *bucket;          /* NULL: CV_STORE_KV_DEFAULT_BUCKET */
    cv_store_kv_storage storage; /* used only when the bucket is created or recreated */
    int replicas;                /* used only when the bucket is created or recreated; 0: 1 */
    int64_t timeout_ms;          /* wait for each JetStream request; 0: 5000 */
} cv_store_kv_options;

/* Parses "file" or "memory"; returns false for anything else. */
bool cv_store_kv_parse_storage(const char *text, cv_store_kv_storage *out);

/*
 * The kv store: instances in a JetStream key-value bucket, one key per
 * instance id, written with compare-and-set on the entry's revision so
 * that several nodes can share it. Creates the bucket (history 8) when it
 * is missing; an existing bucket is used with its own configuration. A
 * bucket with replicas also gets the stream CLAIMS_<bucket> (kv_claims.h),
 * created the same way. When
 * an operation later finds the bucket deleted, creates it again with
 * options and logs a warning. The instances it contained are lost.
 * Borrows nc, which must outlive the store. options may be NULL. Fails
 * with CV_ERR_NATS naming the bucket when JetStream cannot be reached or
 * the bucket cannot be created.
 */
cv_status cv_store_kv_create(cv_store **out, natsConnection *nc,
                             const cv_store_kv_options *options, cv_error *err);

static inline void cv_store_destroy(cv_store *store)
{
    if (store != NULL)
        store->ops->destroy(store);
}

#endif
