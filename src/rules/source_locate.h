/*
 * Best-effort source lines for faults inside a definition.
 *
 * Lua tables keep no source positions, so the loader finds a fault's line
 * by searching the file's text for the offending token, starting from a
 * place known to come before it (the line of the `process` call, then the
 * step's key). This is a plain text search: it can point at the wrong line
 * when the same token appears earlier, for example in a comment, in a
 * string, or in another key of the same step written before it.
 */
#ifndef CV_RULES_SOURCE_LOCATE_H
#define CV_RULES_SOURCE_LOCATE_H

#include <stdbool.h>
#include <stddef.h>

/* Marks a token that was not found. */
#define CV_SOURCE_NOT_FOUND ((size_t)-1)

/* A rules file's text, NUL-terminated, as it was loaded. */
typedef struct cv_source {
    char *path;
    char *text;
    size_t length;
    bool failed; /* running the file raised an error, so its declarations may be cut short */
} cv_source;

/* Returns the 1-based line of offset, or 0 for CV_SOURCE_NOT_FOUND. */
int cv_source_line(const cv_source *source, size_t offset);

/* Returns the offset where 1-based line starts (the end of the text past the last line). */
size_t cv_source_line_offset(const cv_source *source, int line);

/*
 * Finds, at or after from, the first place where key is written as a table
 * key: `key =` (key a whole word, `==` excluded) or `["key"] =` / `['key'] =`.
 */
size_t cv_source_find_key(const cv_source *source, size_t from, const char *key);

/* Finds, at or after from, the first `"value"` or `'value'`. */
size_t cv_source_find_string(const cv_source *source, size_t from, const char *value);

/* Finds, at or after from, the first `key = "value"` (either quote). */
size_t cv_source_find_assignment(const cv_source *source, size_t from, const char *key,
                                 const char *value);

#endif
