/*
 * The Lua sandbox that rules run in: one lua_State with an allocator that
 * counts bytes, only allow-listed libraries, read-only globals, and budgets
 * on every call into Lua.
 *
 * Rules see the base functions except dofile, loadfile, require and
 * collectgarbage. Their load takes text chunks only, and their setmetatable
 * rejects __gc. They also see string (without string.dump), table, math,
 * utf8, coroutine, and os.time, os.clock and os.date. Library tables are read-only proxies, shared by
 * every file. Each rules file gets its own environment that reads through
 * to these globals; a file may define globals of its own while it loads,
 * and after cv_sandbox_freeze every assignment to a global raises an error.
 *
 * Every call runs in lua_pcall with a traceback handler, an instruction
 * budget (a count hook) and a memory budget (growth allowed during the
 * call). The state stays usable after a call fails.
 */
#ifndef CV_RULES_SANDBOX_H
#define CV_RULES_SANDBOX_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

#define CV_SANDBOX_DEFAULT_INSTRUCTIONS 10000000LL
#define CV_SANDBOX_DEFAULT_MEMORY ((size_t)64 * 1024 * 1024)

typedef struct cv_sandbox cv_sandbox;

/*
 * Creates a sandbox. instruction_budget and memory_budget of 0 select the
 * defaults above.
 */
cv_status cv_sandbox_create(cv_sandbox **out, long long instruction_budget, size_t memory_budget,
                            cv_error *err);

void cv_sandbox_destroy(cv_sandbox *sandbox);

lua_State *cv_sandbox_state(cv_sandbox *sandbox);

/*
 * Runs a trusted engine chunk (from lua/) with the unrestricted globals,
 * which still hold `debug`, passing the sandbox globals table as its
 * argument. Leaves the chunk's single result on the stack.
 */
cv_status cv_sandbox_run_engine(cv_sandbox *sandbox, const char *name, const char *text,
                                size_t length, cv_error *err);

/* Drops the libraries only engine chunks may use (debug); call after the last engine chunk. */
void cv_sandbox_seal(cv_sandbox *sandbox);

/*
 * Loads text as a text chunk named "@path" in a new file environment and
 * runs it under the budgets. On success the chunk's results are on the
 * stack, *nresults of them. On failure err contains the Lua message, which
 * starts with "path:line:" for syntax and runtime errors.
 */
cv_status cv_sandbox_run_file(cv_sandbox *sandbox, const char *path, const char *text,
                              size_t length, int *nresults, cv_error *err);

/* Makes every global read-only from now on. */
void cv_sandbox_freeze(cv_sandbox *sandbox);

/*
 * Pushes the function to call and its arguments; returns the number of
 * arguments. Runs inside the protected call, so it may raise Lua errors
 * (running out of memory while converting arguments, say).
 */
typedef int (*cv_sandbox_push_fn)(lua_State *L, void *context);

/*
 * Calls what push provides, with nresults results, in a protected call
 * under the budgets. On success the results are on the stack. On failure
 * the stack is as before and err contains the message: CV_ERR_LIMIT when a
 * budget ran out, CV_ERR_SCRIPT for a Lua error. The traceback is logged
 * at debug level rather than put in err.
 */
cv_status cv_sandbox_call(cv_sandbox *sandbox, cv_sandbox_push_fn push, void *context,
                          int nresults, cv_error *err);

#endif
