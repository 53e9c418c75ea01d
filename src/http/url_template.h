/*
 * URL templates of HTTP modules. `{instance}`, `{process}`, `{step}` and
 * `{field.path}` (a path into the instance's data document) in the path and
 * query of a module's url are replaced by percent-encoded values. Only the
 * RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) are kept as they are.
 *
 * The scheme, host and port come only from the rules: a placeholder before
 * the path starts is refused when the rules are loaded, so data can never
 * choose where a request goes.
 */
#ifndef CV_HTTP_URL_TEMPLATE_H
#define CV_HTTP_URL_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "core/status.h"

/* What the placeholders of one request are replaced with; all borrowed. */
typedef struct cv_url_values {
    const char *instance;
    const char *process;
    const char *step;
    const json_t *data; /* the instance's data document */
} cv_url_values;

/*
 * Returns the offset in url where its path starts: the end of
 * "scheme://authority". Returns 0 when url has no "://".
 */
size_t cv_url_template_path_start(const char *url);

/*
 * Checks a url from the rules: no '{' in the scheme, host or port, every
 * '{' closed by a '}', and every placeholder a valid field path. err names
 * the first fault.
 */
cv_status cv_url_template_check(const char *url, cv_error *err);

/*
 * Expands the placeholders of url with values. A string field goes in as
 * it is, a number as its shortest decimal text (7.0 gives 7), a boolean as
 * true or false. A placeholder for a field that is missing, null, an object
 * or an array fails with CV_ERR_INVALID and a message naming it. On success *out receives a new malloc'd string
 * that the caller frees.
 */
cv_status cv_url_template_expand(char **out, const char *url, const cv_url_values *values,
                                 cv_error *err);

#endif
