/*
 * Expanding and checking the placeholders of an HTTP module's url (see
 * url_template.h). A placeholder ends at the first '}' outside a quoted
 * bracket key, so `{request["a}b"]}` names the key a}b.
 */
#include "http/url_template.h"

#include <curl/curl.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/path.h"

/* A growing output string. */
typedef struct text_buffer {
    char *data;
    size_t length;
    size_t capacity;
    bool failed; /* an allocation failed; data is unusable */
} text_buffer;

static void buffer_append(text_buffer *buffer, const char *bytes, size_t count)
{
    if (buffer->failed)
        return;
    if (buffer->length + count + 1 > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 128;
        while (capacity < buffer->length + count + 1)
            capacity *= 2;
        char *grown = realloc(buffer->data, capacity);
        if (grown == NULL) {
            buffer->failed = true;
            return;
        }
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->length, bytes, count);
    buffer->length += count;
    buffer->data[buffer->length] = '\0';
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * A value of "." or ".." is a dot segment, which a client or server would
 * resolve against the path and so leave its segment; its dots are encoded too.
 */
static void append_encoded(text_buffer *buffer, const char *text, size_t length)
{
    static const char hex[] = "0123456789ABCDEF";
    bool dot_segment = (length == 1 && text[0] == '.') ||
                       (length == 2 && text[0] == '.' && text[1] == '.');
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_unreserved(c) && !dot_segment) {
            buffer_append(buffer, (const char *)&c, 1);
        } else {
            char escape[3] = {'%', hex[c >> 4], hex[c & 15]};
            buffer_append(buffer, escape, 3);
        }
    }
}

size_t cv_url_template_path_start(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    if (scheme_end == NULL)
        return 0;
    const char *authority = scheme_end + 3;
    return (size_t)(authority - url) + strcspn(authority, "/?#");
}

/*
 * Returns the offset of the '}' that closes the placeholder opened at open,
 * or 0 when the url ends first or another '{' opens inside it.
 */
