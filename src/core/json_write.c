/*
 * Serialises jansson values into one growable buffer, reproducing the bytes
 * of jansson 2.14's compact json_dumps. jansson's own writer costs about 80
 * instructions per output byte on the node's documents. It calls back for
 * every fragment, decodes every string one code point at a time, formats
 * numbers with snprintf and keeps each open container in a hash table to
 * detect loops. This file writes into the buffer directly, scans strings
 * eight bytes at a time and formats numbers by hand.
 *
 * The rules copied from jansson 2.14, each checked by the unit tests:
 * - strings: '"' and '\\' are escaped with a backslash, control characters
 *   below 0x20 as \b \f \n \r \t or \u00XX with upper-case hex digits, and
 *   everything else, '/', DEL and non-ASCII UTF-8 included, is copied.
 *   Invalid UTF-8 fails the whole call, except in a key (see write_string).
 * - integers: decimal, INT64_MIN included.
 * - reals: printf "%.17g" with '.' as the decimal point, ".0" appended
 *   when neither '.' nor 'e' appears, and the exponent's '+' sign and
 *   leading zeros removed ("1e+300" becomes "1e300", "1e-07" "1e-7"),
 *   computed without printf for most values (json_real.c).
 * - objects: keys in the order jansson's object iterator gives.
 */
#include "core/json_write.h"

#include "core/json_real.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Size of the first buffer allocated, which doubles from there as needed. */
#define INITIAL_CAPACITY 512

/* 0x0101...01 and 0x8080...80, a byte value repeated in all eight bytes. */
#define EVERY_BYTE (UINT64_MAX / 255)
#define HIGH_BITS (EVERY_BYTE * 0x80)

typedef struct out_buffer {
    char *data;
    size_t length;
    size_t capacity;
} out_buffer;

static bool grow(out_buffer *b, size_t extra)
{
    if (extra > SIZE_MAX - b->length)
        return false;
    size_t need = b->length + extra;
    size_t capacity = b->capacity > 0 ? b->capacity : INITIAL_CAPACITY;
    while (capacity < need) {
        if (capacity > SIZE_MAX / 2)
            return false;
        capacity *= 2;
    }
    char *data = realloc(b->data, capacity);
    if (data == NULL)
        return false;
    b->data = data;
    b->capacity = capacity;
    return true;
}

/* Makes room for extra more bytes after b->length. */
static inline bool reserve(out_buffer *b, size_t extra)
{
    return b->capacity - b->length >= extra || grow(b, extra);
}

static inline bool put_char(out_buffer *b, char c)
{
    if (!reserve(b, 1))
        return false;
    b->data[b->length++] = c;
    return true;
}

static inline bool put_bytes(out_buffer *b, const char *bytes, size_t n)
{
    if (!reserve(b, n))
        return false;
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    return true;
}

/*
 * Returns nonzero when one of the eight bytes in v is a control character,
 * '"', '\\' or not ASCII. The "byte below k" tests are the usual SWAR ones.
 * They can mark extra bytes above a true match, but they never report a
 * match in a block that has none.
 */
static inline uint64_t needs_care(uint64_t v)
{
    uint64_t quote = v ^ (EVERY_BYTE * '"');
    uint64_t backslash = v ^ (EVERY_BYTE * '\\');
    uint64_t control = (v - EVERY_BYTE * 0x20) & ~v;

    quote = (quote - EVERY_BYTE) & ~quote;
    backslash = (backslash - EVERY_BYTE) & ~backslash;
    return (v | control | quote | backslash) & HIGH_BITS;
}

/* 1 for the bytes copied as they are without a check: ASCII from 0x20 except '"' and '\\'. */
static const unsigned char plain_ascii[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/*
 * Returns the length of the valid UTF-8 sequence that starts with the
 * non-ASCII byte at s, or 0 when it is invalid. Invalid are a stray
 * continuation byte, an overlong form, a UTF-16 surrogate, a code point
 * above U+10FFFF, and a sequence longer than the available bytes.
 */
static size_t utf8_length(const unsigned char *s, size_t available)
{
    size_t length;

    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        length = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        length = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        length = 4;
    else
        return 0;
    if (length > available)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xF0 && s[1] < 0x90))
        return 0;
    if (s[0] == 0xED && s[1] > 0x9F)
        return 0;
    if (s[0] == 0xF4 && s[1] > 0x8F)
        return 0;
    return length;
}

