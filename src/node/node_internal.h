/*
 * The node's parts as its own files see them: the node, its workers, and
 * the functions each file provides to the others. Not for use outside
 * src/node.
 */
#ifndef CV_NODE_NODE_INTERNAL_H
#define CV_NODE_NODE_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine/effects.h"
#include "engine/instance.h"
#include "engine/supervisor.h"
#include "node/flusher.h"
#include "node/node.h"
#include "node/pull.h"
#include "node/streams.h"
#include "node/timers.h"
#include "node/flusher.h"
#include "node/work_queue.h"
#include "rules/rules.h"
#include "store/store.h"

typedef struct cv_worker cv_worker;
typedef struct cv_http_client cv_http_client;

/* Dispatches remembered per worker for sending again after a reconnect. */
#define CV_RECENT_DISPATCHES 1024

typedef struct cv_recent_dispatch {
    char instance[CV_INSTANCE_ID_MAX + 1];
    char step[256];
    int attempt;
    char token[CV_TOKEN_LEN + 1];
    int64_t sent_ms; /* monotonic */
} cv_recent_dispatch;

struct cv_node {
    cv_node_config config;
    natsConnection *nc;
    cv_store *store;
    size_t worker_count;
    cv_worker **workers;
    jsCtx *js;
    natsSubscription *request_sub;
    natsSubscription *reply_sub;
    natsSubscription *cancel_sub;
    cv_puller request_puller;
    cv_puller reply_puller;
    cv_puller timer_puller;
    cv_local_timers *local_timers; /* memory store only */
    cv_streams_config streams;
    bool queue_available; /* the server offers JetStream, so the TASKS stream exists */
    cv_http_client *http; /* the HTTP transport's transfers, one thread for all of them */
    cv_flusher flusher;   /* writes buffered publishes when a worker runs out of work */
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stop_requested;
    atomic_bool closing; /* set before the connection is closed on purpose */
    bool closed;         /* nats.c ran the closed callback: no callback can follow */
    bool connection_lost; /* closed without the node asking: cv_node_run fails */
    atomic_bool abandon; /* stopping without a server: workers drop what is still queued */
    /*
     * The server's max_payload, read at connect and at every reconnect:
     * asking nats.c for it takes the connection lock that every publish
     * needs too.
     */
    _Atomic int64_t max_payload;
};

struct cv_worker {
    cv_node *node;
    int index;
    pthread_t thread;
    bool started;
    cv_rules *rules;
    cv_effects effects;
    cv_work_queue queue;
    jsCtx *js;                 /* durable store: events go through JetStream with acknowledgements */
    cv_recent_dispatch *recent; /* ring of CV_RECENT_DISPATCHES, durable store only */
    size_t recent_next;
    atomic_bool event_failed;  /* an event publish was refused since the last check */
    int64_t outbox_logged_ms;  /* when "outbox full" was last logged (monotonic) */
    size_t outbox_dropped;     /* young outbox entries dropped since then */
    bool replaying;            /* publishing effects again: events are not logged twice */
};

/* worker.c */
cv_status cv_worker_create(cv_worker **out, cv_node *node, int index, cv_error *err);
cv_status cv_worker_start(cv_worker *worker, cv_error *err);
/* Queues a stop after everything queued so far, then joins the thread. */
void cv_worker_stop(cv_worker *worker);
void cv_worker_destroy(cv_worker *worker);
/* Routes item to the worker that owns its instance. */
void cv_node_route_work(cv_node *node, cv_work *item);
/*
 * Applies result to instance id with compare-and-set retries, then runs the
 * effects. Records an unknown instance as an ignored reply. item is the
 * message the result came in (NULL for results made inside the node); a
 * passing failure marks it for redelivery.
 */
void cv_worker_apply_result(cv_worker *worker, const char *id, const cv_step_result *result,
                            cv_work *item);
/*
 * Records the worker's effects in instance's outbox under message key,
 * logging any entry dropped before its message could have come back.
 */
cv_status cv_worker_record_outbox(cv_worker *worker, cv_instance *instance, const char *key);
/*
 * Publishes again the effects instance's outbox records for message key,
 * which an earlier delivery stored but may not have sent. Returns false
 * when the outbox has no record of key.
 */
bool cv_worker_replay(cv_worker *worker, cv_instance *instance, const char *key);
/* Stores, publishes and dispatches what the supervisor decided for instance. */
void cv_worker_run_effects(cv_worker *worker, cv_instance *instance);

