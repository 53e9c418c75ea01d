/*
 * Outside JSON is checked in two passes: a byte scan for size and depth, so
 * that a hostile body is refused before jansson allocates for it, then
 * jansson with duplicate-key rejection. jansson itself refuses integers that
 * overflow 64 bits and reals that overflow a double.
 */
#include "core/jsonx.h"

#include "core/json_write.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Returns the deepest nesting in text, ignoring brackets inside strings. */
static int scan_depth(const char *text, size_t len, int stop_above)
{
    int depth = 0;
    int deepest = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            depth++;
            if (depth > deepest)
                deepest = depth;
            if (deepest > stop_above)
                return deepest;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
}

cv_status cv_json_parse(json_t **out, const char *text, size_t len, const cv_json_limits *limits,
                        cv_error *err)
{
    size_t max_bytes = limits ? limits->max_bytes : 0;
    int max_depth = (limits && limits->max_depth > 0) ? limits->max_depth : CV_JSON_MAX_DEPTH;

    if (max_bytes > 0 && len > max_bytes)
        return cv_error_set(err, CV_ERR_LIMIT, "body is %zu bytes, over the limit of %zu bytes",
                            len, max_bytes);
    if (scan_depth(text, len, max_depth) > max_depth)
        return cv_error_set(err, CV_ERR_LIMIT, "JSON nesting is deeper than the limit of %d levels",
                            max_depth);

    json_error_t jerr;
    json_t *value = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (value == NULL)
        return cv_error_set(err, CV_ERR_INVALID, "invalid JSON at line %d, column %d: %s",
                            jerr.line, jerr.column, jerr.text);
    *out = value;
    return CV_OK;
}

bool cv_json_number(const json_t *value, double *out)
{
    if (json_is_integer(value)) {
        *out = (double)json_integer_value(value);
        return true;
    }
    if (json_is_real(value)) {
        *out = json_real_value(value);
        return true;
    }
    return false;
}

static bool arrays_equal(const json_t *a, const json_t *b)
{
    size_t n = json_array_size(a);
    if (n != json_array_size(b))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!cv_json_equal(json_array_get(a, i), json_array_get(b, i)))
            return false;
    }
    return true;
}

static bool objects_equal(const json_t *a, const json_t *b)
{
    if (json_object_size(a) != json_object_size(b))
        return false;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)a, key, value) {
        if (!cv_json_equal(value, json_object_get(b, key)))
            return false;
    }
    return true;
}

bool cv_json_equal(const json_t *a, const json_t *b)
{
    if (a == NULL || b == NULL)
        return false;

    double x, y;
    if (cv_json_number(a, &x) && cv_json_number(b, &y))
        return x == y;
    if (json_typeof(a) != json_typeof(b))
        return false;

    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        return arrays_equal(a, b);
    case JSON_OBJECT:
        return objects_equal(a, b);
    default:
        return true; /* true, false and null carry no payload */
    }
}

char *cv_json_dump(const json_t *value)
{
    return cv_json_write(NULL, value);
}

const char *cv_json_type_name(const json_t *value)
{
    if (value == NULL)
        return "absent";
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

/* Length of the valid UTF-8 sequence at s, or 0 when the byte there starts none. */
static size_t utf8_sequence(const unsigned char *s)
{
    size_t len;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        len = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0; /* overlong, surrogate or beyond U+10FFFF */
    return len;
}

json_t *cv_json_text(const char *text)
{
    if (text == NULL)
        return json_string("");
    json_t *exact = json_string(text);
    if (exact != NULL)
        return exact;

    size_t n = strlen(text);
    char *clean = malloc(n * 3 + 1);
    if (clean == NULL)
        return NULL;
    size_t out = 0;
    const unsigned char *p = (const unsigned char *)text;
    while (*p != '\0') {
        size_t len = utf8_sequence(p);
        if (len == 0) {
            memcpy(clean + out, "\xEF\xBF\xBD", 3);
            out += 3;
            p++;
            continue;
        }
        memcpy(clean + out, p, len);
        out += len;
        p += len;
    }
    clean[out] = '\0';
    json_t *result = json_string(clean);
    free(clean);
    return result;
}
