/*
 * What `conveyor check` and node start-up report for broken rules: one
 * "file:line: what" line per fault, all faults of a folder in one run,
 * sorted by file and line. Each fixture under tests/fixtures/rules/broken
 * contains one kind of fault, and these tests pin the exact text and line
 * of each.
 *
 * An expected line ending in "*" is compared as a prefix, for messages
 * whose tail comes from another module (path and operation parsers, the C
 * library's regerror).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"

#define BROKEN CV_TEST_SOURCE_DIR "/tests/fixtures/rules/broken"

/* Expands "{dir}" in pattern to the broken fixtures folder. */
static void expand(const char *pattern, char *out, size_t size)
{
    const char *mark = strstr(pattern, "{dir}");
    if (mark == NULL)
        snprintf(out, size, "%s/%s", BROKEN, pattern);
    else
        snprintf(out, size, "%s/%.*s%s%s", BROKEN, (int)(mark - pattern), pattern, BROKEN,
                 mark + 5);
}

static bool matches(const char *expected, const char *got)
{
    size_t len = strlen(expected);
    if (len > 0 && expected[len - 1] == '*')
        return strncmp(expected, got, len - 1) == 0;
    return strcmp(expected, got) == 0;
}

/* Loads fixture (under the broken folder) and checks the faults, in order. */
static void expect_faults(const char *fixture, const char *const *expected)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", BROKEN, fixture);
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;

    cv_status status = cv_rules_load(&rules, path, NULL, &diag, &err);
    assert_int_equal(status, CV_ERR_INVALID);
    assert_null(rules);

    size_t count = 0;
    while (expected[count] != NULL)
        count++;
    bool same = diag.count == count;
    for (size_t i = 0; same && i < count; i++) {
        char want[2048];
        expand(expected[i], want, sizeof want);
        same = matches(want, diag.messages[i]);
    }
    if (!same) {
        for (size_t i = 0; i < diag.count; i++)
            print_message("got: %s\n", diag.messages[i]);
        for (size_t i = 0; i < count; i++)
            print_message("expected: %s\n", expected[i]);
        cv_diag_free(&diag);
        fail_msg("faults of %s differ", fixture);
    }
    char summary[64];
    snprintf(summary, sizeof summary, "%zu %s in ", count, count == 1 ? "fault" : "faults");
    assert_int_equal(strncmp(err.text, summary, strlen(summary)), 0);
    cv_diag_free(&diag);
}

static void test_unknown_steps(void **state)
{
    static const char *const expected[] = {
        "unknown_step.lua:3: process \"deal\": start names unknown step \"get-dael\"",
        "unknown_step.lua:7: step \"get-deal\": next names unknown step \"rememebr\"",
        "unknown_step.lua:10: step \"get-deal\": condition[2].result names unknown step "
        "\"get-deal-by-idd\"",
        "unknown_step.lua:13: step \"remember\": prev names unknown step \"get-dael\"",
        "unknown_step.lua:14: step \"remember\": on_error names unknown step \"nowhere\"",
        NULL,
    };
    expect_faults("unknown_step.lua", expected);
}

static void test_unknown_operations(void **state)
{
    static const char *const expected[] = {
        "unknown_operation.lua:8: step \"a\": condition[1].operation: unknown operation "
        "\"emptyy\"*",
        "unknown_operation.lua:9: step \"a\": condition[2].operation: unknown modifier \"trimm\"*",
        "unknown_operation.lua:10: step \"a\": condition[3].operation: \"eq\" in \"eq|trim\"*",
        NULL,
    };
    expect_faults("unknown_operation.lua", expected);
}

static void test_bad_regex(void **state)
{
    static const char *const expected[] = {
        "bad_regex.lua:8: step \"a\": condition[1]: regex \"^[A-Z\" does not compile: *",
        "bad_regex.lua:9: step \"a\": condition[2]: operation \"regex\" needs a literal string "
        "value, not value_field",
        "bad_regex.lua:11: step \"a\": condition[3]: operation \"regex\" needs a string value, "
        "got number",
        NULL,
    };
    expect_faults("bad_regex.lua", expected);
}

