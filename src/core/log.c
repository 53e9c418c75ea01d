/*
 * The log sink: standard error, one line per call, UTC timestamps with
 * milliseconds so lines from several nodes sort together.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

cv_log_level cv_log_threshold = CV_LOG_INFO;

static char node_name[128];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

bool cv_log_parse_level(const char *text, cv_log_level *out)
{
    for (int i = 0; i <= CV_LOG_ERROR; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (cv_log_level)i;
            return true;
        }
    }
    return false;
}

void cv_log_set_node(const char *node)
{
    snprintf(node_name, sizeof node_name, "%s", node ? node : "");
}

/* Returns the length of the message part of text: everything before the first " key=". */
static size_t message_length(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p != ' ')
            continue;
        const char *key = p + 1;
        while ((*key >= 'a' && *key <= 'z') || *key == '_' || *key == '-')
            key++;
        if (key > p + 1 && *key == '=')
            return (size_t)(p - text);
    }
    return strlen(text);
}

void cv_log_write(cv_log_level level, const char *fmt, ...)
{
    char text[3584];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);

    char stamp[40];
    cv_clock_format_rfc3339(cv_clock_wall_ms(), stamp, sizeof stamp);
    size_t message = message_length(text);
    char line[4096];
    int n = snprintf(line, sizeof line, "%s level=%s msg=\"%.*s\"%s%s%s", stamp,
                     level_names[level], (int)message, text,
                     node_name[0] != '\0' ? " node=" : "", node_name, text + message);
    if (n < 0)
        return;
    if (n >= (int)sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}

const char *cv_log_quote(const char *text)
{
    static __thread char ring[4][1024];
    static __thread unsigned next;
    char *out = ring[next++ % 4];
    size_t n = 0;
    out[n++] = '"';
    for (const char *p = text ? text : ""; *p != '\0' && n < sizeof ring[0] - 8; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, 5, "\\x%02x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}
