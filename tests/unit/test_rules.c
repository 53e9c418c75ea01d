/*
 * Loading valid rules: the definitions built from the `process`, `module`
 * and `operation` DSL and from the seed format (a returned process whose
 * steps are a list), with step order, indices, conditions, transports,
 * reliability settings, defaults and source lines as a user wrote them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"
#include "support/process.h"

#define VALID_RULES CV_TEST_SOURCE_DIR "/tests/fixtures/rules/valid"

static int setup(void **state)
{
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    if (cv_rules_load(&rules, VALID_RULES "/", NULL, &diag, &err) != CV_OK) {
        for (size_t i = 0; i < diag.count; i++)
            print_message("%s\n", diag.messages[i]);
        fail_msg("cannot load %s: %s", VALID_RULES, err.text);
    }
    assert_int_equal(diag.count, 0);
    *state = rules;
    return 0;
}

static int teardown(void **state)
{
    cv_rules_destroy(*state);
    return 0;
}

static void assert_json(const json_t *value, const char *expected)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    assert_string_equal(text, expected);
    free(text);
}

static void assert_steps(const cv_process *process, const cv_step_list *list, const char *expected)
{
    char text[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < list->count; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s%s", i ? "," : "",
                              process->steps[list->steps[i]].id);
    assert_string_equal(text, expected);
}

static const cv_module *find_module(const cv_rules *rules, const char *name)
{
    for (size_t i = 0; i < cv_rules_module_count(rules); i++) {
        if (strcmp(cv_rules_module_at(rules, i)->name, name) == 0)
            return cv_rules_module_at(rules, i);
    }
    return NULL;
}

static void test_counts_and_lookups(void **state)
{
    cv_rules *rules = *state;
    assert_int_equal(cv_rules_process_count(rules), 2);
    assert_int_equal(cv_rules_module_count(rules), 3);
    assert_string_equal(cv_rules_process_at(rules, 0)->name, "deal-sync");
    assert_string_equal(cv_rules_process_at(rules, 1)->name, "lead-intake");
    assert_null(cv_rules_process_at(rules, 2));
    assert_null(cv_rules_find_process(rules, "no-such-process"));

    const cv_process *deal = cv_rules_find_process(rules, "deal-sync");
    assert_int_equal(cv_process_find_step(deal, "remember-deal"), 3);
    assert_int_equal(cv_process_find_step(deal, "no-such-step"), -1);
    /* Trailing slashes of the folder do not appear in paths. */
    assert_string_equal(deal->file, VALID_RULES "/deal.lua");
}

static void test_process_settings(void **state)
{
    const cv_process *deal = cv_rules_find_process(*state, "deal-sync");
    assert_int_equal(deal->line, 4);
    assert_int_equal(deal->max_visits, 20);
    assert_json(deal->intake, "{\"rate\":\"10/m\"}");
    assert_int_equal(deal->start, 0);

    /* Steps of a map come in the order of the file. */
    static const char *const ids[] = {"get-bitrix-deal", "get-bitrix-deal-by-id",
                                      "bitrix-lead-set-default-values", "remember-deal",
                                      "notify-manager"};
    static const int lines[] = {10, 23, 35, 40, 54};
    assert_int_equal(deal->step_count, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(deal->steps[i].id, ids[i]);
        assert_int_equal(deal->steps[i].line, lines[i]);
    }
}

static void test_condition_tree(void **state)
{
    const cv_process *deal = cv_rules_find_process(*state, "deal-sync");
    const cv_step *first = &deal->steps[0];

    assert_true(first->has_next);
    assert_steps(deal, &first->next, "remember-deal");
    assert_true(first->has_condition);
    assert_int_equal(first->condition.count, 2);

    const cv_cond_node *outer = &first->condition.nodes[0];
    assert_int_equal(outer->line, 14);
    assert_string_equal(outer->field.text, "get-bitrix-deal.value");
    assert_int_equal(outer->op.name, CV_OP_EMPTY);
    assert_false(outer->op.negate);
    assert_false(outer->has_result);
    assert_true(outer->has_success);
    assert_int_equal(outer->success.count, 1);
    assert_int_equal(outer->success.nodes[0].line, 16);
    assert_steps(deal, &outer->success.nodes[0].result, "bitrix-lead-set-default-values");

    const cv_cond_node *second = &first->condition.nodes[1];
    assert_int_equal(second->line, 19);
    assert_true(second->op.negate);
    assert_int_equal(second->op.name, CV_OP_EMPTY);
    assert_steps(deal, &second->result, "get-bitrix-deal-by-id");
    assert_int_equal(second->when_ref, CV_NO_REF);
}

static void test_conditions_with_values(void **state)
{
    const cv_process *deal = cv_rules_find_process(*state, "deal-sync");
    const cv_step *remember = &deal->steps[3];

    assert_int_equal(remember->condition.count, 3);
    assert_int_not_equal(remember->condition.nodes[0].when_ref, CV_NO_REF);
    assert_false(remember->condition.nodes[0].has_field);

    const cv_cond_node *in = &remember->condition.nodes[1];
    assert_int_equal(in->op.name, CV_OP_IN);
    assert_int_equal(in->op.modifier_count, 1);
    assert_int_equal(in->op.modifiers[0], CV_MOD_LOWER);
    assert_json(in->value, "[\"lead\",\"deal\"]");
    assert_true(in->has_result);
    assert_int_equal(in->result.count, 0);

    const cv_cond_node *regex = &remember->condition.nodes[2];
    assert_int_equal(regex->op.name, CV_OP_REGEX);
    assert_non_null(regex->regex);
    assert_true(regex->has_failure);
    assert_int_equal(regex->failure.nodes[0].op.name, CV_OP_CUSTOM);
    assert_int_not_equal(regex->failure.nodes[0].op.custom_ref, CV_NO_REF);
    assert_int_equal(regex->failure.nodes[0].line, 51);
}