static void test_unknown_keys(void **state)
{
    static const char *const expected[] = {
        "unknown_key.lua:2: unknown key \"timout\" in module \"crm\" (expected one of: "
        "description, transport, url, method, headers, timeout, max_response, follow_redirects, "
        "run)",
        "unknown_key.lua:5: unknown key \"strat\" in process \"keys\" (expected one of: "
        "description, start, steps, max_visits, intake)",
        "unknown_key.lua:10: unknown key \"nxt\" in step \"a\" (expected one of: id, description, "
        "subsystem, next, prev, condition, route, params, input, timeout, retry, on_error, join, "
        "transport)",
        "unknown_key.lua:11: unknown key \"backof\" in retry of step \"a\" (expected one of: max, "
        "backoff, factor, max_backoff, jitter)",
        "unknown_key.lua:13: unknown key \"sucess\" in condition[1] of step \"a\" (expected one "
        "of: field, operation, value, value_field, result, success, failure, when)",
        "unknown_key.lua:15: unknown key \"reslt\" in condition[2].failure[1] of step \"a\" "
        "(expected one of: field, operation, value, value_field, result, success, failure, when)",
        "unknown_key.lua:18: unknown key [1] in step \"b\" (expected one of: id, description, "
        "subsystem, next, prev, condition, route, params, input, timeout, retry, on_error, join, "
        "transport)",
        "unknown_key.lua:20: unknown key \"burst\" in intake of process \"keys\" (expected one "
        "of: rate, batch, every, schedule)",
        NULL,
    };
    expect_faults("unknown_key.lua", expected);
}

static void test_bad_names(void **state)
{
    static const char *const expected[] = {
        "bad_names.lua:2: module name \"crm module\" is not a valid name (use letters, digits, "
        "\"_\" and \"-\")",
        "bad_names.lua:4: process name \"deal sync\" is not a valid name (use letters, digits, "
        "\"_\" and \"-\")",
        "bad_names.lua:7: step \"a\": subsystem \"find.deal\" is not a valid name (use letters, "
        "digits, \"_\" and \"-\")",
        "bad_names.lua:8: step id \"get deal\" is not a valid name (use letters, digits, \"_\" "
        "and \"-\")",
        "bad_names.lua:9: step id \"request\" is reserved (the data document uses it)",
        "bad_names.lua:10: step id \"instance\" is reserved (the data document uses it)",
        "bad_names.lua:14: operation name \"my op\" is not a valid name (use letters, digits, "
        "\"_\" and \"-\")",
        "bad_names.lua:15: operation \"eq\" is built in and cannot be redefined",
        "bad_names.lua:16: operation \"lower\" is a modifier and cannot be redefined",
        NULL,
    };
    expect_faults("bad_names.lua", expected);
}

static void test_missing_keys(void **state)
{
    static const char *const expected[] = {
        "missing_keys.lua:2: process \"no-start\": start is missing",
        "missing_keys.lua:6: process \"no-steps\": steps is missing",
        "missing_keys.lua:10: process \"empty-steps\": steps is empty",
        "missing_keys.lua:14: step \"a\": subsystem is missing",
        "missing_keys.lua:17: process \"no-table\" has no definition (write process \"no-table\" "
        "{ ... })",
        "missing_keys.lua:18: module \"no-table\" has no definition (write module \"no-table\" "
        "{ ... })",
        "missing_keys.lua:22: step \"a\": join = \"all\" needs prev, the steps to wait for",
        NULL,
    };
    expect_faults("missing_keys.lua", expected);
}

static void test_wrong_types(void **state)
{
    static const char *const expected[] = {
        "wrong_types.lua:4: process \"types\": max_visits must be a positive integer, got string",
        "wrong_types.lua:8: step \"a\": next must be a list of step ids, got a string (write "
        "{ \"b\" })",
        "wrong_types.lua:9: step \"a\": prev[2] must be a string, got number",
        "wrong_types.lua:10: step \"a\": route must be a function, got string",
        "wrong_types.lua:11: step \"a\": params must be a table, got string",
        "wrong_types.lua:12: step \"a\": input[2]: *",
        "wrong_types.lua:13: step \"a\": timeout must be a duration such as \"30s\" or a number "
        "of seconds, got boolean",
        "wrong_types.lua:14: step \"a\": retry.max must be an integer from 0 to 100000, got 1.5",
        "wrong_types.lua:14: step \"a\": retry.factor must be a number of at least 1, got 0.5",
        "wrong_types.lua:14: step \"a\": retry.jitter must be a boolean, got string",
        "wrong_types.lua:15: step \"a\": join must be \"all\", got \"any\"",
        "wrong_types.lua:16: step \"a\": condition must be a list of condition nodes; to give "
        "one node, wrap it in another { }",
        "wrong_types.lua:20: step \"b\": params must be a table of named values, got a list",
        "wrong_types.lua:22: step \"b\": condition[1].result must be a list of step ids, got a "
        "string (write { \"a\" })",
        "wrong_types.lua:23: step \"b\": condition[2].when must be a function, got string",
        "wrong_types.lua:24: step \"b\": condition[3].success must be a list of condition nodes; "
        "to give one node, wrap it in another { }",
        NULL,
    };
    expect_faults("wrong_types.lua", expected);
}

