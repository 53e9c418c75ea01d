/*
 * One handler per CRM subsystem; crm_handlers.h lists what each returns.
 *
 * Every handler follows the same pattern. It first checks the parts of the
 * step it needs; a fault there is permanent, because a retry would send the
 * same input. Then it locks the store, reads or appends, copies what it
 * returns out of the store, and unlocks. Output never shares json_t objects
 * with the store, since it is serialised after the lock is released.
 */
#include "crm_handlers.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crm_records.h"

/* Field that marks a record with the instance that created it, as a CRM custom field. */
#define ORIGIN_FIELD "UF_CRM_ORCH_INSTANCE"

static json_t *fail(crm_error *err, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills err and returns NULL, so that a handler can `return fail(...)`. */
static json_t *fail(crm_error *err, bool permanent, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->permanent = permanent;
    return NULL;
}

/* Returns data.request (borrowed), or NULL with a permanent error. */
static json_t *request_of(const crm_step *step, crm_error *err)
{
    json_t *request = json_object_get(step->data, "request");
    if (json_is_object(request))
        return request;
    fail(err, true,
         "data.request is missing or not an object; list \"request\" in the step's input");
    return NULL;
}

/*
 * Returns the output of the step named by the string params[param]
 * (borrowed), or NULL with a permanent error when the param or the output
 * is missing.
 */
static json_t *step_output(const crm_step *step, const char *param, crm_error *err)
{
    const char *name = json_string_value(json_object_get(step->params, param));
    if (name == NULL) {
        fail(err, true, "params.%s is missing; it names the step whose output this step reads",
             param);
        return NULL;
    }
    json_t *output = json_object_get(step->data, name);
    if (!json_is_object(output)) {
        fail(err, true, "data has no output of step \"%s\" (named by params.%s)", name, param);
        return NULL;
    }
    return output;
}

/* Returns params[param] when it is a string, else fallback. */
static const char *param_text(const crm_step *step, const char *param, const char *fallback)
{
    const char *text = json_string_value(json_object_get(step->params, param));
    return text != NULL ? text : fallback;
}

/* Copies from[from_key] into to[to_key] when it is a non-empty string. */
static void copy_text(json_t *to, const char *to_key, const json_t *from, const char *from_key)
{
    const char *text = json_string_value(json_object_get(from, from_key));
    if (text != NULL && text[0] != '\0')
        json_object_set_new(to, to_key, json_string(text));
}

/*
 * Returns a new CRM multi-field, [{"VALUE": "...", "VALUE_TYPE": "WORK"}],
 * from a request field that is one string or a list of strings or of such
 * objects. Entries without a string VALUE are left out.
 */
static json_t *multifield_from(const json_t *field)
{
    json_t *list = json_array();
    size_t count = json_is_string(field) ? 1 : json_array_size(field);
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_is_string(field) ? field : json_array_get(field, i);
        const json_t *value = json_is_object(item) ? json_object_get(item, "VALUE") : item;
        const char *type = json_string_value(json_object_get(item, "VALUE_TYPE"));
        if (!json_is_string(value) || json_string_length(value) == 0)
            continue;
        json_array_append_new(list, json_pack("{s:O,s:s}", "VALUE", value, "VALUE_TYPE",
                                              type != NULL ? type : "WORK"));
    }
    return list;
}

/* crm-find-deal: the deal named by UF_CRM_DEAL_ID, else the contact's newest open deal. */
static json_t *find_deal(crm_store *store, const crm_step *step, crm_error *err)
{
    const json_t *request = request_of(step, err);
    if (request == NULL)
        return NULL;

    json_t *root = crm_store_lock(store);
    json_t *deal = NULL;
    const json_t *named = json_object_get(request, "UF_CRM_DEAL_ID");
    char named_buf[32];
    const char *named_id = crm_text(named, named_buf, sizeof named_buf);
    if (!crm_is_blank(named) && named_id != NULL)
        deal = crm_find_by_id(json_object_get(root, "deals"), named_id);

    /* A form may carry a stale deal ID, and then the contact's open deal is the best match. */
    if (deal == NULL) {
        json_t *contact = crm_find_contact(root, request);
        if (contact != NULL)
            deal = crm_find_open_deal(root, json_string_value(json_object_get(contact, "ID")));
    }

    json_t *output = json_null();
    if (deal != NULL)
        output = json_string(json_string_value(json_object_get(deal, "ID")));
    crm_store_unlock(store);
    return output;
}

