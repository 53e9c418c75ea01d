/*
 * Building processes and their steps from the Lua tables that `process`
 * (or a file's return value) gave, resolving every step id to an index and
 * reporting each fault with its line.
 *
 * Steps come as a map of step id to step, or, as in the seed format, as a
 * list of steps that each carry an `id`. A map has no order, so its steps
 * are put in the order they appear in the file (found by text search),
 * which keeps graphs and diagnostics in source order.
 */
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "engine/condition.h"
#include "engine/path.h"
#include "rules/luajson.h"
#include "rules/rules_internal.h"

#define DEFAULT_RETRY_MAX 3
#define DEFAULT_RETRY_BACKOFF_MS 1000
#define DEFAULT_RETRY_FACTOR 2.0
#define DEFAULT_RETRY_MAX_BACKOFF_MS 60000

static const char *const process_keys[] = {
    "description", "start", "steps", "max_visits", "intake", NULL,
};

static const char *const returned_process_keys[] = {
    "name", "description", "start", "steps", "max_visits", "intake", NULL,
};

static const char *const step_keys[] = {
    "id",    "description", "subsystem", "next",    "prev",     "condition", "route",
    "params", "input",      "timeout",   "retry",   "on_error", "join",      "transport",
    NULL,
};

static const char *const retry_keys[] = {"max", "backoff", "factor", "max_backoff", "jitter", NULL};

static const char *const intake_keys[] = {"rate", "batch", "every", "schedule", NULL};

/* One step found in `steps`, before it is built. */
typedef struct step_entry {
    char *id;
    lua_Integer position; /* index in a list of steps; 0 in a map */
    size_t at;            /* where the step starts in the file */
} step_entry;

static int find_step(const cv_step_names *names, const char *id)
{
    for (size_t i = 0; i < names->count; i++) {
        if (strcmp(names->ids[i], id) == 0)
            return (int)i;
    }
    return -1;
}

bool cv_build_step_list(cv_build *b, const cv_step_names *names, int idx, const char *key,
                        const char *label, size_t from, cv_step_list *out, bool *present)
{
    char **ids = NULL;
    size_t count = 0;
    bool ok = true;

    memset(out, 0, sizeof *out);
    if (!cv_build_string_list(b, idx, key, label, "step ids", from, &ids, &count, present))
        return false;
    if (!*present)
        return true;

    size_t at = cv_build_key_at(b, from, key);
    out->steps = malloc((count ? count : 1) * sizeof *out->steps);
    for (size_t i = 0; out->steps != NULL && i < count; i++) {
        out->steps[i] = find_step(names, ids[i]);
        if (out->steps[i] < 0) {
            cv_build_fault(b, cv_source_find_string(b->source, at, ids[i]),
                           "%s names unknown step \"%s\"", label, ids[i]);
            ok = false;
        }
    }
    out->count = out->steps != NULL ? count : 0;
    cv_build_free_strings(ids, count);
    return ok && out->steps != NULL;
}

/* ---- steps ---- */

static void read_params(cv_build *b, int idx, size_t from, cv_step *step)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, "params");
    size_t at = cv_build_key_at(b, from, "params");
    size_t n;

    if (type == LUA_TTABLE && cv_build_is_list(L, -1, &n) && n > 0) {
        cv_build_fault(b, at, "params must be a table of named values, got a list");
    } else if (type == LUA_TTABLE) {
        cv_error err;
        json_t *params = NULL;
        if (cv_luajson_to_json(L, -1, "params", &params, &err) == CV_OK) {
            json_decref(step->params);
            step->params = params;
        } else {
            cv_build_fault(b, at, "%s", err.text);
        }
    } else if (type != LUA_TNIL) {
        cv_build_fault(b, at, "params must be a table, got %s", lua_typename(L, type));
    }
    lua_pop(L, 1);
}

