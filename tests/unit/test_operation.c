/*
 * Operations: parsing "modifier|...|name" with its errors, every modifier,
 * every test (with PHP's empty() truth table in full), absent operands with
 * and without "!", regular expressions and custom operations through a fake
 * script.
 *
 * Values are written as JSON text; NULL stands for an absent operand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/condition.h"

static json_t *load(const char *text)
{
    if (text == NULL)
        return NULL;
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (value == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return value;
}

/* Custom operations known to the fake rules: "odd" and "seen". */
static int find_custom(void *context, const char *name)
{
    (void)context;
    if (strcmp(name, "odd") == 0)
        return 11;
    if (strcmp(name, "seen") == 0)
        return 12;
    return CV_NO_REF;
}

static cv_operation parse_ok(const char *text)
{
    cv_operation op;
    cv_error err = {0};
    if (cv_operation_parse(&op, text, find_custom, NULL, &err) != CV_OK)
        fail_msg("operation %s did not parse: %s", text, err.text);
    return op;
}

/* Runs operation text on value and arg (JSON text, NULL for absent); returns whether it holds. */
static bool holds(const char *text, const char *value_json, const char *arg_json)
{
    cv_operation op = parse_ok(text);
    json_t *value = load(value_json);
    json_t *arg = load(arg_json);
    bool result = false;
    cv_error err = {0};
    cv_status status = cv_operation_test(&op, value, arg, NULL, NULL, &result, &err);
    json_decref(value);
    json_decref(arg);
    cv_operation_free(&op);
    if (status != CV_OK)
        fail_msg("operation %s failed: %s", text, err.text);
    return result;
}

/* One test function per case, so the test list reads as a table and a failure names its case. */
#define HOLDS(test_name, text, value, arg) \
    static void test_name(void **state)    \
    {                                      \
        (void)state;                       \
        assert_true(holds(text, value, arg)); \
    }
#define FAILS(test_name, text, value, arg) \
    static void test_name(void **state)    \
    {                                      \
        (void)state;                       \
        assert_false(holds(text, value, arg)); \
    }

/* ---- empty: PHP's empty(), holding ---- */
HOLDS(empty_absent_holds, "empty", NULL, NULL)
HOLDS(empty_null_holds, "empty", "null", NULL)
HOLDS(empty_false_holds, "empty", "false", NULL)
HOLDS(empty_integer_zero_holds, "empty", "0", NULL)
HOLDS(empty_real_zero_holds, "empty", "0.0", NULL)
HOLDS(empty_negative_real_zero_holds, "empty", "-0.0", NULL)
HOLDS(empty_empty_string_holds, "empty", "\"\"", NULL)
HOLDS(empty_string_zero_holds, "empty", "\"0\"", NULL)
HOLDS(empty_empty_array_holds, "empty", "[]", NULL)
HOLDS(empty_empty_object_holds, "empty", "{}", NULL)

/* ---- empty, not holding ---- */
FAILS(empty_true_fails, "empty", "true", NULL)
FAILS(empty_integer_one_fails, "empty", "1", NULL)
FAILS(empty_negative_integer_fails, "empty", "-1", NULL)
FAILS(empty_small_real_fails, "empty", "0.001", NULL)
FAILS(empty_string_zero_point_zero_fails, "empty", "\"0.0\"", NULL)
FAILS(empty_string_space_fails, "empty", "\" \"", NULL)
FAILS(empty_string_double_zero_fails, "empty", "\"00\"", NULL)
FAILS(empty_string_false_fails, "empty", "\"false\"", NULL)
FAILS(empty_string_zero_nul_fails, "empty", "\"0\\u0000\"", NULL)
FAILS(empty_string_text_fails, "empty", "\"a\"", NULL)
FAILS(empty_array_with_null_fails, "empty", "[null]", NULL)
FAILS(empty_object_with_key_fails, "empty", "{\"a\": null}", NULL)
FAILS(not_empty_absent_fails, "!|empty", NULL, NULL)
HOLDS(not_empty_string_holds, "!|empty", "\"x\"", NULL)

/* ---- exists, null ---- */
HOLDS(exists_null_holds, "exists", "null", NULL)
HOLDS(exists_false_holds, "exists", "false", NULL)
FAILS(exists_absent_fails, "exists", NULL, NULL)
HOLDS(not_exists_absent_holds, "!|exists", NULL, NULL)
HOLDS(null_null_holds, "null", "null", NULL)
FAILS(null_absent_fails, "null", NULL, NULL)
FAILS(null_zero_fails, "null", "0", NULL)
FAILS(null_string_null_fails, "null", "\"null\"", NULL)

