/*
 * Condition trees and operations: the `condition` key of a step.
 *
 * Evaluation follows the rules language: for each node in order, the test is
 * evaluated; when it holds, `result` is the decision, or else `success` is
 * evaluated as a list; when it fails, `failure` is evaluated if present. A
 * node that yields no decision passes on to the next one.
 */
#ifndef CV_ENGINE_CONDITION_H
#define CV_ENGINE_CONDITION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/script.h"
#include "rules/definition.h"

/* Longest decision path kept, such as "condition[2].success[1].failure[3]". */
#define CV_DECISION_PATH_MAX 256

/*
 * Parses "modifier|...|name" into out. Custom operation names are looked up
 * with find_custom (may be NULL when there are none), which returns a Lua
 * reference or CV_NO_REF. On failure err names the unknown part.
 */
cv_status cv_operation_parse(cv_operation *out, const char *text,
                             int (*find_custom)(void *context, const char *name), void *context,
                             cv_error *err);

void cv_operation_free(cv_operation *op);

/*
 * Applies op to value (NULL when absent) against arg (NULL when absent),
 * modifiers first, then the test, then negation. regex is the compiled
 * `value` for CV_OP_REGEX. script is needed only for custom operations.
 */
cv_status cv_operation_test(const cv_operation *op, const json_t *value, const json_t *arg,
                            const regex_t *regex, cv_script *script, bool *out, cv_error *err);

typedef struct cv_cond_outcome {
    bool decided;
    const cv_step_list *steps; /* borrowed from the definition when decided by `result` */
    char path[CV_DECISION_PATH_MAX];
} cv_cond_outcome;

/*
 * Evaluates list against data. prefix names the list in decision paths
 * ("condition"). On a decision, out->decided is set with the step list and
 * the path of the node whose `result` decided. out is set only on success.
 * When a test fails with an error (a Lua call raised), err starts with the
 * node's path, such as `condition[2].when: ` or
 * `condition[1].operation "trim|odd": `.
 */
cv_status cv_condition_evaluate(const cv_cond_list *list, const char *prefix, const json_t *data,
                                cv_script *script, cv_cond_outcome *out, cv_error *err);

/* Frees a list built by the rules loader, including nested lists. */
void cv_condition_list_free(cv_cond_list *list);

#endif
