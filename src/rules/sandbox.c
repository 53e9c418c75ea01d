/*
 * The rules sandbox: state set-up, the budgets and protected calls.
 *
 * The allocator counts every byte the state holds. During a call it refuses
 * growth beyond the bytes held at the start of the call plus the memory
 * budget, which Lua reports as a memory error. A count hook adds up the
 * instructions of every thread. Once the budget is spent, the hook raises an
 * error at every further instruction of whichever thread runs, so a rule
 * cannot swallow the error with pcall and carry on.
 *
 * Globals: the real globals table of the state (with `debug`, for engine
 * chunks only) is never reachable from rules. Rules see a separate table G
 * of allow-listed functions and read-only library proxies. Each file's
 * environment is an empty proxy: reads go to the file's own globals, then
 * to G, and writes go to the file's own globals until the sandbox is
 * frozen.
 */
#include "rules/sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "rules/luajson.h"

/* Instructions between two runs of the count hook, when the budget is larger. */
#define HOOK_INTERVAL 1000

struct cv_sandbox {
    lua_State *L;
    size_t used;          /* bytes allocated by the state now */
    size_t memory_limit;  /* refuse growth beyond this during a call; 0: no limit */
    size_t memory_budget;
    bool memory_refused;  /* the allocator refused growth during the current call */
    long long instruction_budget;
    long long instructions; /* run during the current call, in hook intervals */
    int hook_interval;
    bool aborted;         /* the instruction budget ran out during the current call */
    int depth;            /* calls in progress; budgets apply from the outermost */
    bool frozen;
    char instruction_message[96];
};

/* Registry keys; their addresses are the keys. */
static const char globals_key = 0;   /* G: what rules see as globals */
static const char protected_key = 0; /* weak set of read-only proxies */
static const char view_key = 0;      /* read-only view of G, the default env of load */

static cv_sandbox *sandbox_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---- budgets ---- */

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    cv_sandbox *sb = ud;
    size_t old = ptr != NULL ? osize : 0;

    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    /* The Lua 5.4 manual (lua_Alloc) lets Lua assume that shrinking never fails. */
    if (nsize > old && sb->memory_limit != 0 && sb->used - old + nsize > sb->memory_limit) {
        sb->memory_refused = true;
        return NULL;
    }
    void *grown = realloc(ptr, nsize);
    if (grown == NULL)
        return NULL;
    sb->used = sb->used - old + nsize;
    return grown;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    cv_sandbox *sb = sandbox_of(L);
    if (sb->depth == 0)
        return;
    if (!sb->aborted) {
        int interval = lua_gethookcount(L);
        sb->instructions += interval;
        if (sb->instructions <= sb->instruction_budget) {
            /* A thread left over from an aborted call still fires at every instruction. */
            if (interval != sb->hook_interval)
                lua_sethook(L, count_hook, LUA_MASKCOUNT, sb->hook_interval);
            return;
        }
        sb->aborted = true;
    }
    /* From now on every instruction of this thread fails, even under pcall. */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: %s", ar->short_src, ar->currentline, sb->instruction_message);
    lua_error(L);
}

/*
 * Charges one hook interval for every coroutine created. A new thread's
 * hook count starts afresh, so up to an interval of each coroutine's
 * instructions would otherwise go uncounted, and a loop of short
 * coroutines could run far past the budget.
 */
static int charged_coroutine(lua_State *L)
{
    cv_sandbox *sb = sandbox_of(L);
    if (sb->depth > 0) {
        sb->instructions += sb->hook_interval;
        if (sb->instructions > sb->instruction_budget) {
            sb->aborted = true;
            lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
            return luaL_error(L, "%s", sb->instruction_message);
        }
    }
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L);
}

static void start_budgets(cv_sandbox *sb)
{
    sb->instructions = 0;
    sb->aborted = false;
    sb->memory_refused = false;
    sb->memory_limit = sb->used + sb->memory_budget;
    if (sb->memory_limit < sb->used)
        sb->memory_limit = SIZE_MAX;
}

static void stop_budgets(cv_sandbox *sb)
{
    sb->memory_limit = 0;
    if (sb->aborted)
        lua_sethook(sb->L, count_hook, LUA_MASKCOUNT, sb->hook_interval);
}