/* Writes the escape for a control character, '"' or '\\' at out and returns its end. */
static char *put_escape(char *out, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char short_form = 0;

    switch (c) {
    case '"':
        short_form = '"';
        break;
    case '\\':
        short_form = '\\';
        break;
    case '\b':
        short_form = 'b';
        break;
    case '\f':
        short_form = 'f';
        break;
    case '\n':
        short_form = 'n';
        break;
    case '\r':
        short_form = 'r';
        break;
    case '\t':
        short_form = 't';
        break;
    default:
        break;
    }
    *out++ = '\\';
    if (short_form != 0) {
        *out++ = short_form;
        return out;
    }
    memcpy(out, "u00", 3);
    out[3] = hex[c >> 4];
    out[4] = hex[c & 0xF];
    return out + 5;
}

/*
 * Copies the valid UTF-8 sequences starting at s[*i] and returns the new
 * output end, or NULL at an invalid one. Two-byte sequences (Latin
 * accents, Greek, Cyrillic) are checked inline because they are the most
 * common in the node's data.
 */
static char *copy_utf8_run(char *out, const char *s, size_t n, size_t *i)
{
    const unsigned char *text = (const unsigned char *)s;
    size_t at = *i;

    do {
        if (text[at] >= 0xC2 && text[at] <= 0xDF && n - at >= 2 && (text[at + 1] & 0xC0) == 0x80) {
            out[0] = (char)text[at];
            out[1] = (char)text[at + 1];
            out += 2;
            at += 2;
            continue;
        }
        size_t length = utf8_length(text + at, n - at);
        if (length == 0)
            return NULL;
        for (size_t k = 0; k < length; k++)
            out[k] = (char)text[at + k];
        out += length;
        at += length;
    } while (at < n && text[at] >= 0x80);
    *i = at;
    return out;
}

/*
 * Writes s (n bytes, NUL allowed) as a quoted JSON string. Room for the
 * quotes and every byte copied as is is reserved up front, so only escapes,
 * which add up to five bytes each, need another check. Clean 8-byte blocks
 * are copied whole, and a string's last bytes are copied as one block that
 * overlaps bytes already written, when those were copied unchanged.
 *
 * Invalid UTF-8 in a string value fails the call. In an object key it does
 * not, because jansson 2.14 ignores the failure of a key. Its output keeps
 * the opening quote and the text up to the last escape before the invalid
 * byte, then goes on with ':' and the value. That text is not valid JSON,
 * and it is reproduced only so that the output stays byte-identical.
 */
static bool write_string(out_buffer *b, const char *s, size_t n, bool is_key)
{
    if (!reserve(b, n + 2))
        return false;
    char *out = b->data + b->length;
    size_t i = 0;
    size_t unchanged_from = 0; /* input from here on was copied one byte for one */
    bool tail_tried = n < 8;

    *out++ = '"';
    size_t flushed = (size_t)(out - b->data); /* where jansson's output of a bad key ends */
    while (i < n) {
        uint64_t block;
        if (n - i >= 8) {
            memcpy(&block, s + i, 8);
            memcpy(out, &block, 8);
            if (needs_care(block) == 0) {
                out += 8;
                i += 8;
                continue;
            }
            /* The block holds at least one byte to handle; keep the plain ones before it. */
            while (plain_ascii[(unsigned char)s[i]]) {
                out++;
                i++;
            }
        } else {
            if (!tail_tried && n - 8 >= unchanged_from) {
                size_t overlap = 8 - (n - i);
                memcpy(&block, s + n - 8, 8);
                if (needs_care(block) == 0) {
                    memcpy(out - overlap, &block, 8);
                    out += n - i;
                    break;
                }
            }
            tail_tried = true;
            while (i < n && plain_ascii[(unsigned char)s[i]])
                *out++ = s[i++];
            if (i == n)
                break;
        }

        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            out = copy_utf8_run(out, s, n, &i);
            if (out == NULL) {
                b->length = flushed;
                return is_key;
            }
            continue;
        }
        /* An escape of one byte takes up to six: five more than reserved. */
        b->length = (size_t)(out - b->data);
        if (!reserve(b, (n - i) + 6))
            return false;
        out = put_escape(b->data + b->length, c);
        flushed = (size_t)(out - b->data);
        i++;
        unchanged_from = i;
    }
    *out++ = '"';
    b->length = (size_t)(out - b->data);
    return true;
}

