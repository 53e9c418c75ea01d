/*
 * The rules loader's public side: loading a folder into a cv_rules (the
 * stages are described in rules_internal.h), looking definitions up, and
 * freeing them.
 */
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/lua_embedded.h"
#include "rules/rules_internal.h"

static void add_fault(cv_loading *load, const char *file, int line, char *message)
{
    if (load->faults == load->fault_capacity) {
        size_t capacity = load->fault_capacity ? load->fault_capacity * 2 : 16;
        cv_fault *grown = realloc(load->fault_list, capacity * sizeof *grown);
        if (grown == NULL) {
            free(message);
            load->faults++; /* still counted, so the load fails */
            return;
        }
        load->fault_list = grown;
        load->fault_capacity = capacity;
    }
    /* A message that could not be formatted still counts, with its slot left empty. */
    load->fault_list[load->faults] = (cv_fault){file, line, load->faults, message};
    load->faults++;
}

void cv_rules_fault(cv_loading *load, const char *file, int line, const char *fmt, ...)
{
    char what[2048];
    char *message = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);

    size_t size = strlen(what) + (file ? strlen(file) : 0) + 32;
    message = malloc(size);
    if (message != NULL && file != NULL && line > 0)
        snprintf(message, size, "%s:%d: %s", file, line, what);
    else if (message != NULL && file != NULL)
        snprintf(message, size, "%s: %s", file, what);
    else if (message != NULL)
        snprintf(message, size, "%s", what);
    add_fault(load, file, line, message);
}

/*
 * Returns the length of the chunk name Lua put before ":LINE:" in message
 * when it names file: the path itself or, for a path longer than
 * LUA_IDSIZE, "..." and the path's end. Returns 0 otherwise.
 */
static size_t chunk_prefix(const char *file, const char *message)
{
    size_t len = strlen(file);
    if (strncmp(message, file, len) == 0 && message[len] == ':')
        return len;
    if (strncmp(message, "...", 3) != 0)
        return 0;
    const char *colon = strchr(message + 3, ':');
    size_t tail = colon ? (size_t)(colon - message) - 3 : 0;
    if (tail == 0 || tail > len || strncmp(message + 3, file + len - tail, tail) != 0)
        return 0;
    return tail + 3;
}

void cv_rules_fault_lua(cv_loading *load, const char *file, const char *message)
{
    size_t prefix = chunk_prefix(file, message);
    if (prefix == 0) {
        cv_rules_fault(load, file, 0, "%s", message);
        return;
    }
    char *end = NULL;
    long line = strtol(message + prefix + 1, &end, 10);
    if (end == message + prefix + 1 || *end != ':') {
        cv_rules_fault(load, file, 0, "%s", message + prefix + 1);
        return;
    }
    /* Lua shortens long chunk names; the fault names the whole path again. */
    size_t size = strlen(file) + strlen(end) + 32;
    char *text = malloc(size);
    if (text == NULL)
        return;
    snprintf(text, size, "%s:%ld%s", file, line, end);
    add_fault(load, file, (int)line, text);
}

