/*
 * Choosing the next steps: route beats condition beats next, a nil route
 * falls through, an empty list ends the branch, unknown steps and Lua errors
 * are reported, and the JSON explanation step.completed carries.
 *
 * The process is built by hand: steps "start", "a", "b" and "c", where
 * "start" is the step that completed and gets the keys each test needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/decide.h"

enum { START, A, B, C, STEP_COUNT };

/* Route functions of the fake Lua, by ref. */
enum {
    ROUTE_A_B = 1,
    ROUTE_NIL,
    ROUTE_UNKNOWN,
    ROUTE_EMPTY,
    ROUTE_RAISES,
    ROUTE_STRING,
    ROUTE_NUMBER_ID,
};

/* `when` predicates of the fake Lua, by ref. */
enum { WHEN_TRUE = 1, WHEN_FALSE, WHEN_RAISES };

typedef struct fake_lua {
    int route_calls;
    int when_calls;
} fake_lua;

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (value == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return value;
}

static cv_status fake_route(cv_script *script, int ref, const json_t *data, json_t **out_steps,
                            cv_error *err)
{
    fake_lua *lua = script->context;
    lua->route_calls++;
    switch (ref) {
    case ROUTE_A_B:
        *out_steps = load("[\"a\", \"b\"]");
        return CV_OK;
    case ROUTE_NIL:
        *out_steps = NULL;
        return CV_OK;
    case ROUTE_UNKNOWN:
        *out_steps = load("[\"a\", \"zzz\"]");
        return CV_OK;
    case ROUTE_EMPTY:
        *out_steps = load("[]");
        return CV_OK;
    case ROUTE_STRING:
        *out_steps = load("\"a\"");
        return CV_OK;
    case ROUTE_NUMBER_ID:
        *out_steps = load("[1]");
        return CV_OK;
    default:
        return cv_error_set(err, CV_ERR_SCRIPT, "rules/deal.lua:7: route exploded");
    }
}

static cv_status fake_when(cv_script *script, int ref, const json_t *data, bool *out, cv_error *err)
{
    fake_lua *lua = script->context;
    lua->when_calls++;
    if (ref == WHEN_RAISES)
        return cv_error_set(err, CV_ERR_SCRIPT, "rules/deal.lua:9: predicate exploded");
    *out = (ref == WHEN_TRUE);
    return CV_OK;
}

static const cv_script_ops fake_ops = {.route = fake_route, .when = fake_when};

/* ---- building the process ---- */

typedef struct fixture {
    cv_step steps[STEP_COUNT];
    cv_process process;
    fake_lua lua;
    cv_script script;
    json_t *data;
} fixture;

static int setup(void **state)
{
    static const char *const ids[STEP_COUNT] = {"start", "a", "b", "c"};
    fixture *f = calloc(1, sizeof *f);
    for (int i = 0; i < STEP_COUNT; i++) {
        f->steps[i].id = (char *)ids[i];
        f->steps[i].route_ref = CV_NO_REF;
    }
    f->process = (cv_process){.name = "deal-sync", .step_count = STEP_COUNT, .steps = f->steps};
    f->script = (cv_script){.ops = &fake_ops, .context = &f->lua};
    f->data = load("{\"request\": {\"amount\": 150}}");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cv_step *start = &f->steps[START];
    free(start->next.steps);
    cv_condition_list_free(&start->condition);
    json_decref(f->data);
    free(f);
    return 0;
}

static cv_step_list step_list(size_t count, ...)
{
    va_list ap;
    cv_step_list built = {.count = count, .steps = count ? calloc(count, sizeof(int)) : NULL};
    va_start(ap, count);
    for (size_t i = 0; i < count; i++)
        built.steps[i] = va_arg(ap, int);
    va_end(ap);
    return built;
}

static void set_next(fixture *f, cv_step_list next)
{
    f->steps[START].has_next = true;
    f->steps[START].next = next;
}

/* Gives "start" a condition list of count nodes. */
static void set_condition(fixture *f, size_t count, ...)
{
    va_list ap;
    cv_cond_list *list = &f->steps[START].condition;
    f->steps[START].has_condition = true;
    list->count = count;
    list->nodes = calloc(count, sizeof(cv_cond_node));
    va_start(ap, count);
    for (size_t i = 0; i < count; i++)
        list->nodes[i] = va_arg(ap, cv_cond_node);
    va_end(ap);
}

/* A `when` node deciding result when ref holds. */
static cv_cond_node when_node(int ref, cv_step_list result)
{
    cv_cond_node node = {.when_ref = ref, .has_result = true, .result = result};
    return node;
}

/* A `when` node without a result, whose `success` list holds only this one node. */
static cv_cond_node when_success(int ref, cv_cond_node only)
{
    cv_cond_node node = {.when_ref = ref, .has_success = true};
    node.success.count = 1;
    node.success.nodes = calloc(1, sizeof(cv_cond_node));
    node.success.nodes[0] = only;
    return node;
}

