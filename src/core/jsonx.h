/*
 * JSON helpers on top of jansson: parsing with the limits every outside
 * input is held to, the equality the rules language uses, and small
 * conveniences for building documents.
 *
 * Ownership: functions returning json_t * return a new reference unless the
 * comment says "borrowed".
 */
#ifndef CV_CORE_JSONX_H
#define CV_CORE_JSONX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

/* Deepest nesting of arrays and objects accepted from outside. */
#define CV_JSON_MAX_DEPTH 64

/* Default largest request or reply body, overridable with --max-body. */
#define CV_DEFAULT_MAX_BODY (1024 * 1024)

typedef struct cv_json_limits {
    size_t max_bytes; /* 0: no size limit */
    int max_depth;    /* 0: CV_JSON_MAX_DEPTH */
} cv_json_limits;

/*
 * Parses len bytes of outside input into any JSON value. Rejects, with the
 * limit or the position named in err: a body over max_bytes, nesting deeper
 * than max_depth, duplicate object keys, numbers that do not fit a double,
 * and malformed JSON. *out is set only on success.
 */
cv_status cv_json_parse(json_t **out, const char *text, size_t len, const cv_json_limits *limits,
                        cv_error *err);

/*
 * Equality of the rules language: numbers compare by value whatever their
 * JSON type (1 equals 1.0), strings by bytes, arrays and objects element by
 * element. NULL (absent) equals nothing, not even another NULL.
 */
bool cv_json_equal(const json_t *a, const json_t *b);

/* True for JSON integers and reals; *out receives the value as a double. */
bool cv_json_number(const json_t *value, double *out);

/*
 * Serialises value (borrowed) compactly into a new malloc'd string (the
 * caller frees it), with keys in insertion order: the same bytes as
 * json_dumps with JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER.
 * Returns NULL when out of memory, and in the cases cv_json_write lists for
 * values conveyor does not build: a NULL value, a string value that is not
 * valid UTF-8, a container nested inside itself.
 */
char *cv_json_dump(const json_t *value);

/*
 * Returns text as a new JSON string, with each byte that is not valid UTF-8
 * replaced by U+FFFD, so a module's malformed error text is kept rather than
 * lost (jansson refuses invalid UTF-8). NULL text gives "".
 */
json_t *cv_json_text(const char *text);

/* Name of a JSON type as users see it: "string", "number", "object", ... */
const char *cv_json_type_name(const json_t *value);

#endif