/* ---- eq, ne ---- */
HOLDS(eq_same_string_holds, "eq", "\"a\"", "\"a\"")
FAILS(eq_other_string_fails, "eq", "\"a\"", "\"b\"")
HOLDS(eq_integer_real_holds, "eq", "1", "1.0")
FAILS(eq_string_number_fails, "eq", "\"1\"", "1")
HOLDS(eq_null_null_holds, "eq", "null", "null")
HOLDS(eq_arrays_holds, "eq", "[1, \"a\"]", "[1.0, \"a\"]")
FAILS(eq_array_order_fails, "eq", "[1, 2]", "[2, 1]")
HOLDS(eq_objects_holds, "eq", "{\"a\": 1, \"b\": 2}", "{\"b\": 2, \"a\": 1}")
FAILS(eq_absent_value_fails, "eq", NULL, "1")
FAILS(eq_absent_arg_fails, "eq", "1", NULL)
FAILS(eq_both_absent_fails, "eq", NULL, NULL)
HOLDS(not_eq_absent_value_holds, "!|eq", NULL, "1")
HOLDS(not_eq_absent_arg_holds, "!|eq", "1", NULL)
FAILS(not_eq_equal_fails, "!|eq", "1", "1")
HOLDS(double_not_eq_equal_holds, "!|!|eq", "1", "1")
HOLDS(ne_different_holds, "ne", "1", "2")
FAILS(ne_equal_fails, "ne", "1", "1.0")
HOLDS(ne_string_number_holds, "ne", "\"1\"", "1")
FAILS(ne_absent_value_fails, "ne", NULL, "1")
FAILS(ne_absent_arg_fails, "ne", "1", NULL)
HOLDS(not_ne_absent_value_holds, "!|ne", NULL, "1")

/* ---- ordering ---- */
HOLDS(gt_numbers_holds, "gt", "3", "2")
FAILS(gt_equal_numbers_fails, "gt", "2", "2")
HOLDS(gt_real_integer_holds, "gt", "2.5", "2")
HOLDS(gt_large_integers_exact_holds, "gt", "9007199254740993", "9007199254740992")
HOLDS(gte_equal_holds, "gte", "2", "2.0")
FAILS(gte_smaller_fails, "gte", "1", "2")
HOLDS(lt_numbers_holds, "lt", "-1", "0")
FAILS(lt_equal_fails, "lt", "0", "0")
HOLDS(lte_equal_holds, "lte", "7", "7")
FAILS(lte_larger_fails, "lte", "8", "7")
HOLDS(gt_strings_bytewise_holds, "gt", "\"b\"", "\"a\"")
HOLDS(lt_string_prefix_first_holds, "lt", "\"ab\"", "\"abc\"")
HOLDS(lt_upper_before_lower_holds, "lt", "\"Z\"", "\"a\"")
HOLDS(gte_same_string_holds, "gte", "\"abc\"", "\"abc\"")
HOLDS(gt_utf8_after_ascii_holds, "gt", "\"\\u00e9\"", "\"z\"")
FAILS(gt_string_number_fails, "gt", "\"10\"", "9")
FAILS(lt_number_string_fails, "lt", "1", "\"9\"")
FAILS(gt_absent_value_fails, "gt", NULL, "0")
FAILS(gt_absent_arg_fails, "gt", "1", NULL)
FAILS(lte_null_fails, "lte", "null", "0")
FAILS(gt_booleans_fails, "gt", "true", "false")
HOLDS(not_gt_absent_holds, "!|gt", NULL, "0")
HOLDS(number_gt_numeric_string_holds, "number|gt", "\"10\"", "9")

/* ---- in, contains, starts, ends ---- */
HOLDS(in_element_holds, "in", "\"b\"", "[\"a\", \"b\"]")
HOLDS(in_number_any_type_holds, "in", "2", "[1, 2.0]")
FAILS(in_missing_fails, "in", "\"c\"", "[\"a\", \"b\"]")
FAILS(in_empty_array_fails, "in", "1", "[]")
FAILS(in_arg_not_array_fails, "in", "\"a\"", "\"abc\"")
FAILS(in_absent_value_fails, "in", NULL, "[null]")
HOLDS(in_null_in_array_holds, "in", "null", "[null]")
HOLDS(contains_substring_holds, "contains", "\"hello world\"", "\"o w\"")
FAILS(contains_missing_substring_fails, "contains", "\"hello\"", "\"hey\"")
HOLDS(contains_empty_substring_holds, "contains", "\"hello\"", "\"\"")
FAILS(contains_longer_needle_fails, "contains", "\"ab\"", "\"abc\"")
HOLDS(contains_after_nul_holds, "contains", "\"a\\u0000bc\"", "\"bc\"")
HOLDS(contains_array_element_holds, "contains", "[1, \"x\", {\"a\": 1}]", "{\"a\": 1.0}")
FAILS(contains_array_missing_fails, "contains", "[1, 2]", "3")
FAILS(contains_array_substring_fails, "contains", "[\"abc\"]", "\"b\"")
FAILS(contains_number_fails, "contains", "123", "2")
FAILS(contains_string_number_arg_fails, "contains", "\"123\"", "2")
FAILS(contains_absent_arg_fails, "contains", "[null]", NULL)
HOLDS(starts_prefix_holds, "starts", "\"order-17\"", "\"order-\"")
FAILS(starts_not_prefix_fails, "starts", "\"my-order\"", "\"order\"")
FAILS(starts_longer_arg_fails, "starts", "\"or\"", "\"order\"")
HOLDS(starts_empty_arg_holds, "starts", "\"x\"", "\"\"")
FAILS(starts_number_fails, "starts", "123", "\"1\"")
HOLDS(ends_suffix_holds, "ends", "\"file.json\"", "\".json\"")
FAILS(ends_not_suffix_fails, "ends", "\"file.json.bak\"", "\".json\"")
FAILS(ends_longer_arg_fails, "ends", "\"n\"", "\".json\"")
FAILS(ends_absent_fails, "ends", NULL, "\"x\"")
HOLDS(not_ends_absent_holds, "!|ends", NULL, "\"x\"")