static bool write_integer(out_buffer *b, json_int_t value)
{
    char digits[24];
    char *end = digits + sizeof digits;
    char *p = end;
    /* Negating in unsigned arithmetic keeps INT64_MIN defined. */
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value
                                             : (unsigned long long)value;

    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0)
        *--p = '-';
    return put_bytes(b, p, (size_t)(end - p));
}

static bool write_real(out_buffer *b, double value)
{
    char text[CV_JSON_REAL_MAX];
    size_t length = cv_json_real_format(text, value);
    return length > 0 && put_bytes(b, text, length);
}

static bool write_value(out_buffer *b, const json_t *value, size_t depth, const json_t *mark);

static bool write_array(out_buffer *b, const json_t *array, size_t depth, const json_t *mark)
{
    size_t count = json_array_size(array);

    if (!put_char(b, '['))
        return false;
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && !put_char(b, ','))
            return false;
        if (!write_value(b, json_array_get(array, i), depth, mark))
            return false;
    }
    return put_char(b, ']');
}

static bool write_object(out_buffer *b, const json_t *object, size_t depth, const json_t *mark)
{
    /* jansson's iterator functions take a non-const object but do not change it. */
    json_t *iterated = (json_t *)object;
    void *iter = json_object_iter(iterated);

    if (!put_char(b, '{'))
        return false;
    for (bool first = true; iter != NULL; first = false) {
        if (!first && !put_char(b, ','))
            return false;
        if (!write_string(b, json_object_iter_key(iter), json_object_iter_key_len(iter), true))
            return false;
        if (!put_char(b, ':'))
            return false;
        if (!write_value(b, json_object_iter_value(iter), depth, mark))
            return false;
        iter = json_object_iter_next(iterated, iter);
    }
    return put_char(b, '}');
}

/*
 * A container nested inside itself has no JSON text, and json_dumps returns
 * NULL for it. jansson finds such a loop by keeping every open container in
 * a hash table. Here each container is compared with a single ancestor,
 * mark: the container at the largest power-of-two depth above it (Brent's
 * cycle detection). Once inside a loop the walk keeps descending along the
 * same repeating path, and this comparison meets a repeated container
 * within about twice the depth at which the loop closes, so the recursion
 * stops there. depth counts the containers around value.
 */
static bool write_container(out_buffer *b, const json_t *value, size_t depth, const json_t *mark)
{
    if (value == mark)
        return false;
    depth++;
    if ((depth & (depth - 1)) == 0)
        mark = value;
    if (json_is_object(value))
        return write_object(b, value, depth, mark);
    return write_array(b, value, depth, mark);
}

static bool write_value(out_buffer *b, const json_t *value, size_t depth, const json_t *mark)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        return write_container(b, value, depth, mark);
    case JSON_STRING:
        return write_string(b, json_string_value(value), json_string_length(value), false);
    case JSON_INTEGER:
        return write_integer(b, json_integer_value(value));
    case JSON_REAL:
        return write_real(b, json_real_value(value));
    case JSON_TRUE:
        return put_bytes(b, "true", 4);
    case JSON_FALSE:
        return put_bytes(b, "false", 5);
    case JSON_NULL:
        return put_bytes(b, "null", 4);
    }
    return false;
}

char *cv_json_write(size_t *length, const json_t *value)
{
    out_buffer b = {0};

    if (value == NULL)
        return NULL;
    if (!write_value(&b, value, 0, NULL) || !put_char(&b, '\0')) {
        free(b.data);
        return NULL;
    }
    if (length != NULL)
        *length = b.length - 1;
    return b.data;
}