static void test_bad_nodes(void **state)
{
    static const char *const expected[] = {
        "bad_nodes.lua:8: step \"a\": condition[1] has no test (give field and operation, or "
        "when)",
        "bad_nodes.lua:9: step \"a\": condition[2] has no outcome (give result, success or "
        "failure)",
        "bad_nodes.lua:10: step \"a\": condition[3] has both when and field/operation; a node "
        "tests either when, or field with operation",
        "bad_nodes.lua:12: step \"a\": condition[4] has field but no operation",
        "bad_nodes.lua:13: step \"a\": condition[5]: operation \"in\" needs an array value, got "
        "string",
        "bad_nodes.lua:14: step \"a\": condition[6]: operation \"gt\" needs a value or "
        "value_field",
        "bad_nodes.lua:15: step \"a\": condition[7]: operation \"exists\" takes no value",
        "bad_nodes.lua:16: step \"a\": condition[8] has both value and value_field",
        "bad_nodes.lua:18: step \"a\": condition[9] has both result and success; success would "
        "never be evaluated",
        "bad_nodes.lua:19: step \"a\": condition[10]: operation \"starts\" needs a string value, "
        "got number",
        NULL,
    };
    expect_faults("bad_nodes.lua", expected);
}

static void test_lua_errors(void **state)
{
    static const char *const syntax[] = {
        "syntax_error.lua:3: '}' expected (to close '{' at line 1) near 'steps'",
        NULL,
    };
    expect_faults("syntax_error.lua", syntax);

    static const char *const runtime[] = {
        "runtime_error.lua:5: attempt to index a nil value (local 'settings')",
        NULL,
    };
    expect_faults("runtime_error.lua", runtime);

    static const char *const returned[] = {
        "returned.lua:3: the file returned a list whose item [1] is a string, not a process table",
        NULL,
    };
    expect_faults("returned.lua", returned);
}

static void test_bad_durations(void **state)
{
    static const char *const expected[] = {
        "bad_durations.lua:2: module \"crm\": timeout: invalid duration \"soon\"*",
        "bad_durations.lua:2: module \"crm\": max_response: invalid size \"lots\"*",
        "bad_durations.lua:3: module \"slow\": timeout must be greater than zero",
        "bad_durations.lua:8: step \"a\": timeout: invalid duration \"5x\"*",
        "bad_durations.lua:9: step \"b\": timeout must be a duration such as \"30s\" or a number "
        "of seconds, got -1",
        "bad_durations.lua:10: step \"c\": retry.backoff: invalid duration \"1y\"*",
        "bad_durations.lua:11: step \"d\": retry.backoff (120000ms) is longer than the default "
        "max_backoff (60000ms); write a max_backoff of at least the backoff",
        "bad_durations.lua:12: step \"e\": retry.max must be an integer from 0 to 100000, got "
        "200000",
        "bad_durations.lua:12: step \"e\": retry.backoff must be at least 10ms, got 0ms",
        "bad_durations.lua:13: step \"f\": timeout cannot be set on a step with transport "
        "\"lua\": it runs inside the node, bounded by the rule budgets",
        NULL,
    };
    expect_faults("bad_durations.lua", expected);
}

