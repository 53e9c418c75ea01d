/*
 * cv_json_write against jansson's json_dumps with the flags cv_json_dump
 * used before it. Fixed cases cover each formatting rule with the expected
 * text written out. Random documents from a fixed seed must come out byte
 * for byte the same from both.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <float.h>
#include <locale.h>
#include <math.h>

#include "core/json_write.h"
#include "core/jsonx.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)

/* Asserts that both serialisers give the same text or both NULL; true when text came out. */
static bool check_same(const json_t *value)
{
    char *expected = json_dumps(value, DUMP_FLAGS);
    size_t length = SIZE_MAX;
    char *actual = cv_json_write(&length, value);
    bool written = expected != NULL;

    if (expected == NULL) {
        assert_null(actual);
        assert_int_equal(length, SIZE_MAX);
        return written;
    }
    assert_non_null(actual);
    assert_string_equal(actual, expected);
    assert_int_equal(length, strlen(expected));

    char *dumped = cv_json_dump(value);
    assert_non_null(dumped);
    assert_string_equal(dumped, expected);
    free(dumped);
    free(expected);
    free(actual);
    return written;
}

/* Asserts the text of value (taken) from both serialisers. */
static void assert_writes(json_t *value, const char *expected)
{
    assert_non_null(value);
    char *jansson = json_dumps(value, DUMP_FLAGS);
    char *ours = cv_json_write(NULL, value);

    assert_non_null(jansson);
    assert_string_equal(jansson, expected);
    assert_non_null(ours);
    assert_string_equal(ours, expected);
    free(jansson);
    free(ours);
    json_decref(value);
}

/* Asserts that both serialisers reject value (taken). */
static void assert_rejected(json_t *value)
{
    assert_non_null(value);
    char *jansson = json_dumps(value, DUMP_FLAGS);
    size_t length = 7;
    char *ours = cv_json_write(&length, value);

    assert_null(jansson);
    assert_null(ours);
    assert_int_equal(length, 7);
    json_decref(value);
}