static void read_input(cv_build *b, int idx, size_t from, cv_step *step)
{
    char **texts = NULL;
    size_t count = 0;
    bool present = false;

    if (!cv_build_string_list(b, idx, "input", "input", "field paths", from, &texts, &count,
                              &present) ||
        !present)
        return;
    step->input = calloc(count ? count : 1, sizeof *step->input);
    for (size_t i = 0; step->input != NULL && i < count; i++) {
        cv_error err;
        if (cv_path_parse(&step->input[step->input_count], texts[i], &err) == CV_OK)
            step->input_count++;
        else
            cv_build_fault(b, cv_build_key_at(b, from, "input"), "input[%zu]: %s", i + 1,
                           err.text);
    }
    cv_build_free_strings(texts, count);
}

static void read_route(cv_build *b, int idx, size_t from, cv_step *step)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, "route");
    if (type == LUA_TFUNCTION) {
        step->route_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return;
    }
    if (type != LUA_TNIL)
        cv_build_fault(b, cv_build_key_at(b, from, "route"), "route must be a function, got %s",
                       lua_typename(L, type));
    lua_pop(L, 1);
}

static void read_condition(cv_build *b, const cv_step_names *names, int idx, size_t from,
                           cv_step *step)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, "condition");
    size_t at = cv_build_key_at(b, from, "condition");
    size_t n;

    if (type == LUA_TTABLE && !cv_build_is_list(L, -1, &n)) {
        cv_build_fault(b, at,
                       "condition must be a list of condition nodes; to give one node, wrap it "
                       "in another { }");
    } else if (type == LUA_TTABLE) {
        size_t cursor = at;
        step->has_condition = true;
        cv_build_condition_list(b, names, lua_gettop(L), "condition", &cursor, &step->condition);
    } else if (type != LUA_TNIL) {
        cv_build_fault(b, at, "condition must be a list of condition nodes, got %s",
                       lua_typename(L, type));
    }
    lua_pop(L, 1);
}

static bool read_integer(lua_State *L, int idx, lua_Integer *out)
{
    int is_integer = 0;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return false;
    *out = lua_tointegerx(L, idx, &is_integer);
    return is_integer != 0;
}

/* Describes a bad value for a message: its number, or its type. */
static void describe_value(lua_State *L, int idx, char *buf, size_t size)
{
    if (lua_type(L, idx) == LUA_TNUMBER)
        snprintf(buf, size, "%.14g", (double)lua_tonumber(L, idx));
    else
        snprintf(buf, size, "%s", luaL_typename(L, idx));
}

static void read_retry_numbers(cv_build *b, int idx, size_t from, cv_retry *retry)
{
    lua_State *L = b->L;
    lua_Integer max = 0;
    char got[64];

    int type = cv_build_get(L, idx, "max");
    if (type != LUA_TNIL && (!read_integer(L, -1, &max) || max < 0 || max > CV_RETRY_MAX_LIMIT)) {
        describe_value(L, -1, got, sizeof got);
        cv_build_fault(b, cv_build_key_at(b, from, "max"),
                       "retry.max must be an integer from 0 to %d, got %s", CV_RETRY_MAX_LIMIT,
                       got);
    } else if (type != LUA_TNIL) {
        retry->max = (int)max;
    }
    lua_pop(L, 1);

    type = cv_build_get(L, idx, "factor");
    double factor = lua_tonumber(L, -1);
    if (type != LUA_TNIL && (type != LUA_TNUMBER || !(factor >= 1.0) || !isfinite(factor))) {
        describe_value(L, -1, got, sizeof got);
        cv_build_fault(b, cv_build_key_at(b, from, "factor"),
                       "retry.factor must be a number of at least 1, got %s", got);
    } else if (type != LUA_TNIL) {
        retry->factor = factor;
    }
    lua_pop(L, 1);

    type = cv_build_get(L, idx, "jitter");
    if (type == LUA_TBOOLEAN)
        retry->jitter = lua_toboolean(L, -1);
    else if (type != LUA_TNIL)
        cv_build_fault(b, cv_build_key_at(b, from, "jitter"),
                       "retry.jitter must be a boolean, got %s", lua_typename(L, type));
    lua_pop(L, 1);
}

