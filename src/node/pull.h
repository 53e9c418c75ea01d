/*
 * Fetch loops for the shared durable consumers: one thread per consumer
 * pulls batches and routes each message to the worker that owns its
 * instance. Every fetch is a fresh pull request with a short expiry, so
 * after a reconnect or a server restart the loop picks up by itself.
 */
#ifndef CV_NODE_PULL_H
#define CV_NODE_PULL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/status.h"
#include "node/work_queue.h"

typedef struct cv_node cv_node;

typedef struct cv_puller {
    cv_node *node;
    cv_work_kind kind; /* CV_WORK_REQUEST, CV_WORK_REPLY or CV_WORK_TIMER */
    char stream[160];
    const char *consumer;
    natsSubscription *sub;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
} cv_puller;

/* Binds to the durable consumer and starts the fetch thread. */
cv_status cv_puller_start(cv_puller *puller, cv_node *node, jsCtx *js, cv_work_kind kind,
                          const char *stream, const char *consumer, cv_error *err);

/* Stops fetching and joins the thread; messages already routed are still handled. */
void cv_puller_stop(cv_puller *puller);

#endif
