/*
 * Parsing and checking of step bodies, as described in crm_step.h.
 */
#include "crm_step.h"

#include <stdio.h>
#include <string.h>

/* Returns the non-empty string member key of body, or NULL with the reason in why. */
static const char *required_string(json_t *body, const char *key, char *why, size_t why_size)
{
    const char *text = json_string_value(json_object_get(body, key));
    if (text == NULL || text[0] == '\0') {
        snprintf(why, why_size, "invalid step body: \"%s\" is missing or not a non-empty string",
                 key);
        return NULL;
    }
    return text;
}

/* Checks the members of a parsed body and fills step. Returns false on the first fault. */
static bool fill_step(crm_step *step, json_t *body, char *why, size_t why_size)
{
    step->instance = required_string(body, "instance", why, why_size);
    if (step->instance == NULL)
        return false;
    step->process = required_string(body, "process", why, why_size);
    if (step->process == NULL)
        return false;
    step->step = required_string(body, "step", why, why_size);
    if (step->step == NULL)
        return false;

    json_t *attempt = json_object_get(body, "attempt");
    step->attempt = 1;
    if (attempt != NULL && (!json_is_integer(attempt) || json_integer_value(attempt) < 1)) {
        snprintf(why, why_size, "invalid step body: \"attempt\" is not a positive integer");
        return false;
    }
    if (attempt != NULL)
        step->attempt = json_integer_value(attempt);

    step->data = json_object_get(body, "data");
    if (!json_is_object(step->data)) {
        snprintf(why, why_size, "invalid step body: \"data\" is missing or not an object");
        return false;
    }

    /* A step without params gets an empty object, so handlers need no NULL checks. */
    if (json_object_get(body, "params") == NULL)
        json_object_set_new(body, "params", json_object());
    step->params = json_object_get(body, "params");
    if (!json_is_object(step->params)) {
        snprintf(why, why_size, "invalid step body: \"params\" is not an object");
        return false;
    }
    return true;
}

bool crm_step_parse(crm_step *step, const char *body, size_t length, char *why, size_t why_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, length, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(why, why_size, "invalid step body: not JSON: %s at byte %d", jerr.text,
                 jerr.position);
        return false;
    }
    if (!json_is_object(root)) {
        snprintf(why, why_size, "invalid step body: not a JSON object");
        json_decref(root);
        return false;
    }

    crm_step parsed = {.body = root};
    if (!fill_step(&parsed, root, why, why_size)) {
        json_decref(root);
        return false;
    }
    *step = parsed;
    return true;
}

void crm_step_release(crm_step *step)
{
    json_decref(step->body);
    memset(step, 0, sizeof *step);
}
