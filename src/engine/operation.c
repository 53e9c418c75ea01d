/*
 * Operations of the rules language: parsing "modifier|...|name" once at load
 * time, and testing a field value against a node's `value`.
 *
 * Tests without modifiers run on the borrowed values of the data document
 * and never allocate, because they run for every condition node of every
 * completed step. Modifiers that change a value build a temporary, which is
 * released before the test returns.
 *
 * Number formatting and parsing use snprintf and strtod, which follow the C
 * locale: conveyor never calls setlocale, so the decimal point is always '.'.
 */
#include "engine/condition.h"

#include "core/jsonx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    cv_op_name op;
} op_names[] = {
    {"empty", CV_OP_EMPTY},         {"exists", CV_OP_EXISTS},       {"null", CV_OP_NULL},
    {"eq", CV_OP_EQ},               {"ne", CV_OP_NE},               {"gt", CV_OP_GT},
    {"gte", CV_OP_GTE},             {"lt", CV_OP_LT},               {"lte", CV_OP_LTE},
    {"in", CV_OP_IN},               {"contains", CV_OP_CONTAINS},   {"starts", CV_OP_STARTS},
    {"ends", CV_OP_ENDS},           {"regex", CV_OP_REGEX},         {"is-string", CV_OP_IS_STRING},
    {"is-number", CV_OP_IS_NUMBER}, {"is-bool", CV_OP_IS_BOOL},     {"is-array", CV_OP_IS_ARRAY},
    {"is-object", CV_OP_IS_OBJECT},
};

static const struct {
    const char *name;
    cv_modifier modifier;
} modifier_names[] = {
    {"trim", CV_MOD_TRIM}, {"lower", CV_MOD_LOWER},   {"upper", CV_MOD_UPPER},
    {"len", CV_MOD_LEN},   {"number", CV_MOD_NUMBER}, {"string", CV_MOD_STRING},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool part_is(const char *part, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(part, name, len) == 0;
}

static int find_op_name(const char *part, size_t len)
{
    for (size_t i = 0; i < COUNT_OF(op_names); i++) {
        if (part_is(part, len, op_names[i].name))
            return (int)i;
    }
    return -1;
}

static int find_modifier(const char *part, size_t len)
{
    for (size_t i = 0; i < COUNT_OF(modifier_names); i++) {
        if (part_is(part, len, modifier_names[i].name))
            return (int)i;
    }
    return -1;
}

/* ---- parsing ---- */

static cv_status parse_modifier(cv_operation *op, const char *part, size_t len, const char *text,
                                cv_error *err)
{
    if (part_is(part, len, "!")) {
        op->negate = !op->negate;
        return CV_OK;
    }
    int found = find_modifier(part, len);
    if (found >= 0) {
        if (op->modifier_count == CV_MAX_MODIFIERS)
            return cv_error_set(err, CV_ERR_INVALID, "operation \"%s\" has more than %d modifiers",
                                text, CV_MAX_MODIFIERS);
        op->modifiers[op->modifier_count++] = modifier_names[found].modifier;
        return CV_OK;
    }
    if (find_op_name(part, len) >= 0)
        return cv_error_set(err, CV_ERR_INVALID,
                            "\"%.*s\" in \"%s\" is an operation name, which must be the last part",
                            (int)len, part, text);
    return cv_error_set(err, CV_ERR_INVALID, "unknown modifier \"%.*s\" in \"%s\"", (int)len, part,
                        text);
}

/* name is the last part, so it ends the text and is NUL-terminated. */
static cv_status parse_name(cv_operation *op, const char *name, const char *text,
                            int (*find_custom)(void *context, const char *name), void *context,
                            cv_error *err)
{
    size_t len = strlen(name);
    int found = find_op_name(name, len);

    if (found >= 0) {
        op->name = op_names[found].op;
        return CV_OK;
    }
    if (part_is(name, len, "!") || find_modifier(name, len) >= 0)
        return cv_error_set(err, CV_ERR_INVALID,
                            "\"%s\" in \"%s\" is a modifier, so an operation name must follow it",
                            name, text);
    int ref = find_custom ? find_custom(context, name) : CV_NO_REF;
    if (ref == CV_NO_REF)
        return cv_error_set(err, CV_ERR_INVALID, "unknown operation \"%s\" in \"%s\"", name, text);
    op->name = CV_OP_CUSTOM;
    op->custom_ref = ref;
    return CV_OK;
}

cv_status cv_operation_parse(cv_operation *out, const char *text,
                             int (*find_custom)(void *context, const char *name), void *context,
                             cv_error *err)
{
    if (text == NULL || *text == '\0')
        return cv_error_set(err, CV_ERR_INVALID, "the operation is empty");
    /* Checked first, so that "eq|" is reported as the empty part it has. */
    size_t text_len = strlen(text);
    if (text[0] == '|' || text[text_len - 1] == '|' || strstr(text, "||") != NULL)
        return cv_error_set(err, CV_ERR_INVALID, "empty part in operation \"%s\"", text);

    cv_operation op = {.custom_ref = CV_NO_REF};
    const char *part = text;
    for (;;) {
        const char *bar = strchr(part, '|');
        size_t len = bar ? (size_t)(bar - part) : strlen(part);
        cv_status status = bar ? parse_modifier(&op, part, len, text, err)
                               : parse_name(&op, part, text, find_custom, context, err);
        if (status != CV_OK)
            return status;
        if (bar == NULL)
            break;
        part = bar + 1;
    }

    op.text = strdup(text);
    if (op.text == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory parsing operation \"%s\"", text);
    *out = op;
    return CV_OK;
}

void cv_operation_free(cv_operation *op)
{
    if (op == NULL)
        return;
    free(op->text);
    op->text = NULL;
}

/* ---- modifiers ---- */

/*
 * The field value as the modifiers transform it: value is the input of the
 * test (NULL when absent), and owned is the temporary behind it, if any.
 */
typedef struct operand {
    const json_t *value;
    json_t *owned;
} operand;

/* Replaces the operand with fresh (a new reference, or NULL for absent). */
static void operand_set(operand *o, json_t *fresh)
{
    json_decref(o->owned);
    o->owned = fresh;
    o->value = fresh;
}

/* Like operand_set, but a NULL fresh means the allocation failed. */
static cv_status operand_set_made(operand *o, json_t *fresh)
{
    if (fresh == NULL)
        return CV_ERR_NOMEM;
    operand_set(o, fresh);
    return CV_OK;
}

static bool is_ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static cv_status modify_trim(operand *o)
{
    const char *s = json_string_value(o->value);
    size_t start = 0;
    size_t end = json_string_length(o->value);

    while (start < end && is_ascii_space((unsigned char)s[start]))
        start++;
    while (end > start && is_ascii_space((unsigned char)s[end - 1]))
        end--;
    if (start == 0 && end == json_string_length(o->value))
        return CV_OK;
    /* Only ASCII bytes were cut, so the rest is still valid UTF-8. */
    return operand_set_made(o, json_stringn_nocheck(s + start, end - start));
}

/* Changes the case of ASCII letters only; other bytes, UTF-8 included, stay as they are. */
static cv_status modify_case(operand *o, bool upper)
{
    const char *s = json_string_value(o->value);
    size_t len = json_string_length(o->value);
    char from = upper ? 'a' : 'A';
    size_t first = 0;

    while (first < len && !(s[first] >= from && s[first] <= from + 25))
        first++;
    if (first == len)
        return CV_OK;

    char *buf = malloc(len + 1);
    if (buf == NULL)
        return CV_ERR_NOMEM;
    int shift = upper ? 'A' - 'a' : 'a' - 'A';
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= from && c <= from + 25)
            c = (char)(c + shift);
        buf[i] = c;
    }
    json_t *fresh = json_stringn_nocheck(buf, len);
    free(buf);
    return operand_set_made(o, fresh);
}

