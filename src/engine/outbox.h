/*
 * The outbox: the effects of an instance's latest changes, stored with the
 * instance itself. A node that stores a change and dies before publishing
 * its events and dispatches leaves its message unacknowledged; the node
 * that receives it again finds the change already applied and replays the
 * effects from here. Events carry a deduplication id, so a replayed event
 * that was in fact published is dropped by the ORCH_EVENTS stream.
 *
 * Only the last CV_OUTBOX_MAX changes are kept. A message redelivered after
 * more changes than that to the same instance loses its effects; that
 * needs that many other messages of one instance to overtake it.
 */
#ifndef CV_ENGINE_OUTBOX_H
#define CV_ENGINE_OUTBOX_H

#include <stdbool.h>

#include "engine/effects.h"
#include "engine/instance.h"

#define CV_OUTBOX_MAX 8

/* Appends the effects of the change made for message key; drops the oldest beyond the limit. */
cv_status cv_outbox_record(cv_instance *instance, const char *key, const cv_effects *effects);

/* Fills out with the effects recorded for key; returns false when none are. */
bool cv_outbox_replay(const cv_instance *instance, const char *key, cv_effects *out);

#endif
