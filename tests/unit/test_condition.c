/*
 * Condition lists: the order nodes are tried in, `result`, `success` and
 * `failure`, the decision path reported for nested lists, `when`
 * predicates, `value_field`, and errors from Lua carrying the node's path.
 *
 * Trees are built by hand the way the rules loader builds them, on the heap,
 * so that cv_condition_list_free is exercised too (ASan checks it frees all).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/condition.h"

/* ---- building trees ---- */

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (value == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return value;
}

static int find_custom(void *context, const char *name)
{
    (void)context;
    return strcmp(name, "odd") == 0 ? 31 : CV_NO_REF;
}

/* A node testing field with op against value_json (NULL: no value). */
static cv_cond_node test(const char *field, const char *op, const char *value_json)
{
    cv_cond_node node = {.when_ref = CV_NO_REF, .has_field = true};
    if (cv_path_parse(&node.field, field, NULL) != CV_OK)
        fail_msg("bad test path %s", field);
    if (cv_operation_parse(&node.op, op, find_custom, NULL, NULL) != CV_OK)
        fail_msg("bad test operation %s", op);
    node.value = value_json ? load(value_json) : NULL;
    return node;
}

/* A node whose test is the Lua predicate ref. */
static cv_cond_node when(int ref)
{
    cv_cond_node node = {.when_ref = ref};
    return node;
}

/* Always holds: the field "yes" of the test data is true. */
static cv_cond_node holding(void)
{
    return test("yes", "eq", "true");
}

/* Never holds. */
static cv_cond_node failing(void)
{
    return test("yes", "eq", "false");
}

/* Gives node a `result` of count step indices. */
static cv_cond_node result(cv_cond_node node, size_t count, ...)
{
    va_list ap;
    node.has_result = true;
    node.result.count = count;
    node.result.steps = count ? calloc(count, sizeof(int)) : NULL;
    va_start(ap, count);
    for (size_t i = 0; i < count; i++)
        node.result.steps[i] = va_arg(ap, int);
    va_end(ap);
    return node;
}

/* A list of count nodes, passed by value. */
static cv_cond_list list(size_t count, ...)
{
    va_list ap;
    cv_cond_list built = {.count = count, .nodes = calloc(count ? count : 1, sizeof(cv_cond_node))};
    va_start(ap, count);
    for (size_t i = 0; i < count; i++)
        built.nodes[i] = va_arg(ap, cv_cond_node);
    va_end(ap);
    return built;
}

static cv_cond_node success(cv_cond_node node, cv_cond_list nested)
{
    node.has_success = true;
    node.success = nested;
    return node;
}

static cv_cond_node failure(cv_cond_node node, cv_cond_list nested)
{
    node.has_failure = true;
    node.failure = nested;
    return node;
}

static cv_cond_node value_field(cv_cond_node node, const char *path)
{
    node.has_value_field = true;
    if (cv_path_parse(&node.value_field, path, NULL) != CV_OK)
        fail_msg("bad test path %s", path);
    return node;
}

static cv_cond_node with_regex(cv_cond_node node)
{
    node.regex = malloc(sizeof *node.regex);
    if (regcomp(node.regex, json_string_value(node.value), REG_EXTENDED | REG_NOSUB) != 0)
        fail_msg("bad test pattern");
    return node;
}

/* ---- a fake Lua ---- */

/*
 * `when` predicates by ref: 1 is true, 2 is false, 3 raises. Custom
 * operation 31 ("odd") raises. Every call is counted.
 */
typedef struct fake_lua {
    int when_calls;
    int last_when;
} fake_lua;

static cv_status fake_when(cv_script *script, int ref, const json_t *data, bool *out, cv_error *err)
{
    fake_lua *lua = script->context;
    lua->when_calls++;
    lua->last_when = ref;
    if (!json_is_object(data))
        return cv_error_set(err, CV_ERR_INVALID, "predicate got no data");
    if (ref == 3)
        return cv_error_set(err, CV_ERR_SCRIPT, "rules/deal.lua:12: boom");
    *out = (ref == 1);
    return CV_OK;
}

static cv_status fake_operation(cv_script *script, int ref, const json_t *value, const json_t *arg,
                                bool *out, cv_error *err)
{
    return cv_error_set(err, CV_ERR_SCRIPT, "rules/ops.lua:4: bad argument");
}

static const cv_script_ops fake_ops = {.when = fake_when, .operation = fake_operation};

/* ---- evaluating ---- */

static const char *const data_text =
    "{\"yes\": true,"
    " \"request\": {\"deal_id\": \"4127\", \"amount\": 150, \"limit\": 100, \"copy\": 150,"
    "  \"email\": \"Ann@Example.com\"},"
    " \"get-bitrix-deal\": {\"value\": null},"
    " \"bitrix-find-contact\": {\"ID\": \"0\"}}";

