#include "core/failpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static const char *armed;

void cv_failpoint_init(void)
{
    const char *name = getenv("CONVEYOR_FAILPOINT");
    armed = name != NULL && name[0] != '\0' ? name : NULL;
    if (armed != NULL)
        CV_WARN("failpoint armed name=%s", armed);
}

void cv_failpoint(const char *name)
{
    if (armed == NULL || strcmp(armed, name) != 0)
        return;
    CV_WARN("failpoint reached name=%s", name);
    raise(SIGKILL);
}
