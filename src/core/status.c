/*
 * Status names and the error record. The names are stable: they appear in
 * logs and in error answers, where operators grep for them.
 */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[CV_STATUS_COUNT] = {
    [CV_OK] = "ok",
    [CV_ERR_INVALID] = "invalid",
    [CV_ERR_NOT_FOUND] = "not found",
    [CV_ERR_EXISTS] = "exists",
    [CV_ERR_CONFLICT] = "conflict",
    [CV_ERR_BUSY] = "busy",
    [CV_ERR_LIMIT] = "limit exceeded",
    [CV_ERR_SCRIPT] = "script error",
    [CV_ERR_IO] = "i/o error",
    [CV_ERR_NATS] = "nats error",
    [CV_ERR_NOMEM] = "out of memory",
    [CV_ERR_TIMEOUT] = "timed out",
    [CV_ERR_UNSUPPORTED] = "unsupported",
};

const char *cv_status_name(cv_status status)
{
    if ((unsigned)status >= CV_STATUS_COUNT)
        return "unknown status";
    return status_names[status];
}

static void mark_truncated(char *text, int written)
{
    if (written >= CV_ERROR_TEXT_MAX)
        memcpy(text + CV_ERROR_TEXT_MAX - 4, "...", 4);
}

cv_status cv_error_set(cv_error *err, cv_status status, const char *fmt, ...)
{
    if (err == NULL)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    int written = vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    mark_truncated(err->text, written);
    return status;
}

cv_status cv_error_prefix(cv_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return CV_OK;
    char prefix[CV_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);

    char old[CV_ERROR_TEXT_MAX];
    memcpy(old, err->text, sizeof old);
    int written = snprintf(err->text, sizeof err->text, "%s: %s", prefix, old);
    mark_truncated(err->text, written);
    return err->status;
}

void cv_error_clear(cv_error *err)
{
    if (err == NULL)
        return;
    err->status = CV_OK;
    err->text[0] = '\0';
}
