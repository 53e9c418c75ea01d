/*
 * Evaluating a step's `condition` list against the data document.
 *
 * The walk keeps one path buffer, such as "condition[2].success[1]", and
 * writes a node's part of it only when that node decides, descends into
 * `success`/`failure`, or fails. Nodes that merely pass on cost a path
 * lookup and a test, with no formatting and no allocation.
 */
#include "engine/condition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* State shared by the whole walk. path contains the name of the list being walked. */
typedef struct walk {
    const json_t *data;
    cv_script *script;
    cv_error *err;
    char path[CV_DECISION_PATH_MAX];
    const cv_step_list *decision;
} walk;

/* Appends text at len. A path too long for the buffer is cut short, never overrun. */
static size_t path_append(char *path, size_t len, const char *text)
{
    size_t room = CV_DECISION_PATH_MAX - 1 - len;
    size_t n = strlen(text);

    if (n > room)
        n = room;
    memcpy(path + len, text, n);
    path[len + n] = '\0';
    return len + n;
}

/* Appends "[number]", counting from 1 as the Lua source does. */
static size_t path_append_index(char *path, size_t len, size_t number)
{
    char part[32];

    snprintf(part, sizeof part, "[%zu]", number);
    return path_append(path, len, part);
}

static cv_status test_when(walk *w, const cv_cond_node *node, bool *holds)
{
    if (w->script == NULL || w->script->ops->when == NULL)
        return cv_error_set(w->err, CV_ERR_INVALID, "a `when` predicate needs Lua, but no script is given");
    return w->script->ops->when(w->script, node->when_ref, w->data, holds, w->err);
}

static cv_status test_node(walk *w, const cv_cond_node *node, bool *holds)
{
    if (node->when_ref != CV_NO_REF)
        return test_when(w, node, holds);

    const json_t *value = node->has_field ? cv_path_lookup(&node->field, w->data) : NULL;
    const json_t *arg = node->has_value_field ? cv_path_lookup(&node->value_field, w->data)
                                              : node->value;
    return cv_operation_test(&node->op, value, arg, node->regex, w->script, holds, w->err);
}

/* Adds "<node path>.when" or "<node path>.operation \"...\"" in front of err. */
static void prefix_node_error(walk *w, const cv_cond_node *node)
{
    if (node->when_ref != CV_NO_REF)
        cv_error_prefix(w->err, "%s.when", w->path);
    else
        cv_error_prefix(w->err, "%s.operation \"%s\"", w->path,
                        node->op.text ? node->op.text : "");
}

static cv_status evaluate_list(walk *w, const cv_cond_list *list, size_t len, bool *decided);

/* Evaluates node number (from 1) of a list whose name ends the path at len. */
static cv_status evaluate_node(walk *w, const cv_cond_node *node, size_t number, size_t len,
                               bool *decided)
{
    bool holds = false;
    cv_status status = test_node(w, node, &holds);

    len = path_append_index(w->path, len, number);
    if (status != CV_OK) {
        prefix_node_error(w, node);
        return status;
    }

    *decided = false;
    if (holds && node->has_result) {
        w->decision = &node->result;
        *decided = true;
        return CV_OK;
    }
    if (holds && node->has_success)
        return evaluate_list(w, &node->success, path_append(w->path, len, ".success"), decided);
    if (!holds && node->has_failure)
        return evaluate_list(w, &node->failure, path_append(w->path, len, ".failure"), decided);
    return CV_OK;
}

static cv_status evaluate_list(walk *w, const cv_cond_list *list, size_t len, bool *decided)
{
    for (size_t i = 0; i < list->count; i++) {
        cv_status status = evaluate_node(w, &list->nodes[i], i + 1, len, decided);
        if (status != CV_OK || *decided)
            return status;
    }
    *decided = false;
    return CV_OK;
}

cv_status cv_condition_evaluate(const cv_cond_list *list, const char *prefix, const json_t *data,
                                cv_script *script, cv_cond_outcome *out, cv_error *err)
{
    walk w = {.data = data, .script = script, .err = err};
    bool decided = false;
    size_t len = path_append(w.path, 0, prefix ? prefix : "");

    cv_status status = evaluate_list(&w, list, len, &decided);
    if (status != CV_OK)
        return status;
    out->decided = decided;
    out->steps = decided ? w.decision : NULL;
    memcpy(out->path, w.path, sizeof out->path);
    if (!decided)
        out->path[0] = '\0';
    return CV_OK;
}

static void free_node(cv_cond_node *node)
{
    cv_path_free(&node->field);
    cv_operation_free(&node->op);
    json_decref(node->value);
    cv_path_free(&node->value_field);
    if (node->regex != NULL) {
        regfree(node->regex);
        free(node->regex);
    }
    free(node->result.steps);
    cv_condition_list_free(&node->success);
    cv_condition_list_free(&node->failure);
}

void cv_condition_list_free(cv_cond_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        free_node(&list->nodes[i]);
    free(list->nodes);
    list->count = 0;
    list->nodes = NULL;
}