static cv_status decide(fixture *f, cv_decision *out, cv_error *err)
{
    return cv_decide(out, &f->process, &f->steps[START], f->data, &f->script, err);
}

/* ---- the order: route, condition, next, end ---- */

static void route_decides(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_A_B;
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_ROUTE);
    assert_string_equal(d.path, "route");
    assert_int_equal(d.count, 2);
    assert_int_equal(d.steps[0], A);
    assert_int_equal(d.steps[1], B);
    cv_decision_free(&d);
}

static void route_beats_condition_and_next(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_A_B;
    set_condition(f, 1, when_node(WHEN_TRUE, step_list(1, C)));
    set_next(f, step_list(1, C));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_ROUTE);
    assert_int_equal(d.steps[0], A);
    assert_int_equal(f->lua.when_calls, 0);
    cv_decision_free(&d);
}

static void route_nil_falls_to_condition(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_NIL;
    set_condition(f, 2, when_node(WHEN_FALSE, step_list(1, A)), when_node(WHEN_TRUE, step_list(1, C)));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(f->lua.route_calls, 1);
    assert_int_equal(d.by, CV_DECIDED_BY_CONDITION);
    assert_string_equal(d.path, "condition[2]");
    assert_int_equal(d.count, 1);
    assert_int_equal(d.steps[0], C);
    cv_decision_free(&d);
}

static void route_nil_falls_to_next(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_NIL;
    set_next(f, step_list(1, B));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_NEXT);
    assert_int_equal(d.steps[0], B);
    cv_decision_free(&d);
}

static void route_empty_list_ends_branch(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_EMPTY;
    set_next(f, step_list(1, B));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_ROUTE);
    assert_string_equal(d.path, "route");
    assert_int_equal(d.count, 0);
    assert_null(d.steps);
    cv_decision_free(&d);
}

static void condition_beats_next(void **state)
{
    fixture *f = *state;
    set_condition(f, 1, when_node(WHEN_TRUE, step_list(2, B, C)));
    set_next(f, step_list(1, A));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_CONDITION);
    assert_string_equal(d.path, "condition[1]");
    assert_int_equal(d.count, 2);
    assert_int_equal(d.steps[0], B);
    assert_int_equal(d.steps[1], C);
    cv_decision_free(&d);
}

static void condition_nested_path(void **state)
{
    fixture *f = *state;
    set_condition(f, 2, when_node(WHEN_FALSE, step_list(1, A)),
                  when_success(WHEN_TRUE, when_node(WHEN_TRUE, step_list(1, B))));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_string_equal(d.path, "condition[2].success[1]");
    assert_int_equal(d.steps[0], B);
    cv_decision_free(&d);
}

static void condition_undecided_falls_to_next(void **state)
{
    fixture *f = *state;
    set_condition(f, 1, when_node(WHEN_FALSE, step_list(1, A)));
    set_next(f, step_list(1, C));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(f->lua.when_calls, 1);
    assert_int_equal(d.by, CV_DECIDED_BY_NEXT);
    assert_string_equal(d.path, "next");
    assert_int_equal(d.steps[0], C);
    cv_decision_free(&d);
}

static void condition_empty_result_ends_branch(void **state)
{
    fixture *f = *state;
    set_condition(f, 1, when_node(WHEN_TRUE, step_list(0)));
    set_next(f, step_list(1, C));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_CONDITION);
    assert_string_equal(d.path, "condition[1]");
    assert_int_equal(d.count, 0);
    cv_decision_free(&d);
}

static void condition_on_field_decides(void **state)
{
    fixture *f = *state;
    cv_cond_node node = {.when_ref = CV_NO_REF, .has_field = true, .has_result = true};
    assert_int_equal(cv_path_parse(&node.field, "request.amount", NULL), CV_OK);
    assert_int_equal(cv_operation_parse(&node.op, "gte", NULL, NULL, NULL), CV_OK);
    node.value = json_integer(100);
    node.result = step_list(1, A);
    set_condition(f, 1, node);
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_CONDITION);
    assert_int_equal(d.steps[0], A);
    cv_decision_free(&d);
}

static void next_decides(void **state)
{
    fixture *f = *state;
    set_next(f, step_list(2, A, C));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_NEXT);
    assert_string_equal(d.path, "next");
    assert_int_equal(d.count, 2);
    assert_int_equal(d.steps[0], A);
    assert_int_equal(d.steps[1], C);
    assert_ptr_not_equal(d.steps, f->steps[START].next.steps);
    cv_decision_free(&d);
}

static void empty_next_ends_branch(void **state)
{
    fixture *f = *state;
    set_next(f, step_list(0));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_NEXT);
    assert_int_equal(d.count, 0);
    cv_decision_free(&d);
}

static void nothing_ends_branch(void **state)
{
    fixture *f = *state;
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    assert_int_equal(d.by, CV_DECIDED_BY_END);
    assert_string_equal(d.path, "");
    assert_int_equal(d.count, 0);
    assert_null(d.steps);
    cv_decision_free(&d);
}

/* ---- errors ---- */

