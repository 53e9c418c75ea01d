/*
 * Text search behind the best-effort line numbers of rules diagnostics.
 * See source_locate.h for why it is a search and where it can be wrong.
 */
#include "rules/source_locate.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

static bool is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static size_t skip_spaces(const cv_source *source, size_t at)
{
    while (at < source->length && (source->text[at] == ' ' || source->text[at] == '\t'))
        at++;
    return at;
}

/* True when an `=` that is not `==` follows at (after spaces). */
static bool assignment_follows(const cv_source *source, size_t at)
{
    at = skip_spaces(source, at);
    return at < source->length && source->text[at] == '=' &&
           (at + 1 >= source->length || source->text[at + 1] != '=');
}

int cv_source_line(const cv_source *source, size_t offset)
{
    if (offset == CV_SOURCE_NOT_FOUND || offset > source->length)
        return 0;
    int line = 1;
    for (const char *p = source->text; p < source->text + offset; p++) {
        if (*p == '\n')
            line++;
    }
    return line;
}

size_t cv_source_line_offset(const cv_source *source, int line)
{
    size_t at = 0;
    for (int current = 1; current < line && at < source->length; at++) {
        if (source->text[at] == '\n')
            current++;
    }
    return at;
}

static size_t find_text(const cv_source *source, size_t from, const char *needle)
{
    if (from >= source->length)
        return CV_SOURCE_NOT_FOUND;
    const char *hit = strstr(source->text + from, needle);
    return hit ? (size_t)(hit - source->text) : CV_SOURCE_NOT_FOUND;
}

/* `key =` with key a whole word that is not a field access (`a.key`). */
static size_t find_bare_key(const cv_source *source, size_t from, const char *key)
{
    size_t len = strlen(key);
    for (size_t at = find_text(source, from, key); at != CV_SOURCE_NOT_FOUND;
         at = find_text(source, at + 1, key)) {
        char before = at > 0 ? source->text[at - 1] : ' ';
        char after = source->text[at + len];
        if (!is_word_char(before) && before != '.' && before != '"' && before != '\'' &&
            !is_word_char(after) && assignment_follows(source, at + len))
            return at;
    }
    return CV_SOURCE_NOT_FOUND;
}

/* `["key"] =` or `['key'] =`, spaces allowed inside the brackets. */
static size_t find_bracket_key(const cv_source *source, size_t from, const char *key)
{
    size_t len = strlen(key);
    for (size_t at = find_text(source, from, key); at != CV_SOURCE_NOT_FOUND;
         at = find_text(source, at + 1, key)) {
        if (at < 2)
            continue;
        char open = source->text[at - 1];
        if ((open != '"' && open != '\'') || source->text[at + len] != open)
            continue;
        size_t before = at - 2;
        while (before > 0 && (source->text[before] == ' ' || source->text[before] == '\t'))
            before--;
        size_t after = skip_spaces(source, at + len + 1);
        if (source->text[before] == '[' && after < source->length && source->text[after] == ']' &&
            assignment_follows(source, after + 1))
            return before;
    }
    return CV_SOURCE_NOT_FOUND;
}

static size_t earlier(size_t a, size_t b)
{
    return a < b ? a : b;
}

size_t cv_source_find_key(const cv_source *source, size_t from, const char *key)
{
    if (key == NULL || *key == '\0')
        return CV_SOURCE_NOT_FOUND;
    return earlier(find_bare_key(source, from, key), find_bracket_key(source, from, key));
}

size_t cv_source_find_string(const cv_source *source, size_t from, const char *value)
{
    size_t len = strlen(value);
    for (size_t at = find_text(source, from, value); at != CV_SOURCE_NOT_FOUND;
         at = find_text(source, at + 1, value)) {
        if (at == 0)
            continue;
        char open = source->text[at - 1];
        if ((open == '"' || open == '\'') && source->text[at + len] == open)
            return at - 1;
    }
    return CV_SOURCE_NOT_FOUND;
}

size_t cv_source_find_assignment(const cv_source *source, size_t from, const char *key,
                                 const char *value)
{
    for (size_t at = cv_source_find_key(source, from, key); at != CV_SOURCE_NOT_FOUND;
         at = cv_source_find_key(source, at + 1, key)) {
        size_t eq = find_text(source, at, "=");
        if (eq == CV_SOURCE_NOT_FOUND)
            break;
        size_t start = skip_spaces(source, eq + 1);
        size_t quoted = cv_source_find_string(source, start, value);
        if (quoted == start)
            return at;
    }
    return CV_SOURCE_NOT_FOUND;
}
