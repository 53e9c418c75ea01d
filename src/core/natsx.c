#include "core/natsx.h"

#include <stdlib.h>
#include <string.h>

#define CV_MAX_URLS 32

natsStatus cv_nats_set_urls(natsOptions *options, const char *urls)
{
    if (strchr(urls, ',') == NULL)
        return natsOptions_SetURL(options, urls);

    char *copy = strdup(urls);
    if (copy == NULL)
        return NATS_NO_MEMORY;
    const char *list[CV_MAX_URLS];
    int count = 0;
    char *saved = NULL;
    for (char *part = strtok_r(copy, ",", &saved); part != NULL && count < CV_MAX_URLS;
         part = strtok_r(NULL, ",", &saved)) {
        while (*part == ' ')
            part++;
        size_t len = strlen(part);
        while (len > 0 && part[len - 1] == ' ')
            part[--len] = '\0';
        if (len > 0)
            list[count++] = part;
    }
    natsStatus s = count > 0 ? natsOptions_SetServers(options, list, count) : NATS_INVALID_ARG;
    free(copy);
    return s;
}

const char *cv_nats_failure_text(natsStatus s)
{
    natsStatus last = NATS_OK;
    const char *text = nats_GetLastError(&last);
    if (last != s || text == NULL || text[0] == '\0')
        return natsStatus_GetText(s);
    /* nats.c starts some texts with the "(file.c:123): " that set them. */
    const char *end = text[0] == '(' ? strstr(text, "): ") : NULL;
    return end != NULL ? end + 3 : text;
}
