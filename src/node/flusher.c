#include "node/flusher.h"

/* Longest wait for the server to confirm one flush; a lost connection ends it sooner. */
#define FLUSH_WAIT_MS 1000

static void *flusher_main(void *arg)
{
    cv_flusher *flusher = arg;
    pthread_mutex_lock(&flusher->lock);
    for (;;) {
        while (!flusher->requested && !flusher->stopping)
            pthread_cond_wait(&flusher->wake, &flusher->lock);
        if (flusher->stopping)
            break;
        flusher->requested = false;
        pthread_mutex_unlock(&flusher->lock);
        if (natsConnection_Buffered(flusher->nc) > 0)
            natsConnection_FlushTimeout(flusher->nc, FLUSH_WAIT_MS);
        pthread_mutex_lock(&flusher->lock);
    }
    pthread_mutex_unlock(&flusher->lock);
    return NULL;
}

cv_status cv_flusher_start(cv_flusher *flusher, natsConnection *nc, cv_error *err)
{
    flusher->nc = nc;
    flusher->requested = false;
    flusher->stopping = false;
    pthread_mutex_init(&flusher->lock, NULL);
    pthread_cond_init(&flusher->wake, NULL);
    if (pthread_create(&flusher->thread, NULL, flusher_main, flusher) != 0)
        return cv_error_set(err, CV_ERR_NOMEM, "cannot start the flusher thread");
    flusher->started = true;
    return CV_OK;
}

void cv_flusher_request(cv_flusher *flusher)
{
    pthread_mutex_lock(&flusher->lock);
    if (!flusher->requested) {
        flusher->requested = true;
        pthread_cond_signal(&flusher->wake);
    }
    pthread_mutex_unlock(&flusher->lock);
}

void cv_flusher_stop(cv_flusher *flusher)
{
    if (!flusher->started)
        return;
    pthread_mutex_lock(&flusher->lock);
    flusher->stopping = true;
    pthread_cond_signal(&flusher->wake);
    pthread_mutex_unlock(&flusher->lock);
    pthread_join(flusher->thread, NULL);
    pthread_cond_destroy(&flusher->wake);
    pthread_mutex_destroy(&flusher->lock);
    flusher->started = false;
}
