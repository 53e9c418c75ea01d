/*
 * The CRM's subsystems: one handler per NATS subject the module serves.
 *
 *   crm-find-deal      the deal ID a request is about, as a JSON string, or null
 *   crm-find-contact   the contact a request is about, or {"ID": "0"} when none
 *   crm-create-deal    a new deal for the contact found by an earlier step
 *   crm-create-lead    a new lead from the request and a step's default values
 *   crm-get-deal       the deal whose ID an earlier step found
 *   crm-remember-deal  a record in "deal_visits" that this instance saw the deal
 *
 * Handlers that read other steps' output find those steps through params
 * (e.g. "contact_step": "bitrix-find-contact"), so the module does not
 * depend on the step ids of one process. The create handlers and
 * crm-remember-deal mark what they write with the instance id: a retried
 * step then returns the record it wrote the first time instead of writing a
 * second one.
 */
#ifndef CRM_HANDLERS_H
#define CRM_HANDLERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "crm_step.h"
#include "crm_store.h"

/* Why a step failed, sent back in the Orch-Error header. */
typedef struct crm_error {
    bool permanent; /* the input is wrong, so a retry cannot succeed: Orch-Retry: false */
    char message[400];
} crm_error;

/*
 * Handles one step. Returns a new reference to the step's output (any JSON
 * value), or NULL with err filled. Handlers run on several threads at once
 * and touch the data only under the store's lock.
 */
typedef json_t *(*crm_handler)(crm_store *store, const crm_step *step, crm_error *err);

typedef struct crm_subsystem {
    const char *name; /* the subsystem in the rules, and the last token of its subject */
    crm_handler handle;
} crm_subsystem;

extern const crm_subsystem crm_subsystems[];
extern const size_t crm_subsystem_count;

#endif
