/*
 * Fetch loops for the shared durable consumers: one thread per consumer
 * pulls batches and routes each message to the worker that owns its
 * instance. Every fetch is a fresh pull request with a short expiry, so
 * after a reconnect or a server restart the loop picks up by itself. A
 * loop has a bounded number of messages in flight (pull.c explains why)
 * and leaves the rest in the stream for whichever node has room.
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
    atomic_int in_flight; /* messages fetched and not yet freed, at most CV_PULL_IN_FLIGHT */
} cv_puller;

/*
 * Returns how many messages to fetch at most: max, or fewer when messages
 * already wait in sub. nats.c 3.4.1 writes past the end of its fetch array
 * when more than half a batch already waits there (late messages of
 * expired pull requests, as after a reconnect). It takes those first and
 * then compares its count with the batch less what it took. Asking for
 * exactly what waits makes it take them all and stop. Later nats.c
 * releases keep the original batch.
 */
int cv_pull_batch_size(natsSubscription *sub, int max);

/* Binds to the durable consumer and starts the fetch thread. */
cv_status cv_puller_start(cv_puller *puller, cv_node *node, jsCtx *js, cv_work_kind kind,
                          const char *stream, const char *consumer, cv_error *err);

/* Stops fetching and joins the thread; messages already routed are still handled. */
void cv_puller_stop(cv_puller *puller);

/*
 * Destroys the subscription, after the workers have finished every message
 * fetched through it: nats.c 3.4 messages point at their subscription
 * without holding it, and an acknowledgement reads it.
 */
void cv_puller_close(cv_puller *puller);

#endif