static void string_escapes_quote_and_backslash(void **state)
{
    (void)state;
    assert_writes(json_string("say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_writes(json_string("C:\\dir\\"), "\"C:\\\\dir\\\\\"");
    assert_writes(json_string(""), "\"\"");
    assert_writes(json_string("0123456789abcdef\"0123456"), "\"0123456789abcdef\\\"0123456\"");
}

static void string_escapes_every_control_char(void **state)
{
    (void)state;
    for (int c = 1; c < 0x20; c++) {
        char text[] = {'a', (char)c, 'b', '\0'};
        char expected[16];
        switch (c) {
        case '\b':
            strcpy(expected, "\"a\\bb\"");
            break;
        case '\f':
            strcpy(expected, "\"a\\fb\"");
            break;
        case '\n':
            strcpy(expected, "\"a\\nb\"");
            break;
        case '\r':
            strcpy(expected, "\"a\\rb\"");
            break;
        case '\t':
            strcpy(expected, "\"a\\tb\"");
            break;
        default:
            snprintf(expected, sizeof expected, "\"a\\u%04Xb\"", (unsigned)c);
            break;
        }
        assert_writes(json_string(text), expected);
    }
    assert_writes(json_string("\x1b[0m\x1f"), "\"\\u001B[0m\\u001F\"");
}

static void string_copies_slash_del_and_utf8(void **state)
{
    (void)state;
    assert_writes(json_string("a/b</script>"), "\"a/b</script>\"");
    assert_writes(json_string("\x7f"), "\"\x7f\"");
    assert_writes(json_string("Привет, мир"), "\"Привет, мир\"");
    assert_writes(json_string("€ \xe2\x80\xa8 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"),
                  "\"€ \xe2\x80\xa8 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"");
    assert_writes(json_string("long ascii run then é\n"), "\"long ascii run then é\\n\"");
}

static void string_keeps_embedded_nul(void **state)
{
    (void)state;
    assert_writes(json_stringn("a\0b", 3), "\"a\\u0000b\"");
    assert_writes(json_stringn("\0", 1), "\"\\u0000\"");
    assert_writes(json_stringn("12345678\0", 9), "\"12345678\\u0000\"");
}

static void string_rejects_invalid_utf8(void **state)
{
    (void)state;
    static const char *const invalid[] = {
        "\x80",             /* continuation byte without a lead */
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong two-byte form */
        "\xe0\x80\x80",     /* overlong three-byte form */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf0\x80\x80\x80", /* overlong four-byte form */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* lead byte never used */
        "\xff",
        "ok\xc3",           /* cut off at the end */
        "\xe2\x82",         /* cut off at the end */
        "\xc3(",            /* lead byte without its continuation */
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        assert_rejected(json_stringn_nocheck(invalid[i], strlen(invalid[i])));
        assert_rejected(json_pack("[io]", 1, json_stringn_nocheck(invalid[i], strlen(invalid[i]))));
    }
}

/*
 * jansson 2.14 ignores the failure of a key: the key's text stops after
 * the last escape before the invalid byte, and the rest of the document
 * follows. The result is not JSON, but it is what cv_json_dump gave before.
 */
static void invalid_key_truncated_like_jansson(void **state)
{
    (void)state;
    json_t *object = json_object();
    json_object_setn_new_nocheck(object, "ok\xc3", 3, json_true());
    assert_writes(object, "{\":true}");

    object = json_object();
    json_object_setn_new_nocheck(object, "a\nb\"c\xff" "d", 7, json_integer(1));
    json_object_set_new(object, "next", json_string("x"));
    assert_writes(object, "{\"a\\nb\\\":1,\"next\":\"x\"}");

    object = json_object();
    json_object_setn_new_nocheck(object, "0123456789\t0123456789\xed\xa0\x80", 24, json_null());
    assert_writes(object, "{\"0123456789\\t:null}");
}

/*
 * Every non-ASCII lead byte with every second byte, followed by
 * continuation bytes, so both validators meet each boundary (overlong forms,
 * surrogates, U+10FFFF, truncation) and must agree.
 */
static void utf8_validation_matches_jansson(void **state)
{
    (void)state;
    static const char *const tails[] = {"", "\x80", "\xbf\xbf", "\x80\x80\x80", "a"};
    size_t accepted = 0;
    size_t rejected = 0;

    for (int lead = 0x80; lead <= 0xff; lead++) {
        for (int second = 0; second <= 0xff; second++) {
            for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
                char text[16];
                int n = snprintf(text, sizeof text, "x%c%c%s", lead, second, tails[t]);
                if (second == 0)
                    n = 2; /* snprintf stopped at the NUL, so keep "x" and the lead only */
                json_t *value = json_stringn_nocheck(text, (size_t)n);
                if (check_same(value))
                    accepted++;
                else
                    rejected++;
                json_decref(value);
            }
        }
    }
    /* Both outcomes are exercised, so the comparison is not vacuous. */
    assert_true(accepted > 1000);
    assert_true(rejected > 1000);
}

static void integer_formats_extremes(void **state)
{
    (void)state;
    assert_writes(json_integer(0), "0");
    assert_writes(json_integer(-1), "-1");
    assert_writes(json_integer(10), "10");
    assert_writes(json_integer(-4127), "-4127");
    assert_writes(json_integer(INT64_MAX), "9223372036854775807");
    assert_writes(json_integer(INT64_MIN), "-9223372036854775808");

    json_int_t power = 1;
    for (int i = 0; i < 18; i++) {
        power *= 10;
        json_t *values[] = {json_integer(power), json_integer(power - 1), json_integer(-power),
                            json_integer(1 - power)};
        for (size_t k = 0; k < 4; k++) {
            check_same(values[k]);
            json_decref(values[k]);
        }
    }
}

static void real_follows_jansson_format(void **state)
{
    (void)state;
    assert_writes(json_real(1.0), "1.0");
    assert_writes(json_real(-1.5), "-1.5");
    assert_writes(json_real(100.0), "100.0");
    assert_writes(json_real(0.5), "0.5");
    assert_writes(json_real(0.1), "0.10000000000000001");
    assert_writes(json_real(3.14), "3.1400000000000001");
    assert_writes(json_real(0.0), "0.0");
    assert_writes(json_real(-0.0), "-0.0");
    assert_writes(json_real(1e300), "1.0000000000000001e300");
    assert_writes(json_real(1e-7), "9.9999999999999995e-8");
    assert_writes(json_real(1e-5), "1.0000000000000001e-5");
    assert_writes(json_real(0.0001), "0.0001");
    assert_writes(json_real(1e16), "10000000000000000.0");
    assert_writes(json_real(1e17), "1e17");
    assert_writes(json_real(1e21), "1e21");
    assert_writes(json_real(-2e-300), "-2.0000000000000001e-300");
    assert_writes(json_real(123456789012345678.0), "1.2345678901234568e17");
    assert_writes(json_real(DBL_MAX), "1.7976931348623157e308");
    assert_writes(json_real(5e-324), "4.9406564584124654e-324");
    assert_writes(json_real(DBL_MIN), "2.2250738585072014e-308");
}

/*
 * The random source of the random tests: splitmix64, which gives the same
 * sequence on every platform, so a failure seen once is seen again.
 */
typedef struct random_source {
    uint64_t state;
    int budget; /* values this document may still contain */
} random_source;

static uint64_t next_random(random_source *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned random_below(random_source *r, unsigned limit)
{
    return (unsigned)(next_random(r) % limit);
}

/* Asserts that jansson and cv_json_write give the same text for the real value. */
static void check_real(double value)
{
    json_t *real = json_real(value);
    assert_non_null(real);
    assert_true(check_same(real));
    json_decref(real);
}

/* Every power of two, and each power of ten with its neighbours, where rounding carries. */
static void real_powers_and_neighbours(void **state)
{
    (void)state;
    for (int e = -1074; e <= 1023; e++) {
        check_real(ldexp(1.0, e));
        check_real(-ldexp(1.0, e));
        check_real(ldexp(1.0, e) * 1.5);
    }
    for (int p = -325; p <= 308; p++) {
        char text[16];
        snprintf(text, sizeof text, "1e%d", p);
        double power = strtod(text, NULL);
        double below = power;
        double above = power;
        check_real(power);
        for (int k = 0; k < 4; k++) {
            below = nextafter(below, 0.0);
            above = nextafter(above, INFINITY);
            check_real(below);
            if (isfinite(above))
                check_real(above);
        }
    }
    check_real(DBL_MAX);
    check_real(nextafter(0.0, 1.0));
    check_real(DBL_MIN);
    check_real(nextafter(DBL_MIN, 0.0));
}

/*
 * Values whose exact decimal expansion has 18 significant digits ending in
 * 5, so rounding to 17 digits is an exact tie and goes to the even digit.
 * whole has 18 - n digits and j / 2^n (j odd) adds n decimals ending in 5;
 * whole * 2^n + j stays below 2^53, so the double is exact.
 */
static void real_ties_round_to_even(void **state)
{
    (void)state;
    random_source r = {.state = 99};
    assert_writes(json_real(1000000000000000.25), "1000000000000000.2");
    assert_writes(json_real(1000000000000000.75), "1000000000000000.8");

    for (int n = 2; n <= 17; n++) {
        double low = pow(10, 17 - n);
        double high = fmin(pow(10, 18 - n), ldexp(1.0, 53 - n));
        for (int i = 0; i < 200; i++) {
            double whole = floor(low + (high - low) * (double)(next_random(&r) >> 11) / 0x1p53);
            double j = (double)(2 * (next_random(&r) % ((UINT64_C(1) << (n - 1)))) + 1);
            check_real(whole + ldexp(j, -n));
            check_real(-(whole + ldexp(j, -n)));
        }
    }
    /* Pure fractions j / 2^n with j * 5^n of 18 digits. */
    for (int n = 25; n <= 27; n++) {
        for (uint64_t j = 1; j < 40; j += 2)
            check_real(ldexp((double)j, -n));
    }
}

/* Random bit patterns cover every exponent, both formatting paths included. */
static void real_random_bits_match(void **state)
{
    (void)state;
    random_source r = {.state = 31337};
    for (int i = 0; i < 100000; i++) {
        uint64_t bits = next_random(&r);
        double value;
        memcpy(&value, &bits, sizeof value);
        if (isfinite(value))
            check_real(value);
        /* Short mantissas, as decimal input like 0.25 or 1234.5 gives. */
        bits &= ~((UINT64_C(1) << (next_random(&r) % 52)) - 1);
        memcpy(&value, &bits, sizeof value);
        if (isfinite(value))
            check_real(value);
    }
    for (int i = 0; i < 20000; i++) {
        double cents = (double)(int64_t)(next_random(&r) % 2000000001) - 1e9;
        check_real(cents / 100);
        check_real(cents / 1000);
    }
}

/* Runs only where a locale with a comma decimal point is installed. */
static void real_ignores_locale_decimal_comma(void **state)
{
    (void)state;
    static const char *const locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                                          "ru_RU.UTF-8"};
    const char *found = NULL;

    for (size_t i = 0; i < sizeof locales / sizeof locales[0] && found == NULL; i++)
        found = setlocale(LC_NUMERIC, locales[i]);
    if (found == NULL)
        skip();
    assert_writes(json_real(2.5), "2.5");
    assert_writes(json_real(1.0), "1.0");
    assert_writes(json_real(1e-7), "9.9999999999999995e-8");
    setlocale(LC_NUMERIC, "C");
}

static void literals_and_empty_containers(void **state)
{
    (void)state;
    assert_writes(json_true(), "true");
    assert_writes(json_false(), "false");
    assert_writes(json_null(), "null");
    assert_writes(json_object(), "{}");
    assert_writes(json_array(), "[]");
    assert_writes(json_loads("[[],{},[{}],{\"a\":[]},null,true,false]", 0, NULL),
                  "[[],{},[{}],{\"a\":[]},null,true,false]");
}

static void object_keeps_insertion_order(void **state)
{
    (void)state;
    json_t *object = json_object();
    json_object_set_new(object, "zeta", json_integer(1));
    json_object_set_new(object, "alpha", json_integer(2));
    json_object_set_new(object, "mid", json_integer(3));
    json_object_set_new(object, "zeta", json_integer(4)); /* replaced in place */
    json_object_del(object, "alpha");
    json_object_set_new(object, "alpha", json_integer(5)); /* moved to the end */
    json_object_setn_new(object, "a\0b", 3, json_string("nul key"));
    json_object_set_new(object, "q\"\\\n", json_null());
    assert_writes(object, "{\"zeta\":4,\"mid\":3,\"alpha\":5,\"a\\u0000b\":\"nul key\","
                          "\"q\\\"\\\\\\n\":null}");
}

static void nested_document_matches(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:{s:s, s:i}, s:{s:{s:s, s:[s, s], s:f}}}",
                            "instance", "0f3c9a", "process", "lead", "step", "s1", "attempt", 1,
                            "params", "url", "https://crm.example/api/", "timeout", 30, "data",
                            "request", "TITLE", "Question", "TAGS", "a", "b", "AMOUNT", 15400.5);
    assert_writes(doc, "{\"instance\":\"0f3c9a\",\"process\":\"lead\",\"step\":\"s1\","
                       "\"attempt\":1,"
                       "\"params\":{\"url\":\"https://crm.example/api/\",\"timeout\":30},"
                       "\"data\":{\"request\":{\"TITLE\":\"Question\",\"TAGS\":[\"a\",\"b\"],"
                       "\"AMOUNT\":15400.5}}}");
}

