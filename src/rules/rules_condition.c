/*
 * Building condition trees: each node's test (field with operation, or a
 * Lua `when`), its value, and its outcome (result, success, failure), with
 * the checks that make a node meaningful: a test and an outcome, a value
 * for the operations that compare, an array for `in`, a regular expression
 * that compiles.
 *
 * Node lines come from a text search that moves forward through the step
 * as nodes are built in source order, so a node's own keys are found after
 * the place where the previous node was found.
 */
#include <lauxlib.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonx.h"
#include "engine/condition.h"
#include "engine/path.h"
#include "rules/luajson.h"
#include "rules/rules_internal.h"

static const char *const node_keys[] = {
    "field", "operation", "value", "value_field", "result", "success", "failure", "when", NULL,
};

/* A node being built: where it is, and what it had, for the checks at the end. */
typedef struct node_build {
    cv_build *b;
    const cv_step_names *names;
    int idx;
    const char *path; /* "condition[2].success[1]" */
    size_t at;
    bool has_operation;
    bool operation_ok;
    bool has_when;     /* `when` is given, even with a wrong type */
    bool has_outcome;  /* result, success or failure is given, even with a wrong type */
    bool has_unknown;  /* a key is unknown, probably a misspelt test or outcome */
} node_build;

/* Finds where the node starts: its first test key, else any key it has. */
static size_t locate_node(const cv_build *b, lua_State *L, int idx, size_t cursor)
{
    static const char *const keys[] = {"field", "when", "operation", "result", "success",
                                       "failure", "value", NULL};
    size_t best = CV_SOURCE_NOT_FOUND;
    for (const char *const *key = keys; *key != NULL; key++) {
        bool has = cv_build_get(L, idx, *key) != LUA_TNIL;
        lua_pop(L, 1);
        if (!has)
            continue;
        size_t at = cv_source_find_key(b->source, cursor, *key);
        if (at < best)
            best = at;
        if (best != CV_SOURCE_NOT_FOUND && (*key == keys[0] || *key == keys[1]))
            break;
    }
    return best != CV_SOURCE_NOT_FOUND ? best : cursor;
}

static void read_path(node_build *n, const char *key, bool *has, cv_path *out)
{
    char *text = NULL;
    char label[CV_DECISION_PATH_MAX + 16];
    snprintf(label, sizeof label, "%s.%s", n->path, key);
    /* A bad field still counts as given, so that it is not also reported as missing. */
    if (!cv_build_string(n->b, n->idx, key, label, n->at, &text)) {
        *has = true;
        return;
    }
    if (text == NULL)
        return;
    cv_error err;
    *has = true;
    if (cv_path_parse(out, text, &err) != CV_OK)
        cv_build_fault(n->b, cv_build_key_at(n->b, n->at, key), "%s: %s", label, err.text);
    free(text);
}

static void read_operation(node_build *n, cv_cond_node *node)
{
    char *text = NULL;
    char label[CV_DECISION_PATH_MAX + 16];
    snprintf(label, sizeof label, "%s.operation", n->path);
    if (!cv_build_string(n->b, n->idx, "operation", label, n->at, &text)) {
        n->has_operation = true;
        return;
    }
    if (text == NULL)
        return;
    n->has_operation = true;
    cv_error err;
    if (cv_operation_parse(&node->op, text, cv_rules_find_operation, n->b->load->rules, &err) ==
        CV_OK)
        n->operation_ok = true;
    else
        cv_build_fault(n->b, cv_build_key_at(n->b, n->at, "operation"), "%s: %s", label, err.text);
    free(text);
}

static void read_when(node_build *n, cv_cond_node *node)
{
    lua_State *L = n->b->L;
    int type = cv_build_get(L, n->idx, "when");
    n->has_when = type != LUA_TNIL;
    if (type == LUA_TFUNCTION) {
        node->when_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return;
    }
    if (type != LUA_TNIL)
        cv_build_fault(n->b, cv_build_key_at(n->b, n->at, "when"),
                       "%s.when must be a function, got %s", n->path, lua_typename(L, type));
    lua_pop(L, 1);
}

