/*
 * A direct-mapped table: each id hashes to one slot, and a newer instance
 * evicts whatever was there. Workers of one node use it at once, so every
 * access holds the table's lock, only long enough to move a pointer.
 */
#include "store/kv_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct cache_slot {
    cv_instance *instance;
    uint64_t text_hash;
} cache_slot;

struct cv_kv_cache {
    pthread_mutex_t lock;
    size_t slot_count;
    cache_slot *slots;
};

cv_kv_cache *cv_kv_cache_create(size_t slots)
{
    cv_kv_cache *cache = calloc(1, sizeof *cache);
    if (cache == NULL)
        return NULL;
    cache->slots = calloc(slots, sizeof *cache->slots);
    if (cache->slots == NULL) {
        free(cache);
        return NULL;
    }
    cache->slot_count = slots;
    pthread_mutex_init(&cache->lock, NULL);
    return cache;
}

void cv_kv_cache_destroy(cv_kv_cache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < cache->slot_count; i++)
        cv_instance_destroy(cache->slots[i].instance);
    free(cache->slots);
    pthread_mutex_destroy(&cache->lock);
    free(cache);
}

/* FNV-1a, 64 bits. */
static uint64_t hash_bytes(const char *data, size_t length)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < length; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211u;
    }
    return h;
}

uint64_t cv_kv_cache_text_hash(const char *text, size_t length)
{
    return hash_bytes(text, length);
}

static size_t slot_of(const cv_kv_cache *cache, const char *id)
{
    return (size_t)(hash_bytes(id, strlen(id)) % cache->slot_count);
}

/*
 * True when process is one of rules' own. Compares pointers only: the
 * cached instance may come from rules that a finished thread has freed.
 */
static bool owned_by(const cv_rules *rules, const cv_process *process)
{
    size_t count = cv_rules_process_count(rules);
    for (size_t i = 0; i < count; i++)
        if (cv_rules_process_at(rules, i) == process)
            return true;
    return false;
}

cv_instance *cv_kv_cache_take(cv_kv_cache *cache, const char *id, uint64_t revision,
                              const char *text, size_t length, const cv_rules *rules)
{
    cache_slot *slot = &cache->slots[slot_of(cache, id)];
    cv_instance *found = NULL;
    pthread_mutex_lock(&cache->lock);
    cv_instance *cached = slot->instance;
    /* The text is hashed last: most reads of an instance another node wrote stop at the revision. */
    if (cached != NULL && cached->revision == revision && strcmp(cached->id, id) == 0 &&
        owned_by(rules, cached->process) && slot->text_hash == hash_bytes(text, length)) {
        found = cached;
        slot->instance = NULL;
    }
    pthread_mutex_unlock(&cache->lock);
    return found;
}

void cv_kv_cache_put(cv_kv_cache *cache, cv_instance *instance, uint64_t text_hash)
{
    cache_slot *slot = &cache->slots[slot_of(cache, instance->id)];
    pthread_mutex_lock(&cache->lock);
    cv_instance *evicted = slot->instance;
    slot->instance = instance;
    slot->text_hash = text_hash;
    pthread_mutex_unlock(&cache->lock);
    cv_instance_destroy(evicted);
}

void cv_kv_cache_clear(cv_kv_cache *cache)
{
    for (size_t i = 0; i < cache->slot_count; i++) {
        pthread_mutex_lock(&cache->lock);
        cv_instance *evicted = cache->slots[i].instance;
        cache->slots[i].instance = NULL;
        pthread_mutex_unlock(&cache->lock);
        cv_instance_destroy(evicted);
    }
}