static void read_retry(cv_build *b, int idx, size_t from, cv_step *step)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, "retry");
    size_t at = cv_build_key_at(b, from, "retry");
    bool present;

    if (type != LUA_TTABLE) {
        if (type != LUA_TNIL)
            cv_build_fault(b, at, "retry must be a table, got %s", lua_typename(L, type));
        lua_pop(L, 1);
        return;
    }
    char subject[200];
    snprintf(subject, sizeof subject, "retry of %s", b->subject);
    cv_build_check_keys(b, -1, at, subject, retry_keys);

    cv_retry *retry = &step->retry;
    step->has_retry = true;
    *retry = (cv_retry){DEFAULT_RETRY_MAX, DEFAULT_RETRY_BACKOFF_MS, DEFAULT_RETRY_FACTOR,
                        DEFAULT_RETRY_MAX_BACKOFF_MS, false};
    read_retry_numbers(b, lua_gettop(L), at, retry);
    if (cv_build_duration(b, -1, "backoff", "retry.backoff", at, &retry->backoff_ms, &present) &&
        present && retry->backoff_ms < CV_RETRY_MIN_BACKOFF_MS)
        cv_build_fault(b, cv_build_key_at(b, at, "backoff"),
                       "retry.backoff must be at least %dms, got %lldms", CV_RETRY_MIN_BACKOFF_MS,
                       (long long)retry->backoff_ms);
    if (cv_build_duration(b, -1, "max_backoff", "retry.max_backoff", at, &retry->max_backoff_ms,
                          &present) &&
        retry->max_backoff_ms < retry->backoff_ms && present)
        cv_build_fault(b, cv_build_key_at(b, at, "max_backoff"),
                       "retry.max_backoff (%lldms) is shorter than retry.backoff (%lldms)",
                       (long long)retry->max_backoff_ms, (long long)retry->backoff_ms);
    else if (retry->max_backoff_ms < retry->backoff_ms)
        cv_build_fault(b, cv_build_key_at(b, at, "backoff"),
                       "retry.backoff (%lldms) is longer than the default max_backoff (%lldms); "
                       "write a max_backoff of at least the backoff",
                       (long long)retry->backoff_ms, (long long)retry->max_backoff_ms);
    lua_pop(L, 1);
}

static void read_join(cv_build *b, int idx, size_t from, cv_step *step)
{
    char *join = NULL;
    if (!cv_build_string(b, idx, "join", "join", from, &join) || join == NULL)
        return;
    if (strcmp(join, "all") == 0)
        step->join = CV_JOIN_ALL;
    else
        cv_build_fault(b, cv_build_key_at(b, from, "join"), "join must be \"all\", got \"%s\"",
                       join);
    free(join);
}

/* Links the step to its module and checks that the transport can run it. */
static void link_module(cv_build *b, int idx, size_t from, cv_step *step)
{
    char *text = NULL;
    bool overridden = false;

    step->module = cv_rules_find_module(b->load->rules, step->subsystem);
    step->transport = step->module ? step->module->transport : CV_TRANSPORT_NATS;
    if (cv_build_string(b, idx, "transport", "transport", from, &text) && text != NULL) {
        overridden = cv_rules_parse_transport(text, &step->transport);
        if (!overridden)
            cv_build_fault(b, cv_build_key_at(b, from, "transport"),
                           "unknown transport \"%s\" (expected one of: nats, http, queue, lua)",
                           text);
    }
    free(text);
    if (!overridden)
        return;

    size_t at = cv_build_key_at(b, from, "transport");
    if (step->transport == CV_TRANSPORT_LUA &&
        (step->module == NULL || step->module->run_ref == CV_NO_REF))
        cv_build_fault(b, at, "transport \"lua\" needs a module \"%s\" with a run function",
                       step->subsystem);
    if (step->transport == CV_TRANSPORT_HTTP && (step->module == NULL || step->module->url == NULL))
        cv_build_fault(b, at, "transport \"http\" needs an http module \"%s\" with a url",
                       step->subsystem);
}

