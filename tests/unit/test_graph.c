/*
 * Graphs of a process in dot and Mermaid: the nodes, the start mark and
 * every kind of edge (next, condition results with their path and test,
 * route, on_error, and prev links that nothing else draws). When Graphviz
 * is installed, the dot output must also parse with `dot`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules/graph.h"
#include "rules/rules.h"
#include "support/process.h"

#define GRAPH_RULES CV_TEST_SOURCE_DIR "/tests/fixtures/rules/graph"
#define DOT_PROGRAM "/usr/bin/dot"

static int setup(void **state)
{
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    if (cv_rules_load(&rules, GRAPH_RULES, NULL, &diag, &err) != CV_OK)
        fail_msg("cannot load %s: %s", GRAPH_RULES, err.text);
    *state = rules;
    return 0;
}

static int teardown(void **state)
{
    cv_rules_destroy(*state);
    return 0;
}

static char *render(cv_rules *rules, cv_graph_format format)
{
    char *text = NULL;
    cv_error err = {0};
    const cv_process *process = cv_rules_find_process(rules, "small");
    assert_non_null(process);
    assert_int_equal(cv_graph_render(&text, process, format, &err), CV_OK);
    return text;
}

static void assert_has_line(const char *text, const char *line)
{
    char wanted[512];
    snprintf(wanted, sizeof wanted, "\n%s\n", line);
    if (strstr(text, wanted) == NULL)
        fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void assert_lacks(const char *text, const char *part)
{
    if (strstr(text, part) != NULL)
        fail_msg("unexpected \"%s\" in:\n%s", part, text);
}

static void test_dot_edges(void **state)
{
    char *text = render(*state, CV_GRAPH_DOT);
    assert_int_equal(strncmp(text, "digraph \"small\" {\n", 18), 0);
    assert_has_line(text, "  \"enrich\" [label=\"enrich\\napi\\n(http)\"];");
    assert_has_line(text, "  \"receive\" [label=\"receive\\nintake\"];");
    assert_has_line(text, "  \"(start)\" -> \"receive\";");
    assert_has_line(text, "  \"receive\" -> \"enrich\";");
    assert_has_line(text, "  \"receive\" -> \"escalate\" [style=solid, label=\"condition[1]."
                          "success[1]: request.amount gt 1000\"];");
    assert_has_line(text, "  \"receive\" -> \"(end)\" [style=solid, label=\"condition[2]: "
                          "request.kind in [\\\"spam\\\"]\"];");
    assert_has_line(text, "  \"enrich\" -> \"(route) enrich\" [style=dashed, label=\"route\"];");
    assert_has_line(text, "  \"enrich\" -> \"escalate\" [style=dashed, label=\"on_error\"];");
    assert_has_line(text, "  \"audit\" -> \"escalate\" [style=dotted, label=\"prev\"];");
    assert_has_line(text, "  \"enrich\" -> \"audit\" [style=dotted, label=\"prev\"];");
    /* receive -> escalate is drawn by its condition, so its prev link is not drawn again. */
    assert_lacks(text, "\"receive\" -> \"escalate\" [style=dotted");
    assert_true(text[strlen(text) - 2] == '}');
    free(text);
}

static void test_mermaid_edges(void **state)
{
    char *text = render(*state, CV_GRAPH_MERMAID);
    assert_int_equal(strncmp(text, "flowchart TD\n", 13), 0);
    assert_has_line(text, "  s0[\"receive<br/>intake\"]");
    assert_has_line(text, "  s1[\"enrich<br/>api<br/>(http)\"]");
    assert_has_line(text, "  entry --> s0");
    assert_has_line(text, "  s0 --> s1");
    assert_has_line(text, "  s0 -->|\"condition[1].success[1]: request.amount gt 1000\"| s2");
    assert_has_line(text, "  s0 -->|\"condition[2]: request.kind in [#34;spam#34;]\"| finish");
    assert_has_line(text, "  s1 -.->|\"route\"| r1");
    assert_has_line(text, "  s1 -.->|\"on_error\"| s2");
    assert_has_line(text, "  s3 -.->|\"prev\"| s2");
    assert_has_line(text, "  finish((end))");
    assert_lacks(text, "s0 -.->|\"prev\"| s2");
    free(text);
}

static void test_dot_parses(void **state)
{
    if (access(DOT_PROGRAM, X_OK) != 0) {
        print_message("skipped: %s is not installed\n", DOT_PROGRAM);
        return;
    }
    char *text = render(*state, CV_GRAPH_DOT);
    char *out = NULL;
    char *err = NULL;
    char *const argv[] = {DOT_PROGRAM, "-Tsvg", NULL};
    int code = cv_test_run(argv, text, &out, &err, 20000);
    if (code != 0)
        fail_msg("dot exited with %d: %s", code, err ? err : "");
    assert_non_null(strstr(out, "<svg"));
    free(out);
    free(err);
    free(text);
}

static void test_format_names(void **state)
{
    cv_graph_format format;
    (void)state;
    assert_true(cv_graph_parse_format("dot", &format));
    assert_int_equal(format, CV_GRAPH_DOT);
    assert_true(cv_graph_parse_format("mermaid", &format));
    assert_int_equal(format, CV_GRAPH_MERMAID);
    assert_false(cv_graph_parse_format("svg", &format));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dot_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mermaid_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dot_parses, setup, teardown),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
