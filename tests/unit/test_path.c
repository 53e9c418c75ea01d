/*
 * Field paths: parsing (bare keys, quoted keys in brackets, indices) with the
 * errors shown to a rules author, lookups into the data document, and copying
 * selected parts of a document for a step's `input`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/path.h"

/* Parses text, failing the test when it does not parse. */
static cv_path parse_ok(const char *text)
{
    cv_path path = {0};
    cv_error err = {0};
    cv_status status = cv_path_parse(&path, text, &err);
    if (status != CV_OK)
        fail_msg("path %s did not parse: %s", text, err.text);
    return path;
}

/* Parses text, which must fail, and returns the error text in err. */
static cv_status parse_fail(const char *text, cv_error *err)
{
    cv_path path = {0};
    cv_status status = cv_path_parse(&path, text, err);
    assert_null(path.segments);
    return status;
}

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (value == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return value;
}

static const char *const document =
    "{\"request\": {\"deal_id\": \"4127\", \"utm.source\": \"mail\","
    " \"items\": [{\"sku\": \"a\"}, {\"sku\": \"b\"}, {\"sku\": \"c\"}],"
    " \"codes\": {\"0\": \"zero\", \"-1\": \"minus one\"},"
    " \"a.b\": {\"c\": 3}, \"x.y\": {\"z\": {\"q\\\"r\": 4}}},"
    " \"get-deal\": {\"value\": null}, \"count\": 7}";

/* Looks text up in the shared document and returns the JSON form of the result, or "absent". */
static char *lookup_text(const char *text)
{
    cv_path path = parse_ok(text);
    json_t *root = load(document);
    json_t *found = cv_path_lookup(&path, root);
    char *dumped = found ? json_dumps(found, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("absent");
    json_decref(root);
    cv_path_free(&path);
    return dumped;
}

#define assert_lookup(path_text, expected)            \
    do {                                              \
        char *got = lookup_text(path_text);           \
        assert_string_equal(got, expected);           \
        free(got);                                    \
    } while (0)

/* ---- parsing ---- */

static void parse_dotted_keys(void **state)
{
    (void)state;
    cv_path path = parse_ok("get-bitrix-deal.value");
    assert_int_equal(path.count, 2);
    assert_string_equal(path.segments[0].key, "get-bitrix-deal");
    assert_string_equal(path.segments[1].key, "value");
    assert_false(path.segments[1].is_index);
    assert_string_equal(path.text, "get-bitrix-deal.value");
    cv_path_free(&path);
}

static void parse_numeric_segment_is_index(void **state)
{
    (void)state;
    cv_path path = parse_ok("request.items.0.sku");
    assert_int_equal(path.count, 4);
    assert_true(path.segments[2].is_index);
    assert_int_equal(path.segments[2].index, 0);
    assert_string_equal(path.segments[2].key, "0");
    cv_path_free(&path);
}

static void parse_negative_index(void **state)
{
    (void)state;
    cv_path path = parse_ok("items.-1");
    assert_true(path.segments[1].is_index);
    assert_int_equal(path.segments[1].index, -1);
    cv_path_free(&path);
}

static void parse_almost_numbers_are_keys(void **state)
{
    (void)state;
    cv_path path = parse_ok("a.1x.-.1-2.99999999999999999999");
    assert_false(path.segments[1].is_index);
    assert_false(path.segments[2].is_index);
    assert_false(path.segments[3].is_index);
    assert_false(path.segments[4].is_index);
    cv_path_free(&path);
}

static void parse_bracket_key_with_dot(void **state)
{
    (void)state;
    cv_path path = parse_ok("request[\"utm.source\"]");
    assert_int_equal(path.count, 2);
    assert_string_equal(path.segments[0].key, "request");
    assert_string_equal(path.segments[1].key, "utm.source");
    cv_path_free(&path);
}

static void parse_bracket_at_start(void **state)
{
    (void)state;
    cv_path path = parse_ok("[\"a.b\"].c");
    assert_int_equal(path.count, 2);
    assert_string_equal(path.segments[0].key, "a.b");
    assert_string_equal(path.segments[1].key, "c");
    cv_path_free(&path);
}

static void parse_chained_brackets(void **state)
{
    (void)state;
    cv_path path = parse_ok("a[\"x.y\"][\"z\"]");
    assert_int_equal(path.count, 3);
    assert_string_equal(path.segments[0].key, "a");
    assert_string_equal(path.segments[1].key, "x.y");
    assert_string_equal(path.segments[2].key, "z");
    cv_path_free(&path);
}

static void parse_bracket_escapes(void **state)
{
    (void)state;
    cv_path path = parse_ok("a[\"say \\\"hi\\\" \\\\ bye\"]");
    assert_string_equal(path.segments[1].key, "say \"hi\" \\ bye");
    cv_path_free(&path);
}

static void parse_bracket_number_is_key(void **state)
{
    (void)state;
    cv_path path = parse_ok("items[\"0\"]");
    assert_false(path.segments[1].is_index);
    cv_path_free(&path);
}

static void parse_empty_path_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("", &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid path \"\": the path is empty");
}

