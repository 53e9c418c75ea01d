/*
 * The kv store's memory of the instances this node wrote last. Reading an
 * instance from the bucket costs a round trip and a parse of the whole
 * document. When the bucket reports the revision this node wrote, the
 * parse is skipped and the object it committed is used again.
 *
 * The bucket is still read on every acquire, because with several nodes the
 * last writer may be another node, and only the revision shows it.
 */
#ifndef CV_STORE_KV_CACHE_H
#define CV_STORE_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/instance.h"
#include "rules/rules.h"

typedef struct cv_kv_cache cv_kv_cache;

/* A cache of at most slots instances; NULL when out of memory. */
cv_kv_cache *cv_kv_cache_create(size_t slots);
void cv_kv_cache_destroy(cv_kv_cache *cache);

/* The hash of a stored document that take and put compare. */
uint64_t cv_kv_cache_text_hash(const char *text, size_t length);

/*
 * Removes and returns instance id if the cache has it at revision, stored
 * as text (compared by hash), built from rules; else NULL. The text matters
 * as well as the revision, because revisions start again from 1 when the
 * bucket is deleted and created anew. The caller owns the result.
 */
cv_instance *cv_kv_cache_take(cv_kv_cache *cache, const char *id, uint64_t revision,
                              const char *text, size_t length, const cv_rules *rules);

/* Takes instance, stored at instance->revision as text with text_hash; evicts its slot's instance. */
void cv_kv_cache_put(cv_kv_cache *cache, cv_instance *instance, uint64_t text_hash);

/* Destroys every cached instance. */
void cv_kv_cache_clear(cv_kv_cache *cache);

#endif