static cv_status modify_len(operand *o)
{
    const json_t *v = o->value;
    json_int_t count;

    if (json_is_string(v)) {
        /* jansson keeps strings as valid UTF-8: count the bytes that start a code point. */
        const unsigned char *s = (const unsigned char *)json_string_value(v);
        size_t len = json_string_length(v);
        count = 0;
        for (size_t i = 0; i < len; i++)
            count += (s[i] & 0xC0) != 0x80;
    } else if (json_is_array(v)) {
        count = (json_int_t)json_array_size(v);
    } else if (json_is_object(v)) {
        count = (json_int_t)json_object_size(v);
    } else {
        operand_set(o, NULL);
        return CV_OK;
    }
    return operand_set_made(o, json_integer(count));
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * True when s[0..len) is a whole decimal number: optional sign, digits with
 * an optional fraction, optional exponent. *integral is set when it has
 * neither fraction nor exponent.
 */
static bool is_decimal(const char *s, size_t len, bool *integral)
{
    size_t i = 0;
    size_t digits = 0;

    *integral = true;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < len && is_digit(s[i]); i++)
        digits++;
    if (i < len && s[i] == '.') {
        *integral = false;
        for (i++; i < len && is_digit(s[i]); i++)
            digits++;
    }
    if (digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        *integral = false;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t exponent_digits = 0;
        for (; i < len && is_digit(s[i]); i++)
            exponent_digits++;
        if (exponent_digits == 0)
            return false;
    }
    return i == len;
}

