/* The engine's Lua sources, compiled into the binary by cmake/embed_lua.cmake. */
#ifndef CV_RULES_LUA_EMBEDDED_H
#define CV_RULES_LUA_EMBEDDED_H

#include <stddef.h>

typedef struct cv_lua_source {
    const char *name; /* file name under lua/ without ".lua" */
    const char *text;
    size_t length;
} cv_lua_source;

/* Terminated by an entry whose name is NULL. */
extern const cv_lua_source cv_lua_sources[];

#endif
