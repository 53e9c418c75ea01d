/*
 * What an HTTP transfer means for a step: its output, or a failure that can
 * be retried or not. This is the part of the HTTP transport that needs no
 * curl handle, so it can be tested with made-up responses.
 *
 *   2xx          the body, parsed as JSON, is the output (an empty body is
 *                no output); a body that is not JSON fails permanently
 *   3xx          a redirect that was not followed: permanent
 *   4xx          permanent, with the status and the start of the body
 *   5xx          retryable, with the status and the start of the body
 *   timeout      retryable
 *   other errors retryable (refused, DNS, reset), except those that the
 *                same request would hit again: a malformed url, a protocol
 *                other than http and https, too many redirects, a body
 *                over max_response
 */
#ifndef CV_HTTP_HTTP_OUTCOME_H
#define CV_HTTP_HTTP_OUTCOME_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jsonx.h"
#include "core/status.h"

/* Bytes of an error response's body quoted in the step's error. */
#define CV_HTTP_SNIPPET_MAX 200

/* How a transfer ended, as the transport saw it; every pointer is borrowed. */
typedef struct cv_http_response {
    CURLcode code;
    const char *curl_text; /* curl's error buffer; NULL or "" for curl_easy_strerror(code) */
    long status;           /* HTTP status of the last response, 0 when none arrived */
    const char *body;      /* the body bytes kept, not NUL-terminated; may be NULL */
    size_t body_length;
    bool body_too_large;   /* the transport stopped reading at max_response */
    const char *location;  /* the Location of a 3xx response, or NULL */
    const char *host;      /* "host:port" of the request, for messages */
    int64_t timeout_ms;
    size_t max_response;
    bool follow_redirects;
} cv_http_response;

typedef struct cv_http_outcome {
    bool failed;
    bool permanent; /* with failed: retrying cannot help */
    json_t *output; /* new reference the caller takes; NULL for a failure or an empty body */
    char error[CV_ERROR_TEXT_MAX]; /* with failed */
} cv_http_outcome;

/*
 * Classifies response into out. A 2xx body is parsed with limits. Never
 * fails; running out of memory while parsing is a retryable failure.
 */
void cv_http_outcome_classify(cv_http_outcome *out, const cv_http_response *response,
                              const cv_json_limits *limits);

/* Returns the standard reason phrase of status ("Not Found"), or "" for an unknown one. */
const char *cv_http_reason_phrase(long status);

/*
 * Writes at most max bytes of text into out (of size at least max + 4) with
 * control characters replaced by spaces, cut at a UTF-8 character boundary,
 * and "..." added when text was longer.
 */
void cv_http_safe_snippet(char *out, const char *text, size_t length, size_t max);

#endif
