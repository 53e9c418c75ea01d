/*
 * Field paths into the data document: "get-bitrix-deal.value",
 * "request.items.0.sku", "request.items.-1", request["utm.source"].
 *
 * A numeric segment indexes an array from 0 (-1 is the last element); on an
 * object it is an ordinary key. A key in brackets is always a key, so
 * items["0"] does not index an array. A missing key, or indexing into
 * something that is not a container, yields NULL (absent), never an error.
 */
#ifndef CV_ENGINE_PATH_H
#define CV_ENGINE_PATH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

typedef struct cv_path_segment {
    char *key;       /* the segment as written, unquoted */
    bool is_index;   /* key is a (possibly negative) integer */
    long long index; /* valid when is_index */
} cv_path_segment;

typedef struct cv_path {
    char *text; /* the path as written in the rules, for messages */
    size_t count;
    cv_path_segment *segments;
} cv_path;

/* Parses text into out. On failure out is untouched and err names the fault. */
cv_status cv_path_parse(cv_path *out, const char *text, cv_error *err);

/* Frees what cv_path_parse allocated; safe on a zeroed path. */
void cv_path_free(cv_path *path);

/* Looks path up in root. Returns a borrowed reference, or NULL when absent. */
json_t *cv_path_lookup(const cv_path *path, const json_t *root);

/*
 * Copies the value at path from src into dst (an object), creating the
 * intermediate objects, so that dst holds only the selected parts of src.
 * Array elements selected by index are stored under their index as a key.
 * Does nothing when the value is absent.
 */
cv_status cv_path_copy_into(const cv_path *path, const json_t *src, json_t *dst, cv_error *err);

#endif
