/*
 * The outbox: the effects of an instance's latest changes, stored with the
 * instance itself. A node that stores a change and dies before publishing
 * its events and dispatches leaves its message unacknowledged; the node
 * that receives it again finds the change already applied and replays the
 * effects from here. Events carry a deduplication id, so a replayed event
 * that was in fact published is dropped by the ORCH_EVENTS stream.
 *
 * A change's effects are needed until its message is acknowledged, or has
 * come back to another node after its ack wait. Entries are therefore kept
 * while younger than the keep time the caller gives, and the newest
 * CV_OUTBOX_KEEP of any age. CV_OUTBOX_MAX bounds the instance's size: a
 * fan-out making more changes than that within the keep time drops the
 * oldest young ones, and a redelivery of such a change publishes nothing.
 */
#ifndef CV_ENGINE_OUTBOX_H
#define CV_ENGINE_OUTBOX_H

#include <stdbool.h>

#include "engine/effects.h"
#include "engine/instance.h"

#define CV_OUTBOX_KEEP 8
#define CV_OUTBOX_MAX 64

/* When and for how long a change's effects are kept, by the wall clock. */
typedef struct cv_outbox_clock {
    int64_t now_ms;
    int64_t keep_ms;
} cv_outbox_clock;

/*
 * Appends the effects of the change made for message key and drops entries
 * no longer needed. Returns the number of entries dropped while younger
 * than the keep time in *dropped_young.
 */
cv_status cv_outbox_record(cv_instance *instance, const char *key, const cv_effects *effects,
                           cv_outbox_clock clock, size_t *dropped_young);

/* Fills out with the effects recorded for key; returns false when none are. */
bool cv_outbox_replay(const cv_instance *instance, const char *key, cv_effects *out);

#endif