static void test_steps_and_modules(void **state)
{
    cv_rules *rules = *state;
    const cv_process *deal = cv_rules_find_process(rules, "deal-sync");

    const cv_step *find = &deal->steps[0];
    assert_string_equal(find->subsystem, "find-deal");
    assert_ptr_equal(find->module, find_module(rules, "find-deal"));
    assert_int_equal(find->transport, CV_TRANSPORT_NATS);
    assert_int_equal(find->timeout_ms, CV_DEFAULT_STEP_TIMEOUT_MS);
    assert_false(find->has_retry);
    assert_json(find->params, "{}");

    const cv_step *by_id = &deal->steps[1];
    assert_int_equal(by_id->transport, CV_TRANSPORT_HTTP);
    assert_int_equal(by_id->timeout_ms, 5000);
    assert_true(by_id->has_retry);
    assert_int_equal(by_id->retry.max, 3);
    assert_int_equal(by_id->retry.backoff_ms, 500);
    assert_true(by_id->retry.factor == 2.0);
    assert_int_equal(by_id->retry.max_backoff_ms, 60000);
    assert_true(by_id->retry.jitter);
    assert_true(by_id->has_on_error);
    assert_steps(deal, &by_id->on_error, "notify-manager");
    assert_int_not_equal(by_id->route_ref, CV_NO_REF);

    const cv_step *defaults = &deal->steps[2];
    assert_int_equal(defaults->transport, CV_TRANSPORT_LUA);
    assert_json(defaults->params, "{\"source\":\"web\",\"tags\":[\"a\",\"b\"]}");
    assert_int_equal(defaults->input_count, 2);
    assert_string_equal(defaults->input[0].text, "request.deal_id");
    assert_string_equal(defaults->input[1].text, "request[\"utm.source\"]");

    const cv_step *remember = &deal->steps[3];
    assert_null(remember->module);
    assert_int_equal(remember->transport, CV_TRANSPORT_QUEUE);
    assert_int_equal(remember->join, CV_JOIN_ALL);
    assert_steps(deal, &remember->prev, "get-bitrix-deal,get-bitrix-deal-by-id");
    assert_false(remember->has_next);

    assert_int_equal(deal->steps[4].timeout_ms, 2500);
}

static void test_module_settings(void **state)
{
    cv_rules *rules = *state;
    const cv_module *crm = find_module(rules, "crm");
    assert_non_null(crm);
    assert_int_equal(crm->transport, CV_TRANSPORT_HTTP);
    assert_string_equal(crm->url, "http://127.0.0.1:8080/crm/{step}?deal={request.deal_id}");
    assert_string_equal(crm->method, "PUT");
    assert_json(crm->headers, "{\"X-Api-Key\":\"secret\"}");
    assert_int_equal(crm->timeout_ms, 5000);
    assert_int_equal(crm->max_response, 2 * 1024 * 1024);
    assert_false(crm->follow_redirects);
    assert_int_equal(crm->line, 4);

    const cv_module *defaults = find_module(rules, "defaults");
    assert_int_equal(defaults->transport, CV_TRANSPORT_LUA);
    assert_int_not_equal(defaults->run_ref, CV_NO_REF);

    const cv_module *find = find_module(rules, "find-deal");
    assert_int_equal(find->transport, CV_TRANSPORT_NATS);
    assert_null(find->method);
    assert_null(find->url);
    assert_int_equal(find->run_ref, CV_NO_REF);
}

static void test_seed_format(void **state)
{
    const cv_process *lead = cv_rules_find_process(*state, "lead-intake");
    assert_non_null(lead);
    assert_string_equal(lead->file, VALID_RULES "/seed.lua");
    assert_int_equal(lead->line, 4);
    assert_int_equal(lead->max_visits, CV_DEFAULT_MAX_VISITS);
    assert_null(lead->intake);
    assert_int_equal(lead->step_count, 2);
    assert_string_equal(lead->steps[0].id, "find-lead");
    assert_string_equal(lead->steps[1].id, "create-lead");
    assert_int_equal(lead->steps[0].line, 7);
    assert_int_equal(lead->steps[1].line, 11);
    assert_int_equal(lead->start, 0);
    assert_steps(lead, &lead->steps[0].next, "create-lead");
    assert_steps(lead, &lead->steps[1].prev, "find-lead");
    assert_true(lead->steps[0].condition.nodes[0].has_result);
    assert_int_equal(lead->steps[0].condition.nodes[0].result.count, 0);
}

static void test_empty_folder_loads(void **state)
{
    char *dir = cv_test_temp_dir("rules-empty");
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    (void)state;

    assert_int_equal(cv_rules_load(&rules, dir, NULL, &diag, &err), CV_OK);
    assert_int_equal(cv_rules_process_count(rules), 0);
    assert_int_equal(cv_rules_module_count(rules), 0);
    cv_rules_destroy(rules);
    cv_test_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_and_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditions_with_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_and_modules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_module_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_format, setup, teardown),
        cmocka_unit_test(test_empty_folder_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
