/*
 * Field paths: parsing the text written in the rules once, at load time,
 * into segments, so that a lookup at run time is a chain of hash lookups and
 * array indexing with no allocation and no re-parsing.
 *
 * Grammar: a path is a first key followed by `.key` or `["quoted key"]`
 * parts; the first key may itself be bracketed. Inside brackets, `\"` and
 * `\\` are the only escapes. Bare keys end at '.' or '['.
 */
#include "engine/path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Parser state: the text being parsed and the segments found so far. */
typedef struct parser {
    const char *text;
    size_t pos;
    size_t count;
    cv_path_segment *segments;
    cv_error *err;
} parser;

static cv_status parse_error(parser *p, size_t pos, const char *what)
{
    return cv_error_set(p->err, CV_ERR_INVALID, "invalid path \"%s\": %s at position %zu",
                        p->text, what, pos + 1);
}

/* Marks key as an array index when it is an optional '-' and digits that fit a long long. */
static void classify_index(cv_path_segment *segment)
{
    const char *s = segment->key;
    const char *digits = (*s == '-') ? s + 1 : s;

    if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits))
        return;
    errno = 0;
    long long index = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return; /* No array is that long, and on an object the key still works. */
    segment->is_index = true;
    segment->index = index;
}

static cv_status parse_bare_key(parser *p, char **out)
{
    size_t start = p->pos;
    size_t len = strcspn(p->text + start, ".[");

    if (len == 0)
        return parse_error(p, start, "empty key");
    char *key = strndup(p->text + start, len);
    if (key == NULL)
        return cv_error_set(p->err, CV_ERR_NOMEM, "out of memory parsing path \"%s\"", p->text);
    p->pos = start + len;
    *out = key;
    return CV_OK;
}

/* Parses ["..."] starting at the '[', and leaves pos after the ']'. */
static cv_status parse_bracket_key(parser *p, char **out)
{
    size_t open = p->pos;
    const char *s = p->text + open + 1;

    if (*s != '"')
        return parse_error(p, open + 1, "expected '\"' after '['");
    s++;
    /* The unescaped key is never longer than the rest of the text. */
    char *key = malloc(strlen(s) + 1);
    if (key == NULL)
        return cv_error_set(p->err, CV_ERR_NOMEM, "out of memory parsing path \"%s\"", p->text);

    size_t len = 0;
    while (*s != '"') {
        if (*s == '\0') {
            free(key);
            return parse_error(p, open, "unterminated string in brackets");
        }
        if (*s == '\\') {
            s++;
            if (*s != '"' && *s != '\\') {
                free(key);
                return parse_error(p, (size_t)(s - p->text),
                                   "unknown escape (only \\\" and \\\\ are allowed)");
            }
        }
        key[len++] = *s;
        s++;
    }
    key[len] = '\0';
    s++; /* the closing quote */
    if (*s != ']') {
        free(key);
        return parse_error(p, (size_t)(s - p->text),
                           *s == '\0' ? "unterminated bracket" : "expected ']' after the key");
    }
    p->pos = (size_t)(s + 1 - p->text);
    *out = key;
    return CV_OK;
}

/* Parses one segment at pos. after_dot: a '.' came just before, so a key must follow. */
static cv_status parse_segment(parser *p, bool after_dot)
{
    cv_path_segment *segment = &p->segments[p->count];
    cv_status status;

    if (p->text[p->pos] == '[') {
        if (after_dot)
            return parse_error(p, p->pos, "empty key");
        /* A quoted key is taken literally, so ["0"] is never an array index. */
        status = parse_bracket_key(p, &segment->key);
    } else {
        status = parse_bare_key(p, &segment->key);
        if (status == CV_OK)
            classify_index(segment);
    }
    if (status == CV_OK)
        p->count++;
    return status;
}

static cv_status parse_segments(parser *p)
{
    bool after_dot = false;

    for (;;) {
        cv_status status = parse_segment(p, after_dot);
        if (status != CV_OK)
            return status;

        char c = p->text[p->pos];
        if (c == '\0')
            return CV_OK;
        after_dot = (c == '.');
        if (after_dot)
            p->pos++;
        else if (c != '[')
            return parse_error(p, p->pos, "unexpected character after ']'");
    }
}

