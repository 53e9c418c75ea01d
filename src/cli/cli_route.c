/*
 * conveyor route: the decision a node would make after STEP completes with
 * the given data document, computed offline from the rules folder. The
 * data is the whole instance document ({"request": ..., "<step>": ...}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "core/jsonx.h"
#include "engine/decide.h"
#include "rules/rules.h"

static const char usage[] = "conveyor route PROCESS STEP [JSON | @FILE | -] [--rules DIR]";

static json_t *load_data(const char *arg)
{
    json_error_t jerr;
    json_t *data = NULL;
    if (arg == NULL)
        data = json_object();
    else if (strcmp(arg, "-") == 0)
        data = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
    else if (arg[0] == '@')
        data = json_load_file(arg + 1, JSON_REJECT_DUPLICATES, &jerr);
    else
        data = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);
    if (data == NULL) {
        fprintf(stderr, "conveyor route: data %s: invalid JSON at line %d, column %d: %s\n",
                arg[0] == '@' || strcmp(arg, "-") == 0 ? arg : "argument", jerr.line,
                jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(data)) {
        fprintf(stderr, "conveyor route: data must be a JSON object, got %s\n",
                cv_json_type_name(data));
        json_decref(data);
        return NULL;
    }
    return data;
}

static cv_rules *load_rules(const char *dir)
{
    cv_rules *rules = NULL;
    cv_diag diag = {0};
    cv_error err;
    if (cv_rules_load(&rules, dir, NULL, &diag, &err) != CV_OK) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.messages[i]);
        if (diag.count == 0)
            fprintf(stderr, "conveyor route: %s\n", err.text);
        rules = NULL;
    }
    cv_diag_free(&diag);
    return rules;
}

static int decide_and_print(cv_rules *rules, const char *process_name, const char *step_id,
                            const json_t *data)
{
    const cv_process *process = cv_rules_find_process(rules, process_name);
    if (process == NULL) {
        fprintf(stderr, "conveyor route: unknown process \"%s\"\n", process_name);
        return CV_EXIT_FAILED;
    }
    int step = cv_process_find_step(process, step_id);
    if (step < 0) {
        fprintf(stderr, "conveyor route: process \"%s\" has no step \"%s\"\n", process_name,
                step_id);
        return CV_EXIT_FAILED;
    }
    cv_decision decision;
    cv_error err;
    if (cv_decide(&decision, process, &process->steps[step], data, cv_rules_script(rules),
                  &err) != CV_OK) {
        fprintf(stderr, "conveyor route: %s\n", err.text);
        return CV_EXIT_FAILED;
    }
    json_t *explained = cv_decision_to_json(&decision, process);
    char *text = json_dumps(explained, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    free(text);
    json_decref(explained);
    cv_decision_free(&decision);
    return CV_EXIT_OK;
}

int cv_cli_route(int argc, char **argv)
{
    cv_option options[] = {
        {"rules", CV_OPTION_VALUE, "DIR", "folder of .lua rules, searched recursively", "rules",
         NULL, false},
        {NULL, 0, NULL, NULL, NULL, NULL, false},
    };
    const char *positional[3] = {NULL, NULL, NULL};
    int count;
    bool help;
    if (!cv_options_parse(argc, argv, options, positional, 3, &count, &help, usage))
        return help ? CV_EXIT_OK : CV_EXIT_USAGE;
    if (count < 2) {
        fprintf(stderr, "conveyor route: expected PROCESS and STEP\nusage: %s\n", usage);
        return CV_EXIT_USAGE;
    }
    json_t *data = load_data(positional[2]);
    if (data == NULL)
        return CV_EXIT_USAGE;
    cv_rules *rules = load_rules(cv_options_get(options, "rules")->value);
    int code = CV_EXIT_FAILED;
    if (rules != NULL)
        code = decide_and_print(rules, positional[0], positional[1], data);
    cv_rules_destroy(rules);
    json_decref(data);
    return code;
}
