/*
 * Calling into loaded rules: route results and their errors, `when` and
 * custom operations (with `null` counting as false), Lua modules, the
 * budgets of a call (and that the rules work after one runs out), and
 * globals that are read-only and separate per file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"

#define SANDBOX_RULES CV_TEST_SOURCE_DIR "/tests/fixtures/rules/sandbox"
#define CALLS_FILE SANDBOX_RULES "/calls.lua"

static int setup(void **state)
{
    cv_rules_limits limits = {.instruction_budget = 100000, .memory_budget = 1024 * 1024};
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    if (cv_rules_load(&rules, SANDBOX_RULES, &limits, &diag, &err) != CV_OK) {
        for (size_t i = 0; i < diag.count; i++)
            print_message("%s\n", diag.messages[i]);
        fail_msg("cannot load %s: %s", SANDBOX_RULES, err.text);
    }
    cv_diag_free(&diag);
    *state = rules;
    return 0;
}

static int teardown(void **state)
{
    cv_rules_destroy(*state);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (value == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return value;
}

static const cv_step *find_step(cv_rules *rules, const char *process_name, const char *id)
{
    const cv_process *process = cv_rules_find_process(rules, process_name);
    assert_non_null(process);
    int index = cv_process_find_step(process, id);
    if (index < 0)
        fail_msg("no step %s in %s", id, process_name);
    return &process->steps[index];
}

/* Calls the route of step id with data; returns the status, and the steps as JSON text or "nil". */
static cv_status route(cv_rules *rules, const char *process, const char *id, const char *data,
                       char **steps, cv_error *err)
{
    cv_script *script = cv_rules_script(rules);
    json_t *document = parse(data);
    json_t *out = NULL;
    cv_status status = script->ops->route(script, find_step(rules, process, id)->route_ref,
                                          document, &out, err);
    json_decref(document);
    *steps = NULL;
    if (status == CV_OK)
        *steps = out ? json_dumps(out, JSON_COMPACT) : strdup("nil");
    json_decref(out);
    return status;
}

static void assert_route(cv_rules *rules, const char *process, const char *id, const char *data,
                         const char *expected)
{
    char *steps = NULL;
    cv_error err = {0};
    if (route(rules, process, id, data, &steps, &err) != CV_OK)
        fail_msg("route of %s failed: %s", id, err.text);
    assert_string_equal(steps, expected);
    free(steps);
}

static void assert_route_fails(cv_rules *rules, const char *id, cv_status status,
                               const char *expected)
{
    char *steps = NULL;
    cv_error err = {0};
    assert_int_equal(route(rules, "calls", id, "{\"request\": {\"id\": 42}}", &steps, &err),
                     status);
    assert_null(steps);
    assert_string_equal(err.text, expected);
}

static void test_route_results(void **state)
{
    cv_rules *rules = *state;
    assert_route(rules, "calls", "pick", "{\"request\": {\"next\": [\"a\", \"b\"]}}",
                 "[\"a\",\"b\"]");
    assert_route(rules, "calls", "pick", "{\"request\": {}}", "nil");
    assert_route(rules, "calls", "none", "{}", "nil");
    assert_route(rules, "calls", "empty", "{}", "[]");
}

static void test_route_bad_results(void **state)
{
    cv_rules *rules = *state;
    assert_route_fails(rules, "text", CV_ERR_SCRIPT,
                       "route must return a list of step ids or nil, got string");
    assert_route_fails(rules, "numbers", CV_ERR_SCRIPT,
                       "route must return a list of step ids or nil, got a list with number at "
                       "[2]");
    assert_route_fails(rules, "map", CV_ERR_SCRIPT,
                       "route must return a list of step ids or nil, got a table with keys "
                       "other than 1..n");
    assert_route_fails(rules, "fail", CV_ERR_SCRIPT, CALLS_FILE ":40: cannot route 42");
}

static void test_globals_read_only_and_per_file(void **state)
{
    cv_rules *rules = *state;
    assert_route_fails(rules, "bump", CV_ERR_SCRIPT,
                       CALLS_FILE ":31: cannot assign to global 'counter': globals are read-only "
                                  "once the rules are loaded (use a local variable)");
    assert_route(rules, "other", "peek", "{}", "[\"nil\"]");
}

static void test_budgets_per_call(void **state)
{
    cv_rules *rules = *state;
    assert_route_fails(rules, "spin", CV_ERR_LIMIT,
                       CALLS_FILE ":32: rule exceeded its instruction budget of 100000 "
                                  "instructions");
    assert_route(rules, "calls", "pick", "{\"request\": {\"next\": [\"a\"]}}", "[\"a\"]");

    assert_route_fails(rules, "hog", CV_ERR_LIMIT, "rule exceeded its memory budget of 1 MiB");
    assert_route(rules, "calls", "pick", "{\"request\": {\"next\": [\"b\"]}}", "[\"b\"]");

    /* Converting a large document is not charged to the rule's memory budget. */
    json_t *big = json_object();
    json_t *items = json_array();
    for (int i = 0; i < 100000; i++)
        json_array_append_new(items, json_string("an item of the request"));
    json_object_set_new(big, "items", items);
    json_object_set_new(big, "next", json_pack("[s]", "c"));
    json_t *data = json_pack("{s:o}", "request", big);
    cv_script *script = cv_rules_script(rules);
    json_t *out = NULL;
    cv_error err = {0};
    assert_int_equal(script->ops->route(script, find_step(rules, "calls", "pick")->route_ref, data,
                                        &out, &err),
                     CV_OK);
    assert_string_equal(json_string_value(json_array_get(out, 0)), "c");
    json_decref(out);
    json_decref(data);
}