/* ---- functions rules see in place of the standard ones ---- */

static bool is_protected(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
    lua_pushvalue(L, idx);
    bool found = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
}

static void mark_protected(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/*
 * setmetatable without __gc: Lua 5.4 turns hooks off while finalizers run
 * (GCTM in lgc.c), so no budget could stop one.
 */
static int sandbox_setmetatable(lua_State *L)
{
    int type = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, type == LUA_TNIL || type == LUA_TTABLE, 2, "nil or table");
    if (type == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_argerror(L, 2, "__gc metamethods are not allowed in rules");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* rawset that cannot write into the read-only proxies. */
static int sandbox_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_protected(L, 1))
        return luaL_argerror(L, 1, "the table is read-only");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* load for text chunks only; upvalues: the real load, the default environment. */
static int sandbox_load(lua_State *L)
{
    int type = lua_type(L, 1);
    bool has_env = !lua_isnone(L, 4);
    luaL_argexpected(L, type == LUA_TSTRING || type == LUA_TFUNCTION, 1, "string or function");
    luaL_optstring(L, 2, NULL);
    lua_settop(L, 4);

    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "t");
    lua_pushvalue(L, has_env ? 4 : lua_upvalueindex(2));
    lua_call(L, 4, 2);
    return 2;
}

/* print writes to the log at debug level, and only formats when that level is on. */
static int sandbox_print(lua_State *L)
{
    if (cv_log_threshold > CV_LOG_DEBUG)
        return 0;
    int n = lua_gettop(L);
    luaL_Buffer buffer;
    luaL_buffinit(L, &buffer);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&buffer, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&buffer);
    }
    luaL_pushresult(&buffer);
    CV_DEBUG("rule printed text=\"%s\"", lua_tostring(L, -1));
    return 0;
}

/* __newindex of library proxies and of the view of G; upvalue: the table's name. */
static int readonly_newindex(lua_State *L)
{
    const char *name = lua_tostring(L, lua_upvalueindex(1));
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "cannot assign to '%s.%s': %s is read-only in rules", name,
                          lua_tostring(L, 2), name);
    return luaL_error(L, "cannot assign to a field of '%s': %s is read-only in rules", name, name);
}

/* __newindex of a file environment; upvalue: the file's own globals. */
static int global_newindex(lua_State *L)
{
    if (!sandbox_of(L)->frozen) {
        lua_settop(L, 3);
        lua_rawset(L, lua_upvalueindex(1));
        return 0;
    }
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L,
                          "cannot assign to global '%s': globals are read-only once the rules "
                          "are loaded (use a local variable)",
                          lua_tostring(L, 2));
    return luaL_error(L, "cannot assign to a global: globals are read-only once the rules are "
                         "loaded (use a local variable)");
}

/* Iterator of proxy_pairs; upvalue: the table the proxy stands for. */
static int proxy_next(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    if (lua_next(L, 3) == 0) {
        lua_pushnil(L);
        return 1;
    }
    return 2;
}

/*
 * __pairs of a proxy; upvalue: the table it stands for. The iterator keeps
 * that table in an upvalue, because handing it out as the state of a
 * generic for would let rules write to it with rawset.
 */
static int proxy_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, proxy_next, 1);
    lua_pushnil(L);
    lua_pushnil(L);
    return 3;
}

/*
 * Pushes an empty proxy table whose reads go to the table at target and
 * whose writes call newindex (with upvalue at newindex_upvalue).
 */
static void push_proxy(lua_State *L, int target, lua_CFunction newindex, int newindex_upvalue)
{
    target = lua_absindex(L, target);
    newindex_upvalue = lua_absindex(L, newindex_upvalue);
    lua_newtable(L);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, target);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, newindex_upvalue);
    lua_pushcclosure(L, newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, target);
    lua_pushcclosure(L, proxy_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    /* getmetatable returns false, and setmetatable refuses to replace it. */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    mark_protected(L, -1);
}

/* Pushes a read-only proxy of the table at idx, named name in messages. */
static void push_readonly(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, name);
    push_proxy(L, idx, readonly_newindex, -1);
    lua_remove(L, -2);
}

/* ---- setting the state up ---- */

