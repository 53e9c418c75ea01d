/*
 * The data file behind crm_store.h: loading with a shape check, the mutex,
 * and the atomic rewrite after each change.
 */
#include "crm_store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct crm_store {
    char *path;
    json_t *root;
    pthread_mutex_t lock;
};

/* Arrays every data file must have; each element is a record with a string "ID". */
static const char *const record_collections[] = {"contacts", "deals", "leads"};

static bool check_collection(json_t *root, const char *name, char *why, size_t why_size)
{
    json_t *array = json_object_get(root, name);
    if (!json_is_array(array)) {
        snprintf(why, why_size, "\"%s\" is missing or not an array", name);
        return false;
    }

    size_t index;
    json_t *record;
    json_array_foreach(array, index, record) {
        if (!json_is_string(json_object_get(record, "ID"))) {
            snprintf(why, why_size, "%s[%zu] has no string \"ID\"", name, index);
            return false;
        }
    }
    return true;
}

static bool check_shape(json_t *root, char *why, size_t why_size)
{
    if (!json_is_object(root)) {
        snprintf(why, why_size, "the top level is not a JSON object");
        return false;
    }
    for (size_t i = 0; i < sizeof record_collections / sizeof record_collections[0]; i++) {
        if (!check_collection(root, record_collections[i], why, why_size))
            return false;
    }

    /* A fresh seed file need not list visits yet. */
    json_t *visits = json_object_get(root, "deal_visits");
    if (visits == NULL)
        return json_object_set_new(root, "deal_visits", json_array()) == 0;
    if (!json_is_array(visits)) {
        snprintf(why, why_size, "\"deal_visits\" is not an array");
        return false;
    }
    return true;
}

crm_store *crm_store_open(const char *path, char *why, size_t why_size)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL && jerr.line < 1) {
        snprintf(why, why_size, "%s", jerr.text);
        return NULL;
    }
    if (root == NULL) {
        snprintf(why, why_size, "%s:%d: %s", path, jerr.line, jerr.text);
        return NULL;
    }

    char shape[200];
    if (!check_shape(root, shape, sizeof shape)) {
        snprintf(why, why_size, "%s: invalid CRM data: %s", path, shape);
        json_decref(root);
        return NULL;
    }

    crm_store *store = calloc(1, sizeof *store);
    char *path_copy = strdup(path);
    if (store == NULL || path_copy == NULL) {
        snprintf(why, why_size, "out of memory");
        free(store);
        free(path_copy);
        json_decref(root);
        return NULL;
    }
    store->path = path_copy;
    store->root = root;
    pthread_mutex_init(&store->lock, NULL);
    return store;
}

void crm_store_close(crm_store *store)
{
    if (store == NULL)
        return;
    pthread_mutex_destroy(&store->lock);
    json_decref(store->root);
    free(store->path);
    free(store);
}

json_t *crm_store_lock(crm_store *store)
{
    pthread_mutex_lock(&store->lock);
    return store->root;
}

void crm_store_unlock(crm_store *store)
{
    pthread_mutex_unlock(&store->lock);
}

static bool write_all(int fd, const char *text, size_t length)
{
    while (length > 0) {
        ssize_t written = write(fd, text, length);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return false;
        text += written;
        length -= (size_t)written;
    }
    return true;
}

/* Flushes the rename itself to disk; a failure here loses nothing already written. */
static void sync_parent_folder(const char *path)
{
    char folder[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(folder, sizeof folder, ".");
    else if (slash == path)
        snprintf(folder, sizeof folder, "/");
    else
        snprintf(folder, sizeof folder, "%.*s", (int)(slash - path), path);

    int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    fsync(fd);
    close(fd);
}

/* Writes the whole root to a temporary file next to the data file, then renames it over. */
static bool save(crm_store *store, char *why, size_t why_size)
{
    char temp_path[4200];
    snprintf(temp_path, sizeof temp_path, "%s.tmp.%ld", store->path, (long)getpid());

    char *text = json_dumps(store->root, JSON_INDENT(2));
    if (text == NULL) {
        snprintf(why, why_size, "cannot serialise the CRM data");
        return false;
    }

    bool ok = false;
    int fd = open(temp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, why_size, "cannot create %s: %s", temp_path, strerror(errno));
        goto out;
    }
    bool written = write_all(fd, text, strlen(text)) && write_all(fd, "\n", 1) && fsync(fd) == 0;
    int saved_errno = errno;
    close(fd);
    if (!written) {
        snprintf(why, why_size, "cannot write %s: %s", temp_path, strerror(saved_errno));
        unlink(temp_path);
        goto out;
    }
    if (rename(temp_path, store->path) != 0) {
        snprintf(why, why_size, "cannot rename %s to %s: %s", temp_path, store->path,
                 strerror(errno));
        unlink(temp_path);
        goto out;
    }
    sync_parent_folder(store->path);
    ok = true;
out:
    free(text);
    return ok;
}

bool crm_store_append(crm_store *store, const char *collection, json_t *record, char *why,
                      size_t why_size)
{
    json_t *array = json_object_get(store->root, collection);
    if (!json_is_array(array)) {
        json_decref(record);
        snprintf(why, why_size, "the data file has no array \"%s\"", collection);
        return false;
    }
    /* json_array_append_new frees record itself when it fails. */
    if (json_array_append_new(array, record) != 0) {
        snprintf(why, why_size, "cannot append to \"%s\": out of memory", collection);
        return false;
    }
    if (save(store, why, why_size))
        return true;

    json_array_remove(array, json_array_size(array) - 1);
    return false;
}