static void test_when_and_operations(void **state)
{
    cv_rules *rules = *state;
    cv_script *script = cv_rules_script(rules);
    const cv_step *check = find_step(rules, "calls", "check");
    const cv_cond_node *when = &check->condition.nodes[0];
    const cv_cond_node *between = &check->condition.nodes[1];
    const cv_cond_node *null_result = &check->condition.nodes[2];
    static const struct {
        const char *data;
        bool expected;
    } whens[] = {
        {"{\"request\": {\"flag\": true}}", true},
        {"{\"request\": {\"flag\": \"yes\"}}", true},
        {"{\"request\": {\"flag\": false}}", false},
        {"{\"request\": {\"flag\": null}}", false},
        {"{\"request\": {}}", false},
    };
    for (size_t i = 0; i < sizeof whens / sizeof whens[0]; i++) {
        json_t *data = parse(whens[i].data);
        bool out = !whens[i].expected;
        cv_error err = {0};
        assert_int_equal(script->ops->when(script, when->when_ref, data, &out, &err), CV_OK);
        if (out != whens[i].expected)
            fail_msg("when on %s gave %d", whens[i].data, out);
        json_decref(data);
    }

    assert_int_equal(between->op.name, CV_OP_CUSTOM);
    json_t *five = json_integer(5);
    json_t *eleven = json_integer(11);
    bool out = false;
    cv_error err = {0};
    assert_int_equal(script->ops->operation(script, between->op.custom_ref, five, between->value,
                                            &out, &err),
                     CV_OK);
    assert_true(out);
    assert_int_equal(script->ops->operation(script, between->op.custom_ref, eleven,
                                            between->value, &out, &err),
                     CV_OK);
    assert_false(out);
    out = true;
    assert_int_equal(script->ops->operation(script, between->op.custom_ref, NULL, between->value,
                                            &out, &err),
                     CV_OK);
    assert_false(out);
    out = true;
    assert_int_equal(script->ops->operation(script, null_result->op.custom_ref, five, NULL, &out,
                                            &err),
                     CV_OK);
    assert_false(out);
    json_decref(five);
    json_decref(eleven);
}

static const cv_module *find_module(cv_rules *rules, const char *name)
{
    for (size_t i = 0; i < cv_rules_module_count(rules); i++) {
        if (strcmp(cv_rules_module_at(rules, i)->name, name) == 0)
            return cv_rules_module_at(rules, i);
    }
    fail_msg("no module %s", name);
    return NULL;
}

/* Runs module name with input and params (JSON texts); returns the result as JSON text. */
static cv_status run_module(cv_rules *rules, const char *name, const char *input,
                            const char *params, char **result, cv_error *err)
{
    json_t *in = parse(input);
    json_t *with = parse(params);
    json_t *out = NULL;
    cv_status status = cv_rules_run_module(rules, find_module(rules, name), in, with, &out, err);
    *result = status == CV_OK ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS)
                              : NULL;
    json_decref(in);
    json_decref(with);
    json_decref(out);
    return status;
}

static void test_lua_modules(void **state)
{
    cv_rules *rules = *state;
    char *result = NULL;
    cv_error err = {0};

    assert_int_equal(run_module(rules, "echo", "{\"a\": 1}", "{\"list\": [1, 2, 3]}", &result,
                                &err),
                     CV_OK);
    assert_string_equal(result, "{\"count\":3,\"input\":{\"a\":1},\"missing\":null,\"params\":"
                                "{\"list\":[1,2,3]}}");
    free(result);

    assert_int_equal(run_module(rules, "scalar", "{}", "{\"value\": \"x\"}", &result, &err), CV_OK);
    assert_string_equal(result, "\"x\"");
    free(result);
    assert_int_equal(run_module(rules, "nothing", "{}", "{}", &result, &err), CV_OK);
    assert_string_equal(result, "null");
    free(result);

    assert_int_equal(run_module(rules, "broken", "{}", "{}", &result, &err), CV_ERR_SCRIPT);
    assert_string_equal(err.text, "module \"broken\": result.f: cannot convert a function to JSON");
    assert_int_equal(run_module(rules, "raises", "{}", "{}", &result, &err), CV_ERR_SCRIPT);
    assert_string_equal(err.text, "module \"raises\": " CALLS_FILE ":20: no stock for sku-1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_bad_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_globals_read_only_and_per_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budgets_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_when_and_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_modules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
