/*
 * A compact JSON serialiser for jansson values, for the node's hot paths
 * (dispatch bodies, events, stored instance documents). Its output is the
 * same bytes as jansson 2.14's
 * json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER),
 * which tests/unit/test_json_write.c checks on fixed and random documents.
 */
#ifndef CV_CORE_JSON_WRITE_H
#define CV_CORE_JSON_WRITE_H

#include <jansson.h>
#include <stddef.h>

/*
 * Serialises value (borrowed) into a new malloc'd, NUL-terminated string
 * that the caller frees, and stores its length without the NUL in *length
 * when length is not NULL. Object keys keep jansson's insertion order.
 *
 * Returns NULL, as json_dumps does, when value is NULL, when memory runs
 * out, when a string value is not valid UTF-8 (only the _nocheck setters
 * of jansson can store one), or when a container is nested inside itself.
 * An object key that is not valid UTF-8 gives jansson's truncated, invalid
 * text for that key instead of NULL (see write_string in json_write.c).
 * *length is set only on success.
 */
char *cv_json_write(size_t *length, const json_t *value);

#endif
