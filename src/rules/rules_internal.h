/*
 * Types and functions shared by the rules loader's files: the cv_rules
 * structure, the declarations collected while files run, and the build
 * context that turns Lua tables into definitions and reports faults with
 * file and line.
 *
 * Loading runs in three stages: rules_files.c runs every file and collects
 * declarations; rules_module.c builds custom operations and modules;
 * rules_build.c (with rules_condition.c) builds processes and steps. Each
 * stage reports every fault it finds and goes on, so one run lists them all.
 */
#ifndef CV_RULES_RULES_INTERNAL_H
#define CV_RULES_RULES_INTERNAL_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/script.h"
#include "rules/definition.h"
#include "rules/rules.h"
#include "rules/sandbox.h"
#include "rules/source_locate.h"

/* A custom operation declared with `operation "name" (function ...)`. */
typedef struct cv_custom_operation {
    char *name;
    int ref;
    char *file;
    int line;
} cv_custom_operation;

struct cv_rules {
    cv_sandbox *sandbox;
    lua_State *L;
    size_t process_count;
    cv_process *processes;
    size_t module_count;
    cv_module *modules;
    size_t operation_count;
    cv_custom_operation *operations;
    cv_script script;
};

typedef enum cv_decl_kind {
    CV_DECL_PROCESS,
    CV_DECL_MODULE,
    CV_DECL_OPERATION,
} cv_decl_kind;

/* One `process`, `module` or `operation` call, or one process a file returned. */
typedef struct cv_decl {
    cv_decl_kind kind;
    char *name;            /* NULL when the name is not a string */
    const char *name_type; /* Lua type of the name when it is not a string */
    const cv_source *source;
    int line;
    bool given;   /* the definition was given (the second call of the curried form) */
    bool returned; /* a process table the file returned, which carries its own name */
    int ref;      /* registry reference to the definition, LUA_NOREF when not given */
    size_t order; /* when it was recorded, to keep sorting stable */
} cv_decl;

/* One fault, kept until loading ends so that faults can be listed by file and line. */
typedef struct cv_fault {
    const char *file; /* borrowed from the source list; NULL for faults outside files */
    int line;
    size_t order;
    char *message; /* the whole "file:line: what" line */
} cv_fault;

typedef struct cv_loading {
    cv_rules *rules;
    cv_diag *diag;
    size_t faults;
    size_t fault_capacity;
    cv_fault *fault_list;
    size_t source_count;
    cv_source *sources;
    size_t decl_count;
    size_t decl_capacity;
    cv_decl *decls;
    int dsl_ref; /* the table lua/dsl.lua returned: declarations and close() */
} cv_loading;

/* ---- rules_files.c ---- */

/*
 * Lists the .lua files under dir, reads them and runs each one, collecting
 * declarations into load. Faults in files go to the diagnostics; a folder
 * that cannot be read is an error in err.
 */
cv_status cv_rules_run_files(cv_loading *load, const char *dir, cv_error *err);

void cv_rules_loading_free(cv_loading *load);

/* ---- rules.c ---- */

