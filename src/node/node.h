/*
 * A conveyor node: one NATS connection, a set of worker threads each with
 * its own Lua rules, and the subscriptions that feed them. All nodes are
 * equal. With the kv store, requests and replies reach them through
 * JetStream consumers they share; with the memory store, over core NATS.
 */
#ifndef CV_NODE_NODE_H
#define CV_NODE_NODE_H

#include <stddef.h>

#include "core/status.h"

typedef struct cv_node_config {
    const char *nats_url;
    const char *rules_dir;
    const char *name;
    const char *state; /* "kv" or "memory" */
    const char *prefix;
    int workers;
    size_t max_body;
    size_t keep_finished; /* memory store: finished instances kept for idempotency */
    bool memory_storage;  /* kv: streams and bucket in server memory instead of files */
    int replicas;         /* kv: replicas of streams, consumers and bucket when created */
    int64_t ack_wait_ms;  /* kv: how long a node may hold a message before another gets it */
} cv_node_config;

typedef struct cv_node cv_node;

/* Loads rules, connects to NATS and starts the workers; *out is set only on success. */
cv_status cv_node_create(cv_node **out, const cv_node_config *config, cv_error *err);

/* Subscribes and serves until cv_node_stop is called (from a signal handler thread). */
cv_status cv_node_run(cv_node *node, cv_error *err);

/* Asks a running node to stop; safe to call from any thread. */
void cv_node_stop(cv_node *node);

void cv_node_destroy(cv_node *node);

#endif