static void deep_nesting_matches(void **state)
{
    (void)state;
    json_t *root = json_array();
    json_t *inner = root;
    for (int i = 0; i < 3000; i++) {
        json_t *child = i % 2 == 0 ? json_object() : json_array();
        if (json_is_array(inner))
            json_array_append_new(inner, child);
        else
            json_object_set_new(inner, "k", child);
        inner = child;
    }
    json_array_append_new(inner, json_integer(7));
    assert_true(check_same(root));
    json_decref(root);
}

static void shared_child_written_twice(void **state)
{
    (void)state;
    json_t *child = json_pack("{s:i}", "n", 1);
    json_t *root = json_array();
    json_array_append(root, child);
    json_array_append(root, child);
    json_array_append_new(root, json_pack("[O]", child));
    json_decref(child);
    assert_writes(root, "[{\"n\":1},{\"n\":1},[{\"n\":1}]]");
}

/*
 * Builds a loop through length (at least 2) containers below prefix plain
 * ones and checks that both serialisers reject it. jansson itself refuses
 * to put a container directly inside itself.
 */
static void check_loop(int prefix, int length)
{
    json_t *root = json_array();
    json_t *at = root;
    for (int i = 0; i < prefix; i++) {
        json_t *next = json_array();
        json_array_append_new(at, json_string("before"));
        json_array_append_new(at, next);
        at = next;
    }
    json_t *first = json_object();
    json_t *last = first;
    json_array_append_new(at, first);
    for (int i = 1; i < length; i++) {
        json_t *next = i % 2 == 0 ? json_object() : json_array();
        if (json_is_array(last))
            json_array_append_new(last, next);
        else
            json_object_set_new(last, "next", next);
        last = next;
    }
    if (json_is_array(last))
        assert_int_equal(json_array_append(last, first), 0);
    else
        assert_int_equal(json_object_set(last, "loop", first), 0);

    char *jansson = json_dumps(root, DUMP_FLAGS);
    char *ours = cv_json_write(NULL, root);
    assert_null(jansson);
    assert_null(ours);

    /* Reference counts cannot free a cycle, so open it before releasing the tree. */
    if (json_is_array(last))
        json_array_remove(last, json_array_size(last) - 1);
    else
        json_object_del(last, "loop");
    json_decref(root);
}