/* Records one fault: "file:line: what" (line 0 leaves the line out). file must outlive load. */
void cv_rules_fault(cv_loading *load, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Records a Lua error message about file. Lua's syntax and runtime errors
 * start with "file:line:" already; other messages get "file: " in front.
 */
void cv_rules_fault_lua(cv_loading *load, const char *file, const char *message);

/* Moves the recorded faults into load->diag, sorted by file, then line. */
void cv_rules_report_faults(cv_loading *load);

/* ---- the build context (rules_read.c) ---- */

/*
 * Where faults go while one definition is built: the file, the offset that
 * faults fall back to (the step's or process's), a prefix for messages such
 * as `step "get-deal": `, and the subject named by unknown-key messages.
 */
typedef struct cv_build {
    cv_loading *load;
    lua_State *L;
    const cv_source *source;
    size_t at;
    char prefix[160];
    char subject[160];
} cv_build;

/* Reports prefix + message at offset at (or b->at when at is not found). */
void cv_build_fault(cv_build *b, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports a message without the prefix. */
void cv_build_fault_plain(cv_build *b, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns the offset of key at or after from, or from when the search finds nothing. */
size_t cv_build_key_at(const cv_build *b, size_t from, const char *key);

/* Pushes t[key] of the table at idx without metamethods; returns its type. */
int cv_build_get(lua_State *L, int idx, const char *key);

/* True when the table at idx has exactly the keys 1..n; sets *n. */
bool cv_build_is_list(lua_State *L, int idx, size_t *n);

/*
 * Reports every key of the table at idx that is not in allowed (a NULL-
 * terminated list), in sorted order, naming subject, searching lines from.
 * Returns how many it reported.
 */
size_t cv_build_check_keys(cv_build *b, int idx, size_t from, const char *subject,
                           const char *const *allowed);

/*
 * Reads optional string field key of the table at idx. Returns false after
 * reporting a fault when it has another type; *out is a new string or NULL
 * when absent. label names the field in messages.
 */
bool cv_build_string(cv_build *b, int idx, const char *key, const char *label, size_t from,
                     char **out);

/*
 * Reads optional field key as a list of strings into *out (a new array of
 * new strings, *count long). what names the elements in messages ("step
 * ids"). Sets *present when the field is there.
 */
bool cv_build_string_list(cv_build *b, int idx, const char *key, const char *label,
                          const char *what, size_t from, char ***out, size_t *count,
                          bool *present);

void cv_build_free_strings(char **strings, size_t count);

/*
 * Reads optional duration field key ("30s" or a number of seconds) into
 * milliseconds. Zero passes, so callers that need more check it. *present
 * is set when the field is there.
 */
bool cv_build_duration(cv_build *b, int idx, const char *key, const char *label, size_t from,
                       int64_t *out_ms, bool *present);

/* Reports a name that is not a subject token; returns whether it is one. */
bool cv_build_check_token(cv_build *b, size_t at, const char *what, const char *name);

/*
 * Starts building declaration decl (of kind "process", "module" or
 * "operation"): sets up b, checks the name and that a definition of the
 * right type was given and is not a duplicate. On success pushes the
 * definition and returns true; otherwise the faults are reported.
 */
bool cv_build_open_decl(cv_build *b, cv_loading *load, const cv_decl *decl);

/* ---- rules_module.c ---- */

void cv_rules_build_operations(cv_loading *load);
void cv_rules_build_modules(cv_loading *load);

/* Parses a transport name ("nats", "http", "queue", "lua"). */
bool cv_rules_parse_transport(const char *text, cv_transport *out);

const char *cv_rules_transport_name(cv_transport transport);

/* Returns the module named name, or NULL. */
const cv_module *cv_rules_find_module(const cv_rules *rules, const char *name);

/* Returns the Lua reference of custom operation name, or CV_NO_REF (a cv_operation_parse lookup). */
int cv_rules_find_operation(void *rules, const char *name);

/* ---- rules_build.c and rules_condition.c ---- */

void cv_rules_build_processes(cv_loading *load);

/* The steps of the process being built, for resolving step ids to indices. */
typedef struct cv_step_names {
    size_t count;
    char **ids;
} cv_step_names;

/*
 * Reads optional field key as a list of step ids, resolved to indices.
 * Unknown ids are reported as `<label> names unknown step "x"`.
 */
bool cv_build_step_list(cv_build *b, const cv_step_names *names, int idx, const char *key,
                        const char *label, size_t from, cv_step_list *out, bool *present);

/*
 * Builds the condition list at idx (a Lua list of nodes) into out. path is
 * the list's name in messages ("condition", "condition[2].success");
 * *cursor is where the text search for the next node starts, and advances.
 */
void cv_build_condition_list(cv_build *b, const cv_step_names *names, int idx, const char *path,
                             size_t *cursor, cv_cond_list *out);

/* ---- freeing ---- */

void cv_rules_free_process(cv_process *process);
void cv_rules_free_module(cv_module *module);

/* ---- script.c ---- */

extern const cv_script_ops cv_rules_script_ops;

#endif