/* crm-find-contact: the contact as stored, or {"ID": "0"}, a CRM's reply when nothing matches. */
static json_t *find_contact(crm_store *store, const crm_step *step, crm_error *err)
{
    const json_t *request = request_of(step, err);
    if (request == NULL)
        return NULL;

    json_t *root = crm_store_lock(store);
    json_t *contact = crm_find_contact(root, request);
    json_t *output = contact != NULL ? json_deep_copy(contact) : json_pack("{s:s}", "ID", "0");
    crm_store_unlock(store);
    return output;
}

/* Builds a deal for contact_id from the request; the caller holds the lock. */
static json_t *new_deal(const json_t *root, const json_t *request, const json_t *contact,
                        const char *contact_id, const crm_step *step)
{
    char id[32];
    char now[40];
    crm_next_id(json_object_get(root, "deals"), id, sizeof id);
    crm_format_now(now, sizeof now);

    json_t *deal = json_pack("{s:s,s:s,s:s,s:s,s:s}", "ID", id, "TITLE",
                             param_text(step, "title", "Incoming request"), "STAGE_ID",
                             param_text(step, "stage", "NEW"), "CLOSED", "N", "CONTACT_ID",
                             contact_id);
    copy_text(deal, "TITLE", request, "TITLE");
    copy_text(deal, "SOURCE_ID", request, "UF_CRM_SOURCE");
    /* The contact's manager takes the new deal, as the CRM assigns it by hand today. */
    copy_text(deal, "ASSIGNED_BY_ID", contact, "ASSIGNED_BY_ID");
    json_object_set_new(deal, "DATE_CREATE", json_string(now));
    json_object_set_new(deal, ORIGIN_FIELD, json_string(step->instance));
    return deal;
}

/* crm-create-deal: a deal for the contact in the output of params.contact_step. */
static json_t *create_deal(crm_store *store, const crm_step *step, crm_error *err)
{
    const json_t *request = request_of(step, err);
    if (request == NULL)
        return NULL;
    const json_t *contact = step_output(step, "contact_step", err);
    if (contact == NULL)
        return NULL;
    const json_t *contact_field = json_object_get(contact, "ID");
    char contact_buf[32];
    const char *contact_id = crm_text(contact_field, contact_buf, sizeof contact_buf);
    if (crm_is_blank(contact_field) || contact_id == NULL)
        return fail(err, true, "the output of the contact step has no contact ID");

    json_t *root = crm_store_lock(store);
    json_t *output = NULL;
    json_t *deals = json_object_get(root, "deals");
    json_t *earlier = crm_find_by_field(deals, ORIGIN_FIELD, step->instance);
    if (earlier != NULL) {
        output = json_deep_copy(earlier);
        goto out;
    }
    const json_t *stored_contact = crm_find_by_id(json_object_get(root, "contacts"), contact_id);
    if (stored_contact == NULL) {
        fail(err, true, "contact %s not found", contact_id);
        goto out;
    }

    json_t *deal = new_deal(root, request, stored_contact, contact_id, step);
    output = json_deep_copy(deal);
    char why[300];
    if (!crm_store_append(store, "deals", deal, why, sizeof why)) {
        json_decref(output);
        output = fail(err, false, "cannot save the new deal: %s", why);
    }
out:
    crm_store_unlock(store);
    return output;
}

