/*
 * conveyor check [DIR]: loads a rules folder the way a node does and
 * reports every fault, one "file:line: what" line each, so that rules can
 * be checked before a node refuses them at start-up.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "rules/rules.h"

static const char usage[] = "conveyor check [DIR] [--rules DIR]";

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* Prints the faults of a failed load; returns the exit code. */
static int report_faults(const cv_diag *diag, const cv_error *err, const char *dir)
{
    if (diag->count == 0) {
        fprintf(stderr, "conveyor check: %s\n", err->text);
        return CV_EXIT_FAILED;
    }
    for (size_t i = 0; i < diag->count; i++)
        fprintf(stderr, "%s\n", diag->messages[i]);
    fprintf(stderr, "check: %zu %s in %s\n", diag->count, plural(diag->count, "fault", "faults"),
            dir);
    return CV_EXIT_FAILED;
}

int cv_cli_check(int argc, char **argv)
{
    cv_option options[] = {
        {"rules", CV_OPTION_VALUE, "DIR", "rules folder to check; a DIR argument wins", "rules",
         NULL, false},
        {NULL, CV_OPTION_VALUE, NULL, NULL, NULL, NULL, false},
    };
    const char *positional[1];
    int positional_count = 0;
    bool help_shown = false;

    if (!cv_options_parse(argc, argv, options, positional, 1, &positional_count, &help_shown,
                          usage))
        return help_shown ? CV_EXIT_OK : CV_EXIT_USAGE;
    const char *dir = positional_count > 0 ? positional[0] : cv_options_get(options, "rules")->value;

    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    if (cv_rules_load(&rules, dir, NULL, &diag, &err) != CV_OK) {
        int code = report_faults(&diag, &err, dir);
        cv_diag_free(&diag);
        return code;
    }

    size_t processes = cv_rules_process_count(rules);
    size_t modules = cv_rules_module_count(rules);
    size_t steps = 0;
    for (size_t i = 0; i < processes; i++)
        steps += cv_rules_process_at(rules, i)->step_count;
    printf("ok: %zu %s, %zu %s, %zu %s in %s\n", processes,
           plural(processes, "process", "processes"), modules, plural(modules, "module", "modules"),
           steps, plural(steps, "step", "steps"), dir);
    cv_rules_destroy(rules);
    cv_diag_free(&diag);
    return CV_EXIT_OK;
}