static cv_status modify_number(operand *o)
{
    if (json_is_number(o->value))
        return CV_OK;

    const char *s = json_string_value(o->value);
    bool integral;
    if (s == NULL || !is_decimal(s, json_string_length(o->value), &integral)) {
        operand_set(o, NULL);
        return CV_OK;
    }
    if (integral) {
        errno = 0;
        long long n = strtoll(s, NULL, 10);
        if (errno != ERANGE)
            return operand_set_made(o, json_integer(n));
    }
    double d = strtod(s, NULL);
    if (!isfinite(d)) {
        operand_set(o, NULL); /* too large for a double, such as "1e999" */
        return CV_OK;
    }
    return operand_set_made(o, json_real(d));
}

/* Writes the shortest %g form of d that reads back as the same double. */
static void format_real(char *buf, size_t size, double d)
{
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static cv_status modify_string(operand *o)
{
    const json_t *v = o->value;
    char buf[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        return CV_OK;
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return operand_set_made(o, json_string(buf));
    case JSON_REAL:
        format_real(buf, sizeof buf, json_real_value(v));
        return operand_set_made(o, json_string(buf));
    case JSON_TRUE:
        return operand_set_made(o, json_string("true"));
    case JSON_FALSE:
        return operand_set_made(o, json_string("false"));
    case JSON_NULL:
        operand_set(o, NULL);
        return CV_OK;
    default: {
        char *text = cv_json_dump(v);
        if (text == NULL)
            return CV_ERR_NOMEM;
        json_t *fresh = json_string(text);
        free(text);
        return operand_set_made(o, fresh);
    }
    }
}

static cv_status apply_modifier(operand *o, cv_modifier modifier)
{
    bool is_string = json_is_string(o->value);

    switch (modifier) {
    case CV_MOD_TRIM:
        return is_string ? modify_trim(o) : CV_OK;
    case CV_MOD_LOWER:
        return is_string ? modify_case(o, false) : CV_OK;
    case CV_MOD_UPPER:
        return is_string ? modify_case(o, true) : CV_OK;
    case CV_MOD_LEN:
        return modify_len(o);
    case CV_MOD_NUMBER:
        return modify_number(o);
    case CV_MOD_STRING:
        return modify_string(o);
    }
    return CV_OK;
}

/* ---- tests ---- */

/* PHP's empty(): absent, null, false, 0, 0.0, "", "0", [] and {}. */
static bool is_empty(const json_t *v)
{
    if (v == NULL)
        return true;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return true;
    case JSON_TRUE:
        return false;
    case JSON_INTEGER:
        return json_integer_value(v) == 0;
    case JSON_REAL:
        return json_real_value(v) == 0.0;
    case JSON_STRING:
        return json_string_length(v) == 0 ||
               (json_string_length(v) == 1 && json_string_value(v)[0] == '0');
    case JSON_ARRAY:
        return json_array_size(v) == 0;
    case JSON_OBJECT:
        return json_object_size(v) == 0;
    }
    return false;
}

/* Bytewise order of two JSON strings: memcmp over the shorter, then the shorter first. */
static int compare_strings(const json_t *a, const json_t *b)
{
    size_t alen = json_string_length(a);
    size_t blen = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b), alen < blen ? alen : blen);

    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

/*
 * Orders a against b into *order (<0, 0, >0). Returns false when they cannot
 * be ordered: an operand is absent, or they are not both numbers or both
 * strings.
 */
static bool compare(const json_t *a, const json_t *b, int *order)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        /* Compared as integers, because doubles lose precision beyond 2^53. */
        json_int_t x = json_integer_value(a);
        json_int_t y = json_integer_value(b);
        *order = (x > y) - (x < y);
        return true;
    }
    double x, y;
    if (cv_json_number(a, &x) && cv_json_number(b, &y)) {
        *order = (x > y) - (x < y);
        return true;
    }
    if (json_is_string(a) && json_is_string(b)) {
        *order = compare_strings(a, b);
        return true;
    }
    return false;
}

static bool holds_order(cv_op_name name, const json_t *value, const json_t *arg)
{
    int order;

    if (!compare(value, arg, &order))
        return false;
    switch (name) {
    case CV_OP_GT:
        return order > 0;
    case CV_OP_GTE:
        return order >= 0;
    case CV_OP_LT:
        return order < 0;
    default:
        return order <= 0;
    }
}

static bool array_has(const json_t *array, const json_t *element)
{
    size_t n = json_array_size(array);

    for (size_t i = 0; i < n; i++) {
        if (cv_json_equal(json_array_get(array, i), element))
            return true;
    }
    return false;
}

/* Byte substring search; glibc's memmem would need _GNU_SOURCE, which the build does not set. */
static bool has_substring(const char *haystack, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return true;
    for (size_t i = 0; i + nlen <= hlen; i++) {
        const char *first = memchr(haystack + i, needle[0], hlen - nlen + 1 - i);
        if (first == NULL)
            return false;
        i = (size_t)(first - haystack);
        if (memcmp(first, needle, nlen) == 0)
            return true;
    }
    return false;
}

