/*
 * Loading rules: every .lua file under a folder (searched recursively, in
 * sorted path order), run in a sandboxed Lua state whose `process`,
 * `module` and `operation` functions collect definitions; then validation of
 * the whole set, with one "file:line: what" diagnostic per fault.
 *
 * A cv_rules owns one Lua state and is not thread-safe: each worker thread
 * of a node loads its own.
 */
#ifndef CV_RULES_RULES_H
#define CV_RULES_RULES_H

#include <jansson.h>
#include <stddef.h>

#include "core/status.h"
#include "engine/script.h"
#include "rules/definition.h"

typedef struct cv_rules cv_rules;

/* A growable list of "file:line: what" messages. */
typedef struct cv_diag {
    size_t count;
    size_t capacity;
    char **messages;
} cv_diag;

void cv_diag_add(cv_diag *diag, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void cv_diag_free(cv_diag *diag);

typedef struct cv_rules_limits {
    /* Lua VM instructions one call of a rule may run; 0: the default (10 million). */
    long long instruction_budget;
    /* Bytes one call of a rule may allocate beyond what it found; 0: default (64 MiB). */
    size_t memory_budget;
} cv_rules_limits;

/*
 * Loads and validates every .lua file under dir. On success *out is a new
 * cv_rules. On failure (CV_ERR_INVALID) diag holds every fault found, each
 * "file:line: what", and *out is untouched. limits may be NULL.
 */
cv_status cv_rules_load(cv_rules **out, const char *dir, const cv_rules_limits *limits,
                        cv_diag *diag, cv_error *err);

void cv_rules_destroy(cv_rules *rules);

size_t cv_rules_process_count(const cv_rules *rules);
const cv_process *cv_rules_process_at(const cv_rules *rules, size_t index);

/* Declared modules, in file order; NULL when index is out of range. */
size_t cv_rules_module_count(const cv_rules *rules);
const cv_module *cv_rules_module_at(const cv_rules *rules, size_t index);

/* Returns the process named name, or NULL. */
const cv_process *cv_rules_find_process(const cv_rules *rules, const char *name);

/* Returns the index of step id in process, or -1. */
int cv_process_find_step(const cv_process *process, const char *id);

/* The script interface the engine uses to call this rules' Lua functions. */
cv_script *cv_rules_script(cv_rules *rules);

/*
 * Runs a Lua module's function(input, params) in the sandbox. Sets *out to
 * a new reference to the JSON form of its return value (nil becomes null).
 */
cv_status cv_rules_run_module(cv_rules *rules, const cv_module *module, const json_t *input,
                              const json_t *params, json_t **out, cv_error *err);

#endif