/* Builds a lead from the request, filling blank fields from defaults; the caller holds the lock. */
static json_t *new_lead(const json_t *root, const json_t *request, json_t *defaults,
                        const crm_step *step)
{
    char id[32];
    char now[40];
    crm_next_id(json_object_get(root, "leads"), id, sizeof id);
    crm_format_now(now, sizeof now);

    json_t *lead = json_pack("{s:s}", "ID", id);
    copy_text(lead, "TITLE", request, "TITLE");
    copy_text(lead, "NAME", request, "NAME");
    copy_text(lead, "LAST_NAME", request, "LAST_NAME");
    copy_text(lead, "COMMENTS", request, "COMMENTS");
    json_t *phones = multifield_from(json_object_get(request, "PHONE"));
    json_t *emails = multifield_from(json_object_get(request, "EMAIL"));
    if (json_array_size(phones) > 0)
        json_object_set(lead, "PHONE", phones);
    if (json_array_size(emails) > 0)
        json_object_set(lead, "EMAIL", emails);
    json_decref(phones);
    json_decref(emails);

    /* The request wins: defaults only fill what it left blank, and never the ID. */
    const char *key;
    json_t *value;
    json_object_foreach(defaults, key, value) {
        if (crm_is_blank(json_object_get(lead, key)))
            json_object_set_new(lead, key, json_deep_copy(value));
    }
    json_object_set_new(lead, "DATE_CREATE", json_string(now));
    json_object_set_new(lead, ORIGIN_FIELD, json_string(step->instance));
    return lead;
}

/* crm-create-lead: a lead from the request and the output of params.defaults_step. */
static json_t *create_lead(crm_store *store, const crm_step *step, crm_error *err)
{
    const json_t *request = request_of(step, err);
    if (request == NULL)
        return NULL;
    json_t *defaults = step_output(step, "defaults_step", err);
    if (defaults == NULL)
        return NULL;

    json_t *root = crm_store_lock(store);
    json_t *output = NULL;
    json_t *earlier = crm_find_by_field(json_object_get(root, "leads"), ORIGIN_FIELD,
                                        step->instance);
    if (earlier != NULL) {
        output = json_deep_copy(earlier);
        goto out;
    }

    json_t *lead = new_lead(root, request, defaults, step);
    output = json_deep_copy(lead);
    char why[300];
    if (!crm_store_append(store, "leads", lead, why, sizeof why)) {
        json_decref(output);
        output = fail(err, false, "cannot save the new lead: %s", why);
    }
out:
    crm_store_unlock(store);
    return output;
}

/* crm-get-deal: the deal whose ID is the "value" of the output of params.id_step. */
static json_t *get_deal(crm_store *store, const crm_step *step, crm_error *err)
{
    const json_t *found = step_output(step, "id_step", err);
    if (found == NULL)
        return NULL;
    const json_t *value = json_object_get(found, "value");
    char id_buf[32];
    const char *id = crm_text(value, id_buf, sizeof id_buf);
    if (crm_is_blank(value) || id == NULL)
        return fail(err, true, "step \"%s\" found no deal ID to load",
                    param_text(step, "id_step", ""));

    json_t *root = crm_store_lock(store);
    json_t *deal = crm_find_by_id(json_object_get(root, "deals"), id);
    json_t *output = deal != NULL ? json_deep_copy(deal) : NULL;
    crm_store_unlock(store);
    if (output == NULL)
        return fail(err, true, "deal %s not found", id);
    return output;
}

