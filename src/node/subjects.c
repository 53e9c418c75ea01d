#include "node/subjects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"

/* Returns the part of subject after "<prefix>.<kind>.", or NULL. */
static const char *after(const char *prefix, const char *kind, const char *subject)
{
    size_t p = strlen(prefix), k = strlen(kind);
    if (strncmp(subject, prefix, p) != 0 || subject[p] != '.' ||
        strncmp(subject + p + 1, kind, k) != 0 || subject[p + 1 + k] != '.')
        return NULL;
    return subject + p + k + 2;
}

const char *cv_subject_request_process(const char *prefix, const char *subject)
{
    const char *process = after(prefix, "request", subject);
    if (process == NULL || !cv_text_is_token(process))
        return NULL;
    return process;
}

/* Copies the token ending at the next '.' (or NUL) into buf; returns its end or NULL. */
static const char *take_token(const char *s, char *buf, size_t size)
{
    const char *end = strchr(s, '.');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    if (len == 0 || len >= size)
        return NULL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return cv_text_is_token(buf) ? s + len : NULL;
}

bool cv_subject_parse_reply(const char *prefix, const char *subject, cv_reply_address *out)
{
    const char *s = after(prefix, "reply", subject);
    char attempt[16];
    if (s == NULL)
        return false;
    s = take_token(s, out->instance, sizeof out->instance);
    if (s == NULL || *s != '.')
        return false;
    s = take_token(s + 1, out->step, sizeof out->step);
    if (s == NULL || *s != '.')
        return false;
    s = take_token(s + 1, attempt, sizeof attempt);
    if (s == NULL || *s != '.')
        return false;
    s = take_token(s + 1, out->token, sizeof out->token);
    if (s == NULL || *s != '\0' || strlen(out->token) != CV_TOKEN_LEN)
        return false;

    char *end;
    long n = strtol(attempt, &end, 10);
    if (*end != '\0' || n < 1 || n > 1000000)
        return false;
    out->attempt = (int)n;
    return true;
}

static bool fits(int written)
{
    return written > 0 && written < CV_SUBJECT_MAX;
}

bool cv_subject_reply(char *buf, const char *prefix, const char *instance, const char *step,
                      int attempt, const char *token)
{
    return fits(snprintf(buf, CV_SUBJECT_MAX, "%s.reply.%s.%s.%d.%s", prefix, instance, step,
                         attempt, token));
}

bool cv_subject_dispatch(char *buf, const char *prefix, const char *subsystem)
{
    return fits(snprintf(buf, CV_SUBJECT_MAX, "%s.dispatch.%s", prefix, subsystem));
}

bool cv_subject_event(char *buf, const char *prefix, const char *process, const char *instance,
                      const char *kind)
{
    return fits(snprintf(buf, CV_SUBJECT_MAX, "%s.event.%s.%s.%s", prefix, process, instance,
                         kind));
}

bool cv_subject_request(char *buf, const char *prefix, const char *process)
{
    return fits(snprintf(buf, CV_SUBJECT_MAX, "%s.request.%s", prefix, process));
}

bool cv_subject_task(char *buf, const char *prefix, const char *subsystem)
{
    return fits(snprintf(buf, CV_SUBJECT_MAX, "%s.task.%s", prefix, subsystem));
}

bool cv_subject_timer(char *buf, const char *prefix, const char *instance)
{
    return fits(snprintf(buf, CV_SUBJECT_MAX, "%s.timer.%s", prefix, instance));
}

const char *cv_subject_timer_instance(const char *prefix, const char *subject)
{
    size_t n = strlen(prefix);
    if (strncmp(subject, prefix, n) != 0 || strncmp(subject + n, ".timer.", 7) != 0)
        return NULL;
    const char *instance = subject + n + 7;
    if (instance[0] == '\0' || strchr(instance, '.') != NULL ||
        strlen(instance) > CV_INSTANCE_ID_MAX)
        return NULL;
    return instance;
}

/* True when a message may be published to subject: no wildcard, space or empty token. */
static bool is_publish_subject(const char *subject)
{
    size_t token = 0;
    for (const char *c = subject; *c != '\0'; c++) {
        if (*c == '.') {
            if (token == 0)
                return false;
            token = 0;
            continue;
        }
        if (*c == '*' || *c == '>' || (unsigned char)*c <= ' ' || *c == 0x7f)
            return false;
        token++;
    }
    return token > 0;
}

const char *cv_subject_answer_fault(const char *prefix, const char *subject)
{
    if (strlen(subject) >= CV_SUBJECT_MAX)
        return "longer than 511 bytes";
    if (!is_publish_subject(subject))
        return "not a subject a message can be published to";
    size_t p = strlen(prefix);
    if (strncmp(subject, prefix, p) == 0 && subject[p] == '.')
        return "inside conveyor's own subjects";
    return NULL;
}