static void read_value(node_build *n, cv_cond_node *node)
{
    lua_State *L = n->b->L;
    if (cv_build_get(L, n->idx, "value") != LUA_TNIL) {
        char root[CV_DECISION_PATH_MAX + 16];
        cv_error err;
        snprintf(root, sizeof root, "%s.value", n->path);
        if (cv_luajson_to_json(L, -1, root, &node->value, &err) != CV_OK)
            cv_build_fault(n->b, cv_build_key_at(n->b, n->at, "value"), "%s", err.text);
    }
    lua_pop(L, 1);
}

static void read_list(node_build *n, const char *key, bool *has, cv_cond_list *out, size_t *cursor)
{
    lua_State *L = n->b->L;
    int type = cv_build_get(L, n->idx, key);
    size_t at = cv_build_key_at(n->b, n->at, key);
    char path[CV_DECISION_PATH_MAX];
    size_t count;

    snprintf(path, sizeof path, "%s.%s", n->path, key);
    n->has_outcome = n->has_outcome || type != LUA_TNIL;
    if (type == LUA_TTABLE && cv_build_is_list(L, -1, &count)) {
        *has = true;
        cv_build_condition_list(n->b, n->names, lua_gettop(L), path, cursor, out);
    } else if (type == LUA_TTABLE) {
        cv_build_fault(n->b, at,
                       "%s must be a list of condition nodes; to give one node, wrap it in "
                       "another { }",
                       path);
    } else if (type != LUA_TNIL) {
        cv_build_fault(n->b, at, "%s must be a list of condition nodes, got %s", path,
                       lua_typename(L, type));
    }
    lua_pop(L, 1);
}

/* ---- checks on the finished node ---- */

static bool compares(cv_op_name name)
{
    return name >= CV_OP_EQ && name <= CV_OP_REGEX;
}

static void compile_regex(node_build *n, cv_cond_node *node, size_t at)
{
    regex_t *regex = calloc(1, sizeof *regex);
    if (regex == NULL)
        return;
    int rc = regcomp(regex, json_string_value(node->value), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char reason[256];
        regerror(rc, regex, reason, sizeof reason);
        cv_build_fault(n->b, at, "%s: regex \"%s\" does not compile: %s", n->path,
                       json_string_value(node->value), reason);
        free(regex);
        return;
    }
    node->regex = regex;
}

static void check_value(node_build *n, cv_cond_node *node)
{
    const char *op = node->op.text;
    cv_op_name name = node->op.name;
    bool has_value = node->value != NULL;
    size_t at = cv_build_key_at(n->b, n->at, has_value ? "value" : "operation");

    if (compares(name) && !has_value && !node->has_value_field) {
        cv_build_fault(n->b, at, "%s: operation \"%s\" needs a value or value_field", n->path, op);
    } else if (!compares(name) && name != CV_OP_CUSTOM && (has_value || node->has_value_field)) {
        cv_build_fault(n->b, at, "%s: operation \"%s\" takes no value", n->path, op);
    } else if (name == CV_OP_IN && has_value && json_is_object(node->value) &&
               json_object_size(node->value) == 0) {
        /* An empty Lua table converts to {}; as the value of `in` it is the empty list. */
        json_decref(node->value);
        node->value = json_array();
    } else if (name == CV_OP_IN && has_value && !json_is_array(node->value)) {
        cv_build_fault(n->b, at, "%s: operation \"%s\" needs an array value, got %s", n->path, op,
                       cv_json_type_name(node->value));
    } else if (name == CV_OP_REGEX && node->has_value_field) {
        cv_build_fault(n->b, cv_build_key_at(n->b, n->at, "value_field"),
                       "%s: operation \"%s\" needs a literal string value, not value_field",
                       n->path, op);
    } else if ((name == CV_OP_REGEX || name == CV_OP_STARTS || name == CV_OP_ENDS) && has_value &&
               !json_is_string(node->value)) {
        cv_build_fault(n->b, at, "%s: operation \"%s\" needs a string value, got %s", n->path, op,
                       cv_json_type_name(node->value));
    } else if (name == CV_OP_REGEX && has_value) {
        compile_regex(n, node, at);
    }
}