/* Decides, which must fail with status, and checks that out was left alone. */
static void assert_decide_fails(fixture *f, cv_status status, const char *expected)
{
    cv_decision d = {.by = CV_DECIDED_BY_NEXT, .count = 99};
    cv_error err = {0};
    assert_int_equal(decide(f, &d, &err), status);
    assert_string_equal(err.text, expected);
    assert_int_equal(d.count, 99);
}

static void route_unknown_step_fails(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_UNKNOWN;
    assert_decide_fails(f, CV_ERR_SCRIPT, "route of step \"start\" returned unknown step \"zzz\"");
}

static void route_error_propagates(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_RAISES;
    set_next(f, step_list(1, A));
    assert_decide_fails(f, CV_ERR_SCRIPT, "route of step \"start\": rules/deal.lua:7: route exploded");
}

static void route_non_list_fails(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_STRING;
    assert_decide_fails(f, CV_ERR_SCRIPT, "route of step \"start\" returned a string, not a list");
}

static void route_non_string_id_fails(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_NUMBER_ID;
    assert_decide_fails(f, CV_ERR_SCRIPT,
                        "route of step \"start\" returned a number where a step id belongs");
}

static void route_without_script_fails(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_A_B;
    cv_decision d;
    cv_error err = {0};
    assert_int_equal(cv_decide(&d, &f->process, &f->steps[START], f->data, NULL, &err),
                     CV_ERR_INVALID);
    assert_string_equal(err.text, "route of step \"start\" needs Lua, but no script is given");
}

static void when_error_propagates_with_path(void **state)
{
    fixture *f = *state;
    set_condition(f, 2, when_node(WHEN_FALSE, step_list(1, A)),
                  when_success(WHEN_TRUE, when_node(WHEN_RAISES, step_list(1, B))));
    set_next(f, step_list(1, A));
    assert_decide_fails(f, CV_ERR_SCRIPT,
                        "condition[2].success[1].when: rules/deal.lua:9: predicate exploded");
}

/* ---- the explanation ---- */

static char *explain(fixture *f)
{
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    json_t *json = cv_decision_to_json(&d, &f->process);
    assert_non_null(json);
    char *text = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(json);
    cv_decision_free(&d);
    return text;
}

static void json_names_condition_path(void **state)
{
    fixture *f = *state;
    set_condition(f, 2, when_node(WHEN_FALSE, step_list(1, A)),
                  when_success(WHEN_TRUE, when_node(WHEN_TRUE, step_list(2, B, C))));
    char *text = explain(f);
    assert_string_equal(text,
                        "{\"by\":\"condition\",\"path\":\"condition[2].success[1]\",\"next\":[\"b\",\"c\"]}");
    free(text);
}

static void json_for_route(void **state)
{
    fixture *f = *state;
    f->steps[START].route_ref = ROUTE_A_B;
    char *text = explain(f);
    assert_string_equal(text, "{\"by\":\"route\",\"path\":\"route\",\"next\":[\"a\",\"b\"]}");
    free(text);
}

static void json_for_end(void **state)
{
    fixture *f = *state;
    char *text = explain(f);
    assert_string_equal(text, "{\"by\":\"end\",\"path\":\"\",\"next\":[]}");
    free(text);
}

static void decided_by_names(void **state)
{
    (void)state;
    assert_string_equal(cv_decided_by_name(CV_DECIDED_BY_ROUTE), "route");
    assert_string_equal(cv_decided_by_name(CV_DECIDED_BY_CONDITION), "condition");
    assert_string_equal(cv_decided_by_name(CV_DECIDED_BY_NEXT), "next");
    assert_string_equal(cv_decided_by_name(CV_DECIDED_BY_END), "end");
}

static void decision_free_is_safe_twice(void **state)
{
    fixture *f = *state;
    set_next(f, step_list(1, A));
    cv_decision d;
    assert_int_equal(decide(f, &d, NULL), CV_OK);
    cv_decision_free(&d);
    cv_decision_free(&d);
    cv_decision_free(NULL);
    assert_null(d.steps);
    assert_int_equal(d.count, 0);
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(route_decides),
        CASE(route_beats_condition_and_next),
        CASE(route_nil_falls_to_condition),
        CASE(route_nil_falls_to_next),
        CASE(route_empty_list_ends_branch),
        CASE(condition_beats_next),
        CASE(condition_nested_path),
        CASE(condition_undecided_falls_to_next),
        CASE(condition_empty_result_ends_branch),
        CASE(condition_on_field_decides),
        CASE(next_decides),
        CASE(empty_next_ends_branch),
        CASE(nothing_ends_branch),
        CASE(route_unknown_step_fails),
        CASE(route_error_propagates),
        CASE(route_non_list_fails),
        CASE(route_non_string_id_fails),
        CASE(route_without_script_fails),
        CASE(when_error_propagates_with_path),
        CASE(json_names_condition_path),
        CASE(json_for_route),
        CASE(json_for_end),
        CASE(decided_by_names),
        CASE(decision_free_is_safe_twice),
    };
    return cmocka_run_group_tests_name("decide", tests, NULL, NULL);
}
