/*
 * The memory store keeps live cv_instance objects in a hash table and
 * hands out the object itself, so a step costs no copying or encoding.
 * That is safe because one worker owns each instance (see store.h) and
 * nothing else reads it; the table itself is shared by all workers and
 * guarded by one mutex held only for lookups and inserts.
 *
 * Since changes are made in place, a failed change cannot be rolled back;
 * the supervisor only fails when memory runs out.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

typedef struct entry {
    cv_instance *instance;
    struct entry *next_in_bucket;
    struct entry *next_finished; /* FIFO of finished instances, for eviction */
    bool acquired;               /* a worker holds it: not to be evicted */
} entry;

typedef struct memory_store {
    cv_store base;
    pthread_mutex_t lock;
    size_t bucket_count;
    entry **buckets;
    size_t count;
    size_t keep_finished;
    size_t finished_count;
    entry *finished_head;
    entry *finished_tail;
} memory_store;

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *id != '\0'; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211ULL;
    }
    return h;
}

static entry **slot_of(memory_store *m, const char *id)
{
    entry **slot = &m->buckets[hash_id(id) % m->bucket_count];
    while (*slot != NULL && strcmp((*slot)->instance->id, id) != 0)
        slot = &(*slot)->next_in_bucket;
    return slot;
}

static void grow_table(memory_store *m)
{
    size_t bigger = m->bucket_count * 2;
    entry **buckets = calloc(bigger, sizeof *buckets);
    if (buckets == NULL)
        return; /* keep the longer chains rather than fail the insert */
    for (size_t i = 0; i < m->bucket_count; i++) {
        entry *e = m->buckets[i];
        while (e != NULL) {
            entry *next = e->next_in_bucket;
            size_t b = hash_id(e->instance->id) % bigger;
            e->next_in_bucket = buckets[b];
            buckets[b] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->bucket_count = bigger;
}

static cv_status memory_create(cv_store *store, cv_instance *instance, cv_error *err)
{
    memory_store *m = (memory_store *)store;
    cv_status st = CV_OK;
    pthread_mutex_lock(&m->lock);
    entry **slot = slot_of(m, instance->id);
    if (*slot != NULL) {
        st = cv_error_set(err, CV_ERR_EXISTS, "instance %s already exists", instance->id);
    } else {
        entry *e = calloc(1, sizeof *e);
        if (e == NULL) {
            st = cv_error_set(err, CV_ERR_NOMEM, "out of memory storing instance %s",
                              instance->id);
        } else {
            e->instance = instance;
            e->acquired = true;
            instance->revision = 1;
            *slot = e;
            if (++m->count > m->bucket_count * 2)
                grow_table(m);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

static cv_status memory_acquire(cv_store *store, const char *id, const cv_rules *rules,
                                cv_instance **out, cv_error *err)
{
    (void)rules; /* the live object already points at its worker's process */
    memory_store *m = (memory_store *)store;
    pthread_mutex_lock(&m->lock);
    entry *e = *slot_of(m, id);
    if (e != NULL)
        e->acquired = true;
    pthread_mutex_unlock(&m->lock);
    if (e == NULL)
        return cv_error_set(err, CV_ERR_NOT_FOUND, "no instance %s", id);
    *out = e->instance;
    return CV_OK;
}

static void unlink_entry(memory_store *m, entry *victim)
{
    entry **slot = slot_of(m, victim->instance->id);
    *slot = victim->next_in_bucket;
    m->count--;
}

/* Queues a newly finished instance and drops the oldest beyond the limit. */
static void note_finished(memory_store *m, cv_instance *instance)
{
    entry *e = *slot_of(m, instance->id);
    if (e == NULL || e->next_finished != NULL || m->finished_tail == e)
        return;
    if (m->finished_tail != NULL)
        m->finished_tail->next_finished = e;
    else
        m->finished_head = e;
    m->finished_tail = e;
    m->finished_count++;

    while (m->finished_count > m->keep_finished && !m->finished_head->acquired) {
        entry *oldest = m->finished_head;
        m->finished_head = oldest->next_finished;
        if (m->finished_head == NULL)
            m->finished_tail = NULL;
        m->finished_count--;
        unlink_entry(m, oldest);
        cv_instance_destroy(oldest->instance);
        free(oldest);
    }
}

static cv_status memory_commit(cv_store *store, cv_instance *instance, cv_error *err)
{
    (void)err;
    memory_store *m = (memory_store *)store;
    instance->revision++;
    if (instance->status != CV_INSTANCE_RUNNING) {
        pthread_mutex_lock(&m->lock);
        note_finished(m, instance);
        pthread_mutex_unlock(&m->lock);
    }
    return CV_OK;
}

static void memory_release(cv_store *store, cv_instance *instance)
{
    memory_store *m = (memory_store *)store;
    pthread_mutex_lock(&m->lock);
    entry *e = *slot_of(m, instance->id);
    if (e != NULL)
        e->acquired = false; /* the store still owns the live object */
    pthread_mutex_unlock(&m->lock);
}

static void memory_destroy(cv_store *store)
{
    memory_store *m = (memory_store *)store;
    for (size_t i = 0; i < m->bucket_count; i++) {
        entry *e = m->buckets[i];
        while (e != NULL) {
            entry *next = e->next_in_bucket;
            cv_instance_destroy(e->instance);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static const cv_store_ops memory_ops = {
    .create = memory_create,
    .acquire = memory_acquire,
    .commit = memory_commit,
    .release = memory_release,
    .destroy = memory_destroy,
};

cv_status cv_store_memory_create(cv_store **out, size_t keep_finished, cv_error *err)
{
    memory_store *m = calloc(1, sizeof *m);
    if (m != NULL)
        m->buckets = calloc(1024, sizeof *m->buckets);
    if (m == NULL || m->buckets == NULL) {
        free(m);
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the memory store");
    }
    m->base.ops = &memory_ops;
    m->base.name = "memory";
    m->bucket_count = 1024;
    m->keep_finished = keep_finished;
    pthread_mutex_init(&m->lock, NULL);
    *out = &m->base;
    return CV_OK;
}
