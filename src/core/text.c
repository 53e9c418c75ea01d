#include "core/text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

bool cv_text_is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && c != '_' && c != '-')
            return false;
    }
    return true;
}

static bool parse_number_prefix(const char *s, double *value, const char **rest)
{
    char *end;
    errno = 0;
    *value = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(*value) || *value < 0 || isspace((unsigned char)*s) ||
        *s == '+' || *s == '-')
        return false;
    *rest = end;
    return true;
}

cv_status cv_text_parse_duration(const char *s, int64_t *out_ms, cv_error *err)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"", 1000}, {"m", 60000}, {"h", 3600000}};

    double value;
    const char *unit;
    if (s == NULL || !parse_number_prefix(s, &value, &unit))
        return cv_error_set(err, CV_ERR_INVALID,
                            "invalid duration \"%s\": expected a number and a unit such as "
                            "\"500ms\", \"30s\", \"5m\" or \"1h\"",
                            s ? s : "");
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            double ms = value * units[i].ms;
            if (ms > 1e15)
                break;
            *out_ms = (int64_t)llround(ms);
            return CV_OK;
        }
    }
    return cv_error_set(err, CV_ERR_INVALID,
                        "invalid duration \"%s\": the unit must be ms, s, m or h", s);
}

cv_status cv_text_parse_size(const char *s, size_t *out, cv_error *err)
{
    static const struct {
        const char *unit;
        double factor;
    } units[] = {{"", 1},           {"b", 1},       {"k", 1024},          {"kib", 1024},
                 {"kb", 1024},      {"m", 1048576}, {"mib", 1048576},     {"mb", 1048576},
                 {"g", 1073741824}, {"gib", 1073741824}, {"gb", 1073741824}};

    double value;
    const char *unit;
    if (s == NULL || !parse_number_prefix(s, &value, &unit))
        return cv_error_set(err, CV_ERR_INVALID,
                            "invalid size \"%s\": expected bytes such as \"1048576\" or \"1MiB\"",
                            s ? s : "");
    char lower[8];
    size_t n = strlen(unit);
    if (n < sizeof lower) {
        for (size_t i = 0; i < n && i + 1 < sizeof lower; i++)
            lower[i] = (char)tolower((unsigned char)unit[i]);
        lower[n] = '\0';
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcmp(lower, units[i].unit) != 0)
                continue;
            if (value * units[i].factor >= 1e15)
                return cv_error_set(err, CV_ERR_INVALID, "invalid size \"%s\": too large", s);
            *out = (size_t)(value * units[i].factor);
            return CV_OK;
        }
    }
    return cv_error_set(err, CV_ERR_INVALID, "invalid size \"%s\": the unit must be k, m or g", s);
}

void cv_text_random_token(char *buf, size_t len)
{
    static const char alphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char bytes[64];
    size_t done = 0;

    while (done < len) {
        size_t chunk = len - done < sizeof bytes ? len - done : sizeof bytes;
        ssize_t got = getrandom(bytes, chunk, 0);
        if (got <= 0)
            abort(); /* no entropy means tokens could be guessed: do not go on */
        for (ssize_t i = 0; i < got; i++) {
            /* 248 is the largest multiple of 62 below 256: reject above it to keep tokens uniform. */
            if (bytes[i] < 248)
                buf[done++] = alphabet[bytes[i] % 62];
        }
    }
    buf[len] = '\0';
}
