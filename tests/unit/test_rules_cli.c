/*
 * The `conveyor check` and `conveyor graph` commands as a user runs them:
 * what they print on standard output and standard error, and their exit
 * codes for valid rules, broken rules, a missing folder and usage errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/process.h"

#define FIXTURES CV_TEST_SOURCE_DIR "/tests/fixtures/rules"
#define RUN_TIMEOUT_MS 20000

typedef struct run_result {
    int code;
    char *out;
    char *err;
} run_result;

static run_result run(char *const argv[])
{
    run_result r = {0};
    r.code = cv_test_run(argv, NULL, &r.out, &r.err, RUN_TIMEOUT_MS);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

static void test_check_valid_folder(void **state)
{
    (void)state;
    char *const argv[] = {CV_TEST_BINARY, "check", FIXTURES "/valid", NULL};
    run_result r = run(argv);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "ok: 2 processes, 3 modules, 7 steps in " FIXTURES "/valid\n");
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void test_check_reads_environment(void **state)
{
    (void)state;
    char *const argv[] = {"/usr/bin/env", "CONVEYOR_RULES=" FIXTURES "/graph", CV_TEST_BINARY,
                          "check", NULL};
    run_result r = run(argv);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "ok: 1 process, 1 module, 4 steps in " FIXTURES "/graph\n");
    run_free(&r);

    char *const with_option[] = {CV_TEST_BINARY, "check", "--rules", FIXTURES "/graph", NULL};
    r = run(with_option);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "ok: 1 process, 1 module, 4 steps in " FIXTURES "/graph\n");
    run_free(&r);
}

static void test_check_lists_faults(void **state)
{
    (void)state;
    char *const argv[] = {CV_TEST_BINARY, "check", FIXTURES "/broken/unknown_step.lua", NULL};
    run_result r = run(argv);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    const char *path = FIXTURES "/broken/unknown_step.lua";
    char expected[4096];
    snprintf(expected, sizeof expected,
             "%s:3: process \"deal\": start names unknown step \"get-dael\"\n"
             "%s:7: step \"get-deal\": next names unknown step \"rememebr\"\n"
             "%s:10: step \"get-deal\": condition[2].result names unknown step "
             "\"get-deal-by-idd\"\n"
             "%s:13: step \"remember\": prev names unknown step \"get-dael\"\n"
             "%s:14: step \"remember\": on_error names unknown step \"nowhere\"\n"
             "check: 5 faults in %s\n",
             path, path, path, path, path, path);
    assert_string_equal(r.err, expected);
    run_free(&r);
}

static void test_check_missing_folder(void **state)
{
    (void)state;
    char *const argv[] = {CV_TEST_BINARY, "check", FIXTURES "/absent", NULL};
    run_result r = run(argv);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.err, "conveyor check: rules folder " FIXTURES "/absent does not exist\n");
    run_free(&r);
}

static void test_check_usage_errors(void **state)
{
    (void)state;
    char *const two_folders[] = {CV_TEST_BINARY, "check", "a", "b", NULL};
    run_result r = run(two_folders);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "unexpected argument 'b'"));
    run_free(&r);

    char *const bad_option[] = {CV_TEST_BINARY, "check", "--rulez", "x", NULL};
    r = run(bad_option);
    assert_int_equal(r.code, 2);
    run_free(&r);
}

static void test_graph_formats(void **state)
{
    (void)state;
    char *const dot[] = {CV_TEST_BINARY, "graph", "small", "--rules", FIXTURES "/graph", NULL};
    run_result r = run(dot);
    assert_int_equal(r.code, 0);
    assert_int_equal(strncmp(r.out, "digraph \"small\" {\n", 18), 0);
    assert_non_null(strstr(r.out, "\n  \"enrich\" -> \"escalate\" [style=dashed, label=\"on_error\"];\n"));
    run_free(&r);

    char *const mermaid[] = {CV_TEST_BINARY, "graph", "small", "--rules", FIXTURES "/graph",
                             "--format=mermaid", NULL};
    r = run(mermaid);
    assert_int_equal(r.code, 0);
    assert_int_equal(strncmp(r.out, "flowchart TD\n", 13), 0);
    assert_non_null(strstr(r.out, "\n  s1 -.->|\"route\"| r1\n"));
    run_free(&r);
}

static void test_graph_errors(void **state)
{
    (void)state;
    char *const unknown[] = {CV_TEST_BINARY, "graph", "nope", "--rules", FIXTURES "/valid", NULL};
    run_result r = run(unknown);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.err, "conveyor graph: unknown process \"nope\" in " FIXTURES
                               "/valid (known: deal-sync, lead-intake)\n");
    run_free(&r);

    char *const format[] = {CV_TEST_BINARY, "graph", "small", "--format", "svg", NULL};
    r = run(format);
    assert_int_equal(r.code, 2);
    assert_string_equal(r.err,
                        "conveyor graph: unknown format \"svg\" (expected dot or mermaid)\n");
    run_free(&r);

    char *const missing[] = {CV_TEST_BINARY, "graph", NULL};
    r = run(missing);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "missing PROCESS"));
    run_free(&r);

    char *const broken[] = {CV_TEST_BINARY, "graph", "deal", "--rules",
                            FIXTURES "/broken/syntax_error.lua", NULL};
    r = run(broken);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.err, FIXTURES "/broken/syntax_error.lua:3: '}' expected (to close '{' "
                                        "at line 1) near 'steps'\n"
                                        "conveyor graph: 1 fault in " FIXTURES
                                        "/broken/syntax_error.lua\n");
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_valid_folder),
        cmocka_unit_test(test_check_reads_environment),
        cmocka_unit_test(test_check_lists_faults),
        cmocka_unit_test(test_check_missing_folder),
        cmocka_unit_test(test_check_usage_errors),
        cmocka_unit_test(test_graph_formats),
        cmocka_unit_test(test_graph_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
