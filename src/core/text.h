/* Small text checks and parsers shared by the rules loader and the CLI. */
#ifndef CV_CORE_TEXT_H
#define CV_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* True when s is a NATS subject token as conveyor names are: [A-Za-z0-9_-]+. */
bool cv_text_is_token(const char *s);

/*
 * Parses a duration such as "250ms", "30s", "5m", "2h" or a bare number of
 * seconds ("1.5") into milliseconds. Rejects negative, empty and unknown units.
 */
cv_status cv_text_parse_duration(const char *s, int64_t *out_ms, cv_error *err);

/* Parses a byte size such as "1048576", "512k", "1MiB" or "2m" into bytes. */
cv_status cv_text_parse_size(const char *s, size_t *out, cv_error *err);

/* Writes a fresh random base62 token of len characters plus a NUL into buf. */
void cv_text_random_token(char *buf, size_t len);

#endif
