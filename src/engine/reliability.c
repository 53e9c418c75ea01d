#include "engine/reliability.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

int64_t cv_retry_delay_ms(const cv_retry *retry, int failed_attempt, double unit)
{
    double delay = (double)retry->backoff_ms;
    for (int n = 1; n < failed_attempt && delay < (double)retry->max_backoff_ms; n++)
        delay *= retry->factor;
    if (delay > (double)retry->max_backoff_ms)
        delay = (double)retry->max_backoff_ms;
    if (retry->jitter)
        delay *= 0.8 + 0.4 * unit;
    return (int64_t)llround(delay);
}

double cv_retry_random_unit(void)
{
    uint32_t bits = 0;
    if (getrandom(&bits, sizeof bits, 0) != (ssize_t)sizeof bits)
        return 0.5; /* no entropy: jitter matters little next to a working retry */
    return (double)bits / 4294967296.0;
}

int64_t cv_step_timeout_ms(const cv_step *step)
{
    return step->timeout_ms;
}

void cv_duration_format(int64_t ms, char *buf, size_t size)
{
    if (ms > 0 && ms % 60000 == 0)
        snprintf(buf, size, "%lldm", (long long)(ms / 60000));
    else if (ms > 0 && ms % 1000 == 0)
        snprintf(buf, size, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, size, "%lldms", (long long)ms);
}