/* ---- type tests ---- */
HOLDS(is_string_string_holds, "is-string", "\"\"", NULL)
FAILS(is_string_number_fails, "is-string", "1", NULL)
FAILS(is_string_absent_fails, "is-string", NULL, NULL)
HOLDS(not_is_string_absent_holds, "!|is-string", NULL, NULL)
HOLDS(is_number_integer_holds, "is-number", "1", NULL)
HOLDS(is_number_real_holds, "is-number", "1.5", NULL)
FAILS(is_number_numeric_string_fails, "is-number", "\"1\"", NULL)
HOLDS(is_bool_true_holds, "is-bool", "true", NULL)
HOLDS(is_bool_false_holds, "is-bool", "false", NULL)
FAILS(is_bool_null_fails, "is-bool", "null", NULL)
HOLDS(is_array_array_holds, "is-array", "[]", NULL)
FAILS(is_array_object_fails, "is-array", "{}", NULL)
HOLDS(is_object_object_holds, "is-object", "{}", NULL)
FAILS(is_object_array_fails, "is-object", "[]", NULL)
FAILS(is_object_absent_fails, "is-object", NULL, NULL)

/* ---- trim, lower, upper ---- */
HOLDS(trim_both_ends_holds, "trim|eq", "\" \\t\\n a b \\r\\f\\u000b\"", "\"a b\"")
HOLDS(trim_clean_string_unchanged, "trim|eq", "\"ab\"", "\"ab\"")
HOLDS(trim_spaces_only_becomes_empty, "trim|empty", "\"   \"", NULL)
HOLDS(trim_keeps_non_ascii_space, "trim|eq", "\"\\u00a0x\"", "\"\\u00a0x\"")
HOLDS(trim_number_unchanged, "trim|eq", "5", "5")
HOLDS(trim_absent_stays_absent, "trim|!|exists", NULL, NULL)
FAILS(trim_not_applied_to_value, "trim|eq", "\"a\"", "\" a\"")
HOLDS(lower_ascii_holds, "lower|eq", "\"MiXeD 12\"", "\"mixed 12\"")
HOLDS(lower_leaves_utf8_bytes, "lower|eq", "\"\\u00c9A\"", "\"\\u00c9a\"")
HOLDS(upper_ascii_holds, "upper|eq", "\"new\"", "\"NEW\"")
HOLDS(upper_leaves_utf8_bytes, "upper|eq", "\"\\u00e9a\"", "\"\\u00e9A\"")
HOLDS(upper_keeps_nul, "upper|eq", "\"a\\u0000b\"", "\"A\\u0000B\"")
HOLDS(lower_array_unchanged, "lower|eq", "[\"A\"]", "[\"A\"]")
HOLDS(modifiers_left_to_right, "trim|upper|eq", "\"  ok \"", "\"OK\"")

/* ---- len ---- */
HOLDS(len_ascii_string, "len|eq", "\"abc\"", "3")
HOLDS(len_counts_code_points, "len|eq", "\"\\u00e9t\\u00e9 \\ud83d\\ude00\"", "5")
HOLDS(len_empty_string_zero, "len|eq", "\"\"", "0")
HOLDS(len_array_elements, "len|eq", "[1, [2, 3], null]", "3")
HOLDS(len_object_members, "len|eq", "{\"a\": 1, \"b\": 2}", "2")
HOLDS(len_empty_array_is_empty, "len|empty", "[]", NULL)
FAILS(len_number_is_absent, "len|exists", "12", NULL)
FAILS(len_null_is_absent, "len|exists", "null", NULL)
FAILS(len_bool_is_absent, "len|exists", "true", NULL)
HOLDS(trim_then_len, "trim|len|eq", "\"  ab  \"", "2")
HOLDS(len_gt_holds, "len|gt", "\"abcd\"", "3")

