/*
 * Command-line options shared by the subcommands. Each option is
 * "--name VALUE" or "--name=VALUE" and also reads an environment variable
 * (CONVEYOR_ plus the name upper-cased, dashes as underscores: --max-body
 * reads CONVEYOR_MAX_BODY). The command line wins over the environment.
 */
#ifndef CV_CLI_OPTIONS_H
#define CV_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

typedef enum cv_option_kind {
    CV_OPTION_VALUE,    /* takes a value */
    CV_OPTION_FLAG,     /* takes none; value becomes "1" */
    CV_OPTION_OPTIONAL, /* "--wait" or "--wait=30": value is "" or the text */
} cv_option_kind;

typedef struct cv_option {
    const char *name;     /* without "--" */
    cv_option_kind kind;
    const char *metavar;  /* shown in help, such as "URL" */
    const char *help;     /* one line: what it sets, with its unit */
    const char *fallback; /* default value, or NULL */
    const char *value;    /* result: borrowed from argv, the environment or fallback */
    bool given;           /* set on the command line or in the environment */
} cv_option;

/*
 * Parses argv (argv[0] is the subcommand) against options (terminated by a
 * NULL name). Arguments that are not options are stored in positional, at
 * most max_positional of them. Returns false after printing an error to
 * stderr that names the bad argument; prints help and returns false with
 * *help_shown set when --help is given.
 */
bool cv_options_parse(int argc, char **argv, cv_option *options, const char **positional,
                      int max_positional, int *positional_count, bool *help_shown,
                      const char *usage);

/* Returns the option named name; aborts if the table has none (a programming error). */
cv_option *cv_options_get(cv_option *options, const char *name);

void cv_options_print_help(FILE *out, const char *usage, const cv_option *options);

#endif