static void read_subsystem(cv_build *b, int idx, size_t from, cv_step *step)
{
    if (!cv_build_string(b, idx, "subsystem", "subsystem", from, &step->subsystem))
        return;
    if (step->subsystem == NULL) {
        cv_build_fault(b, b->at, "subsystem is missing");
        return;
    }
    cv_build_check_token(b, cv_build_key_at(b, from, "subsystem"), "subsystem", step->subsystem);
}

static void check_step_id(cv_build *b, int idx, const step_entry *entry)
{
    char *id = NULL;
    if (!cv_text_is_token(entry->id))
        cv_build_fault_plain(b, b->at,
                             "step id \"%s\" is not a valid name (use letters, digits, \"_\" and "
                             "\"-\")",
                             entry->id);
    if (strcmp(entry->id, "request") == 0 || strcmp(entry->id, "instance") == 0)
        cv_build_fault_plain(b, b->at,
                             "step id \"%s\" is reserved (the data document uses it)", entry->id);
    /* In a list of steps the id was read already; in a map it must match its key. */
    if (entry->position == 0 && cv_build_string(b, idx, "id", "id", b->at, &id) && id != NULL &&
        strcmp(id, entry->id) != 0)
        cv_build_fault(b, cv_build_key_at(b, b->at, "id"), "id \"%s\" does not match its key \"%s\"",
                       id, entry->id);
    free(id);
}

static void read_step(cv_build *b, const cv_step_names *names, int idx, const step_entry *entry,
                      cv_step *step)
{
    size_t from = b->at;
    bool present = false;
    bool has_prev = false;
    char *description = NULL;

    cv_build_check_keys(b, idx, from, b->subject, step_keys);
    check_step_id(b, idx, entry);
    cv_build_string(b, idx, "description", "description", from, &description);
    free(description);
    read_subsystem(b, idx, from, step);

    cv_build_step_list(b, names, idx, "next", "next", from, &step->next, &step->has_next);
    cv_build_step_list(b, names, idx, "prev", "prev", from, &step->prev, &has_prev);
    read_condition(b, names, idx, from, step);
    read_route(b, idx, from, step);
    read_params(b, idx, from, step);
    read_input(b, idx, from, step);
    if (cv_build_duration(b, idx, "timeout", "timeout", from, &step->timeout_ms, &present) &&
        present && step->timeout_ms <= 0)
        cv_build_fault(b, cv_build_key_at(b, from, "timeout"), "timeout must be greater than zero");
    if (!present)
        step->timeout_ms = 0;
    read_retry(b, idx, from, step);
    cv_build_step_list(b, names, idx, "on_error", "on_error", from, &step->on_error,
                       &step->has_on_error);
    read_join(b, idx, from, step);
    if (step->join == CV_JOIN_ALL && !has_prev)
        cv_build_fault(b, cv_build_key_at(b, from, "join"),
                       "join = \"all\" needs prev, the steps to wait for");
    if (step->subsystem != NULL)
        link_module(b, idx, from, step);
    if (step->timeout_ms > 0 && step->transport == CV_TRANSPORT_LUA)
        cv_build_fault(b, cv_build_key_at(b, from, "timeout"),
                       "timeout cannot be set on a step with transport \"lua\": it runs "
                       "inside the node, bounded by the rule budgets");
    /* A queue step waits for a worker as long as it takes, unless a timeout is written. */
    if (step->timeout_ms <= 0 && step->module != NULL && step->module->timeout_ms > 0)
        step->timeout_ms = step->module->timeout_ms;
    else if (step->timeout_ms <= 0 && step->transport != CV_TRANSPORT_QUEUE)
        step->timeout_ms = CV_DEFAULT_STEP_TIMEOUT_MS;
}

