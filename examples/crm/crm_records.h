/*
 * Queries over the CRM data: records by ID, a contact for a request, the
 * open deal of a contact, the next free ID.
 *
 * Records look like a CRM's REST responses: upper-case field names, IDs and
 * numbers as strings ("4127"), and PHONE and EMAIL as "multi-fields", lists
 * of {"VALUE": "...", "VALUE_TYPE": "WORK"}. Requests may send PHONE and
 * EMAIL either as one string or in that list form. Every json_t * these
 * functions return is borrowed from the data they were given.
 */
#ifndef CRM_RECORDS_H
#define CRM_RECORDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Returns the text of a CRM field: a string as it is, an integer written
 * into buf. Returns NULL for anything else, including absent fields.
 */
const char *crm_text(const json_t *value, char *buf, size_t buf_size);

/*
 * Tells whether a field means "nothing": absent, null, "", "0" or 0. CRMs
 * send "0" for "no contact" or "no deal".
 */
bool crm_is_blank(const json_t *value);

/* Returns the record in the array records whose "ID" is id, or NULL. */
json_t *crm_find_by_id(const json_t *records, const char *id);

/* Returns the first record in records whose string field equals value, or NULL. */
json_t *crm_find_by_field(const json_t *records, const char *field, const char *value);

/*
 * Returns the contact a request is about, or NULL: by CONTACT_ID when the
 * request names an existing one, else by a PHONE that matches on its last
 * ten digits, else by an EMAIL that matches ignoring case.
 */
json_t *crm_find_contact(const json_t *root, const json_t *request);

/* Returns the open (CLOSED not "Y") deal of contact_id with the highest ID, or NULL. */
json_t *crm_find_open_deal(const json_t *root, const char *contact_id);

/* Writes one more than the highest numeric ID in records (or "1") into buf. */
void crm_next_id(const json_t *records, char *buf, size_t buf_size);

/* Writes the current UTC time as a CRM does, "2024-05-14T10:02:11+00:00". */
void crm_format_now(char *buf, size_t buf_size);

#endif
