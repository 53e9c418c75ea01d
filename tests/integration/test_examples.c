/*
 * The shipped examples, run as a user runs them. The CRM deal-routing
 * process runs with examples/crm as its module, and each example request is
 * submitted with `conveyor submit --wait`. The customer-onboarding example,
 * which uses all four transports, runs through its own
 * examples/onboarding/run.sh. A module written in Python against the
 * message contract alone (tests/support/raw_module.py) runs unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "support/cluster.h"

static cv_test_server server;
static cv_test_node node;
static cv_test_process crm;
static char data_path[600];

static int setup(void **state)
{
    (void)state;
    cv_test_server_start(&server);
    snprintf(data_path, sizeof data_path, "%s/crm.json", server.dir);
    char copy[1400];
    snprintf(copy, sizeof copy, "cp %s %s", cv_test_source_path("examples/crm/data/crm.json"),
             data_path);
    assert_int_equal(system(copy), 0);

    char log[700];
    snprintf(log, sizeof log, "%s/crm-module.log", server.dir);
    char *argv[] = {CV_TEST_BUILD_DIR "/examples/crm/crm-module", "--nats", server.url, "--data",
                    data_path, NULL};
    assert_true(cv_test_process_start(&crm, argv, log, NULL));
    assert_true(cv_test_process_wait_log(&crm, "crm-module ready", 10000));
    cv_test_node_start(&node, &server, cv_test_source_path("rules"), "examples", NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cv_test_node_stop(&node);
    assert_int_equal(cv_test_process_stop(&crm, 10000), 0);
    cv_test_server_stop(&server);
    return 0;
}

/* Submits a request (JSON or @FILE) with --wait; returns the printed result (new reference). */
static json_t *submit_request(const char *process, const char *request, int expected_code)
{
    char *argv[] = {CV_TEST_BINARY, "submit", (char *)process, (char *)request, "--nats",
                    server.url, "--wait=30", NULL};
    char *out = NULL, *err = NULL;
    int code = cv_test_run(argv, NULL, &out, &err, 40000);
    if (code != expected_code)
        fail_msg("submit %s %s exited %d, expected %d; stderr: %s; stdout: %s", process, request,
                 code, expected_code, err, out);
    json_t *result = json_loads(out, 0, NULL);
    free(out);
    free(err);
    assert_non_null(result);
    return result;
}

/* Submits a request file of the source tree to deal-routing with --wait. */
static json_t *submit_file(const char *relative, int expected_code)
{
    char arg[1100];
    snprintf(arg, sizeof arg, "@%s", cv_test_source_path(relative));
    return submit_request("deal-routing", arg, expected_code);
}

static void assert_route(const json_t *result, const char *const *expected, size_t count)
{
    json_t *steps = json_object_get(result, "steps");
    if (json_array_size(steps) != count) {
        char *text = json_dumps(steps, 0);
        fail_msg("route was %s, expected %zu steps", text, count);
    }
    for (size_t i = 0; i < count; i++)
        assert_string_equal(json_string_value(json_array_get(steps, i)), expected[i]);
}

static void crm_deal_found_route(void **state)
{
    (void)state;
    json_t *result = submit_file("rules/crm/requests/deal-found.json", 0);
    static const char *const route[] = {"get-bitrix-deal", "get-bitrix-deal-by-id",
                                        "remember-deal"};
    assert_route(result, route, 3);
    json_t *data = json_object_get(result, "data");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(data, "get-bitrix-deal"), "value")),
        "4127");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(data, "get-bitrix-deal-by-id"), "ID")),
                        "4127");
    json_decref(result);
}

static void crm_contact_found_route(void **state)
{
    (void)state;
    json_t *result = submit_file("rules/crm/requests/contact-found.json", 0);
    static const char *const route[] = {"get-bitrix-deal", "bitrix-find-contact",
                                        "bitrix-create-deal", "remember-deal"};
    assert_route(result, route, 4);
    json_t *contact = json_object_get(json_object_get(result, "data"), "bitrix-find-contact");
    assert_string_equal(json_string_value(json_object_get(contact, "ID")), "23");
    json_decref(result);
}

static void crm_nothing_found_creates_lead(void **state)
{
    (void)state;
    json_t *result = submit_file("rules/crm/requests/nothing-found.json", 0);
    static const char *const route[] = {"get-bitrix-deal", "bitrix-find-contact",
                                        "bitrix-lead-set-default-values", "bitrix-create-lead"};
    assert_route(result, route, 4);
    json_t *data = json_object_get(result, "data");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(data, "bitrix-find-contact"), "ID")),
        "0");
    json_t *defaults = json_object_get(data, "bitrix-lead-set-default-values");
    assert_string_equal(json_string_value(json_object_get(defaults, "STATUS_ID")), "NEW");
    json_decref(result);

    json_t *stored = json_load_file(data_path, 0, NULL);
    assert_non_null(stored);
    assert_true(json_array_size(json_object_get(stored, "leads")) >= 1);
    json_decref(stored);
}

