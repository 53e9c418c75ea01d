/*
 * Revision claims of a replicated bucket. Before a node writes the revision
 * that follows revision R of a key, it claims (key, R) by publishing to the
 * subject "$CLAIMS.<bucket>.<key>.<R>" of the stream CLAIMS_<bucket> with
 * "no message yet" expected. Only one claim of a subject is stored, so only
 * one writer goes on to write the bucket. The others get a revision
 * mismatch and write nothing.
 *
 * Why not rely on the bucket's own compare-and-set: nats-server 2.9.10
 * checks the expected revision of a write to a clustered stream only on the
 * leader before proposing it, so racing writers can both pass. Each write
 * therefore carries the message id "<key>@<R>" as well, and replicas drop
 * the second one by id when they apply it. Such a dropped write stays in
 * the replicated log, though. A server killed and started again decides
 * again on the writes at the end of its log, and it can then accept one
 * whose id it no longer remembers. That happens when the message holding
 * the id was replaced by a later revision. From then on its copy of the
 * bucket differs from the others. "No message yet" is the one condition
 * every replica checks when applying a write in that version, against
 * what it stores. It is decided the same way on replay too, as long as
 * the winning claim is still stored, so the races move here and the
 * bucket's log contains no rejected writes.
 *
 * Claims are kept CV_KV_CLAIM_KEEP_MS. A claim's payload names the store and
 * thread that took it, so that thread may retry its own write after a
 * failure.
 *
 * NOTE: a node that dies between claiming and writing leaves the key
 * unwritable by others until its claim expires, up to CV_KV_CLAIM_KEEP_MS.
 * A server restarted later than that after its last stream snapshot may
 * accept expired claims again while replaying. Its copy of the claims
 * stream then differs from the others', which does not matter once those
 * revisions are superseded, and the extra claims expire at once.
 */
#ifndef CV_STORE_KV_CLAIMS_H
#define CV_STORE_KV_CLAIMS_H

#include <stdint.h>

#include <nats/nats.h>

#include "core/status.h"

#define CV_KV_CLAIM_KEEP_MS 10000

typedef struct cv_kv_claims cv_kv_claims;

typedef enum cv_kv_claim {
    CV_KV_CLAIM_WON,   /* this store may write the revision after the claimed one */
    CV_KV_CLAIM_TAKEN, /* another store claimed it first */
    CV_KV_CLAIM_FAILED,
} cv_kv_claim;

/*
 * Binds to the claims stream of bucket, creating it with storage and
 * replicas when missing. Borrows js, which must outlive the result.
 */
cv_status cv_kv_claims_open(cv_kv_claims **out, jsCtx *js, const char *bucket,
                            jsStorageType storage, int replicas, cv_error *err);

void cv_kv_claims_destroy(cv_kv_claims *claims);

/*
 * Claims the write that follows revision of key (0: its creation). On
 * CV_KV_CLAIM_FAILED, *status receives the NATS failure.
 */
cv_kv_claim cv_kv_claims_take(cv_kv_claims *claims, const char *key, uint64_t revision,
                              natsStatus *status);

#endif
