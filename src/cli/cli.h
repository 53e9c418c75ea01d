/*
 * Subcommands of the conveyor binary. Each takes argv starting at its own
 * name and returns the process exit code.
 */
#ifndef CV_CLI_CLI_H
#define CV_CLI_CLI_H

#define CV_VERSION "0.1.0"

/* Exit codes shared by all subcommands; submit --wait adds its own. */
#define CV_EXIT_OK 0
#define CV_EXIT_FAILED 1
#define CV_EXIT_USAGE 2
#define CV_EXIT_TIMEOUT 3

typedef struct cv_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cv_cli_command;

int cv_cli_node(int argc, char **argv);
int cv_cli_submit(int argc, char **argv);
int cv_cli_check(int argc, char **argv);
int cv_cli_graph(int argc, char **argv);
int cv_cli_route(int argc, char **argv);
int cv_cli_cancel(int argc, char **argv);
int cv_cli_instances(int argc, char **argv);

#endif
