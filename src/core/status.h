/*
 * One status type for every fallible function in conveyor, and an error
 * record that carries a human-readable cause up to the layer that logs it.
 *
 * Convention: a function returns cv_status; on failure it fills the optional
 * cv_error with what failed and on which value, so the caller can log or
 * answer once without re-describing the problem.
 */
#ifndef CV_CORE_STATUS_H
#define CV_CORE_STATUS_H

#include <stddef.h>

typedef enum cv_status {
    CV_OK = 0,
    CV_ERR_INVALID,     /* input does not follow the contract */
    CV_ERR_NOT_FOUND,   /* a named thing does not exist */
    CV_ERR_EXISTS,      /* a thing with that id already exists */
    CV_ERR_CONFLICT,    /* compare-and-set lost against another writer */
    CV_ERR_BUSY,        /* another writer has claimed it for a while: try again later */
    CV_ERR_LIMIT,       /* a size, depth, time or memory limit was exceeded */
    CV_ERR_SCRIPT,      /* a Lua rule raised an error */
    CV_ERR_IO,          /* reading or writing a file failed */
    CV_ERR_NATS,        /* the NATS client returned an error */
    CV_ERR_NOMEM,       /* an allocation failed */
    CV_ERR_TIMEOUT,     /* a wait ran out of time */
    CV_ERR_UNSUPPORTED, /* valid, but not implemented by this build */
    CV_STATUS_COUNT
} cv_status;

/* Longest error text kept; longer causes are truncated with "...". */
#define CV_ERROR_TEXT_MAX 512

typedef struct cv_error {
    cv_status status;
    char text[CV_ERROR_TEXT_MAX];
} cv_error;

/* Returns the fixed name of a status, such as "invalid" or "conflict". */
const char *cv_status_name(cv_status status);

/*
 * Records status and a printf-style cause in err (which may be NULL) and
 * returns status, so callers can write `return cv_error_set(err, ...)`.
 */
cv_status cv_error_set(cv_error *err, cv_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to an existing error text; keeps the status. */
cv_status cv_error_prefix(cv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void cv_error_clear(cv_error *err);

#endif
