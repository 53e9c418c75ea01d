/* Wall and monotonic clocks in milliseconds, and RFC 3339 formatting. */
#ifndef CV_CORE_CLOCK_H
#define CV_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch. */
int64_t cv_clock_wall_ms(void);

/* Milliseconds from an arbitrary start; never goes back. */
int64_t cv_clock_mono_ms(void);

/* Microseconds from an arbitrary start; never goes back. */
int64_t cv_clock_mono_us(void);

/* Writes "2026-12-04T19:51:35.123Z" for ms into buf (at least 25 bytes). */
void cv_clock_format_rfc3339(int64_t wall_ms, char *buf, size_t size);

#endif
