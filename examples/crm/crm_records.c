/*
 * Queries over the CRM data, as described in crm_records.h. The data is
 * small (an example file), so every query is a linear scan.
 */
#include "crm_records.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Digits compared for a phone: enough for "+7 900 000-12-34" to match "8 (900) 000-12-34". */
#define PHONE_KEY_DIGITS 10
/* Fewer digits than this is not a phone number worth matching. */
#define PHONE_MIN_DIGITS 7

const char *crm_text(const json_t *value, char *buf, size_t buf_size)
{
    if (json_is_string(value))
        return json_string_value(value);
    if (json_is_integer(value)) {
        snprintf(buf, buf_size, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        return buf;
    }
    return NULL;
}

bool crm_is_blank(const json_t *value)
{
    if (value == NULL || json_is_null(value))
        return true;
    if (json_is_integer(value))
        return json_integer_value(value) == 0;
    if (json_is_string(value)) {
        const char *text = json_string_value(value);
        return text[0] == '\0' || strcmp(text, "0") == 0;
    }
    return false;
}

json_t *crm_find_by_field(const json_t *records, const char *field, const char *value)
{
    size_t index;
    json_t *record;
    json_array_foreach(records, index, record) {
        const char *text = json_string_value(json_object_get(record, field));
        if (text != NULL && strcmp(text, value) == 0)
            return record;
    }
    return NULL;
}

json_t *crm_find_by_id(const json_t *records, const char *id)
{
    return crm_find_by_field(records, "ID", id);
}

/* Number of values in a multi-field: one for a plain string, the length of a list. */
static size_t multifield_count(const json_t *field)
{
    if (json_is_string(field))
        return 1;
    return json_array_size(field);
}

/* Text of value index of a multi-field, or NULL when that value has no string. */
static const char *multifield_text(const json_t *field, size_t index)
{
    if (json_is_string(field))
        return json_string_value(field);
    json_t *item = json_array_get(field, index);
    if (json_is_object(item))
        item = json_object_get(item, "VALUE");
    return json_string_value(item);
}

/*
 * Writes the last PHONE_KEY_DIGITS digits of a phone number into key, so
 * that country prefixes and punctuation do not matter. Returns false when
 * the text has too few digits to identify anyone.
 */
static bool phone_key(const char *text, char key[PHONE_KEY_DIGITS + 1])
{
    char digits[64];
    size_t count = 0;
    for (const char *c = text; *c != '\0' && count < sizeof digits - 1; c++) {
        if (isdigit((unsigned char)*c))
            digits[count++] = *c;
    }
    digits[count] = '\0';
    if (count < PHONE_MIN_DIGITS)
        return false;

    size_t start = count > PHONE_KEY_DIGITS ? count - PHONE_KEY_DIGITS : 0;
    snprintf(key, PHONE_KEY_DIGITS + 1, "%s", digits + start);
    return true;
}

static bool phones_match(const json_t *contact_phones, const json_t *request_phones)
{
    for (size_t i = 0; i < multifield_count(request_phones); i++) {
        const char *wanted_text = multifield_text(request_phones, i);
        char wanted[PHONE_KEY_DIGITS + 1];
        if (wanted_text == NULL || !phone_key(wanted_text, wanted))
            continue;
        for (size_t j = 0; j < multifield_count(contact_phones); j++) {
            const char *known_text = multifield_text(contact_phones, j);
            char known[PHONE_KEY_DIGITS + 1];
            if (known_text != NULL && phone_key(known_text, known) && strcmp(known, wanted) == 0)
                return true;
        }
    }
    return false;
}

/* Copies an e-mail address without surrounding blanks. Returns false when it has no "@". */
static bool email_key(const char *text, char *key, size_t key_size)
{
    while (isspace((unsigned char)*text))
        text++;
    size_t length = strlen(text);
    while (length > 0 && isspace((unsigned char)text[length - 1]))
        length--;
    if (length == 0 || length >= key_size || memchr(text, '@', length) == NULL)
        return false;
    memcpy(key, text, length);
    key[length] = '\0';
    return true;
}

static bool emails_match(const json_t *contact_emails, const json_t *request_emails)
{
    for (size_t i = 0; i < multifield_count(request_emails); i++) {
        const char *wanted_text = multifield_text(request_emails, i);
        char wanted[256];
        if (wanted_text == NULL || !email_key(wanted_text, wanted, sizeof wanted))
            continue;
        for (size_t j = 0; j < multifield_count(contact_emails); j++) {
            const char *known_text = multifield_text(contact_emails, j);
            char known[256];
            if (known_text != NULL && email_key(known_text, known, sizeof known) &&
                strcasecmp(known, wanted) == 0)
                return true;
        }
    }
    return false;
}

json_t *crm_find_contact(const json_t *root, const json_t *request)
{
    const json_t *contacts = json_object_get(root, "contacts");

    const json_t *contact_id = json_object_get(request, "CONTACT_ID");
    char id_buf[32];
    const char *id = crm_text(contact_id, id_buf, sizeof id_buf);
    if (!crm_is_blank(contact_id) && id != NULL) {
        json_t *named = crm_find_by_id(contacts, id);
        if (named != NULL)
            return named;
    }

    size_t index;
    json_t *contact;
    const json_t *phones = json_object_get(request, "PHONE");
    json_array_foreach(contacts, index, contact) {
        if (phones_match(json_object_get(contact, "PHONE"), phones))
            return contact;
    }
    const json_t *emails = json_object_get(request, "EMAIL");
    json_array_foreach(contacts, index, contact) {
        if (emails_match(json_object_get(contact, "EMAIL"), emails))
            return contact;
    }
    return NULL;
}

/* Numeric value of a record's ID, or 0 when it is not a plain decimal number. */
static long long id_number(const json_t *record)
{
    const char *id = json_string_value(json_object_get(record, "ID"));
    if (id == NULL || id[0] == '\0')
        return 0;
    char *end = NULL;
    long long number = strtoll(id, &end, 10);
    /* strtoll returns LLONG_MAX on overflow too, and crm_next_id adds one to the result. */
    if (*end != '\0' || number <= 0 || number == LLONG_MAX)
        return 0;
    return number;
}

json_t *crm_find_open_deal(const json_t *root, const char *contact_id)
{
    json_t *newest = NULL;
    if (contact_id == NULL)
        return NULL;
    size_t index;
    json_t *deal;
    json_array_foreach(json_object_get(root, "deals"), index, deal) {
        const char *owner = json_string_value(json_object_get(deal, "CONTACT_ID"));
        const char *closed = json_string_value(json_object_get(deal, "CLOSED"));
        if (owner == NULL || strcmp(owner, contact_id) != 0)
            continue;
        if (closed != NULL && strcmp(closed, "Y") == 0)
            continue;
        if (newest == NULL || id_number(deal) > id_number(newest))
            newest = deal;
    }
    return newest;
}

void crm_next_id(const json_t *records, char *buf, size_t buf_size)
{
    long long highest = 0;
    size_t index;
    json_t *record;
    json_array_foreach(records, index, record) {
        long long number = id_number(record);
        if (number > highest)
            highest = number;
    }
    snprintf(buf, buf_size, "%lld", highest + 1);
}

void crm_format_now(char *buf, size_t buf_size)
{
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(buf, buf_size, "%Y-%m-%dT%H:%M:%S+00:00", &utc);
}