/* ---- number ---- */
HOLDS(number_integer_string, "number|eq", "\"42\"", "42")
HOLDS(number_integer_is_integer, "number|string|eq", "\"42\"", "\"42\"")
HOLDS(number_negative, "number|eq", "\"-7\"", "-7")
HOLDS(number_plus_sign, "number|eq", "\"+7\"", "7")
HOLDS(number_fraction, "number|eq", "\"1.5\"", "1.5")
HOLDS(number_exponent, "number|eq", "\"2e3\"", "2000")
HOLDS(number_exponent_sign, "number|eq", "\"25E-1\"", "2.5")
HOLDS(number_leading_point, "number|eq", "\".5\"", "0.5")
HOLDS(number_trailing_point, "number|eq", "\"5.\"", "5")
HOLDS(number_zero_point_zero_is_empty, "number|empty", "\"0.0\"", NULL)
HOLDS(number_huge_integer_is_real, "number|eq", "\"123456789012345678901234\"",
      "1.23456789012345678901234e23")
HOLDS(number_passes_numbers, "number|eq", "3.25", "3.25")
FAILS(number_space_is_absent, "number|exists", "\" 1\"", NULL)
FAILS(number_trailing_space_is_absent, "number|exists", "\"1 \"", NULL)
FAILS(number_empty_is_absent, "number|exists", "\"\"", NULL)
FAILS(number_sign_only_is_absent, "number|exists", "\"-\"", NULL)
FAILS(number_point_only_is_absent, "number|exists", "\".\"", NULL)
FAILS(number_bare_exponent_is_absent, "number|exists", "\"1e\"", NULL)
FAILS(number_hex_is_absent, "number|exists", "\"0x10\"", NULL)
FAILS(number_inf_is_absent, "number|exists", "\"inf\"", NULL)
FAILS(number_nan_is_absent, "number|exists", "\"nan\"", NULL)
FAILS(number_overflow_is_absent, "number|exists", "\"1e999\"", NULL)
FAILS(number_words_is_absent, "number|exists", "\"12abc\"", NULL)
FAILS(number_nul_is_absent, "number|exists", "\"1\\u00002\"", NULL)
FAILS(number_bool_is_absent, "number|exists", "true", NULL)
FAILS(number_null_is_absent, "number|exists", "null", NULL)
FAILS(number_array_is_absent, "number|exists", "[1]", NULL)
HOLDS(trim_then_number, "trim|number|eq", "\" 12 \"", "12")

/* ---- string ---- */
HOLDS(string_passes_strings, "string|eq", "\"x\"", "\"x\"")
HOLDS(string_integer, "string|eq", "-12", "\"-12\"")
HOLDS(string_real_one_and_half, "string|eq", "1.5", "\"1.5\"")
HOLDS(string_real_one_tenth, "string|eq", "0.1", "\"0.1\"")
HOLDS(string_real_whole, "string|eq", "3.0", "\"3\"")
HOLDS(string_real_third_round_trips, "string|eq", "0.3333333333333333", "\"0.3333333333333333\"")
HOLDS(string_real_large, "string|eq", "1e21", "\"1e+21\"")
HOLDS(string_true, "string|eq", "true", "\"true\"")
HOLDS(string_false, "string|eq", "false", "\"false\"")
FAILS(string_null_is_absent, "string|exists", "null", NULL)
HOLDS(string_array_compact_json, "string|eq", "[1, \"a\", null]", "\"[1,\\\"a\\\",null]\"")
HOLDS(string_object_keeps_order, "string|eq", "{\"b\": 1, \"a\": {}}", "\"{\\\"b\\\":1,\\\"a\\\":{}}\"")
HOLDS(string_lets_number_equal_text, "string|eq", "1", "\"1\"")
HOLDS(string_zero_then_empty, "string|empty", "0", NULL)
HOLDS(string_then_len, "string|len|eq", "12345", "5")

/* ---- parsing ---- */

static void parse_plain_name(void **state)
{
    (void)state;
    cv_operation op = parse_ok("gte");
    assert_int_equal(op.name, CV_OP_GTE);
    assert_false(op.negate);
    assert_int_equal(op.modifier_count, 0);
    assert_int_equal(op.custom_ref, CV_NO_REF);
    assert_string_equal(op.text, "gte");
    cv_operation_free(&op);
}

static void parse_modifiers_in_order(void **state)
{
    (void)state;
    cv_operation op = parse_ok("trim|!|lower|len|eq");
    assert_int_equal(op.name, CV_OP_EQ);
    assert_true(op.negate);
    assert_int_equal(op.modifier_count, 3);
    assert_int_equal(op.modifiers[0], CV_MOD_TRIM);
    assert_int_equal(op.modifiers[1], CV_MOD_LOWER);
    assert_int_equal(op.modifiers[2], CV_MOD_LEN);
    cv_operation_free(&op);
}

static void parse_even_negations_cancel(void **state)
{
    (void)state;
    cv_operation op = parse_ok("!|!|empty");
    assert_false(op.negate);
    cv_operation_free(&op);
}

