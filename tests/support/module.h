/*
 * A module inside the test process: subscribes to orch.dispatch.<subsystem>
 * and answers each step with what a handler returns, so a test can play a
 * well-behaved module, a failing one or a misbehaving one.
 */
#ifndef CV_TEST_MODULE_H
#define CV_TEST_MODULE_H

#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct cv_test_answer {
    const char *body;   /* sent as is; NULL sends an empty body */
    const char *error;  /* Orch-Error header, or NULL */
    bool permanent;     /* adds Orch-Retry: false */
    int copies;         /* how many times to send it (0 counts as 1; -1 sends nothing) */
} cv_test_answer;

/*
 * Decides the answer for one step. step is the parsed body; headers are
 * read from msg. The returned strings must stay valid until the answer is
 * sent: use the scratch buffer (4096 bytes) or static text.
 */
typedef cv_test_answer (*cv_test_handler)(const json_t *step, natsMsg *msg, char *scratch,
                                          void *context);

typedef struct cv_test_module {
    natsConnection *nc;
    natsSubscription *sub;
    cv_test_handler handler;
    void *context;
    atomic_int received;
    jsCtx *js; /* set by cv_test_module_confirm_replies: replies wait for JetStream's ack */
    bool queue;             /* a queue worker: a fetch thread on a durable consumer */
    pthread_t thread;
    atomic_bool stopping;
} cv_test_module;

/*
 * Makes the module publish each reply through JetStream and wait for the
 * ORCH_REPLIES stream to acknowledge it, retrying for up to 30 s, as a
 * module must when a reply may not be lost while a server restarts.
 */
void cv_test_module_confirm_replies(cv_test_module *module);

void cv_test_module_start(cv_test_module *module, natsConnection *nc, const char *subsystem,
                          cv_test_handler handler, void *context);
/*
 * Starts a queue worker: binds to the durable consumer named subsystem on
 * ORCH_TASKS (the node creates it), answers each task on its Orch-Reply-To
 * subject with what handler returns, then acknowledges it.
 */
void cv_test_queue_worker_start(cv_test_module *module, natsConnection *nc, const char *subsystem,
                                cv_test_handler handler, void *context);

/* Stops a module or a queue worker. */
void cv_test_module_stop(cv_test_module *module);

/* A handler that answers {"echo": <step name>, "attempt": n}. */
cv_test_answer cv_test_echo_handler(const json_t *step, natsMsg *msg, char *scratch,
                                    void *context);

#endif