static void free_segments(cv_path_segment *segments, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(segments[i].key);
    free(segments);
}

cv_status cv_path_parse(cv_path *out, const char *text, cv_error *err)
{
    if (text == NULL || *text == '\0')
        return cv_error_set(err, CV_ERR_INVALID, "invalid path \"\": the path is empty");

    /* Each segment but the first starts at a '.' or a '[', which bounds the count. */
    size_t max_segments = 1;
    for (const char *s = text; *s != '\0'; s++)
        max_segments += (*s == '.' || *s == '[');

    parser p = {.text = text, .err = err};
    p.segments = calloc(max_segments, sizeof *p.segments);
    char *copy = strdup(text);
    cv_status status = CV_OK;
    if (p.segments == NULL || copy == NULL)
        status = cv_error_set(err, CV_ERR_NOMEM, "out of memory parsing path \"%s\"", text);
    if (status == CV_OK)
        status = parse_segments(&p);
    if (status != CV_OK) {
        free_segments(p.segments, p.count);
        free(copy);
        return status;
    }
    out->text = copy;
    out->count = p.count;
    out->segments = p.segments;
    return CV_OK;
}

void cv_path_free(cv_path *path)
{
    if (path == NULL)
        return;
    free_segments(path->segments, path->count);
    free(path->text);
    path->text = NULL;
    path->count = 0;
    path->segments = NULL;
}

static json_t *step_into(const json_t *container, const cv_path_segment *segment)
{
    if (json_is_object(container))
        return json_object_get(container, segment->key);
    if (!json_is_array(container) || !segment->is_index)
        return NULL;

    long long size = (long long)json_array_size(container);
    long long index = segment->index < 0 ? size + segment->index : segment->index;
    if (index < 0 || index >= size)
        return NULL;
    return json_array_get(container, (size_t)index);
}

json_t *cv_path_lookup(const cv_path *path, const json_t *root)
{
    json_t *current = (json_t *)root;

    for (size_t i = 0; i < path->count && current != NULL; i++)
        current = step_into(current, &path->segments[i]);
    return current;
}

/*
 * Returns the object under key in parent, adding an empty one when there is
 * none. Sets *complete when parent already contains a whole non-object
 * value there, because an earlier copy of a shorter path took all of it.
 */
static cv_status child_object(json_t *parent, const char *key, json_t **out, bool *complete)
{
    json_t *child = json_object_get(parent, key);

    *complete = false;
    if (json_is_object(child)) {
        *out = child;
        return CV_OK;
    }
    if (child != NULL) {
        *complete = true;
        return CV_OK;
    }
    child = json_object();
    if (child == NULL || json_object_set_new(parent, key, child) != 0)
        return CV_ERR_NOMEM;
    *out = child;
    return CV_OK;
}

cv_status cv_path_copy_into(const cv_path *path, const json_t *src, json_t *dst, cv_error *err)
{
    if (!json_is_object(dst))
        return cv_error_set(err, CV_ERR_INVALID, "copying path \"%s\": the target is not an object",
                            path->text ? path->text : "");
    const json_t *value = cv_path_lookup(path, src);
    if (value == NULL || path->count == 0)
        return CV_OK;

    /* Keys are the segments as written, so the same path finds the value in dst. */
    json_t *parent = dst;
    for (size_t i = 0; i + 1 < path->count; i++) {
        bool complete;
        if (child_object(parent, path->segments[i].key, &parent, &complete) != CV_OK)
            return cv_error_set(err, CV_ERR_NOMEM, "out of memory copying path \"%s\"", path->text);
        if (complete)
            return CV_OK;
    }

    json_t *copy = json_deep_copy(value);
    if (copy == NULL || json_object_set_new(parent, path->segments[path->count - 1].key, copy) != 0)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory copying path \"%s\"", path->text);
    return CV_OK;
}
