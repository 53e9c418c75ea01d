/*
 * Timers of a node with the memory store: a binary min-heap of work items
 * ordered by due time, and one thread that sleeps until the earliest is due
 * and routes it to its worker. Due times are wall-clock because they are
 * stored with the instance. The wait uses the monotonic clock, so a clock
 * step does not fire a whole heap at once.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "node/node_internal.h"
#include "node/timers.h"

typedef struct entry {
    int64_t due_mono_ms;
    cv_work *item;
} entry;

struct cv_local_timers {
    cv_node *node;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t thread;
    bool started;
    bool stopping;
    size_t count;
    size_t capacity;
    entry *heap;
};

static void swap(entry *a, entry *b)
{
    entry t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(entry *heap, size_t i)
{
    while (i > 0 && heap[(i - 1) / 2].due_mono_ms > heap[i].due_mono_ms) {
        swap(&heap[(i - 1) / 2], &heap[i]);
        i = (i - 1) / 2;
    }
}

static void sift_down(entry *heap, size_t count, size_t i)
{
    for (;;) {
        size_t least = i;
        size_t left = 2 * i + 1;
        size_t right = left + 1;
        if (left < count && heap[left].due_mono_ms < heap[least].due_mono_ms)
            least = left;
        if (right < count && heap[right].due_mono_ms < heap[least].due_mono_ms)
            least = right;
        if (least == i)
            return;
        swap(&heap[i], &heap[least]);
        i = least;
    }
}

static cv_work *pop(cv_local_timers *timers)
{
    cv_work *item = timers->heap[0].item;
    timers->heap[0] = timers->heap[--timers->count];
    sift_down(timers->heap, timers->count, 0);
    return item;
}

static void wait_until(cv_local_timers *timers, int64_t due_mono_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t wait = due_mono_ms - cv_clock_mono_ms();
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&timers->changed, &timers->lock, &ts);
}

static void *timers_main(void *arg)
{
    cv_local_timers *timers = arg;
    pthread_mutex_lock(&timers->lock);
    while (!timers->stopping) {
        if (timers->count == 0) {
            pthread_cond_wait(&timers->changed, &timers->lock);
            continue;
        }
        if (timers->heap[0].due_mono_ms > cv_clock_mono_ms()) {
            wait_until(timers, timers->heap[0].due_mono_ms);
            continue;
        }
        cv_work *item = pop(timers);
        pthread_mutex_unlock(&timers->lock);
        cv_node_route_work(timers->node, item);
        pthread_mutex_lock(&timers->lock);
    }
    pthread_mutex_unlock(&timers->lock);
    return NULL;
}

cv_status cv_local_timers_create(cv_local_timers **out, cv_node *node, cv_error *err)
{
    cv_local_timers *timers = calloc(1, sizeof *timers);
    if (timers == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the timers");
    timers->node = node;
    pthread_mutex_init(&timers->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&timers->changed, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&timers->thread, NULL, timers_main, timers) != 0) {
        cv_local_timers_destroy(timers);
        return cv_error_set(err, CV_ERR_NOMEM, "cannot start the timer thread");
    }
    timers->started = true;
    *out = timers;
    return CV_OK;
}

static cv_work *timer_item(const cv_instance *instance, const cv_timer_order *timer)
{
    cv_work *item = calloc(1, sizeof *item);
    if (item == NULL)
        return NULL;
    item->kind = CV_WORK_TIMER;
    item->result_kind = timer->kind == CV_TIMER_RETRY ? CV_RESULT_RETRY_DUE : CV_RESULT_TIMEOUT;
    snprintf(item->instance, sizeof item->instance, "%s", instance->id);
    item->step = strdup(instance->process->steps[timer->step].id);
    item->attempt = timer->attempt;
    memcpy(item->token, timer->token, sizeof item->token);
    if (item->step == NULL) {
        free(item);
        return NULL;
    }
    return item;
}

static bool grow(cv_local_timers *timers)
{
    if (timers->count < timers->capacity)
        return true;
    size_t capacity = timers->capacity ? timers->capacity * 2 : 256;
    entry *heap = realloc(timers->heap, capacity * sizeof *heap);
    if (heap == NULL)
        return false;
    timers->heap = heap;
    timers->capacity = capacity;
    return true;
}

void cv_local_timers_add(cv_local_timers *timers, const cv_instance *instance,
                         const cv_timer_order *timer)
{
    cv_work *item = timer_item(instance, timer);
    pthread_mutex_lock(&timers->lock);
    bool added = item != NULL && grow(timers);
    if (added) {
        int64_t due = cv_clock_mono_ms() + (timer->due_ms - cv_clock_wall_ms());
        timers->heap[timers->count] = (entry){due, item};
        sift_up(timers->heap, timers->count++);
        if (timers->heap[0].item == item)
            pthread_cond_signal(&timers->changed);
    }
    pthread_mutex_unlock(&timers->lock);
    if (!added) {
        cv_work_free(item);
        CV_ERROR("timer lost instance=%s step=%s attempt=%d error=\"out of memory\"",
                 instance->id, instance->process->steps[timer->step].id, timer->attempt);
    }
}

void cv_local_timers_destroy(cv_local_timers *timers)
{
    if (timers == NULL)
        return;
    if (timers->started) {
        pthread_mutex_lock(&timers->lock);
        timers->stopping = true;
        pthread_cond_signal(&timers->changed);
        pthread_mutex_unlock(&timers->lock);
        pthread_join(timers->thread, NULL);
    }
    for (size_t i = 0; i < timers->count; i++)
        cv_work_free(timers->heap[i].item);
    free(timers->heap);
    pthread_cond_destroy(&timers->changed);
    pthread_mutex_destroy(&timers->lock);
    free(timers);
}