/* Pushes the table of entry from the steps table at steps. */
static void push_step_table(lua_State *L, int steps, const step_entry *entry)
{
    if (entry->position > 0)
        lua_rawgeti(L, steps, entry->position);
    else
        cv_build_get(L, steps, entry->id);
}

static void build_step(const cv_build *process_build, const cv_step_names *names, int steps,
                       const step_entry *entry, cv_step *step)
{
    cv_build b = *process_build;
    lua_State *L = b.L;

    b.at = entry->at != CV_SOURCE_NOT_FOUND ? entry->at : process_build->at;
    snprintf(b.prefix, sizeof b.prefix, "step \"%s\": ", entry->id);
    snprintf(b.subject, sizeof b.subject, "step \"%s\"", entry->id);

    step->id = strdup(entry->id);
    step->line = cv_source_line(b.source, b.at);
    step->route_ref = CV_NO_REF;
    step->params = json_object();
    push_step_table(L, steps, entry);
    read_step(&b, names, lua_gettop(L), entry, step);
    lua_pop(L, 1);
}

/* ---- finding the steps ---- */

typedef struct step_entries {
    size_t count;
    step_entry *items;
} step_entries;

static void free_entries(step_entries *entries)
{
    for (size_t i = 0; i < entries->count; i++)
        free(entries->items[i].id);
    free(entries->items);
}

static bool add_entry(step_entries *entries, const char *id, lua_Integer position, size_t at)
{
    step_entry *grown = realloc(entries->items, (entries->count + 1) * sizeof *grown);
    if (grown == NULL)
        return false;
    entries->items = grown;
    grown[entries->count] = (step_entry){strdup(id), position, at};
    if (grown[entries->count].id == NULL)
        return false;
    entries->count++;
    return true;
}

static int compare_entries(const void *a, const void *b)
{
    const step_entry *x = a;
    const step_entry *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Reads a map of step id to step (on top of the stack). */
static void collect_map(cv_build *b, size_t at, step_entries *entries)
{
    lua_State *L = b->L;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            cv_build_fault(b, at,
                           "steps has a key of type %s; give steps as a map of step id to step, "
                           "or as a list of steps that each have an id",
                           luaL_typename(L, -2));
        } else if (lua_type(L, -1) != LUA_TTABLE) {
            const char *id = lua_tostring(L, -2);
            cv_build_fault(b, cv_source_find_key(b->source, b->at, id),
                           "step \"%s\" must be a table, got %s", id, luaL_typename(L, -1));
        } else {
            const char *id = lua_tostring(L, -2);
            add_entry(entries, id, 0, cv_source_find_key(b->source, b->at, id));
        }
        lua_pop(L, 1);
    }
    if (entries->count > 0)
        qsort(entries->items, entries->count, sizeof *entries->items, compare_entries);
}

