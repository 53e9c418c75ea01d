/*
 * One run of a process for one request: its data document, the attempts in
 * flight, the join steps waiting for their branches, and how often each step
 * ran. The supervisor changes an instance; a store keeps it.
 *
 * Step references are indices into the instance's process. The JSON form
 * (cv_instance_to_json) names steps by id, so a stored instance does not
 * depend on the order steps were loaded in.
 */
#ifndef CV_ENGINE_INSTANCE_H
#define CV_ENGINE_INSTANCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "rules/definition.h"

/* Length of generated instance ids and reply tokens (base62, about 131 bits). */
#define CV_TOKEN_LEN 22

/* Longest instance id accepted from Orch-Request-Id. */
#define CV_INSTANCE_ID_MAX 64

typedef enum cv_instance_status {
    CV_INSTANCE_RUNNING,
    CV_INSTANCE_COMPLETED,
    CV_INSTANCE_FAILED,
    CV_INSTANCE_CANCELLED,
} cv_instance_status;

/*
 * One attempt at a step: sent and waiting for its reply, or, after a failed
 * attempt, waiting for its back-off to end before it is sent.
 */
typedef struct cv_attempt {
    int step;
    int attempt; /* counts from 1 */
    char token[CV_TOKEN_LEN + 1];
    int64_t started_ms; /* wall clock */
    int64_t due_ms;     /* > 0: not sent yet; its retry timer fires at this wall time */
    bool queued;        /* sent through the queue after no NATS module answered: no timeout */
} cv_attempt;

typedef struct cv_instance {
    char *id;
    const cv_process *process; /* borrowed from the rules that started or loaded it */
    cv_instance_status status;
    json_t *data;  /* owned object: "request" and one key per completed step */
    json_t *trail; /* owned array of completed step ids, in completion order */
    char *error;   /* why the instance failed, else NULL */
    int *visits;   /* process->step_count counters */
    size_t active_count;
    size_t active_capacity;
    cv_attempt *active;
    size_t waiting_count;
    int *waiting; /* join steps waiting for branches; at most step_count entries */
    json_t *outbox;    /* owned array of recent effects (see outbox.h), NULL when unused */
    bool answered;     /* the requester received the instance id (see intake.c) */
    uint64_t revision; /* store revision the instance was read at; 0 before it is stored */
    int64_t created_ms;
    int64_t updated_ms;
} cv_instance;

/*
 * Creates a running instance of process with id and request (taken: the
 * instance owns the reference). Returns NULL when out of memory.
 */
cv_instance *cv_instance_create(const char *id, const cv_process *process, json_t *request);

void cv_instance_destroy(cv_instance *instance);

/* Returns the index of the step named id in process, or -1 (also for a NULL id). */
int cv_instance_find_step(const cv_process *process, const char *id);

/* Adds an attempt; returns it (valid until the active list changes) or NULL when out of memory. */
cv_attempt *cv_instance_add_attempt(cv_instance *instance, int step, int attempt);

/* Returns the index of the attempt matching all three (sent or waiting), or -1. */
int cv_instance_find_attempt(const cv_instance *instance, int step, int attempt,
                             const char *token);

void cv_instance_remove_attempt(cv_instance *instance, size_t index);

/* True when step has an attempt in flight. */
bool cv_instance_step_active(const cv_instance *instance, int step);

/* "running", "completed", "failed" or "cancelled". */
const char *cv_instance_status_name(cv_instance_status status);

/* Parses a status name; returns false when unknown. */
bool cv_instance_status_parse(const char *text, cv_instance_status *out);

/* Serialises the whole instance state as a new JSON object. */
json_t *cv_instance_to_json(const cv_instance *instance);

/*
 * Rebuilds an instance from cv_instance_to_json output against process.
 * Fails with CV_ERR_INVALID naming the field when the document does not
 * match the process (for example a step the rules no longer have).
 */
cv_status cv_instance_from_json(cv_instance **out, const json_t *doc, const cv_process *process,
                                cv_error *err);

#endif