static void parse_every_name(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        cv_op_name name;
    } names[] = {
        {"empty", CV_OP_EMPTY},         {"exists", CV_OP_EXISTS},
        {"null", CV_OP_NULL},           {"eq", CV_OP_EQ},
        {"ne", CV_OP_NE},               {"gt", CV_OP_GT},
        {"gte", CV_OP_GTE},             {"lt", CV_OP_LT},
        {"lte", CV_OP_LTE},             {"in", CV_OP_IN},
        {"contains", CV_OP_CONTAINS},   {"starts", CV_OP_STARTS},
        {"ends", CV_OP_ENDS},           {"regex", CV_OP_REGEX},
        {"is-string", CV_OP_IS_STRING}, {"is-number", CV_OP_IS_NUMBER},
        {"is-bool", CV_OP_IS_BOOL},     {"is-array", CV_OP_IS_ARRAY},
        {"is-object", CV_OP_IS_OBJECT},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cv_operation op = parse_ok(names[i].text);
        assert_int_equal(op.name, names[i].name);
        cv_operation_free(&op);
    }
}

static void parse_every_modifier(void **state)
{
    (void)state;
    cv_operation op = parse_ok("trim|lower|upper|len|number|string|exists");
    assert_int_equal(op.modifier_count, 6);
    assert_int_equal(op.modifiers[0], CV_MOD_TRIM);
    assert_int_equal(op.modifiers[1], CV_MOD_LOWER);
    assert_int_equal(op.modifiers[2], CV_MOD_UPPER);
    assert_int_equal(op.modifiers[3], CV_MOD_LEN);
    assert_int_equal(op.modifiers[4], CV_MOD_NUMBER);
    assert_int_equal(op.modifiers[5], CV_MOD_STRING);
    cv_operation_free(&op);
}

static void parse_custom_name(void **state)
{
    (void)state;
    cv_operation op = parse_ok("trim|odd");
    assert_int_equal(op.name, CV_OP_CUSTOM);
    assert_int_equal(op.custom_ref, 11);
    cv_operation_free(&op);
}

static void parse_max_modifiers(void **state)
{
    (void)state;
    cv_operation op = parse_ok("trim|trim|trim|trim|trim|trim|trim|trim|!|eq");
    assert_int_equal(op.modifier_count, CV_MAX_MODIFIERS);
    cv_operation_free(&op);
}

/* Parses text, which must fail with CV_ERR_INVALID, and checks the message. */
static void assert_parse_error(const char *text, const char *expected)
{
    cv_operation op = {.text = NULL};
    cv_error err = {0};
    assert_int_equal(cv_operation_parse(&op, text, find_custom, NULL, &err), CV_ERR_INVALID);
    assert_string_equal(err.text, expected);
    assert_null(op.text);
}

static void parse_unknown_name_fails(void **state)
{
    (void)state;
    assert_parse_error("trim|xyz", "unknown operation \"xyz\" in \"trim|xyz\"");
}

static void parse_unknown_modifier_fails(void **state)
{
    (void)state;
    assert_parse_error("strip|eq", "unknown modifier \"strip\" in \"strip|eq\"");
}

static void parse_name_before_modifier_fails(void **state)
{
    (void)state;
    assert_parse_error("eq|trim",
                       "\"eq\" in \"eq|trim\" is an operation name, which must be the last part");
}

static void parse_modifier_last_fails(void **state)
{
    (void)state;
    assert_parse_error("trim", "\"trim\" in \"trim\" is a modifier, so an operation name must "
                               "follow it");
}

static void parse_negation_alone_fails(void **state)
{
    (void)state;
    assert_parse_error("!", "\"!\" in \"!\" is a modifier, so an operation name must follow it");
}

static void parse_empty_fails(void **state)
{
    (void)state;
    assert_parse_error("", "the operation is empty");
}

static void parse_empty_part_fails(void **state)
{
    (void)state;
    assert_parse_error("!||eq", "empty part in operation \"!||eq\"");
}

static void parse_trailing_bar_fails(void **state)
{
    (void)state;
    assert_parse_error("eq|", "empty part in operation \"eq|\"");
}

static void parse_spaces_are_not_trimmed(void **state)
{
    (void)state;
    assert_parse_error("! | eq", "unknown modifier \"! \" in \"! | eq\"");
}

