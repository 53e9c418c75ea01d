/*
 * Instance state and its JSON form. Attempts live in a small array because
 * an instance rarely has more than a few branches in flight; lookups scan it.
 */
#include "engine/instance.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/jsonx.h"
#include "core/text.h"

static const char *const status_names[] = {"running", "completed", "failed", "cancelled"};

const char *cv_instance_status_name(cv_instance_status status)
{
    return status_names[status];
}

bool cv_instance_status_parse(const char *text, cv_instance_status *out)
{
    for (int i = 0; i <= CV_INSTANCE_CANCELLED; i++) {
        if (strcmp(text, status_names[i]) == 0) {
            *out = (cv_instance_status)i;
            return true;
        }
    }
    return false;
}

cv_instance *cv_instance_create(const char *id, const cv_process *process, json_t *request)
{
    cv_instance *instance = calloc(1, sizeof *instance);
    if (instance == NULL)
        goto fail;
    instance->id = strdup(id);
    instance->process = process;
    instance->data = json_object();
    instance->trail = json_array();
    instance->visits = calloc(process->step_count, sizeof *instance->visits);
    instance->waiting = calloc(process->step_count, sizeof *instance->waiting);
    if (instance->id == NULL || instance->data == NULL || instance->trail == NULL ||
        instance->visits == NULL || instance->waiting == NULL)
        goto fail;
    if (json_object_set_new(instance->data, "request", request) != 0) {
        request = NULL; /* json_object_set_new consumed it even on failure */
        goto fail;
    }
    instance->created_ms = cv_clock_wall_ms();
    instance->updated_ms = instance->created_ms;
    return instance;

fail:
    json_decref(request);
    cv_instance_destroy(instance);
    return NULL;
}

void cv_instance_destroy(cv_instance *instance)
{
    if (instance == NULL)
        return;
    free(instance->id);
    json_decref(instance->data);
    json_decref(instance->trail);
    json_decref(instance->outbox);
    free(instance->error);
    free(instance->visits);
    free(instance->active);
    free(instance->waiting);
    free(instance);
}

cv_attempt *cv_instance_add_attempt(cv_instance *instance, int step, int attempt)
{
    if (instance->active_count == instance->active_capacity) {
        size_t capacity = instance->active_capacity ? instance->active_capacity * 2 : 4;
        cv_attempt *grown = realloc(instance->active, capacity * sizeof *grown);
        if (grown == NULL)
            return NULL;
        instance->active = grown;
        instance->active_capacity = capacity;
    }
    cv_attempt *a = &instance->active[instance->active_count++];
    a->step = step;
    a->attempt = attempt;
    cv_text_random_token(a->token, CV_TOKEN_LEN);
    a->started_ms = cv_clock_wall_ms();
    a->due_ms = 0;
    a->queued = false;
    return a;
}

int cv_instance_find_attempt(const cv_instance *instance, int step, int attempt,
                             const char *token)
{
    for (size_t i = 0; i < instance->active_count; i++) {
        const cv_attempt *a = &instance->active[i];
        if (a->step == step && a->attempt == attempt && strcmp(a->token, token) == 0)
            return (int)i;
    }
    return -1;
}

void cv_instance_remove_attempt(cv_instance *instance, size_t index)
{
    instance->active_count--;
    memmove(&instance->active[index], &instance->active[index + 1],
            (instance->active_count - index) * sizeof *instance->active);
}

bool cv_instance_step_active(const cv_instance *instance, int step)
{
    for (size_t i = 0; i < instance->active_count; i++) {
        if (instance->active[i].step == step)
            return true;
    }
    return false;
}

static json_t *attempts_to_json(const cv_instance *instance)
{
    json_t *list = json_array();
    for (size_t i = 0; i < instance->active_count; i++) {
        const cv_attempt *a = &instance->active[i];
        json_t *item = json_pack("{s:s, s:i, s:s, s:I}", "step",
                                 instance->process->steps[a->step].id, "attempt", a->attempt,
                                 "token", a->token, "started_ms", (json_int_t)a->started_ms);
        if (item != NULL && a->due_ms > 0)
            json_object_set_new(item, "due_ms", json_integer(a->due_ms));
        if (item != NULL && a->queued)
            json_object_set_new(item, "queued", json_true());
        json_array_append_new(list, item);
    }
    return list;
}

