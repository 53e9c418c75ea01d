/* Parsing limits and the rules language's equality. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/jsonx.h"

static cv_status parse(const char *text, size_t max_bytes, json_t **out, cv_error *err)
{
    cv_json_limits limits = {.max_bytes = max_bytes};
    *out = NULL;
    return cv_json_parse(out, text, strlen(text), &limits, err);
}

static void parse_accepts_any_value(void **state)
{
    (void)state;
    json_t *v;
    cv_error err;
    assert_int_equal(parse("\"x\"", 0, &v, &err), CV_OK);
    assert_string_equal(json_string_value(v), "x");
    json_decref(v);
    assert_int_equal(parse("{\"a\": [1, 2.5, null]}", 0, &v, &err), CV_OK);
    assert_int_equal(json_array_size(json_object_get(v, "a")), 3);
    json_decref(v);
}

static void parse_rejects_body_over_limit(void **state)
{
    (void)state;
    json_t *v;
    cv_error err;
    assert_int_equal(parse("{\"a\": \"0123456789\"}", 10, &v, &err), CV_ERR_LIMIT);
    assert_string_equal(err.text, "body is 19 bytes, over the limit of 10 bytes");
    assert_null(v);
}

static void parse_rejects_deep_nesting(void **state)
{
    (void)state;
    char text[200];
    memset(text, '[', 65);
    memset(text + 65, ']', 65);
    text[130] = '\0';
    json_t *v;
    cv_error err;
    assert_int_equal(parse(text, 0, &v, &err), CV_ERR_LIMIT);
    assert_string_equal(err.text, "JSON nesting is deeper than the limit of 64 levels");

    memset(text, '[', 64);
    memset(text + 64, ']', 64);
    text[128] = '\0';
    assert_int_equal(parse(text, 0, &v, &err), CV_OK); /* exactly 64 levels */
    json_decref(v);
}

static void parse_ignores_brackets_in_strings(void **state)
{
    (void)state;
    char text[300] = "{\"s\": \"";
    memset(text + strlen(text), '[', 100);
    strcat(text, "\\\"\"}");
    json_t *v;
    cv_error err;
    assert_int_equal(parse(text, 0, &v, &err), CV_OK);
    json_decref(v);
}

static void parse_rejects_duplicate_keys(void **state)
{
    (void)state;
    json_t *v;
    cv_error err;
    assert_int_equal(parse("{\"a\": 1, \"a\": 2}", 0, &v, &err), CV_ERR_INVALID);
    assert_non_null(strstr(err.text, "duplicate object key"));
}

static void parse_rejects_numbers_too_large(void **state)
{
    (void)state;
    json_t *v;
    cv_error err;
    assert_int_equal(parse("[1e999]", 0, &v, &err), CV_ERR_INVALID);
    assert_non_null(strstr(err.text, "real number overflow"));
    assert_int_equal(parse("[99999999999999999999999]", 0, &v, &err), CV_ERR_INVALID);
    assert_non_null(strstr(err.text, "too big integer"));
}

static void parse_names_position_of_error(void **state)
{
    (void)state;
    json_t *v;
    cv_error err;
    assert_int_equal(parse("{\n  \"a\": tru\n}", 0, &v, &err), CV_ERR_INVALID);
    assert_non_null(strstr(err.text, "invalid JSON at line 2"));
}

static void equal_treats_numbers_by_value(void **state)
{
    (void)state;
    json_t *one = json_integer(1), *one_real = json_real(1.0), *one_text = json_string("1");
    assert_true(cv_json_equal(one, one_real));
    assert_false(cv_json_equal(one, one_text));
    assert_false(cv_json_equal(one, NULL));
    assert_false(cv_json_equal(NULL, NULL));
    json_decref(one);
    json_decref(one_real);
    json_decref(one_text);
}

static void equal_compares_containers_deeply(void **state)
{
    (void)state;
    json_t *a = json_loads("{\"x\": [1, {\"y\": 2.0}], \"z\": null}", 0, NULL);
    json_t *b = json_loads("{\"z\": null, \"x\": [1.0, {\"y\": 2}]}", 0, NULL);
    json_t *c = json_loads("{\"z\": null, \"x\": [1.0, {\"y\": 3}]}", 0, NULL);
    assert_true(cv_json_equal(a, b));
    assert_false(cv_json_equal(a, c));
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_accepts_any_value),
        cmocka_unit_test(parse_rejects_body_over_limit),
        cmocka_unit_test(parse_rejects_deep_nesting),
        cmocka_unit_test(parse_ignores_brackets_in_strings),
        cmocka_unit_test(parse_rejects_duplicate_keys),
        cmocka_unit_test(parse_rejects_numbers_too_large),
        cmocka_unit_test(parse_names_position_of_error),
        cmocka_unit_test(equal_treats_numbers_by_value),
        cmocka_unit_test(equal_compares_containers_deeply),
    };
    return cmocka_run_group_tests_name("unit/jsonx", tests, NULL, NULL);
}
