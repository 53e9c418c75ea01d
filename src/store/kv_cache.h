/*
 * The kv store's memory of the instances this node wrote last. Reading an
 * instance from the bucket costs a round trip and a parse of the whole
 * document. When the bucket reports the revision this node wrote, the
 * parse is skipped and the object it committed is used again.
 *
 * The bucket is still read on every acquire: with several nodes the last
 * writer may be another node, and only the revision tells.
 */
#ifndef CV_STORE_KV_CACHE_H
#define CV_STORE_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/instance.h"
#include "rules/rules.h"

typedef struct cv_kv_cache cv_kv_cache;

/* A cache of at most slots instances; NULL when out of memory. */
cv_kv_cache *cv_kv_cache_create(size_t slots);
void cv_kv_cache_destroy(cv_kv_cache *cache);

/*
 * Removes and returns instance id if the cache has it at revision and it
 * was built from the same rules (the process object of rules); else NULL.
 * The caller owns the result.
 */
cv_instance *cv_kv_cache_take(cv_kv_cache *cache, const char *id, uint64_t revision,
                              const cv_rules *rules);

/* Takes instance, as stored at instance->revision; replaces whatever shared its slot. */
void cv_kv_cache_put(cv_kv_cache *cache, cv_instance *instance);

#endif
