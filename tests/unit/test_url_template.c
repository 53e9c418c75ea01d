/*
 * URL templates of HTTP modules. Placeholders in the path and query are
 * replaced by percent-encoded values from the instance. A field that cannot
 * go into a url fails with a message naming its placeholder. The rules
 * loader rejects a placeholder in the scheme, host or port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/url_template.h"
#include "rules/rules.h"
#include "support/process.h"

static const char data_text[] =
    "{\"request\": {\"name\": \"a b/c\", \"count\": 7, \"ratio\": 0.1, \"whole\": 7.0,"
    " \"negative\": -3, \"vip\": true, \"none\": null, \"items\": [1, 2],"
    " \"deal\": {\"id\": \"4127\"}, \"city\": \"Zürich\", \"utm.source\": \"mail\","
    " \"odd}key\": \"x\", \"safe\": \"A-z_0.9~\", \"up\": \"..\", \"here\": \".\","
    " \"dots\": \"...\"},"
    " \"find\": {\"ID\": \"17\"}}";

/* Expands url against data_text and returns the result; fails the test on an error. */
static char *expand_ok(const char *url)
{
    json_error_t parse_error;
    json_t *data = json_loads(data_text, 0, &parse_error);
    assert_non_null(data);
    cv_url_values values = {.instance = "inst-1", .process = "deal-sync", .step = "get deal",
                            .data = data};
    char *out = NULL;
    cv_error err = {0};
    cv_status st = cv_url_template_expand(&out, url, &values, &err);
    json_decref(data);
    if (st != CV_OK)
        fail_msg("%s did not expand: %s", url, err.text);
    return out;
}

/* Expands url, which must fail with CV_ERR_INVALID, and returns the error in err. */
static void expand_fails(const char *url, cv_error *err)
{
    json_t *data = json_loads(data_text, 0, NULL);
    assert_non_null(data);
    cv_url_values values = {.instance = "inst-1", .process = "deal-sync", .step = "s",
                            .data = data};
    char *out = NULL;
    cv_status st = cv_url_template_expand(&out, url, &values, err);
    json_decref(data);
    assert_int_equal(st, CV_ERR_INVALID);
    assert_null(out);
}

static void assert_expands(const char *url, const char *expected)
{
    char *got = expand_ok(url);
    assert_string_equal(got, expected);
    free(got);
}

/* "." and ".." would be resolved as dot segments and climb out of their segment. */
static void test_dot_segments_are_encoded(void **state)
{
    (void)state;
    assert_expands("http://h/users/{request.up}/profile", "http://h/users/%2E%2E/profile");
    assert_expands("http://h/get/{request.here}", "http://h/get/%2E");
    assert_expands("http://h/get/{request.dots}", "http://h/get/...");
}

static void test_reserved_names(void **state)
{
    assert_expands("http://h:8080/x/{instance}/{process}/{step}",
                   "http://h:8080/x/inst-1/deal-sync/get%20deal");
}

static void test_string_field_is_encoded(void **state)
{
    assert_expands("http://h/deals/{request.name}", "http://h/deals/a%20b%2Fc");
    assert_expands("http://h/c/{request.city}", "http://h/c/Z%C3%BCrich");
    assert_expands("http://h/{request.safe}", "http://h/A-z_0.9~");
    assert_expands("http://h/{find.ID}", "http://h/17");
}

static void test_query_placeholders(void **state)
{
    assert_expands("http://h/find?deal={request.deal.id}&n={request.count}",
                   "http://h/find?deal=4127&n=7");
    assert_expands("https://h?src={request[\"utm.source\"]}", "https://h?src=mail");
}

static void test_numbers_and_booleans(void **state)
{
    assert_expands("http://h/{request.count}/{request.negative}/{request.vip}",
                   "http://h/7/-3/true");
    assert_expands("http://h/{request.ratio}/{request.whole}", "http://h/0.1/7");
}

static void test_bracket_key_with_brace(void **state)
{
    assert_expands("http://h/{request[\"odd}key\"]}/end", "http://h/x/end");
}

static void test_literal_text_kept(void **state)
{
    assert_expands("http://user@h:81/a%20b/c?x=1#top", "http://user@h:81/a%20b/c?x=1#top");
    assert_expands("http://h", "http://h");
}

static void test_missing_field_fails(void **state)
{
    cv_error err = {0};
    expand_fails("http://h/{request.nothing}", &err);
    assert_string_equal(err.text,
                        "url placeholder {request.nothing}: the field is missing from the data");
}