static void check_node(node_build *n, cv_cond_node *node)
{
    bool has_when = n->has_when;
    bool has_field = node->has_field;

    if (has_when && (has_field || n->has_operation))
        cv_build_fault(n->b, n->at,
                       "%s has both when and field/operation; a node tests either when, or field "
                       "with operation",
                       n->path);
    else if (!has_when && !has_field && !n->has_operation && !n->has_unknown)
        cv_build_fault(n->b, n->at, "%s has no test (give field and operation, or when)", n->path);
    else if (has_field && !n->has_operation && !n->has_unknown)
        cv_build_fault(n->b, n->at, "%s has field but no operation", n->path);
    else if (!has_field && n->has_operation && !has_when && !n->has_unknown)
        cv_build_fault(n->b, n->at, "%s has operation but no field", n->path);

    if (!node->has_result && !n->has_outcome && !n->has_unknown)
        cv_build_fault(n->b, n->at, "%s has no outcome (give result, success or failure)",
                       n->path);
    if (node->has_result && node->has_success)
        cv_build_fault(n->b, cv_build_key_at(n->b, n->at, "success"),
                       "%s has both result and success; success would never be evaluated",
                       n->path);
    if (node->value != NULL && node->has_value_field)
        cv_build_fault(n->b, cv_build_key_at(n->b, n->at, "value_field"),
                       "%s has both value and value_field", n->path);
    else if (n->operation_ok)
        check_value(n, node);
}

static void build_node(cv_build *b, const cv_step_names *names, int idx, const char *path,
                       size_t *cursor, cv_cond_node *node)
{
    lua_State *L = b->L;
    node_build n = {.b = b, .names = names, .idx = idx, .path = path,
                    .at = locate_node(b, L, idx, *cursor)};
    char subject[CV_DECISION_PATH_MAX + 200];
    char label[CV_DECISION_PATH_MAX + 16];

    *cursor = n.at + 1;
    node->line = cv_source_line(b->source, n.at);
    snprintf(subject, sizeof subject, "%s of %s", path, b->subject);
    n.has_unknown = cv_build_check_keys(b, idx, n.at, subject, node_keys) > 0;

    read_path(&n, "field", &node->has_field, &node->field);
    read_operation(&n, node);
    read_when(&n, node);
    read_value(&n, node);
    read_path(&n, "value_field", &node->has_value_field, &node->value_field);
    snprintf(label, sizeof label, "%s.result", path);
    cv_build_step_list(b, names, idx, "result", label, n.at, &node->result, &node->has_result);
    read_list(&n, "success", &node->has_success, &node->success, cursor);
    read_list(&n, "failure", &node->has_failure, &node->failure, cursor);
    check_node(&n, node);
}

void cv_build_condition_list(cv_build *b, const cv_step_names *names, int idx, const char *path,
                             size_t *cursor, cv_cond_list *out)
{
    lua_State *L = b->L;
    size_t count = 0;

    idx = lua_absindex(L, idx);
    memset(out, 0, sizeof *out);
    if (!cv_build_is_list(L, idx, &count) || count == 0)
        return;
    out->nodes = calloc(count, sizeof *out->nodes);
    if (out->nodes == NULL)
        return;
    out->count = count;

    for (size_t i = 0; i < count; i++) {
        cv_cond_node *node = &out->nodes[i];
        char node_path[CV_DECISION_PATH_MAX];
        node->when_ref = CV_NO_REF;
        node->op.custom_ref = CV_NO_REF;
        snprintf(node_path, sizeof node_path, "%s[%zu]", path, i + 1);

        int type = lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (type == LUA_TTABLE)
            build_node(b, names, lua_gettop(L), node_path, cursor, node);
        else
            cv_build_fault(b, *cursor, "%s must be a table, got %s", node_path,
                           lua_typename(L, type));
        lua_pop(L, 1);
    }
}