/* intake.c: a request message; answers it and starts an instance. */
void cv_intake_handle(cv_worker *worker, cv_work *item);
/* intake.c: the instance id a request asks for, or a new one; "" when the header is invalid. */
void cv_intake_instance_id(natsMsg *msg, char *out);

/* relay.c: true for a request a node stored again in the stream with its reply subject. */
bool cv_relay_is_relayed(natsMsg *msg);
/* relay.c: true for a core copy of a request that its stream copy serves as it is. */
bool cv_relay_left_to_stream(natsMsg *msg);
/* relay.c: where to answer the request item; NULL when nobody waits for an answer. */
const char *cv_relay_answer_subject(const cv_work *item);
/* relay.c: stores a core copy in the requests stream with its id and reply subject. */
cv_status cv_relay_forward(cv_worker *worker, const cv_work *item, cv_error *err);

/* cancel.c: a cancellation request; answers it. */
void cv_cancel_handle(cv_worker *worker, cv_work *item);

/* replies.c: a reply message from a module. */
void cv_replies_handle(cv_worker *worker, cv_work *item);

/* events.c: publishes one event; borrows body. token is "" for instance events. */
void cv_events_publish(cv_worker *worker, const cv_instance *instance, const char *kind,
                       const char *token, json_t *body);
/*
 * events.c: waits until the events this worker published are stored.
 * Returns false when one was refused or the wait timed out.
 */
bool cv_events_confirm(cv_worker *worker);
/* events.c: gives the worker its JetStream context for events. */
cv_status cv_events_open(cv_worker *worker, cv_error *err);

/* dispatch.c: sends one dispatch order through the step's transport. */
void cv_dispatch_send(cv_worker *worker, cv_instance *instance, const cv_dispatch_order *order);
/* Queues a result for an attempt that ended inside the node. Takes output. */
void cv_dispatch_local_result(cv_worker *worker, const cv_instance *instance,
                              const cv_dispatch_order *order, json_t *output, const char *error,
                              bool permanent);
/*
 * Hands on the result of an attempt made inside the node (local_result.c):
 * through ORCH_REPLIES with a durable store, else to the worker that owns
 * instance. Safe from any thread. Takes output; copies the strings.
 */
void cv_node_post_result(cv_node *node, const char *instance, const char *step, int attempt,
                         const char *token, json_t *output, const char *error, bool permanent);

/* resend.c: remembers a dispatch sent over core NATS. */
void cv_resend_note(cv_worker *worker, const cv_instance *instance,
                    const cv_dispatch_order *order);
/* resend.c: sends again each recent dispatch whose attempt is still in flight. */
void cv_resend_recent(cv_worker *worker);

/* transport_nats.c */
cv_status cv_transport_nats_send(cv_worker *worker, const cv_instance *instance,
                                 const cv_dispatch_order *order, cv_error *err);
/*
 * transport_http.c: the HTTP transport. One thread drives every transfer
 * through libcurl's multi interface; results come back to the owning
 * worker through cv_node_post_result.
 */
cv_status cv_http_client_create(cv_http_client **out, cv_node *node, cv_error *err);
/* Stops the thread; transfers still running are dropped (their attempts time out). */
void cv_http_client_destroy(cv_http_client *client);
/* Builds the request for order in the worker's thread and hands it to the HTTP thread. */
void cv_transport_http_send(cv_worker *worker, const cv_instance *instance,
                            const cv_dispatch_order *order);
/* transport_queue.c: publishes the step to <prefix>.task.<subsystem> in the TASKS stream. */
cv_status cv_transport_queue_send(cv_worker *worker, const cv_instance *instance,
                                  const cv_dispatch_order *order, cv_error *err);
/* transport_queue.c: creates the consumers of the queue modules the rules declare. */
cv_status cv_transport_queue_prepare(cv_node *node, cv_error *err);

/* transport_lua.c: runs the Lua module and queues its result. */
void cv_transport_lua_run(cv_worker *worker, const cv_instance *instance,
                          const cv_dispatch_order *order);

/*
 * dispatch.c: the message of a step for subject: its body and the headers
 * Orch-Instance, Orch-Process, Orch-Step and Orch-Attempt. reply may be NULL.
 */
cv_status cv_dispatch_message(natsMsg **out, const cv_instance *instance,
                              const cv_dispatch_order *order, const char *subject,
                              const char *reply, cv_error *err);

/* The step body every transport sends: {"instance", "process", "step", "attempt", "params", "data"}. */
json_t *cv_dispatch_body(const cv_instance *instance, const cv_dispatch_order *order,
                         cv_error *err);

#endif