static void parse_custom_without_finder_fails(void **state)
{
    (void)state;
    cv_operation op;
    cv_error err = {0};
    assert_int_equal(cv_operation_parse(&op, "odd", NULL, NULL, &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "unknown operation \"odd\" in \"odd\"");
}

static void parse_too_many_modifiers_fails(void **state)
{
    (void)state;
    assert_parse_error("trim|trim|trim|trim|trim|trim|trim|trim|trim|eq",
                       "operation \"trim|trim|trim|trim|trim|trim|trim|trim|trim|eq\" has more "
                       "than 8 modifiers");
}

/* ---- regex ---- */

/* Tests value against pattern compiled as the rules loader compiles it. */
static bool regex_holds(const char *text, const char *pattern, const char *value_json)
{
    regex_t regex;
    if (regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        fail_msg("bad test pattern %s", pattern);
    cv_operation op = parse_ok(text);
    json_t *value = load(value_json);
    bool result = false;
    cv_error err = {0};
    cv_status status = cv_operation_test(&op, value, NULL, &regex, NULL, &result, &err);
    json_decref(value);
    cv_operation_free(&op);
    regfree(&regex);
    if (status != CV_OK)
        fail_msg("regex %s failed: %s", pattern, err.text);
    return result;
}

static void regex_search_unanchored_holds(void **state)
{
    (void)state;
    assert_true(regex_holds("regex", "[0-9]{3}", "\"order 1234 done\""));
}

static void regex_anchored_mismatch_fails(void **state)
{
    (void)state;
    assert_false(regex_holds("regex", "^[0-9]+$", "\"12a\""));
}

static void regex_alternation_holds(void **state)
{
    (void)state;
    assert_true(regex_holds("regex", "^(NEW|WON)$", "\"WON\""));
}

static void regex_number_fails(void **state)
{
    (void)state;
    assert_false(regex_holds("regex", ".*", "12"));
}

static void regex_absent_fails(void **state)
{
    (void)state;
    assert_false(regex_holds("regex", ".*", NULL));
}

static void regex_negated_absent_holds(void **state)
{
    (void)state;
    assert_true(regex_holds("!|regex", ".*", NULL));
}

static void regex_after_modifier_holds(void **state)
{
    (void)state;
    assert_true(regex_holds("string|regex", "^[0-9]+$", "12"));
}

static void regex_stops_at_nul(void **state)
{
    (void)state;
    assert_false(regex_holds("regex", "b", "\"a\\u0000b\""));
}

static void regex_without_compiled_fails(void **state)
{
    (void)state;
    cv_operation op = parse_ok("regex");
    json_t *value = json_string("a");
    bool result = false;
    cv_error err = {0};
    assert_int_equal(cv_operation_test(&op, value, NULL, NULL, NULL, &result, &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "operation \"regex\" has no compiled regular expression");
    json_decref(value);
    cv_operation_free(&op);
}

/* ---- custom operations ---- */

/* A fake script: records the operation's arguments and returns the result set in answer. */
typedef struct fake_lua {
    int calls;
    int ref;
    char *value_seen; /* JSON text, or NULL for nil */
    char *arg_seen;
    bool answer;
    bool raise;
} fake_lua;

static char *dump_or_null(const json_t *value)
{
    return value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static cv_status fake_operation(cv_script *script, int ref, const json_t *value, const json_t *arg,
                                bool *out, cv_error *err)
{
    fake_lua *lua = script->context;
    lua->calls++;
    lua->ref = ref;
    free(lua->value_seen);
    free(lua->arg_seen);
    lua->value_seen = dump_or_null(value);
    lua->arg_seen = dump_or_null(arg);
    if (lua->raise)
        return cv_error_set(err, CV_ERR_SCRIPT, "rules/ops.lua:3: attempt to index a nil value");
    *out = lua->answer;
    return CV_OK;
}

static const cv_script_ops fake_ops = {.operation = fake_operation};

static cv_status run_custom(fake_lua *lua, const char *text, const char *value_json,
                            const char *arg_json, bool *out, cv_error *err)
{
    cv_script script = {.ops = &fake_ops, .context = lua};
    cv_operation op = parse_ok(text);
    json_t *value = load(value_json);
    json_t *arg = load(arg_json);
    cv_status status = cv_operation_test(&op, value, arg, NULL, &script, out, err);
    json_decref(value);
    json_decref(arg);
    cv_operation_free(&op);
    return status;
}

static void fake_lua_free(fake_lua *lua)
{
    free(lua->value_seen);
    free(lua->arg_seen);
}

static void custom_gets_modified_value(void **state)
{
    (void)state;
    fake_lua lua = {.answer = true};
    bool result = false;
    assert_int_equal(run_custom(&lua, "trim|upper|odd", "\" ab \"", "[1]", &result, NULL), CV_OK);
    assert_int_equal(lua.calls, 1);
    assert_int_equal(lua.ref, 11);
    assert_string_equal(lua.value_seen, "\"AB\"");
    assert_string_equal(lua.arg_seen, "[1]");
    assert_true(result);
    fake_lua_free(&lua);
}

static void custom_gets_absent_as_nil(void **state)
{
    (void)state;
    fake_lua lua = {.answer = false};
    bool result = true;
    assert_int_equal(run_custom(&lua, "seen", NULL, NULL, &result, NULL), CV_OK);
    assert_int_equal(lua.calls, 1);
    assert_int_equal(lua.ref, 12);
    assert_null(lua.value_seen);
    assert_null(lua.arg_seen);
    assert_false(result);
    fake_lua_free(&lua);
}

static void custom_result_is_negated(void **state)
{
    (void)state;
    fake_lua lua = {.answer = true};
    bool result = true;
    assert_int_equal(run_custom(&lua, "!|odd", "1", NULL, &result, NULL), CV_OK);
    assert_false(result);
    fake_lua_free(&lua);
}

static void custom_error_propagates(void **state)
{
    (void)state;
    fake_lua lua = {.raise = true};
    bool result = true;
    cv_error err = {0};
    assert_int_equal(run_custom(&lua, "odd", "1", NULL, &result, &err), CV_ERR_SCRIPT);
    assert_string_equal(err.text, "rules/ops.lua:3: attempt to index a nil value");
    assert_true(result);
    fake_lua_free(&lua);
}

static void custom_without_script_fails(void **state)
{
    (void)state;
    cv_operation op = parse_ok("odd");
    bool result = false;
    cv_error err = {0};
    assert_int_equal(cv_operation_test(&op, NULL, NULL, NULL, NULL, &result, &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "operation \"odd\" needs Lua, but no script is given");
    cv_operation_free(&op);
}

static void test_does_not_touch_value(void **state)
{
    (void)state;
    json_t *value = json_string("  Mixed ");
    json_t *arg = json_string("MIXED");
    cv_operation op = parse_ok("trim|upper|eq");
    bool result = false;
    assert_int_equal(cv_operation_test(&op, value, arg, NULL, NULL, &result, NULL), CV_OK);
    assert_true(result);
    assert_string_equal(json_string_value(value), "  Mixed ");
    assert_int_equal(value->refcount, 1);
    json_decref(value);
    json_decref(arg);
    cv_operation_free(&op);
}

#define CASE(name) cmocka_unit_test(name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(empty_absent_holds), CASE(empty_null_holds), CASE(empty_false_holds),
        CASE(empty_integer_zero_holds), CASE(empty_real_zero_holds),
        CASE(empty_negative_real_zero_holds), CASE(empty_empty_string_holds),
        CASE(empty_string_zero_holds), CASE(empty_empty_array_holds),
        CASE(empty_empty_object_holds), CASE(empty_true_fails), CASE(empty_integer_one_fails),
        CASE(empty_negative_integer_fails), CASE(empty_small_real_fails),
        CASE(empty_string_zero_point_zero_fails), CASE(empty_string_space_fails),
        CASE(empty_string_double_zero_fails), CASE(empty_string_false_fails),
        CASE(empty_string_zero_nul_fails), CASE(empty_string_text_fails),
        CASE(empty_array_with_null_fails), CASE(empty_object_with_key_fails),
        CASE(not_empty_absent_fails), CASE(not_empty_string_holds),

        CASE(exists_null_holds), CASE(exists_false_holds), CASE(exists_absent_fails),
        CASE(not_exists_absent_holds), CASE(null_null_holds), CASE(null_absent_fails),
        CASE(null_zero_fails), CASE(null_string_null_fails),

        CASE(eq_same_string_holds), CASE(eq_other_string_fails), CASE(eq_integer_real_holds),
        CASE(eq_string_number_fails), CASE(eq_null_null_holds), CASE(eq_arrays_holds),
        CASE(eq_array_order_fails), CASE(eq_objects_holds), CASE(eq_absent_value_fails),
        CASE(eq_absent_arg_fails), CASE(eq_both_absent_fails), CASE(not_eq_absent_value_holds),
        CASE(not_eq_absent_arg_holds), CASE(not_eq_equal_fails), CASE(double_not_eq_equal_holds),
        CASE(ne_different_holds), CASE(ne_equal_fails), CASE(ne_string_number_holds),
        CASE(ne_absent_value_fails), CASE(ne_absent_arg_fails), CASE(not_ne_absent_value_holds),

        CASE(gt_numbers_holds), CASE(gt_equal_numbers_fails), CASE(gt_real_integer_holds),
        CASE(gt_large_integers_exact_holds), CASE(gte_equal_holds), CASE(gte_smaller_fails),
        CASE(lt_numbers_holds), CASE(lt_equal_fails), CASE(lte_equal_holds),
        CASE(lte_larger_fails), CASE(gt_strings_bytewise_holds),
        CASE(lt_string_prefix_first_holds), CASE(lt_upper_before_lower_holds),
        CASE(gte_same_string_holds), CASE(gt_utf8_after_ascii_holds),
        CASE(gt_string_number_fails), CASE(lt_number_string_fails), CASE(gt_absent_value_fails),
        CASE(gt_absent_arg_fails), CASE(lte_null_fails), CASE(gt_booleans_fails),
        CASE(not_gt_absent_holds), CASE(number_gt_numeric_string_holds),

        CASE(in_element_holds), CASE(in_number_any_type_holds), CASE(in_missing_fails),
        CASE(in_empty_array_fails), CASE(in_arg_not_array_fails), CASE(in_absent_value_fails),
        CASE(in_null_in_array_holds), CASE(contains_substring_holds),
        CASE(contains_missing_substring_fails), CASE(contains_empty_substring_holds),
        CASE(contains_longer_needle_fails), CASE(contains_after_nul_holds),
        CASE(contains_array_element_holds), CASE(contains_array_missing_fails),
        CASE(contains_array_substring_fails), CASE(contains_number_fails),
        CASE(contains_string_number_arg_fails), CASE(contains_absent_arg_fails),
        CASE(starts_prefix_holds), CASE(starts_not_prefix_fails), CASE(starts_longer_arg_fails),
        CASE(starts_empty_arg_holds), CASE(starts_number_fails), CASE(ends_suffix_holds),
        CASE(ends_not_suffix_fails), CASE(ends_longer_arg_fails), CASE(ends_absent_fails),
        CASE(not_ends_absent_holds),

        CASE(is_string_string_holds), CASE(is_string_number_fails), CASE(is_string_absent_fails),
        CASE(not_is_string_absent_holds), CASE(is_number_integer_holds),
        CASE(is_number_real_holds), CASE(is_number_numeric_string_fails),
        CASE(is_bool_true_holds), CASE(is_bool_false_holds), CASE(is_bool_null_fails),
        CASE(is_array_array_holds), CASE(is_array_object_fails), CASE(is_object_object_holds),
        CASE(is_object_array_fails), CASE(is_object_absent_fails),

        CASE(trim_both_ends_holds), CASE(trim_clean_string_unchanged),
        CASE(trim_spaces_only_becomes_empty), CASE(trim_keeps_non_ascii_space),
        CASE(trim_number_unchanged), CASE(trim_absent_stays_absent),
        CASE(trim_not_applied_to_value), CASE(lower_ascii_holds), CASE(lower_leaves_utf8_bytes),
        CASE(upper_ascii_holds), CASE(upper_leaves_utf8_bytes), CASE(upper_keeps_nul),
        CASE(lower_array_unchanged), CASE(modifiers_left_to_right),

        CASE(len_ascii_string), CASE(len_counts_code_points), CASE(len_empty_string_zero),
        CASE(len_array_elements), CASE(len_object_members), CASE(len_empty_array_is_empty),
        CASE(len_number_is_absent), CASE(len_null_is_absent), CASE(len_bool_is_absent),
        CASE(trim_then_len), CASE(len_gt_holds),

        CASE(number_integer_string), CASE(number_integer_is_integer), CASE(number_negative),
        CASE(number_plus_sign), CASE(number_fraction), CASE(number_exponent),
        CASE(number_exponent_sign), CASE(number_leading_point), CASE(number_trailing_point),
        CASE(number_zero_point_zero_is_empty), CASE(number_huge_integer_is_real),
        CASE(number_passes_numbers), CASE(number_space_is_absent),
        CASE(number_trailing_space_is_absent), CASE(number_empty_is_absent),
        CASE(number_sign_only_is_absent), CASE(number_point_only_is_absent),
        CASE(number_bare_exponent_is_absent), CASE(number_hex_is_absent),
        CASE(number_inf_is_absent), CASE(number_nan_is_absent), CASE(number_overflow_is_absent),
        CASE(number_words_is_absent), CASE(number_nul_is_absent), CASE(number_bool_is_absent),
        CASE(number_null_is_absent), CASE(number_array_is_absent), CASE(trim_then_number),

        CASE(string_passes_strings), CASE(string_integer), CASE(string_real_one_and_half),
        CASE(string_real_one_tenth), CASE(string_real_whole), CASE(string_real_third_round_trips),
        CASE(string_real_large), CASE(string_true), CASE(string_false),
        CASE(string_null_is_absent), CASE(string_array_compact_json),
        CASE(string_object_keeps_order), CASE(string_lets_number_equal_text),
        CASE(string_zero_then_empty), CASE(string_then_len),

        CASE(parse_plain_name), CASE(parse_modifiers_in_order), CASE(parse_even_negations_cancel),
        CASE(parse_every_name), CASE(parse_every_modifier), CASE(parse_custom_name),
        CASE(parse_max_modifiers), CASE(parse_unknown_name_fails),
        CASE(parse_unknown_modifier_fails), CASE(parse_name_before_modifier_fails),
        CASE(parse_modifier_last_fails), CASE(parse_negation_alone_fails),
        CASE(parse_empty_fails), CASE(parse_empty_part_fails), CASE(parse_trailing_bar_fails),
        CASE(parse_spaces_are_not_trimmed), CASE(parse_custom_without_finder_fails),
        CASE(parse_too_many_modifiers_fails),

        CASE(regex_search_unanchored_holds), CASE(regex_anchored_mismatch_fails),
        CASE(regex_alternation_holds), CASE(regex_number_fails), CASE(regex_absent_fails),
        CASE(regex_negated_absent_holds), CASE(regex_after_modifier_holds),
        CASE(regex_stops_at_nul), CASE(regex_without_compiled_fails),

        CASE(custom_gets_modified_value), CASE(custom_gets_absent_as_nil),
        CASE(custom_result_is_negated), CASE(custom_error_propagates),
        CASE(custom_without_script_fails), CASE(test_does_not_touch_value),
    };
    return cmocka_run_group_tests_name("operation", tests, NULL, NULL);
}