/* What an evaluation returned, with the decided steps copied out before the tree is freed. */
typedef struct run {
    cv_status status;
    cv_cond_outcome outcome;
    size_t step_count;
    int first_step; /* -1 when no step was decided */
    cv_error err;
    fake_lua lua;
} run;

/* Evaluates tree against the test data with prefix "condition", then frees the tree. */
static run evaluate(cv_cond_list tree)
{
    run r = {.outcome = {.decided = true, .path = "untouched"}, .first_step = -1};
    cv_script script = {.ops = &fake_ops, .context = &r.lua};
    json_t *data = load(data_text);
    r.status = cv_condition_evaluate(&tree, "condition", data, &script, &r.outcome, &r.err);
    if (r.status == CV_OK && r.outcome.decided) {
        r.step_count = r.outcome.steps->count;
        if (r.step_count > 0)
            r.first_step = r.outcome.steps->steps[0];
    }
    r.outcome.steps = NULL; /* it pointed into the tree freed below */
    json_decref(data);
    cv_condition_list_free(&tree);
    return r;
}

static void first_holding_node_decides(void **state)
{
    (void)state;
    run r = evaluate(list(3, result(failing(), 1, 7), result(holding(), 1, 8), result(holding(), 1, 9)));
    assert_int_equal(r.status, CV_OK);
    assert_true(r.outcome.decided);
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void decision_carries_result_steps(void **state)
{
    (void)state;
    cv_cond_list tree = list(1, result(holding(), 2, 4, 5));
    cv_cond_outcome outcome;
    json_t *data = load(data_text);
    assert_int_equal(cv_condition_evaluate(&tree, "condition", data, NULL, &outcome, NULL), CV_OK);
    assert_ptr_equal(outcome.steps, &tree.nodes[0].result);
    assert_int_equal(outcome.steps->count, 2);
    assert_int_equal(outcome.steps->steps[0], 4);
    assert_int_equal(outcome.steps->steps[1], 5);
    json_decref(data);
    cv_condition_list_free(&tree);
}

static void no_holding_node_is_no_decision(void **state)
{
    (void)state;
    run r = evaluate(list(2, result(failing(), 1, 1), result(failing(), 1, 2)));
    assert_int_equal(r.status, CV_OK);
    assert_false(r.outcome.decided);
    assert_int_equal(r.first_step, -1);
    assert_string_equal(r.outcome.path, "");
}

static void empty_list_is_no_decision(void **state)
{
    (void)state;
    run r = evaluate(list(0));
    assert_int_equal(r.status, CV_OK);
    assert_false(r.outcome.decided);
}

static void empty_result_is_decision(void **state)
{
    (void)state;
    run r = evaluate(list(2, result(holding(), 0), result(holding(), 1, 3)));
    assert_true(r.outcome.decided);
    assert_int_equal(r.step_count, 0);
    assert_string_equal(r.outcome.path, "condition[1]");
}

static void holding_node_without_result_passes_on(void **state)
{
    (void)state;
    run r = evaluate(list(2, holding(), result(holding(), 1, 3)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void success_list_decides(void **state)
{
    (void)state;
    run r = evaluate(list(2, success(holding(), list(2, result(failing(), 1, 1), result(holding(), 1, 2))),
                          result(holding(), 1, 3)));
    assert_true(r.outcome.decided);
    assert_int_equal(r.first_step, 2);
    assert_string_equal(r.outcome.path, "condition[1].success[2]");
}

static void success_without_decision_passes_on(void **state)
{
    (void)state;
    run r = evaluate(list(2, success(holding(), list(1, result(failing(), 1, 1))), result(holding(), 1, 3)));
    assert_int_equal(r.first_step, 3);
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void success_skipped_when_test_fails(void **state)
{
    (void)state;
    run r = evaluate(list(2, success(failing(), list(1, result(holding(), 1, 1))), result(holding(), 1, 3)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void failure_list_decides(void **state)
{
    (void)state;
    run r = evaluate(list(1, failure(failing(), list(2, failing(), result(holding(), 1, 6)))));
    assert_true(r.outcome.decided);
    assert_int_equal(r.first_step, 6);
    assert_string_equal(r.outcome.path, "condition[1].failure[2]");
}

static void failure_skipped_when_test_holds(void **state)
{
    (void)state;
    run r = evaluate(list(2, failure(holding(), list(1, result(holding(), 1, 1))), result(holding(), 1, 3)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void failure_without_decision_passes_on(void **state)
{
    (void)state;
    run r = evaluate(list(2, failure(failing(), list(1, failing())), result(holding(), 1, 3)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void result_taken_before_success(void **state)
{
    (void)state;
    run r = evaluate(list(1, success(result(holding(), 1, 1), list(1, result(holding(), 1, 2)))));
    assert_int_equal(r.first_step, 1);
    assert_string_equal(r.outcome.path, "condition[1]");
}

static void deep_path_is_exact(void **state)
{
    (void)state;
    cv_cond_list inner = list(3, failing(), result(failing(), 1, 1), result(holding(), 1, 9));
    cv_cond_list middle = list(1, success(holding(), inner));
    run r = evaluate(list(2, result(failing(), 1, 1), failure(failing(), middle)));
    assert_true(r.outcome.decided);
    assert_int_equal(r.first_step, 9);
    assert_string_equal(r.outcome.path, "condition[2].failure[1].success[3]");
}

static void earlier_branch_path_is_overwritten(void **state)
{
    (void)state;
    cv_cond_list long_branch = list(1, failure(failing(), list(1, failing())));
    run r = evaluate(list(2, success(holding(), long_branch), result(holding(), 1, 2)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void prefix_names_the_list(void **state)
{
    (void)state;
    cv_cond_list tree = list(2, failing(), result(holding(), 1, 1));
    cv_cond_outcome outcome;
    json_t *data = load(data_text);
    assert_int_equal(cv_condition_evaluate(&tree, "rules", data, NULL, &outcome, NULL), CV_OK);
    assert_string_equal(outcome.path, "rules[2]");
    json_decref(data);
    cv_condition_list_free(&tree);
}

static void long_path_is_cut_not_overrun(void **state)
{
    (void)state;
    cv_cond_list tree = list(1, result(holding(), 1, 1));
    for (int depth = 0; depth < 40; depth++)
        tree = list(1, success(holding(), tree));
    run r = evaluate(tree);
    assert_true(r.outcome.decided);
    assert_int_equal(strlen(r.outcome.path), CV_DECISION_PATH_MAX - 1);
    assert_memory_equal(r.outcome.path, "condition[1].success[1].success[1]", 34);
}

/* ---- what the tests look at ---- */

static void design_example_routes_to_default_values(void **state)
{
    (void)state;
    cv_cond_list tree = list(
        2,
        success(test("get-bitrix-deal.value", "empty", NULL),
                list(1, result(test("bitrix-find-contact.ID", "empty", NULL), 1, 4))),
        result(test("get-bitrix-deal.value", "!|empty", NULL), 1, 5));
    run r = evaluate(tree);
    assert_int_equal(r.first_step, 4);
    assert_string_equal(r.outcome.path, "condition[1].success[1]");
}

static void value_compared_to_node_value(void **state)
{
    (void)state;
    run r = evaluate(list(2, result(test("request.amount", "gt", "200"), 1, 1),
                          result(test("request.amount", "gt", "100"), 1, 2)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void value_field_compares_two_fields(void **state)
{
    (void)state;
    run r = evaluate(list(2, result(value_field(test("request.amount", "lt", NULL), "request.limit"), 1, 1),
                          result(value_field(test("request.amount", "eq", NULL), "request.copy"), 1, 2)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

static void value_field_beats_value(void **state)
{
    (void)state;
    run r = evaluate(list(1, result(value_field(test("request.amount", "eq", "150"), "request.limit"), 1, 1)));
    assert_false(r.outcome.decided);
}

static void absent_value_field_fails_comparison(void **state)
{
    (void)state;
    run r = evaluate(list(1, result(value_field(test("request.amount", "eq", NULL), "request.nope"), 1, 1)));
    assert_false(r.outcome.decided);
}

static void absent_value_field_negated_holds(void **state)
{
    (void)state;
    run r = evaluate(list(1, result(value_field(test("request.amount", "!|eq", NULL), "request.nope"), 1, 1)));
    assert_true(r.outcome.decided);
}

static void absent_field_negated_eq_holds(void **state)
{
    (void)state;
    run r = evaluate(list(1, result(test("request.missing", "!|eq", "\"x\""), 1, 1)));
    assert_true(r.outcome.decided);
}

static void modifiers_apply_in_node(void **state)
{
    (void)state;
    run r = evaluate(list(1, result(test("request.email", "lower|ends", "\"@example.com\""), 1, 1)));
    assert_true(r.outcome.decided);
}

static void regex_node_matches(void **state)
{
    (void)state;
    run r = evaluate(list(2, result(with_regex(test("request.deal_id", "regex", "\"^[0-9]{5}$\"")), 1, 1),
                          result(with_regex(test("request.deal_id", "regex", "\"^[0-9]{4}$\"")), 1, 2)));
    assert_string_equal(r.outcome.path, "condition[2]");
}

/* ---- when predicates and Lua errors ---- */

static void when_true_decides(void **state)
{
    (void)state;
    run r = evaluate(list(2, result(when(2), 1, 1), result(when(1), 1, 2)));
    assert_int_equal(r.status, CV_OK);
    assert_int_equal(r.first_step, 2);
    assert_string_equal(r.outcome.path, "condition[2]");
    assert_int_equal(r.lua.when_calls, 2);
}

static void when_false_takes_failure(void **state)
{
    (void)state;
    run r = evaluate(list(1, failure(when(2), list(1, result(when(1), 1, 3)))));
    assert_string_equal(r.outcome.path, "condition[1].failure[1]");
}

static void nodes_after_decision_not_tested(void **state)
{
    (void)state;
    run r = evaluate(list(3, result(holding(), 1, 1), when(1), when(3)));
    assert_int_equal(r.status, CV_OK);
    assert_int_equal(r.lua.when_calls, 0);
}

static void when_error_names_node(void **state)
{
    (void)state;
    run r = evaluate(list(2, failing(), result(when(3), 1, 1)));
    assert_int_equal(r.status, CV_ERR_SCRIPT);
    assert_string_equal(r.err.text, "condition[2].when: rules/deal.lua:12: boom");
}

static void when_error_leaves_outcome_untouched(void **state)
{
    (void)state;
    run r = evaluate(list(1, when(3)));
    assert_int_equal(r.status, CV_ERR_SCRIPT);
    assert_string_equal(r.outcome.path, "untouched");
}

static void nested_when_error_names_full_path(void **state)
{
    (void)state;
    run r = evaluate(list(1, failure(failing(), list(2, failing(), success(holding(), list(1, when(3)))))));
    assert_int_equal(r.status, CV_ERR_SCRIPT);
    assert_string_equal(r.err.text,
                        "condition[1].failure[2].success[1].when: rules/deal.lua:12: boom");
}

static void custom_operation_error_names_node(void **state)
{
    (void)state;
    run r = evaluate(list(1, test("request.amount", "trim|odd", NULL)));
    assert_int_equal(r.status, CV_ERR_SCRIPT);
    assert_string_equal(r.err.text,
                        "condition[1].operation \"trim|odd\": rules/ops.lua:4: bad argument");
}

static void when_without_script_fails(void **state)
{
    (void)state;
    cv_cond_list tree = list(1, when(1));
    cv_cond_outcome outcome;
    cv_error err = {0};
    json_t *data = load(data_text);
    assert_int_equal(cv_condition_evaluate(&tree, "condition", data, NULL, &outcome, &err),
                     CV_ERR_INVALID);
    assert_string_equal(err.text,
                        "condition[1].when: a `when` predicate needs Lua, but no script is given");
    json_decref(data);
    cv_condition_list_free(&tree);
}

static void free_zeroed_list_is_safe(void **state)
{
    (void)state;
    cv_cond_list empty = {0};
    cv_condition_list_free(&empty);
    cv_condition_list_free(NULL);
    assert_null(empty.nodes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_holding_node_decides),
        cmocka_unit_test(decision_carries_result_steps),
        cmocka_unit_test(no_holding_node_is_no_decision),
        cmocka_unit_test(empty_list_is_no_decision),
        cmocka_unit_test(empty_result_is_decision),
        cmocka_unit_test(holding_node_without_result_passes_on),
        cmocka_unit_test(success_list_decides),
        cmocka_unit_test(success_without_decision_passes_on),
        cmocka_unit_test(success_skipped_when_test_fails),
        cmocka_unit_test(failure_list_decides),
        cmocka_unit_test(failure_skipped_when_test_holds),
        cmocka_unit_test(failure_without_decision_passes_on),
        cmocka_unit_test(result_taken_before_success),
        cmocka_unit_test(deep_path_is_exact),
        cmocka_unit_test(earlier_branch_path_is_overwritten),
        cmocka_unit_test(prefix_names_the_list),
        cmocka_unit_test(long_path_is_cut_not_overrun),
        cmocka_unit_test(design_example_routes_to_default_values),
        cmocka_unit_test(value_compared_to_node_value),
        cmocka_unit_test(value_field_compares_two_fields),
        cmocka_unit_test(value_field_beats_value),
        cmocka_unit_test(absent_value_field_fails_comparison),
        cmocka_unit_test(absent_value_field_negated_holds),
        cmocka_unit_test(absent_field_negated_eq_holds),
        cmocka_unit_test(modifiers_apply_in_node),
        cmocka_unit_test(regex_node_matches),
        cmocka_unit_test(when_true_decides),
        cmocka_unit_test(when_false_takes_failure),
        cmocka_unit_test(nodes_after_decision_not_tested),
        cmocka_unit_test(when_error_names_node),
        cmocka_unit_test(when_error_leaves_outcome_untouched),
        cmocka_unit_test(nested_when_error_names_full_path),
        cmocka_unit_test(custom_operation_error_names_node),
        cmocka_unit_test(when_without_script_fails),
        cmocka_unit_test(free_zeroed_list_is_safe),
    };
    return cmocka_run_group_tests_name("condition", tests, NULL, NULL);
}