static size_t placeholder_end(const char *url, size_t open)
{
    bool quoted = false;
    for (size_t i = open + 1; url[i] != '\0'; i++) {
        if (quoted && url[i] == '\\' && url[i + 1] != '\0') {
            i++;
        } else if (url[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && url[i] == '}') {
            return i;
        } else if (!quoted && url[i] == '{') {
            return 0;
        }
    }
    return 0;
}

static bool is_reserved_name(const char *name)
{
    return strcmp(name, "instance") == 0 || strcmp(name, "process") == 0 ||
           strcmp(name, "step") == 0;
}

/* Checks the placeholder url[open..close] and copies its name into a new string in *name. */
static cv_status read_placeholder(char **name, const char *url, size_t open, size_t close,
                                  cv_error *err)
{
    char *text = strndup(url + open + 1, close - open - 1);
    if (text == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory reading the url");
    if (text[0] == '\0') {
        free(text);
        return cv_error_set(err, CV_ERR_INVALID,
                            "url has an empty placeholder {} at position %zu", open);
    }
    if (!is_reserved_name(text)) {
        cv_path path = {0};
        cv_status st = cv_path_parse(&path, text, err);
        cv_path_free(&path);
        if (st != CV_OK) {
            cv_error_prefix(err, "url placeholder {%s}", text);
            free(text);
            return st;
        }
    }
    *name = text;
    return CV_OK;
}

/*
 * Parses url as libcurl will at run time, each placeholder standing for a
 * plain value. A url that could never be requested (a port over 65535, a
 * space, a missing host) is then a fault of the rules, not of every step.
 */
static cv_status check_with_curl(const char *url, cv_error *err)
{
    size_t length = strlen(url);
    char *sample = malloc(length + 1);
    if (sample == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory checking the url");
    size_t n = 0;
    for (size_t i = 0; i < length; i++) {
        size_t close = url[i] == '{' ? placeholder_end(url, i) : 0;
        sample[n++] = close > 0 ? 'x' : url[i];
        if (close > 0)
            i = close;
    }
    sample[n] = '\0';
    CURLU *parsed = curl_url();
    CURLUcode rc = parsed == NULL ? CURLUE_OUT_OF_MEMORY
                                  : curl_url_set(parsed, CURLUPART_URL, sample, 0);
    char *host = NULL;
    if (rc == CURLUE_OK)
        rc = curl_url_get(parsed, CURLUPART_HOST, &host, 0);
    curl_free(host);
    curl_url_cleanup(parsed);
    free(sample);
    if (rc != CURLUE_OK)
        return cv_error_set(err, CV_ERR_INVALID, "url is not valid: %s", curl_url_strerror(rc));
    return CV_OK;
}

cv_status cv_url_template_check(const char *url, cv_error *err)
{
    size_t path_start = cv_url_template_path_start(url);
    const char *early = memchr(url, '{', path_start);
    if (early != NULL)
        return cv_error_set(err, CV_ERR_INVALID,
                            "url has a placeholder before its path at position %zu; the scheme, "
                            "host and port must be written out",
                            (size_t)(early - url));

    for (size_t i = path_start; url[i] != '\0'; i++) {
        if (url[i] != '{')
            continue;
        size_t close = placeholder_end(url, i);
        if (close == 0)
            return cv_error_set(err, CV_ERR_INVALID,
                                "url has a '{' at position %zu that no '}' closes", i);
        char *name = NULL;
        cv_status st = read_placeholder(&name, url, i, close, err);
        free(name);
        if (st != CV_OK)
            return st;
        i = close;
    }
    return check_with_curl(url, err);
}

/* Writes the shortest decimal text that reads back as number into out. */
static void format_real(char *out, size_t size, double number)
{
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(out, size, "%.*g", precision, number);
        if (strtod(out, NULL) == number)
            return;
    }
}

/* Appends the encoded value of the field placeholder name to buffer. */
static cv_status append_field(text_buffer *buffer, const char *name, const json_t *data,
                              cv_error *err)
{
    cv_path path = {0};
    if (cv_path_parse(&path, name, err) != CV_OK)
        return cv_error_prefix(err, "url placeholder {%s}", name);
    const json_t *value = cv_path_lookup(&path, data);
    cv_path_free(&path);

    char number[64];
    if (value == NULL)
        return cv_error_set(err, CV_ERR_INVALID,
                            "url placeholder {%s}: the field is missing from the data", name);
    if (json_is_string(value)) {
        append_encoded(buffer, json_string_value(value), json_string_length(value));
        return CV_OK;
    }
    if (json_is_integer(value)) {
        snprintf(number, sizeof number, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    } else if (json_is_real(value)) {
        format_real(number, sizeof number, json_real_value(value));
    } else if (json_is_boolean(value)) {
        snprintf(number, sizeof number, "%s", json_is_true(value) ? "true" : "false");
    } else {
        const char *type = json_is_null(value) ? "null" : json_is_array(value) ? "an array"
                                                                               : "an object";
        return cv_error_set(err, CV_ERR_INVALID,
                            "url placeholder {%s}: the field is %s, but only a string, number or "
                            "boolean can go into a url",
                            name, type);
    }
    append_encoded(buffer, number, strlen(number));
    return CV_OK;
}

static cv_status append_placeholder(text_buffer *buffer, const char *name,
                                    const cv_url_values *values, cv_error *err)
{
    const char *fixed = NULL;
    if (strcmp(name, "instance") == 0)
        fixed = values->instance;
    else if (strcmp(name, "process") == 0)
        fixed = values->process;
    else if (strcmp(name, "step") == 0)
        fixed = values->step;
    else
        return append_field(buffer, name, values->data, err);
    append_encoded(buffer, fixed, strlen(fixed));
    return CV_OK;
}

cv_status cv_url_template_expand(char **out, const char *url, const cv_url_values *values,
                                 cv_error *err)
{
    text_buffer buffer = {0};
    cv_status st = CV_OK;
    size_t path_start = cv_url_template_path_start(url);

    /* The scheme, host and port are copied unchanged, because no placeholder is expanded there. */
    buffer_append(&buffer, url, path_start);
    size_t i = path_start;
    while (st == CV_OK && url[i] != '\0') {
        size_t literal = strcspn(url + i, "{");
        buffer_append(&buffer, url + i, literal);
        i += literal;
        if (url[i] == '\0')
            break;
        size_t close = placeholder_end(url, i);
        if (close == 0) {
            st = cv_error_set(err, CV_ERR_INVALID,
                              "url has a '{' at position %zu that no '}' closes", i);
            break;
        }
        char *name = NULL;
        st = read_placeholder(&name, url, i, close, err);
        if (st == CV_OK)
            st = append_placeholder(&buffer, name, values, err);
        free(name);
        i = close + 1;
    }
    if (st == CV_OK && buffer.failed)
        st = cv_error_set(err, CV_ERR_NOMEM, "out of memory expanding the url");
    if (st != CV_OK) {
        free(buffer.data);
        return st;
    }
    /* An empty url still gives a string the caller can free. */
    if (buffer.data == NULL)
        buffer.data = strdup("");
    if (buffer.data == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory expanding the url");
    *out = buffer.data;
    return CV_OK;
}
