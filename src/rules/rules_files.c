/*
 * Finding, reading and running rules files, and collecting what they
 * declare.
 *
 * Files are every *.lua under the rules folder, searched recursively (names
 * starting with "." are skipped, so editor and version-control files stay
 * out), and run in sorted path order. A file declares with `process`,
 * `module` and `operation` (recorded by lua/dsl.lua), or returns a process
 * table with a `name` key, or a list of them. Declarations are put in file
 * order, then line order, so that "already defined at" names the first.
 */
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rules/rules_internal.h"

/* Deepest folder nesting searched; guards against symbolic link loops. */
#define MAX_FOLDER_DEPTH 16

/* Largest rules file read. */
#define MAX_FILE_BYTES ((size_t)16 * 1024 * 1024)

typedef struct file_list {
    size_t count;
    char **paths;
} file_list;

static void free_file_list(file_list *files)
{
    for (size_t i = 0; i < files->count; i++)
        free(files->paths[i]);
    free(files->paths);
}

static bool add_path(file_list *files, const char *path)
{
    char **grown = realloc(files->paths, (files->count + 1) * sizeof *grown);
    if (grown == NULL)
        return false;
    files->paths = grown;
    files->paths[files->count] = strdup(path);
    if (files->paths[files->count] == NULL)
        return false;
    files->count++;
    return true;
}

static bool has_lua_suffix(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && strcmp(name + len - 4, ".lua") == 0;
}

