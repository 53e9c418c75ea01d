/*
 * A step as conveyor sends it to a module: the message body
 *
 *     {"instance": "...", "process": "...", "step": "...", "attempt": 1,
 *      "params": {...}, "data": {...}}
 *
 * parsed and checked once, so that handlers only see well-formed steps.
 */
#ifndef CRM_STEP_H
#define CRM_STEP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct crm_step {
    const char *instance; /* the process instance, e.g. "01HX..."; never empty */
    const char *process;
    const char *step;     /* the step id in the process, e.g. "get-bitrix-deal" */
    json_int_t attempt;   /* from 1; a retry of the same step has a higher number */
    json_t *params;       /* the step's static params; an empty object when none */
    json_t *data;         /* the instance's data, or the parts the step's `input` selects */
    json_t *body;         /* the parsed body; every pointer above points into it */
} crm_step;

/*
 * Parses a step body of length bytes. On success fills step, which owns the
 * parsed body until crm_step_release. On failure step is untouched and why
 * names what is wrong, e.g. "invalid step body: \"data\" is missing".
 */
bool crm_step_parse(crm_step *step, const char *body, size_t length, char *why, size_t why_size);

/* Frees what crm_step_parse allocated. */
void crm_step_release(crm_step *step);

#endif
