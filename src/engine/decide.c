/*
 * The decision after a step completes: `route`, then `condition`, then
 * `next`, else the branch ends. Every decision carries what made it and
 * where, so step.completed can explain it.
 */
#include "engine/decide.h"

#include "core/jsonx.h"
#include "engine/instance.h"

#include <stdlib.h>
#include <string.h>

static const char *const decided_by_names[] = {
    [CV_DECIDED_BY_ROUTE] = "route",
    [CV_DECIDED_BY_CONDITION] = "condition",
    [CV_DECIDED_BY_NEXT] = "next",
    [CV_DECIDED_BY_END] = "end",
};

const char *cv_decided_by_name(cv_decided_by by)
{
    if ((unsigned)by > CV_DECIDED_BY_END)
        return "unknown";
    return decided_by_names[by];
}

/* Copies count step indices into a new array. An empty list gets NULL. */
static cv_status copy_steps(int **out, const int *steps, size_t count)
{
    int *copy = NULL;

    if (count > 0) {
        copy = malloc(count * sizeof *copy);
        if (copy == NULL)
            return CV_ERR_NOMEM;
        memcpy(copy, steps, count * sizeof *copy);
    }
    *out = copy;
    return CV_OK;
}

/* Turns the step ids a route returned into indices. */
static cv_status resolve_route(int **out, const cv_process *process, const cv_step *step,
                               const json_t *ids, cv_error *err)
{
    size_t count = json_array_size(ids);
    int *steps = NULL;

    if (count > 0) {
        steps = malloc(count * sizeof *steps);
        if (steps == NULL)
            return cv_error_set(err, CV_ERR_NOMEM, "out of memory deciding after step \"%s\"",
                                step->id);
    }
    for (size_t i = 0; i < count; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        int index = cv_instance_find_step(process, id);
        if (index < 0) {
            free(steps);
            if (id == NULL)
                return cv_error_set(err, CV_ERR_SCRIPT,
                                    "route of step \"%s\" returned a %s where a step id belongs",
                                    step->id, cv_json_type_name(json_array_get(ids, i)));
            return cv_error_set(err, CV_ERR_SCRIPT, "route of step \"%s\" returned unknown step \"%s\"",
                                step->id, id);
        }
        steps[i] = index;
    }
    *out = steps;
    return CV_OK;
}

/* Calls the route. *routed stays false when it returned nil. */
static cv_status decide_by_route(cv_decision *d, const cv_process *process, const cv_step *step,
                                 const json_t *data, cv_script *script, bool *routed,
                                 cv_error *err)
{
    json_t *ids = NULL;

    *routed = false;
    if (script == NULL || script->ops->route == NULL)
        return cv_error_set(err, CV_ERR_INVALID, "route of step \"%s\" needs Lua, but no script is given",
                            step->id);
    cv_status status = script->ops->route(script, step->route_ref, data, &ids, err);
    if (status != CV_OK) {
        cv_error_prefix(err, "route of step \"%s\"", step->id);
        return status;
    }
    if (ids == NULL)
        return CV_OK;
    if (!json_is_array(ids)) {
        status = cv_error_set(err, CV_ERR_SCRIPT, "route of step \"%s\" returned a %s, not a list",
                              step->id, cv_json_type_name(ids));
        json_decref(ids);
        return status;
    }

    status = resolve_route(&d->steps, process, step, ids, err);
    if (status == CV_OK) {
        d->by = CV_DECIDED_BY_ROUTE;
        d->count = json_array_size(ids);
        strcpy(d->path, "route");
        *routed = true;
    }
    json_decref(ids);
    return status;
}

/* Evaluates `condition`. *decided stays false when no node decided. */
static cv_status decide_by_condition(cv_decision *d, const cv_step *step, const json_t *data,
                                     cv_script *script, bool *decided, cv_error *err)
{
    cv_cond_outcome outcome;

    *decided = false;
    cv_status status = cv_condition_evaluate(&step->condition, "condition", data, script, &outcome,
                                             err);
    if (status != CV_OK || !outcome.decided)
        return status;
    if (copy_steps(&d->steps, outcome.steps->steps, outcome.steps->count) != CV_OK)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory deciding after step \"%s\"", step->id);
    d->by = CV_DECIDED_BY_CONDITION;
    d->count = outcome.steps->count;
    memcpy(d->path, outcome.path, sizeof d->path);
    *decided = true;
    return CV_OK;
}

cv_status cv_decide(cv_decision *out, const cv_process *process, const cv_step *step,
                    const json_t *data, cv_script *script, cv_error *err)
{
    cv_decision d = {.by = CV_DECIDED_BY_END};
    bool decided = false;
    cv_status status;

    if (step->route_ref != CV_NO_REF) {
        status = decide_by_route(&d, process, step, data, script, &decided, err);
        if (status != CV_OK)
            return status;
    }
    if (!decided && step->has_condition) {
        status = decide_by_condition(&d, step, data, script, &decided, err);
        if (status != CV_OK)
            return status;
    }
    if (!decided && step->has_next) {
        if (copy_steps(&d.steps, step->next.steps, step->next.count) != CV_OK)
            return cv_error_set(err, CV_ERR_NOMEM, "out of memory deciding after step \"%s\"",
                                step->id);
        d.by = CV_DECIDED_BY_NEXT;
        d.count = step->next.count;
        strcpy(d.path, "next");
    }
    *out = d;
    return CV_OK;
}

void cv_decision_free(cv_decision *decision)
{
    if (decision == NULL)
        return;
    free(decision->steps);
    decision->steps = NULL;
    decision->count = 0;
}

json_t *cv_decision_to_json(const cv_decision *decision, const cv_process *process)
{
    json_t *next = json_array();
    json_t *result = NULL;

    if (next == NULL)
        return NULL;
    for (size_t i = 0; i < decision->count; i++) {
        int index = decision->steps[i];
        /* Indices come from the definition or from resolve_route, so they are in range. */
        if (json_array_append_new(next, json_string(process->steps[index].id)) != 0)
            goto out;
    }
    result = json_pack("{s:s, s:s, s:O}", "by", cv_decided_by_name(decision->by), "path",
                       decision->path, "next", next);
out:
    json_decref(next);
    return result;
}
