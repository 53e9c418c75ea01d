/* conveyor: the single binary; dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const cv_cli_command commands[] = {
    {"node", "run an orchestrator node", cv_cli_node},
    {"submit", "submit a request and optionally wait for its result", cv_cli_submit},
    {"check", "validate a rules folder", cv_cli_check},
    {"graph", "draw a process as Graphviz dot or Mermaid", cv_cli_graph},
    {"route", "show which steps follow a step for a given data document", cv_cli_route},
    {"cancel", "stop a running instance", cv_cli_cancel},
    {"instances", "list stored instances, show one, or print its events", cv_cli_instances},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: conveyor COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'conveyor COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CV_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("conveyor %s\n", CV_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "conveyor: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return CV_EXIT_USAGE;
}