/* Reads element i of a list of steps (on top of the stack). */
static void collect_list_item(cv_build *b, size_t at, lua_Integer i, step_entries *entries)
{
    lua_State *L = b->L;
    int type = lua_rawgeti(L, -1, i);
    if (type != LUA_TTABLE) {
        cv_build_fault(b, at, "steps[%lld] must be a table, got %s", (long long)i,
                       lua_typename(L, type));
        lua_pop(L, 1);
        return;
    }
    type = cv_build_get(L, -1, "id");
    if (type != LUA_TSTRING) {
        if (type == LUA_TNIL)
            cv_build_fault(b, at, "steps[%lld] has no id", (long long)i);
        else
            cv_build_fault(b, at, "steps[%lld].id must be a string, got %s", (long long)i,
                           lua_typename(L, type));
        lua_pop(L, 2);
        return;
    }
    const char *id = lua_tostring(L, -1);
    size_t from = entries->count > 0 && entries->items[entries->count - 1].at != CV_SOURCE_NOT_FOUND
                      ? entries->items[entries->count - 1].at + 1
                      : b->at;
    size_t found = cv_source_find_assignment(b->source, from, "id", id);
    for (size_t k = 0; k < entries->count; k++) {
        if (strcmp(entries->items[k].id, id) == 0) {
            cv_build_fault(b, found, "step \"%s\" is defined twice (steps[%lld] and steps[%lld])",
                           id, (long long)entries->items[k].position, (long long)i);
            lua_pop(L, 2);
            return;
        }
    }
    add_entry(entries, id, i, found);
    lua_pop(L, 2);
}

/* Finds the steps of the process definition at def; pushes the steps table on success. */
static bool collect_steps(cv_build *b, int def, step_entries *entries)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, def, "steps");
    size_t at = cv_build_key_at(b, b->at, "steps");
    size_t n = 0;

    if (type == LUA_TNIL)
        cv_build_fault(b, b->at, "steps is missing");
    else if (type != LUA_TTABLE)
        cv_build_fault(b, at, "steps must be a table, got %s", lua_typename(L, type));
    else if (cv_build_is_list(L, -1, &n) && n == 0)
        cv_build_fault(b, at, "steps is empty");
    else if (n > 0) {
        for (lua_Integer i = 1; i <= (lua_Integer)n; i++)
            collect_list_item(b, at, i, entries);
    } else {
        collect_map(b, at, entries);
    }

    if (type != LUA_TTABLE || (n == 0 && entries->count == 0)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}

/* ---- processes ---- */

static void read_max_visits(cv_build *b, int def, cv_process *process)
{
    lua_State *L = b->L;
    lua_Integer visits = 0;
    char got[64];

    process->max_visits = CV_DEFAULT_MAX_VISITS;
    int type = cv_build_get(L, def, "max_visits");
    if (type != LUA_TNIL && (!read_integer(L, -1, &visits) || visits <= 0 || visits > INT_MAX)) {
        describe_value(L, -1, got, sizeof got);
        cv_build_fault(b, cv_build_key_at(b, b->at, "max_visits"),
                       "max_visits must be a positive integer, got %s", got);
    } else if (type != LUA_TNIL) {
        process->max_visits = (int)visits;
    }
    lua_pop(L, 1);
}

static void read_intake(cv_build *b, int def, cv_process *process)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, def, "intake");
    size_t at = cv_build_key_at(b, b->at, "intake");

    if (type != LUA_TTABLE) {
        if (type != LUA_TNIL)
            cv_build_fault(b, at, "intake must be a table, got %s", lua_typename(L, type));
        lua_pop(L, 1);
        return;
    }
    char subject[200];
    snprintf(subject, sizeof subject, "intake of %s", b->subject);
    cv_build_check_keys(b, -1, at, subject, intake_keys);

    bool ok = true;
    for (const char *const *key = intake_keys; *key != NULL; key++) {
        int value_type = cv_build_get(L, -1, *key);
        if (value_type != LUA_TNIL && value_type != LUA_TSTRING &&
            !(value_type == LUA_TNUMBER && lua_isinteger(L, -1))) {
            char got[64];
            describe_value(L, -1, got, sizeof got);
            cv_build_fault(b, cv_build_key_at(b, at, *key),
                           "intake.%s must be a string or an integer, got %s", *key, got);
            ok = false;
        }
        lua_pop(L, 1);
    }
    cv_error err;
    if (ok && cv_luajson_to_json(L, -1, "intake", &process->intake, &err) != CV_OK)
        cv_build_fault(b, at, "%s", err.text);
    lua_pop(L, 1);
}