static void test_bad_modules(void **state)
{
    static const char *const expected[] = {
        "bad_modules.lua:2: module \"no-url\": transport \"http\" needs a url",
        "bad_modules.lua:3: module \"ftp\": url must start with http:// or https://, got "
        "\"ftp://example.com/\"",
        "bad_modules.lua:4: module \"smtp\": unknown transport \"smtp\" (expected one of: nats, "
        "http, queue, lua)",
        "bad_modules.lua:5: module \"no-run\": transport \"lua\" needs a run function",
        "bad_modules.lua:6: module \"forgot-transport\": url is only used by the http transport, "
        "but transport is \"nats\"",
        "bad_modules.lua:6: module \"forgot-transport\": method is only used by the http "
        "transport, but transport is \"nats\"",
        "bad_modules.lua:7: module \"bad-headers\": method must be an HTTP method name such as "
        "\"POST\", got \"GE T\"",
        "bad_modules.lua:8: module \"bad-headers\": headers[\"Bad Name\"] is not a valid header "
        "name",
        "bad_modules.lua:8: module \"bad-headers\": headers[\"X-Inject\"] contains a line break "
        "or a NUL byte",
        "bad_modules.lua:8: module \"bad-headers\": headers[\"content-length\"] is set by the "
        "HTTP client and cannot be given in rules",
        "bad_modules.lua:13: step \"a\": transport \"lua\" needs a module \"nats-only\" with a "
        "run function",
        "bad_modules.lua:14: step \"b\": transport \"http\" needs an http module \"nats-only\" "
        "with a url",
        "bad_modules.lua:15: step \"c\": unknown transport \"pigeon\" (expected one of: nats, "
        "http, queue, lua)",
        NULL,
    };
    expect_faults("bad_modules.lua", expected);
}

static void test_duplicates_across_files(void **state)
{
    static const char *const expected[] = {
        "duplicate/b.lua:2: module \"crm\" is already defined at {dir}/duplicate/a.lua:1",
        "duplicate/b.lua:4: process \"deal\" is already defined at {dir}/duplicate/a.lua:3",
        "duplicate/b.lua:12: process \"seed\": steps[4] has no id",
        "duplicate/b.lua:12: process \"seed\": steps[5] must be a table, got string",
        "duplicate/b.lua:15: process \"seed\": step \"a\" is defined twice (steps[1] and "
        "steps[3])",
        NULL,
    };
    expect_faults("duplicate", expected);
}

static void test_whole_folder_reports_every_file(void **state)
{
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    assert_int_equal(cv_rules_load(&rules, BROKEN, NULL, &diag, &err), CV_ERR_INVALID);

    static const char *const files[] = {
        "bad_durations.lua", "bad_modules.lua", "bad_names.lua", "bad_nodes.lua",
        "bad_regex.lua", "duplicate/b.lua", "missing_keys.lua", "returned.lua",
        "runtime_error.lua", "syntax_error.lua", "unknown_key.lua", "unknown_operation.lua",
        "unknown_step.lua", "wrong_types.lua",
    };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char needle[128];
        bool found = false;
        snprintf(needle, sizeof needle, "/%s:", files[f]);
        for (size_t i = 0; i < diag.count && !found; i++)
            found = strstr(diag.messages[i], needle) != NULL;
        if (!found)
            fail_msg("no fault reported for %s", files[f]);
    }
    /* Sorted by file: bad_durations.lua comes first, wrong_types.lua last. */
    assert_non_null(strstr(diag.messages[0], "/bad_durations.lua:2: "));
    assert_non_null(strstr(diag.messages[diag.count - 1], "/wrong_types.lua:24: "));
    char summary[1200];
    snprintf(summary, sizeof summary, "%zu faults in %s", diag.count, BROKEN);
    assert_string_equal(err.text, summary);
    cv_diag_free(&diag);
}

static void test_missing_folder(void **state)
{
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    assert_int_equal(cv_rules_load(&rules, BROKEN "/no-such-folder", NULL, &diag, &err),
                     CV_ERR_NOT_FOUND);
    assert_null(rules);
    assert_int_equal(diag.count, 0);
    assert_string_equal(err.text, "rules folder " BROKEN "/no-such-folder does not exist");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_steps),
        cmocka_unit_test(test_unknown_operations),
        cmocka_unit_test(test_bad_regex),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_nodes),
        cmocka_unit_test(test_lua_errors),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_bad_modules),
        cmocka_unit_test(test_duplicates_across_files),
        cmocka_unit_test(test_whole_folder_reports_every_file),
        cmocka_unit_test(test_missing_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