static void parse_double_dot_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a..b", &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid path \"a..b\": empty key at position 3");
}

static void parse_trailing_dot_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a.b.", &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid path \"a.b.\": empty key at position 5");
}

static void parse_leading_dot_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail(".a", &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid path \".a\": empty key at position 1");
}

static void parse_dot_before_bracket_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a.[\"b\"]", &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid path \"a.[\"b\"]\": empty key at position 3");
}

static void parse_unterminated_string_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a[\"b.c", &err), CV_ERR_INVALID);
    assert_string_equal(err.text,
                        "invalid path \"a[\"b.c\": unterminated string in brackets at position 2");
}

static void parse_unterminated_bracket_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a[\"b\"", &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid path \"a[\"b\"\": unterminated bracket at position 6");
}

static void parse_unquoted_bracket_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a[0]", &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid path \"a[0]\": expected '\"' after '[' at position 3");
}

static void parse_garbage_after_bracket_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a[\"b\"]c", &err), CV_ERR_INVALID);
    assert_string_equal(err.text,
                        "invalid path \"a[\"b\"]c\": unexpected character after ']' at position 7");
}

static void parse_junk_inside_bracket_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a[\"b\" ]", &err), CV_ERR_INVALID);
    assert_string_equal(err.text,
                        "invalid path \"a[\"b\" ]\": expected ']' after the key at position 6");
}

static void parse_unknown_escape_fails(void **state)
{
    (void)state;
    cv_error err = {0};
    assert_int_equal(parse_fail("a[\"b\\n\"]", &err), CV_ERR_INVALID);
    assert_string_equal(
        err.text, "invalid path \"a[\"b\\n\"]\": unknown escape (only \\\" and \\\\ are allowed) "
                  "at position 6");
}

static void free_zeroed_path_is_safe(void **state)
{
    (void)state;
    cv_path path = {0};
    cv_path_free(&path);
    cv_path_free(NULL);
    assert_null(path.text);
}

/* ---- lookups ---- */

static void lookup_nested_key(void **state)
{
    (void)state;
    assert_lookup("request.deal_id", "\"4127\"");
}

static void lookup_present_null(void **state)
{
    (void)state;
    assert_lookup("get-deal.value", "null");
}

static void lookup_missing_key_is_absent(void **state)
{
    (void)state;
    assert_lookup("request.nothing", "absent");
}

static void lookup_missing_parent_is_absent(void **state)
{
    (void)state;
    assert_lookup("nothing.at.all", "absent");
}

static void lookup_array_index(void **state)
{
    (void)state;
    assert_lookup("request.items.1.sku", "\"b\"");
}

static void lookup_array_last(void **state)
{
    (void)state;
    assert_lookup("request.items.-1.sku", "\"c\"");
}

static void lookup_array_negative_first(void **state)
{
    (void)state;
    assert_lookup("request.items.-3.sku", "\"a\"");
}

static void lookup_index_past_end_is_absent(void **state)
{
    (void)state;
    assert_lookup("request.items.3", "absent");
}

static void lookup_negative_past_start_is_absent(void **state)
{
    (void)state;
    assert_lookup("request.items.-4", "absent");
}

static void lookup_word_on_array_is_absent(void **state)
{
    (void)state;
    assert_lookup("request.items.sku", "absent");
}

static void lookup_numeric_key_on_object(void **state)
{
    (void)state;
    assert_lookup("request.codes.0", "\"zero\"");
}

static void lookup_negative_key_on_object(void **state)
{
    (void)state;
    assert_lookup("request.codes.-1", "\"minus one\"");
}

static void lookup_into_string_is_absent(void **state)
{
    (void)state;
    assert_lookup("request.deal_id.0", "absent");
}

