/*
 * Classifying a finished HTTP transfer (see http_outcome.h for the rules).
 *
 * An error status wins over a transfer error: a 503 whose body was cut off
 * is still a 503. Error texts quote at most CV_HTTP_SNIPPET_MAX bytes of
 * what the server sent, with control characters blanked, because they end
 * up in events and logs.
 */
#include "http/http_outcome.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    long status;
    const char *phrase;
} reason_phrases[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
    {511, "Network Authentication Required"},
};

const char *cv_http_reason_phrase(long status)
{
    for (size_t i = 0; i < sizeof reason_phrases / sizeof reason_phrases[0]; i++) {
        if (reason_phrases[i].status == status)
            return reason_phrases[i].phrase;
    }
    return "";
}

/* Returns the length of the longest prefix of text[0..length) that ends on a UTF-8 character boundary. */
static size_t utf8_boundary(const char *text, size_t length)
{
    size_t cut = length;
    /* Step back over continuation bytes (10xxxxxx) to the lead byte of the last character. */
    size_t back = 0;
    while (back < 3 && cut > back && ((unsigned char)text[cut - back - 1] & 0xC0) == 0x80)
        back++;
    if (cut == back)
        return cut;
    unsigned char lead = (unsigned char)text[cut - back - 1];
    size_t needed = 1;
    if (lead >= 0xF0)
        needed = 4;
    else if (lead >= 0xE0)
        needed = 3;
    else if (lead >= 0xC0)
        needed = 2;
    if (needed > back + 1)
        return cut - back - 1;
    return cut;
}

void cv_http_safe_snippet(char *out, const char *text, size_t length, size_t max)
{
    size_t kept = length;
    if (kept > max)
        kept = utf8_boundary(text, max);
    for (size_t i = 0; i < kept; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
    }
    if (kept < length) {
        memcpy(out + kept, "...", 4);
        return;
    }
    out[kept] = '\0';
}

static void set_failure(cv_http_outcome *out, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_failure(cv_http_outcome *out, bool permanent, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, args);
    va_end(args);
    out->failed = true;
    out->permanent = permanent;
}

/* "HTTP 404 Not Found" plus ": <start of the body>" when the body is not empty. */
static void classify_error_status(cv_http_outcome *out, const cv_http_response *response)
{
    char snippet[CV_HTTP_SNIPPET_MAX + 4] = "";
    if (response->body != NULL)
        cv_http_safe_snippet(snippet, response->body, response->body_length,
                             CV_HTTP_SNIPPET_MAX);
    const char *phrase = cv_http_reason_phrase(response->status);
    set_failure(out, response->status < 500, "HTTP %ld%s%s%s%s", response->status,
                phrase[0] != '\0' ? " " : "", phrase, snippet[0] != '\0' ? ": " : "", snippet);
}

static void classify_redirect(cv_http_outcome *out, const cv_http_response *response)
{
    const char *phrase = cv_http_reason_phrase(response->status);
    const char *space = phrase[0] != '\0' ? " " : "";
    if (response->location == NULL || response->location[0] == '\0') {
        set_failure(out, true, "HTTP %ld%s%s: the response has no Location to redirect to",
                    response->status, space, phrase);
        return;
    }
    char location[CV_HTTP_SNIPPET_MAX + 4];
    cv_http_safe_snippet(location, response->location, strlen(response->location),
                         CV_HTTP_SNIPPET_MAX);
    set_failure(out, true, "HTTP %ld%s%s: redirect to %s not followed%s", response->status,
                space, phrase, location,
                response->follow_redirects ? "" : " (the module does not set follow_redirects)");
}

/* Writes a step timeout as the rules would: "5s" for whole seconds, else "300ms". */
static void format_duration(char *out, size_t size, int64_t ms)
{
    if (ms >= 1000 && ms % 1000 == 0)
        snprintf(out, size, "%" PRId64 "s", ms / 1000);
    else
        snprintf(out, size, "%" PRId64 "ms", ms);
}

/* Transfer errors that the same request would meet again. */
static bool is_permanent_code(CURLcode code)
{
    switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_TOO_MANY_REDIRECTS:
        return true;
    default:
        return false;
    }
}

static void classify_transfer_error(cv_http_outcome *out, const cv_http_response *response)
{
    const char *host = response->host != NULL ? response->host : "the module";
    if (response->code == CURLE_OPERATION_TIMEDOUT) {
        char duration[32];
        format_duration(duration, sizeof duration, response->timeout_ms);
        set_failure(out, false, "HTTP request to %s timed out after %s", host, duration);
        return;
    }
    const char *text = response->curl_text;
    if (text == NULL || text[0] == '\0')
        text = curl_easy_strerror(response->code);
    set_failure(out, is_permanent_code(response->code), "HTTP request to %s failed: %s", host,
                text);
}

static void classify_success(cv_http_outcome *out, const cv_http_response *response,
                             const cv_json_limits *limits)
{
    if (response->body == NULL || response->body_length == 0)
        return;
    cv_error err;
    cv_status st = cv_json_parse(&out->output, response->body, response->body_length, limits,
                                 &err);
    if (st != CV_OK)
        set_failure(out, st != CV_ERR_NOMEM, "response body rejected: %s", err.text);
}

void cv_http_outcome_classify(cv_http_outcome *out, const cv_http_response *response,
                              const cv_json_limits *limits)
{
    memset(out, 0, sizeof *out);
    long status_class = response->status / 100;
    bool too_large = response->body_too_large || response->code == CURLE_FILESIZE_EXCEEDED;

    if (status_class == 4 || status_class == 5)
        classify_error_status(out, response);
    else if (status_class == 3 && response->code == CURLE_OK)
        classify_redirect(out, response);
    else if (too_large)
        set_failure(out, true, "HTTP %ld response body is larger than max_response (%zu bytes)",
                    response->status, response->max_response);
    else if (response->code != CURLE_OK)
        classify_transfer_error(out, response);
    else if (status_class == 2)
        classify_success(out, response, limits);
    else
        set_failure(out, true, "unexpected HTTP status %ld from %s", response->status,
                    response->host != NULL ? response->host : "the module");
}