static void crm_no_contact_details_skips_lookup(void **state)
{
    (void)state;
    json_t *result = submit_file("rules/crm/requests/no-contact-details.json", 0);
    static const char *const route[] = {"get-bitrix-deal", "bitrix-lead-set-default-values",
                                        "bitrix-create-lead"};
    assert_route(result, route, 3);
    json_decref(result);
}

static void crm_rules_pass_check(void **state)
{
    (void)state;
    char *argv[] = {CV_TEST_BINARY, "check", (char *)cv_test_source_path("rules"), NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(cv_test_run(argv, NULL, &out, &err, 20000), 0);
    assert_non_null(strstr(out, "ok: "));
    free(out);
    free(err);
}

/* Starts tests/support/raw_module.py for a subsystem with the given mode arguments. */
static void start_raw_module(cv_test_process *proc, const char *subsystem, const char *mode,
                             const char *mode_arg, const char *extra)
{
    char log[700];
    snprintf(log, sizeof log, "%s/raw-%s.log", server.dir, subsystem);
    char *argv[16];
    int n = 0;
    argv[n++] = "/usr/bin/python3";
    argv[n++] = (char *)cv_test_source_path("tests/support/raw_module.py");
    argv[n++] = "--server";
    argv[n++] = server.url;
    argv[n++] = "--subsystem";
    argv[n++] = (char *)subsystem;
    argv[n++] = "--prefix";
    argv[n++] = "ext";
    argv[n++] = (char *)mode;
    if (mode_arg != NULL)
        argv[n++] = (char *)mode_arg;
    if (extra != NULL)
        argv[n++] = (char *)extra;
    argv[n++] = "--seconds";
    argv[n++] = "60";
    argv[n] = NULL;
    assert_true(cv_test_process_start(proc, argv, log, NULL));
    assert_true(cv_test_process_wait_log(proc, "raw-module ready", 10000));
}

static void outside_module_works_unchanged(void **state)
{
    (void)state;
    /* Its own prefix keeps this node apart from the CRM node on the same server. */
    cv_test_node outside;
    cv_test_node_start(&outside, &server, cv_test_source_path("tests/integration/rules"),
                       "outside", (char *[]){"--prefix", "ext", NULL});
    cv_test_process probe, fail, answer;
    start_raw_module(&probe, "outside-echo", "--echo", NULL, NULL);
    start_raw_module(&fail, "outside-fail", "--error", "CRM is down", "--permanent");
    start_raw_module(&answer, "outside-answer", "--answer", "\"4127\"", NULL);

    char *argv[] = {CV_TEST_BINARY, "submit", "outside", "{\"deal_id\": \"4127\"}", "--nats",
                    server.url, "--prefix", "ext", "--wait=30", NULL};
    char *out = NULL, *err = NULL;
    int code = cv_test_run(argv, NULL, &out, &err, 40000);
    if (code != 0)
        fail_msg("submit exited %d: %s %s", code, err, out);
    json_t *result = json_loads(out, 0, NULL);
    json_t *data = json_object_get(result, "data");
    json_t *echo = json_object_get(data, "probe");
    assert_string_equal(json_string_value(json_object_get(echo, "seen_step")), "probe");
    assert_string_equal(json_string_value(json_object_get(echo, "seen_header_step")), "probe");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(echo, "seen_params"), "source")), "web");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(data, "fail"), "error")),
        "CRM is down");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(data, "after"), "value")), "4127");
    json_decref(result);
    free(out);
    free(err);

    cv_test_process_stop(&probe, 5000);
    cv_test_process_stop(&fail, 5000);
    cv_test_process_stop(&answer, 5000);
    cv_test_node_stop(&outside);
}

/* Reads a whole text file into a malloc'd string the caller frees; NULL when it cannot. */
static char *read_text_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return NULL;
    char *text = NULL;
    size_t length = 0;
    size_t capacity = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) {
        if (length + got + 1 > capacity) {
            capacity = (length + got + 1) * 2;
            char *grown = realloc(text, capacity);
            assert_non_null(grown);
            text = grown;
        }
        memcpy(text + length, chunk, got);
        length += got;
        text[length] = '\0';
    }
    fclose(file);
    return text != NULL ? text : strdup("");
}

/* Returns where needle is in text at or after from; fails with the whole text when it is not. */
static const char *expect_text(const char *text, const char *from, const char *needle)
{
    const char *found = strstr(from, needle);
    if (found == NULL)
        fail_msg("\"%s\" missing from the run.sh output (or out of order):\n%s", needle, text);
    return found;
}

/*
 * examples/onboarding/run.sh as a user runs it, on this build: it starts
 * its own nats-server, modules and node, and prints what each request did.
 */