static void lookup_into_number_is_absent(void **state)
{
    (void)state;
    assert_lookup("count.x", "absent");
}

static void lookup_into_null_is_absent(void **state)
{
    (void)state;
    assert_lookup("get-deal.value.x", "absent");
}

static void lookup_bracket_key(void **state)
{
    (void)state;
    assert_lookup("request[\"utm.source\"]", "\"mail\"");
}

static void lookup_dotted_key_unbracketed_is_absent(void **state)
{
    (void)state;
    assert_lookup("request.utm.source", "absent");
}

static void lookup_chained_brackets(void **state)
{
    (void)state;
    assert_lookup("request[\"x.y\"][\"z\"][\"q\\\"r\"]", "4");
}

static void lookup_bracket_then_dot(void **state)
{
    (void)state;
    assert_lookup("request[\"a.b\"].c", "3");
}

static void lookup_bracket_at_start(void **state)
{
    (void)state;
    cv_path path = parse_ok("[\"a.b\"].c");
    json_t *root = load("{\"a.b\": {\"c\": true}}");
    assert_ptr_equal(cv_path_lookup(&path, root), json_true());
    json_decref(root);
    cv_path_free(&path);
}

static void lookup_in_absent_root_is_absent(void **state)
{
    (void)state;
    cv_path path = parse_ok("a");
    assert_null(cv_path_lookup(&path, NULL));
    cv_path_free(&path);
}

/* ---- copy_into ---- */

