#include "cli/options.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static void env_name(const char *option, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "CONVEYOR_");
    for (const char *p = option; *p != '\0' && n + 1 < size; p++)
        buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n] = '\0';
}

cv_option *cv_options_get(cv_option *options, const char *name)
{
    for (cv_option *o = options; o->name != NULL; o++) {
        if (strcmp(o->name, name) == 0)
            return o;
    }
    fprintf(stderr, "conveyor: internal error: no option '%s'\n", name);
    abort();
}

void cv_options_print_help(FILE *out, const char *usage, const cv_option *options)
{
    fprintf(out, "usage: %s\n\noptions:\n", usage);
    for (const cv_option *o = options; o->name != NULL; o++) {
        char left[64];
        char env[64];
        if (o->kind == CV_OPTION_VALUE)
            snprintf(left, sizeof left, "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        else if (o->kind == CV_OPTION_OPTIONAL)
            snprintf(left, sizeof left, "--%s[=%s]", o->name, o->metavar ? o->metavar : "VALUE");
        else
            snprintf(left, sizeof left, "--%s", o->name);
        env_name(o->name, env, sizeof env);
        fprintf(out, "  %-26s %s", left, o->help);
        if (o->fallback != NULL && o->kind == CV_OPTION_VALUE)
            fprintf(out, " (default: %s)", o->fallback);
        fprintf(out, " [env %s]\n", env);
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help and exit");
}

static void apply_environment(cv_option *options)
{
    for (cv_option *o = options; o->name != NULL; o++) {
        char env[64];
        env_name(o->name, env, sizeof env);
        const char *value = getenv(env);
        o->value = o->fallback;
        o->given = false;
        if (value != NULL && (o->kind != CV_OPTION_FLAG || strcmp(value, "0") != 0)) {
            o->value = o->kind == CV_OPTION_FLAG ? "1" : value;
            o->given = true;
        }
    }
}

static cv_option *find_option(cv_option *options, const char *name, size_t len)
{
    for (cv_option *o = options; o->name != NULL; o++) {
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

/* Handles argv[*i], an argument starting with "--"; advances *i past its value. */
static bool parse_one(int argc, char **argv, int *i, cv_option *options, const char *command)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    cv_option *o = find_option(options, arg, len);

    if (o == NULL) {
        fprintf(stderr, "conveyor %s: unknown option '%s' (see --help)\n", command, argv[*i]);
        return false;
    }
    o->given = true;
    if (o->kind == CV_OPTION_FLAG) {
        if (eq != NULL) {
            fprintf(stderr, "conveyor %s: option '--%s' takes no value\n", command, o->name);
            return false;
        }
        o->value = "1";
    } else if (o->kind == CV_OPTION_OPTIONAL) {
        o->value = eq ? eq + 1 : "";
    } else if (eq != NULL) {
        o->value = eq + 1;
    } else if (*i + 1 < argc) {
        o->value = argv[++*i];
    } else {
        fprintf(stderr, "conveyor %s: option '--%s' needs a value (%s)\n", command, o->name,
                o->metavar ? o->metavar : "VALUE");
        return false;
    }
    return true;
}

bool cv_options_parse(int argc, char **argv, cv_option *options, const char **positional,
                      int max_positional, int *positional_count, bool *help_shown,
                      const char *usage)
{
    const char *command = argv[0];
    *help_shown = false;
    *positional_count = 0;
    apply_environment(options);

    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_positional && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            cv_options_print_help(stdout, usage, options);
            *help_shown = true;
            return false;
        }
        if (!only_positional && strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (!only_positional && strncmp(arg, "--", 2) == 0) {
            if (!parse_one(argc, argv, &i, options, command))
                return false;
            continue;
        }
        if (*positional_count >= max_positional) {
            fprintf(stderr, "conveyor %s: unexpected argument '%s' (see --help)\n", command, arg);
            return false;
        }
        positional[(*positional_count)++] = arg;
    }
    return true;
}