static void test_unusable_values_fail(void **state)
{
    static const struct {
        const char *url;
        const char *message;
    } cases[] = {
        {"http://h/{request.none}", "url placeholder {request.none}: the field is null, but only "
                                    "a string, number or boolean can go into a url"},
        {"http://h/{request.items}", "url placeholder {request.items}: the field is an array, "
                                     "but only a string, number or boolean can go into a url"},
        {"http://h/?d={request.deal}", "url placeholder {request.deal}: the field is an object, "
                                       "but only a string, number or boolean can go into a url"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cv_error err = {0};
        expand_fails(cases[i].url, &err);
        assert_string_equal(err.text, cases[i].message);
    }
}

static void test_unclosed_brace_fails(void **state)
{
    cv_error err = {0};
    expand_fails("http://h/{request.name", &err);
    assert_string_equal(err.text, "url has a '{' at position 9 that no '}' closes");
}

static void test_path_start(void **state)
{
    assert_int_equal(cv_url_template_path_start("http://h:80/a"), 11);
    assert_int_equal(cv_url_template_path_start("https://h?q=1"), 9);
    assert_int_equal(cv_url_template_path_start("http://h"), 8);
    assert_int_equal(cv_url_template_path_start("no scheme"), 0);
}

static void test_check_accepts_path_and_query(void **state)
{
    static const char *const good[] = {
        "http://127.0.0.1:8080/crm/{step}?deal={request.deal_id}",
        "https://h/{instance}/{process}",
        "http://h?q={request[\"utm.source\"]}",
        "http://h/plain",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cv_error err = {0};
        if (cv_url_template_check(good[i], &err) != CV_OK)
            fail_msg("%s was rejected: %s", good[i], err.text);
    }
}

static void test_check_rejects_faults(void **state)
{
    static const struct {
        const char *url;
        const char *message; /* a trailing '*' compares as a prefix */
    } cases[] = {
        {"http://{request.host}/x", "url has a placeholder before its path at position 7; the "
                                    "scheme, host and port must be written out"},
        {"http://h:{request.port}/x", "url has a placeholder before its path at position 9; the "
                                      "scheme, host and port must be written out"},
        {"http://h/{request.id", "url has a '{' at position 9 that no '}' closes"},
        {"http://h/{a{b}", "url has a '{' at position 9 that no '}' closes"},
        {"http://h/{}", "url has an empty placeholder {} at position 9"},
        {"http://h/{request..id}", "url placeholder {request..id}: invalid path*"},
        {"http://h:99999/x", "url is not valid: *"},
        {"http://h/a b", "url is not valid: *"},
        {"http://h/a\r\nHost: x", "url is not valid: *"},
        {"http://", "url is not valid: *"},
        {"http://[::1/x", "url is not valid: *"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cv_error err = {0};
        assert_int_equal(cv_url_template_check(cases[i].url, &err), CV_ERR_INVALID);
        size_t length = strlen(cases[i].message);
        if (cases[i].message[length - 1] == '*')
            assert_memory_equal(err.text, cases[i].message, length - 1);
        else
            assert_string_equal(err.text, cases[i].message);
    }
}

static void test_rules_reject_placeholder_in_host(void **state)
{
    char *dir = cv_test_temp_dir("conveyor-url");
    assert_non_null(dir);
    char path[600];
    snprintf(path, sizeof path, "%s/modules.lua", dir);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("module \"fine\" { transport = \"http\", url = \"http://127.0.0.1/{request.id}\" }\n"
          "module \"steer\" { transport = \"http\",\n"
          "                   url = \"http://{request.host}/crm\" }\n"
          "process \"p\" { start = \"a\", steps = { a = { subsystem = \"steer\" } } }\n",
          file);
    fclose(file);

    cv_rules *rules = NULL;
    cv_diag diag = {0};
    cv_error err = {0};
    assert_int_equal(cv_rules_load(&rules, dir, NULL, &diag, &err), CV_ERR_INVALID);
    assert_null(rules);
    assert_int_equal(diag.count, 1);
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s:3: module \"steer\": url has a placeholder before its path at position 7; the "
             "scheme, host and port must be written out",
             path);
    assert_string_equal(diag.messages[0], expected);
    cv_diag_free(&diag);
    cv_test_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_names),
        cmocka_unit_test(test_dot_segments_are_encoded),
        cmocka_unit_test(test_string_field_is_encoded),
        cmocka_unit_test(test_query_placeholders),
        cmocka_unit_test(test_numbers_and_booleans),
        cmocka_unit_test(test_bracket_key_with_brace),
        cmocka_unit_test(test_literal_text_kept),
        cmocka_unit_test(test_missing_field_fails),
        cmocka_unit_test(test_unusable_values_fail),
        cmocka_unit_test(test_unclosed_brace_fails),
        cmocka_unit_test(test_path_start),
        cmocka_unit_test(test_check_accepts_path_and_query),
        cmocka_unit_test(test_check_rejects_faults),
        cmocka_unit_test(test_rules_reject_placeholder_in_host),
    };
    return cmocka_run_group_tests_name("unit/url_template", tests, NULL, NULL);
}
