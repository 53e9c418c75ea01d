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

#include "core/status.h"
#include "engine/instance.h"
#include "rules/rules.h"

typedef struct cv_store cv_store;

typedef struct cv_store_ops {
    /*
     * Stores a new instance; takes it on success, after which the caller
     * holds it as if acquired and must release it. CV_ERR_EXISTS when the
     * id is taken.
     */
    cv_status (*create)(cv_store *store, cv_instance *instance, cv_error *err);

    /*
     * Hands out instance id for a change, resolved against rules (the
     * calling worker's). CV_ERR_NOT_FOUND when there is none. The result
     * stays the caller's to commit and/or release.
     */
    cv_status (*acquire)(cv_store *store, const char *id, const cv_rules *rules,
                         cv_instance **out, cv_error *err);

    /* Writes the changed instance if nobody changed it since acquire; else CV_ERR_CONFLICT. */
    cv_status (*commit)(cv_store *store, cv_instance *instance, cv_error *err);

    /* Gives an acquired instance back, committed or not. */
    void (*release)(cv_store *store, cv_instance *instance);

    void (*destroy)(cv_store *store);
} cv_store_ops;

struct cv_store {
    const cv_store_ops *ops;
    const char *name; /* "memory" or "kv" */
};

/*
 * The memory store: one node, nothing survives a restart. Finished
 * instances are kept for idempotency up to keep_finished of them, the
 * oldest dropped first.
 */
cv_status cv_store_memory_create(cv_store **out, size_t keep_finished, cv_error *err);

static inline void cv_store_destroy(cv_store *store)
{
    if (store != NULL)
        store->ops->destroy(store);
}

#endif