static const luaL_Reg opened_libraries[] = {
    {LUA_GNAME, luaopen_base},         {LUA_STRLIBNAME, luaopen_string},
    {LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
    {LUA_UTF8LIBNAME, luaopen_utf8},   {LUA_COLIBNAME, luaopen_coroutine},
    {LUA_OSLIBNAME, luaopen_os},       {LUA_DBLIBNAME, luaopen_debug},
    {NULL, NULL},
};

static const char *const base_functions[] = {
    "assert", "error",  "getmetatable", "ipairs", "next",     "pairs",    "pcall", "rawequal",
    "rawget", "rawlen", "select",       "tonumber", "tostring", "type",   "xpcall", "_VERSION",
    NULL,
};

static const char *const shared_libraries[] = {
    LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME, NULL,
};

static const char *const os_functions[] = {"time", "clock", "date", NULL};

/* Adds the allow-listed base functions and the safe replacements to G (on top). */
static void add_base_functions(lua_State *L)
{
    for (const char *const *name = base_functions; *name != NULL; name++) {
        lua_getglobal(L, *name);
        lua_setfield(L, -2, *name);
    }
    lua_pushcfunction(L, sandbox_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, sandbox_rawset);
    lua_setfield(L, -2, "rawset");
    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, -2, "print");
}

/*
 * Adds read-only proxies of the libraries to G (on top).
 * NOTE: the count hook sees Lua instructions only, so time spent inside one
 * C function is not budgeted. A backtracking pattern such as
 * s:find(".-.-.-b") on a long string can keep string.find busy for minutes
 * (2.7 s for 300 characters, measured with lua5.4 on the development
 * machine) and holds the worker thread meanwhile.
 */
static void add_libraries(lua_State *L)
{
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    for (const char *const *name = shared_libraries; *name != NULL; name++) {
        lua_getglobal(L, *name);
        push_readonly(L, -1, *name);
        lua_setfield(L, -3, *name);
        lua_pop(L, 1);
    }

    /* coroutine, with create and wrap charged against the instruction budget. */
    lua_newtable(L);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -5);
    }
    static const char *const charged[] = {"create", "wrap", NULL};
    for (const char *const *name = charged; *name != NULL; name++) {
        lua_getfield(L, -1, *name);
        lua_pushcclosure(L, charged_coroutine, 1);
        lua_setfield(L, -3, *name);
    }
    lua_pop(L, 1);
    push_readonly(L, -1, LUA_COLIBNAME);
    lua_setfield(L, -3, LUA_COLIBNAME);
    lua_pop(L, 1);

    lua_createtable(L, 0, 3);
    lua_getglobal(L, LUA_OSLIBNAME);
    for (const char *const *name = os_functions; *name != NULL; name++) {
        lua_getfield(L, -1, *name);
        lua_setfield(L, -3, *name);
    }
    lua_pop(L, 1);
    push_readonly(L, -1, LUA_OSLIBNAME);
    lua_setfield(L, -3, LUA_OSLIBNAME);
    lua_pop(L, 1);

    /* The string metatable's __index is the real string table: hide it. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

static int setup_state(lua_State *L)
{
    for (const luaL_Reg *lib = opened_libraries; lib->func != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    cv_luajson_init(L);

    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_pushvalue(L, -1);
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &protected_key);

    lua_newtable(L); /* G */
    add_base_functions(L);
    add_libraries(L);
    cv_luajson_push_null(L);
    lua_setfield(L, -2, "null");

    push_readonly(L, -1, "_G");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &view_key);
    lua_getglobal(L, "load");
    lua_insert(L, -2);
    lua_pushcclosure(L, sandbox_load, 2);
    lua_setfield(L, -2, "load");

    lua_rawsetp(L, LUA_REGISTRYINDEX, &globals_key);
    return 0;
}

