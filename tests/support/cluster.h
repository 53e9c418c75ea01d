/*
 * Integration-test fixtures: a real nats-server with JetStream on a free
 * loopback port and a temporary store, conveyor nodes as child processes,
 * and a NATS client that records every event it sees.
 */
#ifndef CV_TEST_CLUSTER_H
#define CV_TEST_CLUSTER_H

#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdbool.h>

#include "support/process.h"

typedef struct cv_test_server {
    cv_test_process process;
    int port;
    char url[256]; /* one URL, or a comma-separated list for a cluster */
    char *dir; /* temporary folder: store and logs */
    char config[600]; /* configuration file, or "" for none */
} cv_test_server;

/* The nats-server binary: $CV_NATS_SERVER, or Debian's. */
const char *cv_test_server_binary(void);

/* Starts nats-server -js on 127.0.0.1; fails the test when it does not come up in 10 s. */
void cv_test_server_start(cv_test_server *server);
/* The same, with config_text (nats-server configuration syntax) as its configuration file. */
void cv_test_server_start_config(cv_test_server *server, const char *config_text);
void cv_test_server_stop(cv_test_server *server);

/*
 * Stops the server with SIGTERM, which lets JetStream write out what it
 * holds in memory, and starts it again on the same port and store.
 */
void cv_test_server_restart(cv_test_server *server);

/* The --state every node started by cv_test_node_start gets: "kv" unless a test sets it. */
extern const char *cv_test_state;

/* Sets cv_test_state from argv[1] when given ("kv" or "memory"). */
void cv_test_state_from_args(int argc, char **argv);

typedef struct cv_test_node {
    cv_test_process process;
    char log_path[512];
} cv_test_node;

/*
 * Starts `conveyor node` against server with rules_dir and extra arguments
 * (NULL-terminated, may be NULL) and waits for "node ready".
 */
void cv_test_node_start(cv_test_node *node, const cv_test_server *server, const char *rules_dir,
                        const char *name, char *const extra_args[]);
/* The same, with extra_env ("NAME=value", NULL-terminated) added to its environment. */
void cv_test_node_start_env(cv_test_node *node, const cv_test_server *server,
                            const char *rules_dir, const char *name, char *const extra_args[],
                            char *const extra_env[]);
/* Stops the node by its pid and checks it exited 0. */
void cv_test_node_stop(cv_test_node *node);

/* Connects a client with send-asap; fails the test on error. */
natsConnection *cv_test_connect(const cv_test_server *server);

/* Records every message on a subject (with wildcards) for later assertions. */
typedef struct cv_test_recorder {
    natsSubscription *sub;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    size_t count;
    size_t capacity;
    char **subjects;
    json_t **bodies; /* NULL when a body was not JSON */
    char **msg_ids;  /* Nats-Msg-Id header, or NULL */
} cv_test_recorder;

void cv_test_recorder_start(cv_test_recorder *recorder, natsConnection *nc, const char *subject);
void cv_test_recorder_stop(cv_test_recorder *recorder);

/* Counts recorded messages whose subject ends with suffix and contains infix (either may be NULL). */
size_t cv_test_recorder_count(cv_test_recorder *recorder, const char *infix, const char *suffix);

/* Waits up to timeout_ms until cv_test_recorder_count reaches at least want. */
bool cv_test_recorder_wait(cv_test_recorder *recorder, const char *infix, const char *suffix,
                           size_t want, int timeout_ms);

/* Returns a new reference to the body of the first message matching, or NULL. */
json_t *cv_test_recorder_find(cv_test_recorder *recorder, const char *infix, const char *suffix);

/*
 * Waits up to timeout_ms until instance id has ended (its instance.started
 * and then instance.completed or instance.failed are on the recorder) and
 * returns the final event's body as a new reference; fails the test when it
 * has not ended in time.
 */
json_t *cv_test_wait_instance_end(cv_test_recorder *recorder, const char *id, int timeout_ms);

/*
 * Sends a request to orch.request.<process> (optional Orch-Request-Id) and
 * returns the node's answer as a new JSON value; fails the test on timeout.
 */
json_t *cv_test_request(natsConnection *nc, const char *process, const char *request_id,
                        const char *body, int length);

/* Path of a file in the source tree: CV_TEST_SOURCE_DIR/relative. */
const char *cv_test_source_path(const char *relative);

#endif
