/*
 * The JetStream side of a node with the kv store: the streams that keep
 * requests, replies and events, and the durable pull consumers that all
 * nodes share. A node creates what is missing at start-up and leaves
 * what exists as it is, so an operator's changes to a stream survive.
 */
#ifndef CV_NODE_STREAMS_H
#define CV_NODE_STREAMS_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

#define CV_CONSUMER_REQUESTS "conveyor-requests"
#define CV_CONSUMER_REPLIES "conveyor-replies"
#define CV_CONSUMER_TIMERS "conveyor-timers"

/* Longest stream or bucket name built from a prefix. */
#define CV_STREAM_NAME_MAX 160

/*
 * Names the stream of one kind ("REQUESTS", "REPLIES", "EVENTS") for a
 * subject prefix: the prefix upper-cased, so "orch" gives ORCH_REQUESTS and
 * two deployments with different prefixes share a server without mixing.
 */
void cv_streams_name(char *buf, const char *prefix, const char *kind);

/* Names the instance bucket for a prefix: "orch" gives orch_instances. */
void cv_streams_bucket_name(char *buf, const char *prefix);

typedef struct cv_streams_config {
    const char *prefix;
    bool memory_storage; /* false: file storage */
    int replicas;
    int64_t ack_wait_ms;   /* how long a taken message may stay unacknowledged */
    int64_t events_max_age_ms;
} cv_streams_config;

/*
 * Creates, when missing, the streams REQUESTS, REPLIES, EVENTS, TIMERS and
 * TASKS and the consumers of the first, second and fourth.
 */
cv_status cv_streams_ensure(jsCtx *js, const cv_streams_config *config, cv_error *err);

/* Creates the TASKS stream alone when missing: the memory store still offers the queue transport. */
cv_status cv_streams_ensure_tasks(jsCtx *js, const cv_streams_config *config, cv_error *err);

/*
 * Creates, when missing, the durable consumer named subsystem on the TASKS
 * stream, reading <prefix>.task.<subsystem>: the consumer queue workers of
 * that subsystem bind to.
 */
cv_status cv_streams_ensure_task_consumer(jsCtx *js, const cv_streams_config *config,
                                          const char *subsystem, cv_error *err);

#endif
