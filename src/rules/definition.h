/*
 * The in-memory form of loaded rules: modules, processes, steps and
 * condition trees, as the rules loader builds them from Lua tables.
 *
 * Everything here is immutable after loading and owned by the cv_rules that
 * built it. Step references are indices into cv_process.steps, resolved
 * (and checked) at load time, so the engine never looks names up per step.
 * Lua functions (route, when, custom operations, Lua modules) are kept as
 * registry references in the Lua state of the cv_rules that owns them.
 */
#ifndef CV_RULES_DEFINITION_H
#define CV_RULES_DEFINITION_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/path.h"

/* Marks an absent Lua function reference (same value as LUA_NOREF). */
#define CV_NO_REF (-2)

#define CV_MAX_MODIFIERS 8
#define CV_DEFAULT_MAX_VISITS 100
#define CV_DEFAULT_STEP_TIMEOUT_MS 30000

typedef enum cv_transport {
    CV_TRANSPORT_NATS = 0,
    CV_TRANSPORT_HTTP,
    CV_TRANSPORT_QUEUE,
    CV_TRANSPORT_LUA,
} cv_transport;

typedef enum cv_modifier {
    CV_MOD_TRIM,
    CV_MOD_LOWER,
    CV_MOD_UPPER,
    CV_MOD_LEN,
    CV_MOD_NUMBER,
    CV_MOD_STRING,
} cv_modifier;

typedef enum cv_op_name {
    CV_OP_EMPTY,
    CV_OP_EXISTS,
    CV_OP_NULL,
    CV_OP_EQ,
    CV_OP_NE,
    CV_OP_GT,
    CV_OP_GTE,
    CV_OP_LT,
    CV_OP_LTE,
    CV_OP_IN,
    CV_OP_CONTAINS,
    CV_OP_STARTS,
    CV_OP_ENDS,
    CV_OP_REGEX,
    CV_OP_IS_STRING,
    CV_OP_IS_NUMBER,
    CV_OP_IS_BOOL,
    CV_OP_IS_ARRAY,
    CV_OP_IS_OBJECT,
    CV_OP_CUSTOM, /* defined by `operation "name" (function(v, arg) ... end)` */
} cv_op_name;

/* A parsed "modifier|modifier|...|name" operation. */
typedef struct cv_operation {
    char *text;    /* as written, for messages */
    bool negate;   /* an odd number of "!" modifiers */
    size_t modifier_count;
    cv_modifier modifiers[CV_MAX_MODIFIERS];
    cv_op_name name;
    int custom_ref; /* Lua function for CV_OP_CUSTOM, else CV_NO_REF */
} cv_operation;

/* A list of step indices: a decision, `next`, `prev`, `result`, `on_error`. */
typedef struct cv_step_list {
    size_t count;
    int *steps;
} cv_step_list;

typedef struct cv_cond_node cv_cond_node;

typedef struct cv_cond_list {
    size_t count;
    cv_cond_node *nodes;
} cv_cond_list;

struct cv_cond_node {
    int line;      /* best-effort source line, 0 when unknown */
    int when_ref;  /* Lua predicate for a `when` node, else CV_NO_REF */
    bool has_field;
    cv_path field;
    cv_operation op;
    json_t *value; /* owned; NULL when the node has no `value` */
    bool has_value_field;
    cv_path value_field;
    regex_t *regex; /* compiled `value` for CV_OP_REGEX, else NULL */
    bool has_result;
    cv_step_list result;
    bool has_success;
    cv_cond_list success;
    bool has_failure;
    cv_cond_list failure;
};

/*
 * Bounds on `retry`: attempt numbers travel in subjects and headers, where
 * the node reads at most 1,000,000; a back-off under 10 ms only hammers the
 * module and the event log.
 */
#define CV_RETRY_MAX_LIMIT 100000
#define CV_RETRY_MIN_BACKOFF_MS 10

typedef struct cv_retry {
    int max;                /* retries after the first attempt */
    int64_t backoff_ms;
    double factor;
    int64_t max_backoff_ms;
    bool jitter;
} cv_retry;

typedef struct cv_module {
    char *name;
    char *file;
    int line;
    cv_transport transport;
    char *url;            /* http */
    char *method;         /* http, default "POST" */
    json_t *headers;      /* http: object of header name to string, owned, may be NULL */
    int64_t timeout_ms;   /* 0: the step's or the default */
    size_t max_response;  /* http, default 1 MiB */
    bool follow_redirects;
    int run_ref;          /* lua: function(input, params) */
} cv_module;

typedef enum cv_join {
    CV_JOIN_NONE = 0,
    CV_JOIN_ALL,
} cv_join;

typedef struct cv_step {
    char *id;
    int line;
    char *subsystem;
    const cv_module *module; /* NULL: an undeclared subsystem, so a NATS module */
    cv_transport transport;  /* the step's override, else the module's, else NATS */
    bool has_next;
    cv_step_list next;
    cv_step_list prev;
    bool has_condition;
    cv_cond_list condition;
    int route_ref; /* Lua function(data), else CV_NO_REF */
    json_t *params; /* owned object, never NULL (empty when not given) */
    size_t input_count; /* 0: send the whole data document */
    cv_path *input;
    int64_t timeout_ms; /* 0: none (a queue step with no timeout written) */
    bool has_retry;
    cv_retry retry;
    bool has_on_error;
    cv_step_list on_error;
    cv_join join;
} cv_step;

typedef struct cv_process {
    char *name;
    char *file;
    int line;
    int start; /* index of the start step */
    size_t step_count;
    cv_step *steps;
    int max_visits;
    json_t *intake; /* owned copy of the `intake` table, NULL when absent */
} cv_process;

#endif