static void read_start(cv_build *b, int def, const cv_step_names *names, cv_process *process)
{
    char *start = NULL;
    process->start = -1;
    if (!cv_build_string(b, def, "start", "start", b->at, &start))
        return;
    if (start == NULL) {
        cv_build_fault(b, b->at, "start is missing");
        return;
    }
    process->start = find_step(names, start);
    if (process->start < 0 && names->count > 0)
        cv_build_fault(b, cv_build_key_at(b, b->at, "start"), "start names unknown step \"%s\"",
                       start);
    free(start);
}

static void build_steps(cv_build *b, const step_entries *entries, cv_process *process)
{
    cv_step_names names = {entries->count, calloc(entries->count ? entries->count : 1, sizeof(char *))};
    int steps = lua_gettop(b->L);

    process->steps = calloc(entries->count ? entries->count : 1, sizeof *process->steps);
    if (names.ids == NULL || process->steps == NULL) {
        free(names.ids);
        return;
    }
    for (size_t i = 0; i < entries->count; i++)
        names.ids[i] = entries->items[i].id;
    for (size_t i = 0; i < entries->count; i++)
        build_step(b, &names, steps, &entries->items[i], &process->steps[process->step_count++]);
    free(names.ids);
}

static void read_process(cv_build *b, const cv_decl *decl, int def, cv_process *process)
{
    step_entries entries = {0};
    char *description = NULL;

    cv_build_check_keys(b, def, b->at, b->subject,
                        decl->returned ? returned_process_keys : process_keys);
    cv_build_string(b, def, "description", "description", b->at, &description);
    free(description);
    read_max_visits(b, def, process);
    read_intake(b, def, process);

    if (collect_steps(b, def, &entries)) {
        build_steps(b, &entries, process);
        lua_pop(b->L, 1);
    }
    cv_step_names names = {0, NULL};
    names.ids = calloc(process->step_count ? process->step_count : 1, sizeof(char *));
    for (size_t i = 0; names.ids != NULL && i < process->step_count; i++)
        names.ids[names.count++] = process->steps[i].id;
    read_start(b, def, &names, process);
    free(names.ids);
    free_entries(&entries);
}

void cv_rules_build_processes(cv_loading *load)
{
    cv_rules *rules = load->rules;
    size_t wanted = 0;
    for (size_t i = 0; i < load->decl_count; i++)
        wanted += load->decls[i].kind == CV_DECL_PROCESS;
    rules->processes = calloc(wanted ? wanted : 1, sizeof *rules->processes);
    if (rules->processes == NULL)
        return;

    for (size_t i = 0; i < load->decl_count; i++) {
        cv_decl *decl = &load->decls[i];
        cv_build b;
        if (decl->kind != CV_DECL_PROCESS || !cv_build_open_decl(&b, load, decl))
            continue;
        cv_process *process = &rules->processes[rules->process_count++];
        process->name = strdup(decl->name);
        process->file = strdup(decl->source->path);
        process->line = decl->line;
        read_process(&b, decl, lua_gettop(b.L), process);
        lua_pop(b.L, 1);
    }
}

/* ---- freeing ---- */

static void free_step(cv_step *step)
{
    free(step->id);
    free(step->subsystem);
    free(step->next.steps);
    free(step->prev.steps);
    free(step->on_error.steps);
    cv_condition_list_free(&step->condition);
    json_decref(step->params);
    for (size_t i = 0; i < step->input_count; i++)
        cv_path_free(&step->input[i]);
    free(step->input);
}

void cv_rules_free_process(cv_process *process)
{
    for (size_t i = 0; i < process->step_count; i++)
        free_step(&process->steps[i]);
    free(process->steps);
    free(process->name);
    free(process->file);
    json_decref(process->intake);
}

void cv_rules_free_module(cv_module *module)
{
    free(module->name);
    free(module->file);
    free(module->url);
    free(module->method);
    json_decref(module->headers);
}
