/*
 * Step timers: each attempt's timeout and each retry's back-off.
 *
 * With the durable store a timer is a message on <prefix>.timer.<instance>
 * in the stream <PREFIX>_TIMERS, read through the consumer conveyor-timers
 * that every node shares. A timer taken before it is due goes back with
 * NakWithDelay for the time that remains, so the server holds the wait and
 * whichever node is alive when it falls due fires it. With the memory store
 * nothing outlives the node, and a heap in the node's memory holds them.
 *
 * A timer that falls due becomes a CV_WORK_TIMER item for the worker that
 * owns its instance; the supervisor drops it when the attempt has moved on,
 * which is what happens to the timeout of nearly every step.
 */
#ifndef CV_NODE_TIMERS_H
#define CV_NODE_TIMERS_H

#include <nats/nats.h>
#include <stdatomic.h>

#include "engine/effects.h"
#include "engine/instance.h"

typedef struct cv_node cv_node;
typedef struct cv_worker cv_worker;
typedef struct cv_local_timers cv_local_timers;

/* The Orch-Timer header values of a timer message. */
#define CV_TIMER_HEADER_TIMEOUT "timeout"
#define CV_TIMER_HEADER_RETRY "retry"

/* Records timer for instance: published to TIMERS (durable store) or kept in the node's heap. */
void cv_timers_schedule(cv_worker *worker, const cv_instance *instance,
                        const cv_timer_order *timer);

/* timers_local.c: the heap and the thread that fires it. */
cv_status cv_local_timers_create(cv_local_timers **out, cv_node *node, cv_error *err);
void cv_local_timers_add(cv_local_timers *timers, const cv_instance *instance,
                         const cv_timer_order *timer);
/* Stops the thread; timers not yet due are dropped. */
void cv_local_timers_destroy(cv_local_timers *timers);

/*
 * timers_stream.c: called by the fetch loop for each TIMERS message. Hands
 * a timer not yet due back to the server with the remaining delay, routes a
 * due one to its worker, counted in *in_flight until it is freed, and drops
 * a malformed one with a log line.
 */
void cv_timers_take(cv_node *node, natsMsg *msg, atomic_int *in_flight);

#endif