cv_status cv_sandbox_create(cv_sandbox **out, long long instruction_budget, size_t memory_budget,
                            cv_error *err)
{
    cv_sandbox *sb = calloc(1, sizeof *sb);
    if (sb == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the Lua sandbox");
    sb->instruction_budget = instruction_budget > 0 ? instruction_budget
                                                    : CV_SANDBOX_DEFAULT_INSTRUCTIONS;
    sb->memory_budget = memory_budget > 0 ? memory_budget : CV_SANDBOX_DEFAULT_MEMORY;
    sb->hook_interval = sb->instruction_budget < HOOK_INTERVAL ? (int)sb->instruction_budget
                                                                : HOOK_INTERVAL;
    snprintf(sb->instruction_message, sizeof sb->instruction_message,
             "rule exceeded its instruction budget of %lld instructions", sb->instruction_budget);

    sb->L = lua_newstate(budget_alloc, sb);
    if (sb->L == NULL) {
        free(sb);
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the Lua state");
    }
    lua_pushcfunction(sb->L, setup_state);
    if (lua_pcall(sb->L, 0, 0, 0) != LUA_OK) {
        cv_sandbox_destroy(sb);
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory setting up the Lua sandbox");
    }
    lua_sethook(sb->L, count_hook, LUA_MASKCOUNT, sb->hook_interval);
    *out = sb;
    return CV_OK;
}

void cv_sandbox_destroy(cv_sandbox *sandbox)
{
    if (sandbox == NULL)
        return;
    lua_close(sandbox->L);
    free(sandbox);
}

lua_State *cv_sandbox_state(cv_sandbox *sandbox)
{
    return sandbox->L;
}

void cv_sandbox_seal(cv_sandbox *sandbox)
{
    lua_State *L = sandbox->L;
    lua_pushnil(L);
    lua_setglobal(L, LUA_DBLIBNAME);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, LUA_DBLIBNAME);
    lua_pop(L, 1);
}

void cv_sandbox_freeze(cv_sandbox *sandbox)
{
    sandbox->frozen = true;
}

/* ---- protected calls ---- */

typedef struct call_frame {
    cv_sandbox *sandbox;
    cv_sandbox_push_fn push;
    void *context;
    int nresults;
} call_frame;

static int protected_call(lua_State *L)
{
    call_frame *frame = lua_touserdata(L, 1);
    lua_pop(L, 1);
    int nargs = frame->push(L, frame->context);
    if (frame->sandbox->depth == 1)
        start_budgets(frame->sandbox);
    lua_call(L, nargs, frame->nresults);
    return lua_gettop(L);
}

/*
 * Lua shortens a long chunk name in the "file:line:" it puts before an
 * error ("...end/of/path.lua:3:"); the frame that raised it still knows the
 * whole path, so the message names that again.
 */
static const char *with_full_path(lua_State *L, const char *message)
{
    lua_Debug ar;
    /* The raising frame sits below this handler and any C function such as error(). */
    for (int level = 1; level <= 4 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "S", &ar) || ar.source[0] != '@')
            continue;
        size_t short_len = strlen(ar.short_src);
        if (strcmp(ar.short_src, ar.source + 1) == 0 ||
            strncmp(message, ar.short_src, short_len) != 0 || message[short_len] != ':')
            return message;
        return lua_pushfstring(L, "%s%s", ar.source + 1, message + short_len);
    }
    return message;
}

static int message_handler(lua_State *L)
{
    const char *message = lua_tostring(L, 1);
    if (message == NULL)
        message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    else
        message = with_full_path(L, message);
    luaL_traceback(L, L, message, 1);
    return 1;
}

/* Logs a failed call's traceback on one line, its frames separated by " <- ". */
static void log_traceback(const char *message, int length, const char *traceback)
{
    char line[2048];
    size_t n = 0;
    for (const char *p = traceback; *p != '\0' && n + 5 < sizeof line; p++) {
        if (*p == '\n') {
            memcpy(line + n, " <- ", 4);
            n += 4;
        } else if (*p != '\t') {
            line[n++] = *p;
        }
    }
    line[n] = '\0';
    CV_DEBUG("rule failed error=\"%.*s\" traceback=\"%s\"", length, message, line);
}