/* Returns the deal ID from the first step in params.deal_steps whose output has one. */
static const char *deal_id_from_steps(const crm_step *step, char *buf, size_t buf_size,
                                      crm_error *err)
{
    const json_t *names = json_object_get(step->params, "deal_steps");
    if (json_array_size(names) == 0) {
        fail(err, true, "params.deal_steps is missing or not a list; "
                        "it lists the steps whose output may contain the deal");
        return NULL;
    }
    size_t index;
    json_t *name;
    json_array_foreach(names, index, name) {
        if (!json_is_string(name))
            continue;
        const json_t *output = json_object_get(step->data, json_string_value(name));
        const json_t *id_field = json_object_get(output, "ID");
        const char *id = crm_text(id_field, buf, buf_size);
        if (!crm_is_blank(id_field) && id != NULL)
            return id;
    }
    fail(err, true, "none of the steps in params.deal_steps has an output with a deal ID");
    return NULL;
}

/* Counts the visits of deal_id in "deal_visits". */
static json_int_t count_visits(const json_t *visits, const char *deal_id)
{
    json_int_t count = 0;
    size_t index;
    json_t *visit;
    json_array_foreach(visits, index, visit) {
        const char *visited = json_string_value(json_object_get(visit, "DEAL_ID"));
        if (visited != NULL && strcmp(visited, deal_id) == 0)
            count++;
    }
    return count;
}

/* Returns this instance's visit of deal_id, or NULL. */
static json_t *find_visit(const json_t *visits, const char *deal_id, const char *instance)
{
    size_t index;
    json_t *visit;
    json_array_foreach(visits, index, visit) {
        const char *visited = json_string_value(json_object_get(visit, "DEAL_ID"));
        const char *by = json_string_value(json_object_get(visit, "INSTANCE"));
        if (visited != NULL && by != NULL && strcmp(visited, deal_id) == 0 &&
            strcmp(by, instance) == 0)
            return visit;
    }
    return NULL;
}

/* crm-remember-deal: records that this instance saw the deal; returns the visit count. */
static json_t *remember_deal(crm_store *store, const crm_step *step, crm_error *err)
{
    char id_buf[32];
    const char *deal_id = deal_id_from_steps(step, id_buf, sizeof id_buf, err);
    if (deal_id == NULL)
        return NULL;

    json_t *root = crm_store_lock(store);
    json_t *output = NULL;
    json_t *visits = json_object_get(root, "deal_visits");
    const json_t *deal = crm_find_by_id(json_object_get(root, "deals"), deal_id);
    if (deal == NULL) {
        fail(err, true, "deal %s not found", deal_id);
        goto out;
    }

    /* A retried step finds its own visit and does not count the deal twice. */
    char now[40];
    const char *seen_at = NULL;
    const json_t *visit = find_visit(visits, deal_id, step->instance);
    if (visit != NULL) {
        seen_at = json_string_value(json_object_get(visit, "SEEN_AT"));
    } else {
        crm_format_now(now, sizeof now);
        seen_at = now;
        json_t *record = json_pack("{s:s,s:s,s:s,s:s}", "DEAL_ID", deal_id, "INSTANCE",
                                   step->instance, "PROCESS", step->process, "SEEN_AT", now);
        copy_text(record, "SOURCE_ID", json_object_get(step->data, "request"), "UF_CRM_SOURCE");
        char why[300];
        if (!crm_store_append(store, "deal_visits", record, why, sizeof why)) {
            fail(err, false, "cannot save the deal visit: %s", why);
            goto out;
        }
    }

    output = json_pack("{s:s,s:s?,s:I,s:s?}", "DEAL_ID", deal_id, "TITLE",
                       json_string_value(json_object_get(deal, "TITLE")), "VISITS",
                       count_visits(visits, deal_id), "SEEN_AT", seen_at);
out:
    crm_store_unlock(store);
    return output;
}

const crm_subsystem crm_subsystems[] = {
    {"crm-find-deal", find_deal},
    {"crm-find-contact", find_contact},
    {"crm-create-deal", create_deal},
    {"crm-create-lead", create_lead},
    {"crm-get-deal", get_deal},
    {"crm-remember-deal", remember_deal},
};

const size_t crm_subsystem_count = sizeof crm_subsystems / sizeof crm_subsystems[0];
