/*
 * The script interface the engine calls (route, when, custom operations)
 * and Lua modules, on top of the sandbox: arguments are converted from JSON
 * once per call, inside the protected call, and results back to JSON.
 *
 * `null` is truthy in Lua because it is a userdata. As the result of a
 * `when` or of a custom operation it counts as false, as JSON null would.
 */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "rules/luajson.h"
#include "rules/rules_internal.h"

#define MAX_ARGS 2

typedef struct call_args {
    int ref;
    int count;
    const json_t *values[MAX_ARGS]; /* NULL passes nil */
} call_args;

static int push_call(lua_State *L, void *context)
{
    const call_args *args = context;
    lua_rawgeti(L, LUA_REGISTRYINDEX, args->ref);
    for (int i = 0; i < args->count; i++)
        cv_luajson_push(L, args->values[i]);
    return args->count;
}

/* Calls args->ref and leaves its one result on the stack. */
static cv_status call(cv_script *script, const call_args *args, cv_error *err)
{
    cv_rules *rules = script->context;
    return cv_sandbox_call(rules->sandbox, push_call, (void *)args, 1, err);
}

/* Truthiness of the result on top of the stack (popped), with null false. */
static bool pop_truth(lua_State *L)
{
    bool truth = lua_toboolean(L, -1) && !cv_luajson_is_null(L, -1);
    lua_pop(L, 1);
    return truth;
}

static const char *type_name(lua_State *L, int idx)
{
    return cv_luajson_is_null(L, idx) ? "null" : luaL_typename(L, idx);
}

/* Converts the list of step ids at the top of the stack into a JSON array. */
static cv_status route_steps(lua_State *L, json_t **out, cv_error *err)
{
    size_t n = 0;
    if (lua_type(L, -1) != LUA_TTABLE)
        return cv_error_set(err, CV_ERR_SCRIPT,
                            "route must return a list of step ids or nil, got %s",
                            type_name(L, -1));
    if (!cv_build_is_list(L, -1, &n))
        return cv_error_set(err, CV_ERR_SCRIPT,
                            "route must return a list of step ids or nil, got a table with keys "
                            "other than 1..n");

    json_t *steps = json_array();
    for (size_t i = 1; steps != NULL && i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        json_t *id = lua_type(L, -1) == LUA_TSTRING ? json_string(lua_tostring(L, -1)) : NULL;
        if (id == NULL || json_array_append_new(steps, id) != 0) {
            cv_error_set(err, CV_ERR_SCRIPT,
                         "route must return a list of step ids or nil, got a list with %s at [%zu]",
                         type_name(L, -1), i);
            lua_pop(L, 1);
            json_decref(steps);
            return CV_ERR_SCRIPT;
        }
        lua_pop(L, 1);
    }
    if (steps == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory reading a route's result");
    *out = steps;
    return CV_OK;
}

static cv_status script_route(cv_script *script, int ref, const json_t *data, json_t **out_steps,
                              cv_error *err)
{
    cv_rules *rules = script->context;
    call_args args = {ref, 1, {data}};
    cv_status status = call(script, &args, err);
    if (status != CV_OK)
        return status;

    json_t *steps = NULL;
    if (lua_type(rules->L, -1) != LUA_TNIL)
        status = route_steps(rules->L, &steps, err);
    lua_pop(rules->L, 1);
    if (status == CV_OK)
        *out_steps = steps;
    return status;
}

static cv_status script_when(cv_script *script, int ref, const json_t *data, bool *out,
                             cv_error *err)
{
    cv_rules *rules = script->context;
    call_args args = {ref, 1, {data}};
    cv_status status = call(script, &args, err);
    if (status == CV_OK)
        *out = pop_truth(rules->L);
    return status;
}

static cv_status script_operation(cv_script *script, int ref, const json_t *value,
                                  const json_t *arg, bool *out, cv_error *err)
{
    cv_rules *rules = script->context;
    call_args args = {ref, 2, {value, arg}};
    cv_status status = call(script, &args, err);
    if (status == CV_OK)
        *out = pop_truth(rules->L);
    return status;
}

const cv_script_ops cv_rules_script_ops = {
    .route = script_route,
    .when = script_when,
    .operation = script_operation,
};

cv_status cv_rules_run_module(cv_rules *rules, const cv_module *module, const json_t *input,
                              const json_t *params, json_t **out, cv_error *err)
{
    if (module->run_ref == CV_NO_REF)
        return cv_error_set(err, CV_ERR_INVALID, "module \"%s\" has no run function",
                            module->name);

    call_args args = {module->run_ref, 2, {input, params}};
    cv_status status = call(&rules->script, &args, err);
    if (status != CV_OK)
        return cv_error_prefix(err, "module \"%s\"", module->name);

    json_t *result = NULL;
    status = cv_luajson_to_json(rules->L, -1, "result", &result, err);
    lua_pop(rules->L, 1);
    if (status != CV_OK) {
        char cause[CV_ERROR_TEXT_MAX];
        snprintf(cause, sizeof cause, "%s", err ? err->text : "");
        return cv_error_set(err, CV_ERR_SCRIPT, "module \"%s\": %s", module->name, cause);
    }
    *out = result;
    return CV_OK;
}
