/*
 * Operator logging: one line per event, "ts level msg key=value ...".
 *
 * CV_LOG checks the level before formatting, so a dropped debug line costs
 * one comparison. Messages are written with a single write(2) per line so
 * lines from different threads never interleave.
 */
#ifndef CV_CORE_LOG_H
#define CV_CORE_LOG_H

#include <stdbool.h>

typedef enum cv_log_level {
    CV_LOG_DEBUG = 0,
    CV_LOG_INFO,
    CV_LOG_WARN,
    CV_LOG_ERROR,
} cv_log_level;

extern cv_log_level cv_log_threshold;

/* Parses "debug", "info", "warn" or "error"; returns false otherwise. */
bool cv_log_parse_level(const char *text, cv_log_level *out);

/* Sets the node name added to every line as node=NAME (NULL for none). */
void cv_log_set_node(const char *node);

void cv_log_write(cv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Returns text as a double-quoted log value with quotes, backslashes and
 * control characters escaped, so every line stays parseable as key=value.
 * The result lives in a thread-local ring of four buffers: up to four calls
 * may appear in one log statement. Long text is cut at about 1000 bytes.
 */
const char *cv_log_quote(const char *text);

#define CV_LOG(level, ...)                                                                        \
    do {                                                                                          \
        if ((level) >= cv_log_threshold)                                                          \
            cv_log_write((level), __VA_ARGS__);                                                   \
    } while (0)

#define CV_DEBUG(...) CV_LOG(CV_LOG_DEBUG, __VA_ARGS__)
#define CV_INFO(...) CV_LOG(CV_LOG_INFO, __VA_ARGS__)
#define CV_WARN(...) CV_LOG(CV_LOG_WARN, __VA_ARGS__)
#define CV_ERROR(...) CV_LOG(CV_LOG_ERROR, __VA_ARGS__)

#endif