static cv_status walk(const char *dir, int depth, file_list *files, cv_error *err)
{
    if (depth > MAX_FOLDER_DEPTH)
        return cv_error_set(err, CV_ERR_INVALID,
                            "rules folder %s is nested more than %d levels deep (a symbolic link "
                            "loop?)",
                            dir, MAX_FOLDER_DEPTH);
    DIR *handle = opendir(dir);
    if (handle == NULL)
        return cv_error_set(err, CV_ERR_IO, "cannot open rules folder %s: %s", dir,
                            strerror(errno));

    cv_status status = CV_OK;
    struct dirent *entry;
    while (status == CV_OK && (entry = readdir(handle)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat info;
        if (snprintf(path, sizeof path, "%s/%s", dir, entry->d_name) >= (int)sizeof path)
            continue;
        if (stat(path, &info) != 0)
            continue; /* a dangling link or a file removed meanwhile */
        if (S_ISDIR(info.st_mode))
            status = walk(path, depth + 1, files, err);
        else if (S_ISREG(info.st_mode) && has_lua_suffix(entry->d_name) && !add_path(files, path))
            status = cv_error_set(err, CV_ERR_NOMEM, "out of memory listing %s", dir);
    }
    closedir(handle);
    return status;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the .lua files under dir (or dir itself, when it is one file), sorted. */
static cv_status list_files(const char *dir, file_list *files, cv_error *err)
{
    struct stat info;
    if (stat(dir, &info) != 0) {
        if (errno == ENOENT)
            return cv_error_set(err, CV_ERR_NOT_FOUND, "rules folder %s does not exist", dir);
        return cv_error_set(err, CV_ERR_IO, "cannot open rules folder %s: %s", dir,
                            strerror(errno));
    }
    if (S_ISREG(info.st_mode)) {
        if (!add_path(files, dir))
            return cv_error_set(err, CV_ERR_NOMEM, "out of memory listing %s", dir);
        return CV_OK;
    }
    if (!S_ISDIR(info.st_mode))
        return cv_error_set(err, CV_ERR_INVALID, "rules folder %s is not a folder", dir);
    cv_status status = walk(dir, 0, files, err);
    if (status == CV_OK && files->count > 0)
        qsort(files->paths, files->count, sizeof *files->paths, compare_paths);
    return status;
}

/* Reads path into source; reports a fault and returns false when it cannot. */
static bool read_source(cv_loading *load, const char *path, cv_source *source)
{
    FILE *file = fopen(path, "rb");
    struct stat info;
    if (file == NULL || fstat(fileno(file), &info) != 0) {
        cv_rules_fault(load, path, 0, "cannot read the file: %s", strerror(errno));
        if (file != NULL)
            fclose(file);
        return false;
    }
    if ((size_t)info.st_size > MAX_FILE_BYTES) {
        cv_rules_fault(load, path, 0, "the file is larger than %zu bytes", MAX_FILE_BYTES);
        fclose(file);
        return false;
    }
    size_t size = (size_t)info.st_size;
    source->text = malloc(size + 1);
    source->length = source->text ? fread(source->text, 1, size, file) : 0;
    bool ok = source->text != NULL && !ferror(file);
    fclose(file);
    if (!ok) {
        cv_rules_fault(load, path, 0, "cannot read the file");
        free(source->text);
        source->text = NULL;
        return false;
    }
    source->text[source->length] = '\0';
    return true;
}

/* ---- declarations ---- */

static cv_decl *add_decl(cv_loading *load)
{
    if (load->decl_count == load->decl_capacity) {
        size_t capacity = load->decl_capacity ? load->decl_capacity * 2 : 16;
        cv_decl *grown = realloc(load->decls, capacity * sizeof *grown);
        if (grown == NULL)
            return NULL;
        load->decls = grown;
        load->decl_capacity = capacity;
    }
    cv_decl *decl = &load->decls[load->decl_count];
    memset(decl, 0, sizeof *decl);
    decl->ref = LUA_NOREF;
    decl->order = load->decl_count++;
    return decl;
}

/* Sets decl's name from the value at idx, or records the type of a name that is not a string. */
static void set_name(cv_decl *decl, lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        decl->name = strdup(lua_tostring(L, idx));
    else
        decl->name_type = luaL_typename(L, idx);
}

/* Returns the line of the file's last `return` at the start of a line, or 0. */
static int return_line(const cv_source *source)
{
    int found = 0;
    int line = 1;
    bool line_start = true;
    for (size_t i = 0; i < source->length; i++) {
        char c = source->text[i];
        if (line_start && strncmp(source->text + i, "return", 6) == 0)
            found = line;
        if (c == '\n') {
            line++;
            line_start = true;
        } else if (c != ' ' && c != '\t') {
            line_start = false;
        }
    }
    return found;
}

/* Records the process table on top of the stack (popped), which carries its name. */
static void add_returned_process(cv_loading *load, const cv_source *source)
{
    lua_State *L = load->rules->L;
    cv_decl *decl = add_decl(load);
    if (decl == NULL) {
        lua_pop(L, 1);
        return;
    }
    decl->kind = CV_DECL_PROCESS;
    decl->source = source;
    decl->given = true;
    decl->returned = true;
    cv_build_get(L, -1, "name");
    set_name(decl, L, -1);
    lua_pop(L, 1);
    size_t at = decl->name ? cv_source_find_assignment(source, 0, "name", decl->name)
                           : CV_SOURCE_NOT_FOUND;
    decl->line = at != CV_SOURCE_NOT_FOUND ? cv_source_line(source, at) : return_line(source);
    if (decl->line == 0)
        decl->line = 1;
    decl->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Handles what a file returned: the value on top of the stack (popped). */
static void collect_returned(cv_loading *load, const cv_source *source)
{
    lua_State *L = load->rules->L;
    int type = lua_type(L, -1);
    size_t n = 0;

    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (type == LUA_TTABLE && cv_build_get(L, -1, "name") != LUA_TNIL) {
        lua_pop(L, 1);
        add_returned_process(load, source);
        return;
    }
    if (type == LUA_TTABLE)
        lua_pop(L, 1);
    if (type == LUA_TTABLE && cv_build_is_list(L, -1, &n)) {
        for (lua_Integer i = 1; i <= (lua_Integer)n; i++) {
            if (lua_rawgeti(L, -1, i) == LUA_TTABLE)
                add_returned_process(load, source);
            else {
                cv_rules_fault(load, source->path, return_line(source),
                               "the file returned a list whose item [%lld] is a %s, not a "
                               "process table",
                               (long long)i, luaL_typename(L, -1));
                lua_pop(L, 1);
            }
        }
    } else {
        cv_rules_fault(load, source->path, return_line(source),
                       "the file returned a %s; return nothing, a process table with a name key, "
                       "or a list of them",
                       type == LUA_TTABLE ? "table without a name key" : lua_typename(L, type));
    }
    lua_pop(L, 1);
}

/* Returns the source whose path matches a Lua chunk source "@path", or fallback. */
static const cv_source *source_named(cv_loading *load, const char *chunk,
                                     const cv_source *fallback)
{
    if (chunk != NULL && chunk[0] == '@') {
        for (size_t i = 0; i < load->source_count; i++) {
            if (load->sources[i].text != NULL && strcmp(load->sources[i].path, chunk + 1) == 0)
                return &load->sources[i];
        }
    }
    return fallback;
}

static const char *string_field(lua_State *L, int idx, const char *key)
{
    cv_build_get(L, idx, key);
    const char *value = lua_tostring(L, -1); /* still anchored in the declaration table */
    lua_pop(L, 1);
    return value;
}

/* Reads one record of lua/dsl.lua (on top of the stack) into a declaration. */
static void read_dsl_record(cv_loading *load, const cv_source *fallback)
{
    lua_State *L = load->rules->L;
    const cv_source *source = source_named(load, string_field(L, -1, "source"), fallback);
    cv_build_get(L, -1, "given");
    bool given = lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* `process "x"` whose table raised an error: the file's own error reports it. */
    if (!given && source != NULL && source->failed)
        return;
    cv_decl *decl = add_decl(load);
    if (decl == NULL)
        return;

    const char *kind = string_field(L, -1, "kind");
    decl->kind = CV_DECL_PROCESS;
    if (kind != NULL && strcmp(kind, "module") == 0)
        decl->kind = CV_DECL_MODULE;
    else if (kind != NULL && strcmp(kind, "operation") == 0)
        decl->kind = CV_DECL_OPERATION;
    decl->source = source;
    cv_build_get(L, -1, "line");
    decl->line = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    cv_build_get(L, -1, "name");
    set_name(decl, L, -1);
    lua_pop(L, 1);
    decl->given = given;
    if (decl->given) {
        cv_build_get(L, -1, "definition");
        decl->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

/* Reads every declaration lua/dsl.lua recorded. */
static void read_dsl_records(cv_loading *load)
{
    lua_State *L = load->rules->L;
    const cv_source *fallback = load->source_count ? &load->sources[0] : NULL;
    size_t n = 0;

    lua_rawgeti(L, LUA_REGISTRYINDEX, load->dsl_ref);
    cv_build_get(L, -1, "declarations");
    if (lua_type(L, -1) == LUA_TTABLE && cv_build_is_list(L, -1, &n)) {
        for (lua_Integer i = 1; i <= (lua_Integer)n; i++) {
            lua_rawgeti(L, -1, i);
            read_dsl_record(load, fallback);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2);
}

static int compare_decls(const void *a, const void *b)
{
    const cv_decl *x = a;
    const cv_decl *y = b;
    if (x->source != y->source)
        return x->source < y->source ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* ---- running ---- */

static int push_close(lua_State *L, void *context)
{
    const cv_loading *load = context;
    lua_rawgeti(L, LUA_REGISTRYINDEX, load->dsl_ref);
    cv_build_get(L, -1, "close");
    lua_remove(L, -2);
    return 0;
}

static void run_file(cv_loading *load, cv_source *source)
{
    lua_State *L = load->rules->L;
    int nresults = 0;
    cv_error err;

    if (cv_sandbox_run_file(load->rules->sandbox, source->path, source->text, source->length,
                            &nresults, &err) != CV_OK) {
        cv_rules_fault_lua(load, source->path, err.text);
        source->failed = true;
        return;
    }
    if (nresults > 1)
        lua_pop(L, nresults - 1);
    if (nresults > 0)
        collect_returned(load, source);
}

cv_status cv_rules_run_files(cv_loading *load, const char *dir, cv_error *err)
{
    file_list files = {0};
    cv_status status = list_files(dir, &files, err);
    if (status != CV_OK)
        goto out;

    load->sources = calloc(files.count ? files.count : 1, sizeof *load->sources);
    if (load->sources == NULL) {
        status = cv_error_set(err, CV_ERR_NOMEM, "out of memory loading %s", dir);
        goto out;
    }
    for (size_t i = 0; i < files.count; i++) {
        cv_source *source = &load->sources[load->source_count++];
        source->path = files.paths[i];
        files.paths[i] = NULL;
        if (read_source(load, source->path, source))
            run_file(load, source);
    }
    cv_sandbox_freeze(load->rules->sandbox);
    status = cv_sandbox_call(load->rules->sandbox, push_close, load, 0, err);
    if (status != CV_OK)
        goto out;
    read_dsl_records(load);
    if (load->decl_count > 0)
        qsort(load->decls, load->decl_count, sizeof *load->decls, compare_decls);
out:
    free_file_list(&files);
    return status;
}

void cv_rules_loading_free(cv_loading *load)
{
    for (size_t i = 0; i < load->decl_count; i++)
        free(load->decls[i].name);
    free(load->decls);
    for (size_t i = 0; i < load->source_count; i++) {
        free(load->sources[i].path);
        free(load->sources[i].text);
    }
    free(load->sources);
}