static int compare_faults(const void *a, const void *b)
{
    const cv_fault *x = a;
    const cv_fault *y = b;
    int by_file = strcmp(x->file ? x->file : "", y->file ? y->file : "");
    if (by_file != 0)
        return by_file;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

void cv_rules_report_faults(cv_loading *load)
{
    size_t kept = load->faults < load->fault_capacity ? load->faults : load->fault_capacity;
    if (kept > 0)
        qsort(load->fault_list, kept, sizeof *load->fault_list, compare_faults);
    for (size_t i = 0; i < kept; i++) {
        if (load->fault_list[i].message != NULL)
            cv_diag_add(load->diag, NULL, 0, "%s", load->fault_list[i].message);
        free(load->fault_list[i].message);
    }
    free(load->fault_list);
    load->fault_list = NULL;
    load->fault_capacity = 0;
}

/* Runs lua/dsl.lua, which defines `process`, `module` and `operation` for rules. */
static cv_status load_dsl(cv_loading *load, cv_error *err)
{
    cv_rules *rules = load->rules;
    for (const cv_lua_source *source = cv_lua_sources; source->name != NULL; source++) {
        if (strcmp(source->name, "dsl") != 0)
            continue;
        cv_status status = cv_sandbox_run_engine(rules->sandbox, source->name, source->text,
                                                 source->length, err);
        if (status != CV_OK)
            return cv_error_prefix(err, "cannot set up the rules language");
        load->dsl_ref = luaL_ref(rules->L, LUA_REGISTRYINDEX);
        cv_sandbox_seal(rules->sandbox);
        return CV_OK;
    }
    return cv_error_set(err, CV_ERR_INVALID, "this build lacks lua/dsl.lua, the rules language");
}

/*
 * Runs the build stages in a protected call: they use the Lua API, which
 * raises an error when memory runs out, and outside a protected call that
 * would abort the program.
 */
static int build_definitions(lua_State *L)
{
    cv_loading *load = lua_touserdata(L, 1);
    cv_rules_build_operations(load);
    cv_rules_build_modules(load);
    cv_rules_build_processes(load);
    return 0;
}

/* Returns a copy of dir without trailing slashes, so that paths in messages read cleanly. */
static char *normalize_dir(const char *dir)
{
    char *copy = strdup(dir);
    if (copy == NULL)
        return NULL;
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0';
    return copy;
}

static cv_status load_into(cv_loading *load, const char *dir, const cv_rules_limits *limits,
                           cv_error *err)
{
    cv_rules *rules = load->rules;
    cv_status status = cv_sandbox_create(&rules->sandbox, limits ? limits->instruction_budget : 0,
                                         limits ? limits->memory_budget : 0, err);
    if (status != CV_OK)
        return status;
    rules->L = cv_sandbox_state(rules->sandbox);

    status = load_dsl(load, err);
    if (status == CV_OK)
        status = cv_rules_run_files(load, dir, err);
    if (status != CV_OK)
        return status;

    lua_pushcfunction(rules->L, build_definitions);
    lua_pushlightuserdata(rules->L, load);
    if (lua_pcall(rules->L, 1, 0, 0) != LUA_OK) {
        lua_pop(rules->L, 1);
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory building the rules in %s", dir);
    }
    if (load->faults > 0)
        return cv_error_set(err, CV_ERR_INVALID, "%zu %s in %s", load->faults,
                            load->faults == 1 ? "fault" : "faults", dir);
    return CV_OK;
}

cv_status cv_rules_load(cv_rules **out, const char *dir, const cv_rules_limits *limits,
                        cv_diag *diag, cv_error *err)
{
    cv_diag unused = {0};
    cv_loading load = {.diag = diag ? diag : &unused, .dsl_ref = LUA_NOREF};
    char *folder = normalize_dir(dir);
    cv_rules *rules = calloc(1, sizeof *rules);
    cv_status status;

    if (folder == NULL || rules == NULL) {
        status = cv_error_set(err, CV_ERR_NOMEM, "out of memory loading rules from %s", dir);
        goto out;
    }
    rules->script.ops = &cv_rules_script_ops;
    rules->script.context = rules;
    load.rules = rules;
    status = load_into(&load, folder, limits, err);

out:
    cv_rules_report_faults(&load);
    cv_rules_loading_free(&load);
    cv_diag_free(&unused);
    free(folder);
    if (status != CV_OK) {
        cv_rules_destroy(rules);
        return status;
    }
    *out = rules;
    return CV_OK;
}

void cv_rules_destroy(cv_rules *rules)
{
    if (rules == NULL)
        return;
    for (size_t i = 0; i < rules->process_count; i++)
        cv_rules_free_process(&rules->processes[i]);
    free(rules->processes);
    for (size_t i = 0; i < rules->module_count; i++)
        cv_rules_free_module(&rules->modules[i]);
    free(rules->modules);
    for (size_t i = 0; i < rules->operation_count; i++) {
        free(rules->operations[i].name);
        free(rules->operations[i].file);
    }
    free(rules->operations);
    cv_sandbox_destroy(rules->sandbox);
    free(rules);
}

size_t cv_rules_process_count(const cv_rules *rules)
{
    return rules->process_count;
}

const cv_process *cv_rules_process_at(const cv_rules *rules, size_t index)
{
    return index < rules->process_count ? &rules->processes[index] : NULL;
}

size_t cv_rules_module_count(const cv_rules *rules)
{
    return rules->module_count;
}

const cv_module *cv_rules_module_at(const cv_rules *rules, size_t index)
{
    return index < rules->module_count ? &rules->modules[index] : NULL;
}

const cv_process *cv_rules_find_process(const cv_rules *rules, const char *name)
{
    for (size_t i = 0; i < rules->process_count; i++) {
        if (strcmp(rules->processes[i].name, name) == 0)
            return &rules->processes[i];
    }
    return NULL;
}

int cv_process_find_step(const cv_process *process, const char *id)
{
    for (size_t i = 0; i < process->step_count; i++) {
        if (strcmp(process->steps[i].id, id) == 0)
            return (int)i;
    }
    return -1;
}

cv_script *cv_rules_script(cv_rules *rules)
{
    return &rules->script;
}