static void container_inside_itself_rejected(void **state)
{
    (void)state;
    check_loop(0, 2);
    check_loop(0, 3);
    check_loop(5, 2);
    check_loop(40, 97);
    check_loop(1000, 2);
}

static void null_value_gives_null(void **state)
{
    (void)state;
    size_t length = 3;
    assert_null(cv_json_write(&length, NULL));
    assert_int_equal(length, 3);
    assert_null(cv_json_dump(NULL));
    assert_null(json_dumps(NULL, DUMP_FLAGS));
}

static void long_string_grows_buffer(void **state)
{
    (void)state;
    size_t n = 200000;
    char *text = malloc(n);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        text[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < n; i += 997)
        text[i] = i % 2 == 0 ? '\n' : '"';
    text[n - 1] = '\x01';
    json_t *value = json_stringn(text, n);
    free(text);
    assert_true(check_same(value));
    json_decref(value);
}

static size_t put_utf8(char *out, uint32_t code)
{
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

static uint32_t random_code_point(random_source *r)
{
    static const uint32_t edges[] = {0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF,
                                     0x2028, 0x2029, 0xFEFF};
    uint32_t code;
    switch (random_below(r, 5)) {
    case 0:
        return edges[random_below(r, sizeof edges / sizeof edges[0])];
    case 1:
        return 0x80 + random_below(r, 0x800 - 0x80);
    case 2:
        return 0x400 + random_below(r, 0x100); /* Cyrillic */
    case 3:
        code = 0x800 + random_below(r, 0x10000 - 0x800);
        return code >= 0xD800 && code <= 0xDFFF ? 0xFFFD : code;
    default:
        return 0x10000 + random_below(r, 0x110000 - 0x10000);
    }
}

/* Fills text with a random valid UTF-8 string of at most max bytes; returns its length. */
static size_t random_text(random_source *r, char *text, size_t max)
{
    static const char special[] = {'"', '\\', '/', '\0', '\x7f', '\b',
                                   '\f', '\n', '\r', '\t', '\x1f'};
    size_t length = 0;
    size_t pieces = random_below(r, 12);

    for (size_t p = 0; p < pieces && length + 40 < max; p++) {
        unsigned kind = random_below(r, 10);
        if (kind < 3) {
            size_t run = random_below(r, 30);
            for (size_t i = 0; i < run; i++)
                text[length++] = (char)(0x20 + random_below(r, 0x5F));
        } else if (kind < 5) {
            text[length++] = special[random_below(r, sizeof special)];
        } else if (kind < 6) {
            text[length++] = (char)random_below(r, 0x20);
        } else {
            length += put_utf8(text + length, random_code_point(r));
        }
    }
    return length;
}

static json_t *random_integer(random_source *r)
{
    static const json_int_t edges[] = {0, 1, -1, 9, 10, -10, INT64_MAX, INT64_MIN, INT64_MAX - 1,
                                       INT64_MIN + 1, 999999999999999999LL, -1000000000000000000LL};
    switch (random_below(r, 3)) {
    case 0:
        return json_integer(edges[random_below(r, sizeof edges / sizeof edges[0])]);
    case 1:
        return json_integer((json_int_t)random_below(r, 100000) - 50000);
    default:
        return json_integer((json_int_t)next_random(r));
    }
}

static json_t *random_real(random_source *r)
{
    if (random_below(r, 3) == 0) {
        double whole = (double)((int)random_below(r, 2000000) - 1000000);
        return json_real(whole / pow(10, random_below(r, 8)));
    }
    for (;;) {
        uint64_t bits = next_random(r);
        double value;
        memcpy(&value, &bits, sizeof value);
        if (isfinite(value))
            return json_real(value);
    }
}

static json_t *random_value(random_source *r, int depth);

static json_t *random_container(random_source *r, int depth)
{
    bool is_object = random_below(r, 2) == 0;
    json_t *container = is_object ? json_object() : json_array();
    unsigned count = random_below(r, 7);

    for (unsigned i = 0; i < count && r->budget > 0; i++) {
        json_t *child = random_value(r, depth + 1);
        if (!is_object) {
            json_array_append_new(container, child);
            continue;
        }
        char key[256];
        size_t key_length = random_text(r, key, sizeof key);
        json_object_setn_new(container, key, key_length, child);
        if (random_below(r, 10) == 0) /* deleting changes the iteration order of later keys */
            json_object_deln(container, key, key_length);
    }
    return container;
}

static json_t *random_value(random_source *r, int depth)
{
    char text[256];
    r->budget--;
    unsigned kind = random_below(r, 10);

    if (depth < 6 && r->budget > 0 && kind < 4)
        return random_container(r, depth);
    switch (kind) {
    case 4:
    case 5:
    case 6:
        return json_stringn(text, random_text(r, text, sizeof text));
    case 7:
        return random_integer(r);
    case 8:
        return random_real(r);
    default:
        return random_below(r, 3) == 0 ? json_null() : json_boolean(random_below(r, 2));
    }
}

static void random_documents_match(void **state)
{
    (void)state;
    random_source r = {.state = 20240611};
    size_t bytes = 0;

    for (int i = 0; i < 3000; i++) {
        r.budget = 1 + (int)random_below(&r, 120);
        json_t *doc = random_value(&r, 0);
        assert_non_null(doc);
        char *text = json_dumps(doc, DUMP_FLAGS);
        assert_non_null(text);
        bytes += strlen(text);
        free(text);
        assert_true(check_same(doc));
        json_decref(doc);
    }
    assert_true(bytes > 100000); /* the documents are not all trivial */
}

/* Random byte strings, mostly invalid UTF-8, stored unchecked: both must accept the same ones. */
static void random_bytes_match(void **state)
{
    (void)state;
    random_source r = {.state = 7};
    size_t accepted = 0;

    for (int i = 0; i < 20000; i++) {
        char text[16];
        size_t length = 1 + random_below(&r, sizeof text);
        for (size_t k = 0; k < length; k++)
            text[k] = (char)(random_below(&r, 2) == 0 ? 0x80 + random_below(&r, 0x80)
                                                       : random_below(&r, 0x100));
        json_t *value = json_stringn_nocheck(text, length);
        if (check_same(value))
            accepted++;
        json_decref(value);

        json_t *object = json_object();
        json_object_setn_new_nocheck(object, text, length, json_integer(i));
        json_object_set_new(object, "after", json_true());
        assert_true(check_same(object));
        json_decref(object);
    }
    assert_true(accepted > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(string_escapes_quote_and_backslash),
        cmocka_unit_test(string_escapes_every_control_char),
        cmocka_unit_test(string_copies_slash_del_and_utf8),
        cmocka_unit_test(string_keeps_embedded_nul),
        cmocka_unit_test(string_rejects_invalid_utf8),
        cmocka_unit_test(invalid_key_truncated_like_jansson),
        cmocka_unit_test(utf8_validation_matches_jansson),
        cmocka_unit_test(integer_formats_extremes),
        cmocka_unit_test(real_follows_jansson_format),
        cmocka_unit_test(real_powers_and_neighbours),
        cmocka_unit_test(real_ties_round_to_even),
        cmocka_unit_test(real_random_bits_match),
        cmocka_unit_test(real_ignores_locale_decimal_comma),
        cmocka_unit_test(literals_and_empty_containers),
        cmocka_unit_test(object_keeps_insertion_order),
        cmocka_unit_test(nested_document_matches),
        cmocka_unit_test(deep_nesting_matches),
        cmocka_unit_test(shared_child_written_twice),
        cmocka_unit_test(container_inside_itself_rejected),
        cmocka_unit_test(null_value_gives_null),
        cmocka_unit_test(long_string_grows_buffer),
        cmocka_unit_test(random_documents_match),
        cmocka_unit_test(random_bytes_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
