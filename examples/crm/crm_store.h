/*
 * The CRM's data file: one JSON object with the arrays "contacts", "deals",
 * "leads" and "deal_visits", loaded once at start and kept in memory.
 *
 * nats.c runs message callbacks on several threads, so every read or change
 * of the data happens between crm_store_lock and crm_store_unlock. Each
 * change is written to disk before the lock is released, atomically (a
 * temporary file in the same folder, then rename), so a crash never leaves
 * a half-written file. One process owns one data file: two crm-module
 * processes on the same file would each keep their own copy in memory.
 */
#ifndef CRM_STORE_H
#define CRM_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct crm_store crm_store;

/*
 * Loads the data file at path. Returns a new store, or NULL with the reason
 * in why (a missing file, invalid JSON, a missing array).
 */
crm_store *crm_store_open(const char *path, char *why, size_t why_size);

/* Frees the store and accepts NULL. The file is already up to date. */
void crm_store_close(crm_store *store);

/*
 * Locks the store and returns its root object, borrowed until
 * crm_store_unlock. Handlers may read anything under the root but change it
 * only through crm_store_append.
 */
json_t *crm_store_lock(crm_store *store);
void crm_store_unlock(crm_store *store);

/*
 * Appends record to the array named collection and writes the file. Takes
 * the reference to record in every case. On failure the record is removed
 * again, so memory and disk still agree, and why contains the reason. Call it
 * with the lock held.
 */
bool crm_store_append(crm_store *store, const char *collection, json_t *record, char *why,
                      size_t why_size);

#endif