/* Copies each path in paths (NULL-terminated) from the document into {} and dumps it. */
static char *copy_paths(const char *const *paths)
{
    json_t *src = load(document);
    json_t *dst = json_object();
    for (size_t i = 0; paths[i] != NULL; i++) {
        cv_path path = parse_ok(paths[i]);
        cv_error err = {0};
        cv_status status = cv_path_copy_into(&path, src, dst, &err);
        cv_path_free(&path);
        if (status != CV_OK)
            fail_msg("copy of %s failed: %s", paths[i], err.text);
    }
    char *dumped = json_dumps(dst, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(dst);
    json_decref(src);
    return dumped;
}

#define assert_copy(expected, ...)                                        \
    do {                                                                  \
        const char *const paths[] = {__VA_ARGS__, NULL};                  \
        char *got = copy_paths(paths);                                    \
        assert_string_equal(got, expected);                               \
        free(got);                                                        \
    } while (0)

static void copy_nested_key(void **state)
{
    (void)state;
    assert_copy("{\"request\":{\"deal_id\":\"4127\"}}", "request.deal_id");
}

static void copy_two_keys_share_parent(void **state)
{
    (void)state;
    assert_copy("{\"count\":7,\"request\":{\"deal_id\":\"4127\",\"utm.source\":\"mail\"}}",
                "request.deal_id", "request[\"utm.source\"]", "count");
}

static void copy_array_element_keyed_by_index(void **state)
{
    (void)state;
    assert_copy("{\"request\":{\"items\":{\"-1\":{\"sku\":\"c\"},\"0\":{\"sku\":\"a\"}}}}",
                "request.items.0", "request.items.-1");
}

static void copy_absent_adds_nothing(void **state)
{
    (void)state;
    assert_copy("{}", "request.nothing.here");
}

static void copy_null_value(void **state)
{
    (void)state;
    assert_copy("{\"get-deal\":{\"value\":null}}", "get-deal.value");
}

static void copy_whole_then_part_keeps_whole(void **state)
{
    (void)state;
    assert_copy("{\"request\":{\"items\":[{\"sku\":\"a\"},{\"sku\":\"b\"},{\"sku\":\"c\"}]}}",
                "request.items", "request.items.1.sku");
}

static void copy_part_then_whole_takes_whole(void **state)
{
    (void)state;
    assert_copy("{\"request\":{\"items\":[{\"sku\":\"a\"},{\"sku\":\"b\"},{\"sku\":\"c\"}]}}",
                "request.items.1.sku", "request.items");
}

static void copy_is_found_by_same_path(void **state)
{
    (void)state;
    json_t *src = load(document);
    json_t *dst = json_object();
    cv_path path = parse_ok("request.items.-1.sku");
    assert_int_equal(cv_path_copy_into(&path, src, dst, NULL), CV_OK);
    json_t *found = cv_path_lookup(&path, dst);
    assert_string_equal(json_string_value(found), "c");
    cv_path_free(&path);
    json_decref(dst);
    json_decref(src);
}

static void copy_is_independent_of_source(void **state)
{
    (void)state;
    json_t *src = load("{\"a\": {\"b\": [1]}}");
    json_t *dst = json_object();
    cv_path path = parse_ok("a.b");
    assert_int_equal(cv_path_copy_into(&path, src, dst, NULL), CV_OK);
    json_array_append_new(json_object_get(json_object_get(src, "a"), "b"), json_integer(2));
    assert_int_equal(json_array_size(cv_path_lookup(&path, dst)), 1);
    cv_path_free(&path);
    json_decref(dst);
    json_decref(src);
}

static void copy_into_non_object_fails(void **state)
{
    (void)state;
    json_t *src = load(document);
    json_t *dst = json_array();
    cv_path path = parse_ok("count");
    cv_error err = {0};
    assert_int_equal(cv_path_copy_into(&path, src, dst, &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "copying path \"count\": the target is not an object");
    cv_path_free(&path);
    json_decref(dst);
    json_decref(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_dotted_keys),
        cmocka_unit_test(parse_numeric_segment_is_index),
        cmocka_unit_test(parse_negative_index),
        cmocka_unit_test(parse_almost_numbers_are_keys),
        cmocka_unit_test(parse_bracket_key_with_dot),
        cmocka_unit_test(parse_bracket_at_start),
        cmocka_unit_test(parse_chained_brackets),
        cmocka_unit_test(parse_bracket_escapes),
        cmocka_unit_test(parse_bracket_number_is_key),
        cmocka_unit_test(parse_empty_path_fails),
        cmocka_unit_test(parse_double_dot_fails),
        cmocka_unit_test(parse_trailing_dot_fails),
        cmocka_unit_test(parse_leading_dot_fails),
        cmocka_unit_test(parse_dot_before_bracket_fails),
        cmocka_unit_test(parse_unterminated_string_fails),
        cmocka_unit_test(parse_unterminated_bracket_fails),
        cmocka_unit_test(parse_unquoted_bracket_fails),
        cmocka_unit_test(parse_garbage_after_bracket_fails),
        cmocka_unit_test(parse_junk_inside_bracket_fails),
        cmocka_unit_test(parse_unknown_escape_fails),
        cmocka_unit_test(free_zeroed_path_is_safe),
        cmocka_unit_test(lookup_nested_key),
        cmocka_unit_test(lookup_present_null),
        cmocka_unit_test(lookup_missing_key_is_absent),
        cmocka_unit_test(lookup_missing_parent_is_absent),
        cmocka_unit_test(lookup_array_index),
        cmocka_unit_test(lookup_array_last),
        cmocka_unit_test(lookup_array_negative_first),
        cmocka_unit_test(lookup_index_past_end_is_absent),
        cmocka_unit_test(lookup_negative_past_start_is_absent),
        cmocka_unit_test(lookup_word_on_array_is_absent),
        cmocka_unit_test(lookup_numeric_key_on_object),
        cmocka_unit_test(lookup_negative_key_on_object),
        cmocka_unit_test(lookup_into_string_is_absent),
        cmocka_unit_test(lookup_into_number_is_absent),
        cmocka_unit_test(lookup_into_null_is_absent),
        cmocka_unit_test(lookup_bracket_key),
        cmocka_unit_test(lookup_dotted_key_unbracketed_is_absent),
        cmocka_unit_test(lookup_chained_brackets),
        cmocka_unit_test(lookup_bracket_then_dot),
        cmocka_unit_test(lookup_bracket_at_start),
        cmocka_unit_test(lookup_in_absent_root_is_absent),
        cmocka_unit_test(copy_nested_key),
        cmocka_unit_test(copy_two_keys_share_parent),
        cmocka_unit_test(copy_array_element_keyed_by_index),
        cmocka_unit_test(copy_absent_adds_nothing),
        cmocka_unit_test(copy_null_value),
        cmocka_unit_test(copy_whole_then_part_keeps_whole),
        cmocka_unit_test(copy_part_then_whole_takes_whole),
        cmocka_unit_test(copy_is_found_by_same_path),
        cmocka_unit_test(copy_is_independent_of_source),
        cmocka_unit_test(copy_into_non_object_fails),
    };
    return cmocka_run_group_tests_name("path", tests, NULL, NULL);
}
