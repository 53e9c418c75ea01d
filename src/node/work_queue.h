/*
 * A worker's inbox: an unbounded FIFO of work items filled by NATS
 * callback threads and by the worker itself, drained by one worker thread.
 * The fetch loops bound how many stream messages they put in (pull.c).
 */
#ifndef CV_NODE_WORK_QUEUE_H
#define CV_NODE_WORK_QUEUE_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/instance.h"
#include "engine/supervisor.h"

typedef enum cv_work_kind {
    CV_WORK_REQUEST,      /* a message on <prefix>.request.<process> */
    CV_WORK_REPLY,        /* a message on <prefix>.reply.... */
    CV_WORK_LOCAL_RESULT, /* a step finished inside the node (Lua module, HTTP, failed dispatch) */
    CV_WORK_TIMER,        /* a step timer fell due (from the TIMERS stream or the node's heap) */
    CV_WORK_CANCEL,       /* a message on <prefix>.cancel.<instance> */
    CV_WORK_RESEND,       /* the connection came back: send recent dispatches again */
    CV_WORK_STOP,         /* the worker exits after this item */
} cv_work_kind;

typedef struct cv_work {
    cv_work_kind kind;
    struct cv_work *next;
    natsMsg *msg; /* owned; REQUEST and REPLY */
    bool from_stream;  /* msg came from a JetStream consumer and must be acknowledged */
    bool retry_later;  /* set by the handler: a passing failure, deliver msg again */
    int retry_delay_ms; /* with retry_later: how long the consumer waits first; 0: 1000 */
    atomic_int *in_flight; /* the count of the puller that fetched msg, or NULL */
    char instance[CV_INSTANCE_ID_MAX + 1];
    /* LOCAL_RESULT and TIMER: */
    cv_result_kind result_kind;
    char *step;
    int attempt;
    char token[CV_TOKEN_LEN + 1];
    json_t *output; /* owned; NULL on error */
    char *error;    /* owned; NULL on success */
    bool permanent;
} cv_work;

typedef struct cv_work_queue {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    cv_work *head;
    cv_work *tail;
    size_t length;
} cv_work_queue;

void cv_work_queue_init(cv_work_queue *queue);
void cv_work_queue_destroy(cv_work_queue *queue);

/* Takes item. */
void cv_work_queue_push(cv_work_queue *queue, cv_work *item);

/* Blocks until an item is there and returns it; the caller owns it. */
cv_work *cv_work_queue_pop(cv_work_queue *queue);

/* Returns the first item without waiting, or NULL when the queue is empty. */
cv_work *cv_work_queue_try_pop(cv_work_queue *queue);

/*
 * Returns the stream sequence of item's message, 0 when it did not come
 * from a stream. Outbox keys use it to tell a message delivered again from
 * another message about the same thing.
 */
uint64_t cv_work_stream_sequence(const cv_work *item);

/* Counts item in *in_flight until cv_work_free frees it. */
void cv_work_count(cv_work *item, atomic_int *in_flight);

/* Frees an item and what it owns, and takes it off its puller's count. */
void cv_work_free(cv_work *item);

#endif