json_t *cv_instance_to_json(const cv_instance *instance)
{
    const cv_process *process = instance->process;
    json_t *visits = json_object();
    for (size_t i = 0; i < process->step_count; i++) {
        if (instance->visits[i] > 0)
            json_object_set_new(visits, process->steps[i].id, json_integer(instance->visits[i]));
    }
    json_t *waiting = json_array();
    for (size_t i = 0; i < instance->waiting_count; i++)
        json_array_append_new(waiting, json_string(process->steps[instance->waiting[i]].id));

    json_t *doc = json_pack("{s:s, s:s, s:s, s:O, s:O, s:o, s:o, s:o, s:I, s:I}", "id",
                            instance->id, "process", process->name, "status",
                            cv_instance_status_name(instance->status), "data", instance->data,
                            "steps", instance->trail, "visits", visits, "active",
                            attempts_to_json(instance), "waiting", waiting, "created_ms",
                            (json_int_t)instance->created_ms, "updated_ms",
                            (json_int_t)instance->updated_ms);
    if (doc != NULL && instance->error != NULL)
        json_object_set_new(doc, "error", cv_json_text(instance->error));
    if (doc != NULL && instance->outbox != NULL)
        json_object_set(doc, "outbox", instance->outbox);
    if (doc != NULL)
        json_object_set_new(doc, "answered", json_boolean(instance->answered));
    return doc;
}

int cv_instance_find_step(const cv_process *process, const char *id)
{
    for (size_t i = 0; id != NULL && i < process->step_count; i++) {
        if (strcmp(process->steps[i].id, id) == 0)
            return (int)i;
    }
    return -1;
}

static cv_status step_index(const cv_process *process, const json_t *name, const char *where,
                            int *out, cv_error *err)
{
    const char *id = json_string_value(name);
    int index = cv_instance_find_step(process, id);
    if (index >= 0) {
        *out = index;
        return CV_OK;
    }
    return cv_error_set(err, CV_ERR_INVALID, "%s names step \"%s\", which process \"%s\" lacks",
                        where, id ? id : "(not a string)", process->name);
}

static cv_status restore_lists(cv_instance *instance, const json_t *doc, cv_error *err)
{
    const cv_process *process = instance->process;
    const char *key;
    json_t *value;
    json_object_foreach(json_object_get(doc, "visits"), key, value) {
        int step = -1;
        json_t *name = json_string(key);
        cv_status st = step_index(process, name, "visits", &step, err);
        json_decref(name);
        if (st != CV_OK)
            return st;
        instance->visits[step] = (int)json_integer_value(value);
    }

    size_t i;
    json_array_foreach(json_object_get(doc, "active"), i, value) {
        int step = -1;
        if (step_index(process, json_object_get(value, "step"), "active", &step, err) != CV_OK)
            return err ? err->status : CV_ERR_INVALID;
        const char *token = json_string_value(json_object_get(value, "token"));
        cv_attempt *a = cv_instance_add_attempt(
            instance, step, (int)json_integer_value(json_object_get(value, "attempt")));
        if (a == NULL || token == NULL || strlen(token) != CV_TOKEN_LEN)
            return cv_error_set(err, CV_ERR_INVALID, "active attempt %zu is malformed", i);
        memcpy(a->token, token, CV_TOKEN_LEN + 1);
        a->started_ms = json_integer_value(json_object_get(value, "started_ms"));
        a->due_ms = json_integer_value(json_object_get(value, "due_ms"));
        a->queued = json_is_true(json_object_get(value, "queued"));
    }

    json_array_foreach(json_object_get(doc, "waiting"), i, value) {
        int step = -1;
        if (i >= process->step_count ||
            step_index(process, value, "waiting", &step, err) != CV_OK)
            return cv_error_set(err, CV_ERR_INVALID, "waiting list is malformed");
        instance->waiting[instance->waiting_count++] = step;
    }
    return CV_OK;
}

cv_status cv_instance_from_json(cv_instance **out, const json_t *doc, const cv_process *process,
                                cv_error *err)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *status = json_string_value(json_object_get(doc, "status"));
    json_t *data = json_object_get(doc, "data");
    json_t *trail = json_object_get(doc, "steps");
    if (id == NULL || status == NULL || !json_is_object(data) || !json_is_array(trail))
        return cv_error_set(err, CV_ERR_INVALID, "stored instance lacks id, status, data or steps");

    cv_instance *instance = cv_instance_create(id, process, json_object());
    if (instance == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory restoring instance %s", id);
    json_decref(instance->data);
    json_decref(instance->trail);
    instance->data = json_deep_copy(data);
    instance->trail = json_deep_copy(trail);
    const char *error = json_string_value(json_object_get(doc, "error"));
    instance->error = error ? strdup(error) : NULL;
    instance->answered = json_is_true(json_object_get(doc, "answered"));
    json_t *outbox = json_object_get(doc, "outbox");
    instance->outbox = json_is_array(outbox) ? json_deep_copy(outbox) : NULL;
    instance->created_ms = json_integer_value(json_object_get(doc, "created_ms"));
    instance->updated_ms = json_integer_value(json_object_get(doc, "updated_ms"));

    cv_status st = CV_OK;
    if (!cv_instance_status_parse(status, &instance->status))
        st = cv_error_set(err, CV_ERR_INVALID, "stored instance has unknown status \"%s\"", status);
    if (st == CV_OK)
        st = restore_lists(instance, doc, err);
    if (st != CV_OK) {
        cv_instance_destroy(instance);
        return st;
    }
    *out = instance;
    return CV_OK;
}
