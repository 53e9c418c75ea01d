/*
 * A direct-mapped table: each id hashes to one slot, and a newer instance
 * evicts whatever was there. Workers of one node use it at once, so every
 * access holds the table's lock, only long enough to move a pointer.
 */
#include "store/kv_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct cv_kv_cache {
    pthread_mutex_t lock;
    size_t slot_count;
    cv_instance **slots;
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
        cv_instance_destroy(cache->slots[i]);
    free(cache->slots);
    pthread_mutex_destroy(&cache->lock);
    free(cache);
}

static size_t slot_of(const cv_kv_cache *cache, const char *id)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a, 64 bits */
    for (; *id != '\0'; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211u;
    }
    return (size_t)(h % cache->slot_count);
}

cv_instance *cv_kv_cache_take(cv_kv_cache *cache, const char *id, uint64_t revision,
                              const cv_rules *rules)
{
    size_t slot = slot_of(cache, id);
    cv_instance *found = NULL;
    pthread_mutex_lock(&cache->lock);
    cv_instance *held = cache->slots[slot];
    if (held != NULL && held->revision == revision && strcmp(held->id, id) == 0) {
        found = held;
        cache->slots[slot] = NULL;
    }
    pthread_mutex_unlock(&cache->lock);
    /* Each worker loads its own rules; an instance points into the rules it was built with. */
    if (found != NULL && cv_rules_find_process(rules, found->process->name) != found->process) {
        cv_instance_destroy(found);
        found = NULL;
    }
    return found;
}

void cv_kv_cache_put(cv_kv_cache *cache, cv_instance *instance)
{
    size_t slot = slot_of(cache, instance->id);
    pthread_mutex_lock(&cache->lock);
    cv_instance *evicted = cache->slots[slot];
    cache->slots[slot] = instance;
    pthread_mutex_unlock(&cache->lock);
    cv_instance_destroy(evicted);
}
