/*
 * conveyor graph PROCESS: draws one process of a rules folder as Graphviz
 * dot or Mermaid on standard output, for `dot -Tsvg` or a Markdown page.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "rules/graph.h"
#include "rules/rules.h"

static const char usage[] = "conveyor graph PROCESS [--rules DIR] [--format dot|mermaid]";

static void print_known_processes(const cv_rules *rules)
{
    size_t count = cv_rules_process_count(rules);
    if (count == 0) {
        fprintf(stderr, " (no processes are defined)\n");
        return;
    }
    fprintf(stderr, " (known: ");
    for (size_t i = 0; i < count; i++)
        fprintf(stderr, "%s%s", i > 0 ? ", " : "", cv_rules_process_at(rules, i)->name);
    fprintf(stderr, ")\n");
}

static int load_rules(cv_rules **out, const char *dir)
{
    cv_diag diag = {0};
    cv_error err = {0};
    if (cv_rules_load(out, dir, NULL, &diag, &err) == CV_OK) {
        cv_diag_free(&diag);
        return CV_EXIT_OK;
    }
    for (size_t i = 0; i < diag.count; i++)
        fprintf(stderr, "%s\n", diag.messages[i]);
    fprintf(stderr, "conveyor graph: %s\n", err.text);
    cv_diag_free(&diag);
    return CV_EXIT_FAILED;
}

static int draw(const cv_rules *rules, const char *name, const char *dir, cv_graph_format format)
{
    const cv_process *process = cv_rules_find_process(rules, name);
    if (process == NULL) {
        fprintf(stderr, "conveyor graph: unknown process \"%s\" in %s", name, dir);
        print_known_processes(rules);
        return CV_EXIT_FAILED;
    }
    char *text = NULL;
    cv_error err = {0};
    if (cv_graph_render(&text, process, format, &err) != CV_OK) {
        fprintf(stderr, "conveyor graph: %s\n", err.text);
        return CV_EXIT_FAILED;
    }
    fputs(text, stdout);
    free(text);
    return CV_EXIT_OK;
}

int cv_cli_graph(int argc, char **argv)
{
    cv_option options[] = {
        {"rules", CV_OPTION_VALUE, "DIR", "rules folder to load", "rules", NULL, false},
        {"format", CV_OPTION_VALUE, "FORMAT", "output format: dot or mermaid", "dot", NULL, false},
        {NULL, CV_OPTION_VALUE, NULL, NULL, NULL, NULL, false},
    };
    const char *positional[1];
    int positional_count = 0;
    bool help_shown = false;
    cv_graph_format format;

    if (!cv_options_parse(argc, argv, options, positional, 1, &positional_count, &help_shown,
                          usage))
        return help_shown ? CV_EXIT_OK : CV_EXIT_USAGE;
    if (positional_count == 0) {
        fprintf(stderr, "conveyor graph: missing PROCESS (usage: %s)\n", usage);
        return CV_EXIT_USAGE;
    }
    const char *format_text = cv_options_get(options, "format")->value;
    if (!cv_graph_parse_format(format_text, &format)) {
        fprintf(stderr, "conveyor graph: unknown format \"%s\" (expected dot or mermaid)\n",
                format_text);
        return CV_EXIT_USAGE;
    }

    const char *dir = cv_options_get(options, "rules")->value;
    cv_rules *rules = NULL;
    int code = load_rules(&rules, dir);
    if (code != CV_EXIT_OK)
        return code;
    code = draw(rules, positional[0], dir, format);
    cv_rules_destroy(rules);
    return code;
}
