/*
 * Diagnostics of the rules loader: a growable list of "file:line: what"
 * lines, collected while loading so that one run reports every fault.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"

/* Formats "file:line: " (or "file: " without a line) in front of the message. */
static char *format_message(const char *file, int line, const char *fmt, va_list ap)
{
    char prefix[1024] = "";
    if (file != NULL && line > 0)
        snprintf(prefix, sizeof prefix, "%s:%d: ", file, line);
    else if (file != NULL)
        snprintf(prefix, sizeof prefix, "%s: ", file);

    va_list copy;
    va_copy(copy, ap);
    int body = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (body < 0)
        return NULL;

    size_t prefix_len = strlen(prefix);
    char *message = malloc(prefix_len + (size_t)body + 1);
    if (message == NULL)
        return NULL;
    memcpy(message, prefix, prefix_len);
    vsnprintf(message + prefix_len, (size_t)body + 1, fmt, ap);
    return message;
}

/*
 * Appends one diagnostic. With file NULL the message is stored as given,
 * which suits Lua error messages that already start with "file:line:".
 * NOTE: a fault found while memory runs out is dropped, because a
 * diagnostic list has no way to report its own failure.
 */
void cv_diag_add(cv_diag *diag, const char *file, int line, const char *fmt, ...)
{
    if (diag == NULL)
        return;
    if (diag->count == diag->capacity) {
        size_t capacity = diag->capacity ? diag->capacity * 2 : 16;
        char **grown = realloc(diag->messages, capacity * sizeof *grown);
        if (grown == NULL)
            return;
        diag->messages = grown;
        diag->capacity = capacity;
    }

    va_list ap;
    va_start(ap, fmt);
    char *message = format_message(file, line, fmt, ap);
    va_end(ap);
    if (message != NULL)
        diag->messages[diag->count++] = message;
}

void cv_diag_free(cv_diag *diag)
{
    if (diag == NULL)
        return;
    for (size_t i = 0; i < diag->count; i++)
        free(diag->messages[i]);
    free(diag->messages);
    diag->messages = NULL;
    diag->count = 0;
    diag->capacity = 0;
}
