/*
 * The node's own flusher. The connection buffers publishes (no SendAsap)
 * and nats.c's flusher thread writes them after a pause of a millisecond,
 * which under load turns many small writes into one. A worker that runs
 * out of work requests a flush from this thread, so a lone step does not
 * wait for that pause. The worker itself does not wait for the server to
 * confirm the flush.
 */
#ifndef CV_NODE_FLUSHER_H
#define CV_NODE_FLUSHER_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdbool.h>

#include "core/status.h"

typedef struct cv_flusher {
    natsConnection *nc; /* borrowed */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool requested;
    bool stopping;
    bool started;
} cv_flusher;

/* Starts the thread for nc, which must outlive cv_flusher_stop. */
cv_status cv_flusher_start(cv_flusher *flusher, natsConnection *nc, cv_error *err);

/* Asks for a flush soon; returns at once. Requests made while one is running coalesce. */
void cv_flusher_request(cv_flusher *flusher);

/* Stops the thread; safe on a flusher that never started. */
void cv_flusher_stop(cv_flusher *flusher);

#endif