static void onboarding_run_script_completes(void **state)
{
    (void)state;
    char log[700];
    snprintf(log, sizeof log, "%s/onboarding-run.log", server.dir);
    char *argv[] = {"/bin/bash", (char *)cv_test_source_path("examples/onboarding/run.sh"), NULL};
    char *env[] = {"CONVEYOR_BUILD_DIR=" CV_TEST_BUILD_DIR, NULL};
    cv_test_process run;
    assert_true(cv_test_process_start(&run, argv, log, env));

    static const char full_route[] =
        "route:  normalise -> find-customer -> credit-check -> open-account";

    /* run.sh bounds each of its own waits; this only bounds the whole. */
    int64_t deadline = cv_clock_mono_ms() + 150000;
    while (cv_test_process_alive(&run) && cv_clock_mono_ms() < deadline)
        usleep(100 * 1000);
    int code = cv_test_process_stop(&run, 10000);
    char *text = read_text_file(log);
    assert_non_null(text);
    if (code != 0)
        fail_msg("run.sh exited %d:\n%s", code, text);

    /* The first request waits in the queue until the billing worker starts, then completes. */
    const char *at = expect_text(text, text, "== 1-returning-customer.json");
    at = expect_text(text, at, "open-account waits in ORCH_TASKS");
    at = expect_text(text, at, "billing worker started");
    at = expect_text(text, at, full_route);
    at = expect_text(text, at, "status: completed");
    at = expect_text(text, at, "\"account_id\": \"INV-100001\"");
    at = expect_text(text, at, "\"crm_contact\": \"17\"");
    at = expect_text(text, at, "\"credit_limit\": 300000");
    /* Its history: the bureau's 503 was retried, and open-account went through the queue. */
    at = expect_text(text, at, "step.retrying       credit-check   1  error=\"HTTP 503");
    at = expect_text(text, at, "step.completed      credit-check   2");
    at = expect_text(text, at, "open-account   1  subsystem=billing-accounts transport=queue");
    at = expect_text(text, at, "instance.completed");

    /* A customer the CRM does not know gets an account with the bureau's lower limit. */
    at = expect_text(text, at, "== 2-new-customer.json");
    at = expect_text(text, at, full_route);
    at = expect_text(text, at, "\"account_id\": \"INV-100002\"");
    at = expect_text(text, at, "\"crm_contact\": \"new\"");
    at = expect_text(text, at, "\"credit_limit\": 150000");

    /* A tax id the bureau does not know fails credit-check at once, and on_error takes over. */
    at = expect_text(text, at, "== 3-unknown-to-bureau.json");
    at = expect_text(text, at, "route:  normalise -> find-customer -> manual-review");
    at = expect_text(text, at, "failed: credit-check after 1 attempt(s): HTTP 404 Not Found");
    at = expect_text(text, at, "\"outcome\": \"manual review\"");
    expect_text(text, at, "onboarding: every request completed");
    free(text);
}

/* The reject branch needs no module: both of its steps are Lua functions in the node. */
static void onboarding_incomplete_request_rejected(void **state)
{
    (void)state;
    json_t *result = submit_request("customer-onboarding",
                                    "{\"COMPANY_TITLE\": \"Kama River Bakery\", "
                                    "\"TAX_ID\": \"16-50\", \"EMAIL\": \"none\"}",
                                    0);
    static const char *const route[] = {"normalise", "reject"};
    assert_route(result, route, 2);
    json_t *reject = json_object_get(json_object_get(result, "data"), "reject");
    assert_string_equal(json_string_value(json_object_get(reject, "outcome")), "rejected");
    json_t *problems = json_object_get(reject, "problems");
    assert_int_equal(json_array_size(problems), 2);
    assert_string_equal(json_string_value(json_array_get(problems, 0)),
                        "TAX_ID must have 10 or 12 digits");
    assert_string_equal(json_string_value(json_array_get(problems, 1)),
                        "EMAIL is not an e-mail address");
    json_decref(result);
}

/* A score below min_score sends the customer to manual review, as `conveyor route` shows. */
static void onboarding_low_score_goes_to_review(void **state)
{
    (void)state;
    char *argv[] = {CV_TEST_BINARY, "route", "customer-onboarding", "credit-check",
                    "{\"credit-check\": {\"score\": 512, \"band\": \"D\"}}", "--rules",
                    (char *)cv_test_source_path("rules"), NULL};
    char *out = NULL, *err = NULL;
    int code = cv_test_run(argv, NULL, &out, &err, 20000);
    if (code != 0)
        fail_msg("route exited %d: %s %s", code, err, out);
    json_t *decision = json_loads(out, 0, NULL);
    assert_non_null(decision);
    assert_string_equal(json_string_value(json_object_get(decision, "by")), "next");
    json_t *next = json_object_get(decision, "next");
    assert_int_equal(json_array_size(next), 1);
    assert_string_equal(json_string_value(json_array_get(next, 0)), "manual-review");
    json_decref(decision);
    free(out);
    free(err);
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crm_rules_pass_check),
        cmocka_unit_test(crm_deal_found_route),
        cmocka_unit_test(crm_contact_found_route),
        cmocka_unit_test(crm_nothing_found_creates_lead),
        cmocka_unit_test(crm_no_contact_details_skips_lookup),
        cmocka_unit_test(outside_module_works_unchanged),
        cmocka_unit_test(onboarding_incomplete_request_rejected),
        cmocka_unit_test(onboarding_low_score_goes_to_review),
        cmocka_unit_test(onboarding_run_script_completes),
    };
    return cmocka_run_group_tests_name("integration/examples", tests, setup, teardown);
}