static bool holds_contains(const json_t *value, const json_t *arg)
{
    if (json_is_array(value))
        return array_has(value, arg);
    if (!json_is_string(value) || !json_is_string(arg))
        return false;
    return has_substring(json_string_value(value), json_string_length(value),
                         json_string_value(arg), json_string_length(arg));
}

static bool holds_affix(const json_t *value, const json_t *arg, bool at_end)
{
    if (!json_is_string(value) || !json_is_string(arg))
        return false;

    size_t vlen = json_string_length(value);
    size_t alen = json_string_length(arg);
    if (alen > vlen)
        return false;
    const char *from = json_string_value(value) + (at_end ? vlen - alen : 0);
    return memcmp(from, json_string_value(arg), alen) == 0;
}

/*
 * NOTE: regexec reads a C string, so a value with an embedded NUL byte
 * ("\u0000" in JSON) is matched only up to that byte.
 */
static cv_status holds_regex(const cv_operation *op, const json_t *value, const regex_t *regex,
                             bool *out, cv_error *err)
{
    if (regex == NULL)
        return cv_error_set(err, CV_ERR_INVALID,
                            "operation \"%s\" has no compiled regular expression", op->text);
    if (!json_is_string(value)) {
        *out = false;
        return CV_OK;
    }
    int rc = regexec(regex, json_string_value(value), 0, NULL, 0);
    if (rc != 0 && rc != REG_NOMATCH) {
        char reason[128];
        regerror(rc, regex, reason, sizeof reason);
        return cv_error_set(err, CV_ERR_LIMIT, "operation \"%s\" failed to match: %s", op->text,
                            reason);
    }
    *out = (rc == 0);
    return CV_OK;
}

static cv_status holds_custom(const cv_operation *op, const json_t *value, const json_t *arg,
                              cv_script *script, bool *out, cv_error *err)
{
    if (script == NULL || script->ops->operation == NULL)
        return cv_error_set(err, CV_ERR_INVALID, "operation \"%s\" needs Lua, but no script is given",
                            op->text);
    return script->ops->operation(script, op->custom_ref, value, arg, out, err);
}

/* Tests for which absence matters or no `value` is needed. */
static bool holds_simple(cv_op_name name, const json_t *value, const json_t *arg)
{
    switch (name) {
    case CV_OP_EMPTY:
        return is_empty(value);
    case CV_OP_EXISTS:
        return value != NULL;
    case CV_OP_NULL:
        return json_is_null(value);
    case CV_OP_EQ:
        return cv_json_equal(value, arg);
    case CV_OP_NE:
        return value != NULL && arg != NULL && !cv_json_equal(value, arg);
    case CV_OP_GT:
    case CV_OP_GTE:
    case CV_OP_LT:
    case CV_OP_LTE:
        return holds_order(name, value, arg);
    case CV_OP_IN:
        return value != NULL && json_is_array(arg) && array_has(arg, value);
    case CV_OP_CONTAINS:
        return arg != NULL && holds_contains(value, arg);
    case CV_OP_STARTS:
        return holds_affix(value, arg, false);
    case CV_OP_ENDS:
        return holds_affix(value, arg, true);
    case CV_OP_IS_STRING:
        return json_is_string(value);
    case CV_OP_IS_NUMBER:
        return json_is_number(value);
    case CV_OP_IS_BOOL:
        return json_is_boolean(value);
    case CV_OP_IS_ARRAY:
        return json_is_array(value);
    case CV_OP_IS_OBJECT:
        return json_is_object(value);
    default:
        return false;
    }
}

static cv_status run_test(const cv_operation *op, const json_t *value, const json_t *arg,
                          const regex_t *regex, cv_script *script, bool *out, cv_error *err)
{
    if (op->name == CV_OP_REGEX)
        return holds_regex(op, value, regex, out, err);
    if (op->name == CV_OP_CUSTOM)
        return holds_custom(op, value, arg, script, out, err);
    *out = holds_simple(op->name, value, arg);
    return CV_OK;
}

cv_status cv_operation_test(const cv_operation *op, const json_t *value, const json_t *arg,
                            const regex_t *regex, cv_script *script, bool *out, cv_error *err)
{
    operand field = {.value = value};
    cv_status status = CV_OK;
    bool holds = false;

    for (size_t i = 0; i < op->modifier_count && field.value != NULL; i++) {
        status = apply_modifier(&field, op->modifiers[i]);
        if (status != CV_OK) {
            cv_error_set(err, status, "out of memory applying operation \"%s\"", op->text);
            goto out;
        }
    }
    status = run_test(op, field.value, arg, regex, script, &holds, err);
    if (status == CV_OK)
        *out = (holds != op->negate);
out:
    json_decref(field.owned);
    return status;
}