static cv_status describe_failure(cv_sandbox *sb, int rc, bool aborted, bool refused,
                                  cv_error *err)
{
    lua_State *L = sb->L;
    const char *text = lua_tostring(L, -1);
    if (text == NULL)
        text = "(error object is not a string)";
    const char *traceback = strstr(text, "\nstack traceback:\n");
    int length = traceback ? (int)(traceback - text) : (int)strlen(text);
    if (traceback != NULL && cv_log_threshold <= CV_LOG_DEBUG)
        log_traceback(text, length, traceback + strlen("\nstack traceback:\n"));

    if (aborted) {
        /* A rule may have replaced the error on its way out; the budget is what failed. */
        const char *found = strstr(text, sb->instruction_message);
        if (found != NULL && found < text + length)
            return cv_error_set(err, CV_ERR_LIMIT, "%.*s", length, text);
        return cv_error_set(err, CV_ERR_LIMIT, "%s", sb->instruction_message);
    }
    if (refused && (rc == LUA_ERRMEM || strstr(text, "not enough memory") != NULL)) {
        if (sb->memory_budget % (1024 * 1024) == 0)
            return cv_error_set(err, CV_ERR_LIMIT, "rule exceeded its memory budget of %zu MiB",
                                sb->memory_budget / (1024 * 1024));
        return cv_error_set(err, CV_ERR_LIMIT, "rule exceeded its memory budget of %zu bytes",
                            sb->memory_budget);
    }
    if (rc == LUA_ERRMEM)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory running a rule");
    return cv_error_set(err, CV_ERR_SCRIPT, "%.*s", length, text);
}

cv_status cv_sandbox_call(cv_sandbox *sandbox, cv_sandbox_push_fn push, void *context,
                          int nresults, cv_error *err)
{
    lua_State *L = sandbox->L;
    call_frame frame = {sandbox, push, context, nresults};
    int top = lua_gettop(L);

    if (!lua_checkstack(L, 3))
        return cv_error_set(err, CV_ERR_NOMEM, "out of Lua stack calling a rule");
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, protected_call);
    lua_pushlightuserdata(L, &frame);
    sandbox->depth++;
    int rc = lua_pcall(L, 1, nresults, top + 1);
    sandbox->depth--;

    bool aborted = sandbox->aborted;
    bool refused = sandbox->memory_refused;
    if (sandbox->depth == 0)
        stop_budgets(sandbox);
    if (rc == LUA_OK) {
        lua_remove(L, top + 1);
        return CV_OK;
    }
    cv_status status = describe_failure(sandbox, rc, aborted, refused, err);
    lua_settop(L, top);
    if (sandbox->depth == 0 && (aborted || refused))
        lua_gc(L, LUA_GCCOLLECT); /* give back what the failed call left behind */
    return status;
}

/* ---- running chunks ---- */

typedef struct chunk {
    cv_sandbox *sandbox;
    const char *name; /* chunk name, "@path" or "=name" */
    const char *text;
    size_t length;
    bool engine;
} chunk;

/* Pushes a new environment for one rules file: see the file comment. */
static void push_file_environment(lua_State *L)
{
    lua_newtable(L); /* the file's own globals */
    lua_createtable(L, 0, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &globals_key);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);

    push_proxy(L, -1, global_newindex, -1);
    lua_pushliteral(L, "_G");
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
    lua_remove(L, -2);
}

static int push_chunk(lua_State *L, void *context)
{
    chunk *c = context;
    if (luaL_loadbufferx(L, c->text, c->length, c->name, "t") != LUA_OK)
        lua_error(L);
    if (c->engine) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &globals_key);
        return 1;
    }
    push_file_environment(L);
    lua_setupvalue(L, -2, 1); /* a main chunk's first upvalue is _ENV */
    return 0;
}

cv_status cv_sandbox_run_engine(cv_sandbox *sandbox, const char *name, const char *text,
                                size_t length, cv_error *err)
{
    char chunk_name[128];
    snprintf(chunk_name, sizeof chunk_name, "=lua/%s.lua", name);
    chunk c = {sandbox, chunk_name, text, length, true};
    return cv_sandbox_call(sandbox, push_chunk, &c, 1, err);
}

cv_status cv_sandbox_run_file(cv_sandbox *sandbox, const char *path, const char *text,
                              size_t length, int *nresults, cv_error *err)
{
    lua_State *L = sandbox->L;
    int top = lua_gettop(L);
    size_t name_length = strlen(path) + 2;
    char *name = malloc(name_length);
    if (name == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory loading %s", path);
    snprintf(name, name_length, "@%s", path);

    chunk c = {sandbox, name, text, length, false};
    cv_status status = cv_sandbox_call(sandbox, push_chunk, &c, LUA_MULTRET, err);
    free(name);
    if (status == CV_OK)
        *nresults = lua_gettop(L) - top;
    return status;
}
