#include "node/work_queue.h"

#include <stdlib.h>

void cv_work_queue_init(cv_work_queue *queue)
{
    pthread_mutex_init(&queue->lock, NULL);
    pthread_cond_init(&queue->ready, NULL);
    queue->head = NULL;
    queue->tail = NULL;
    queue->length = 0;
}

void cv_work_queue_destroy(cv_work_queue *queue)
{
    cv_work *item = queue->head;
    while (item != NULL) {
        cv_work *next = item->next;
        cv_work_free(item);
        item = next;
    }
    pthread_cond_destroy(&queue->ready);
    pthread_mutex_destroy(&queue->lock);
}

void cv_work_queue_push(cv_work_queue *queue, cv_work *item)
{
    item->next = NULL;
    pthread_mutex_lock(&queue->lock);
    if (queue->tail != NULL)
        queue->tail->next = item;
    else
        queue->head = item;
    queue->tail = item;
    queue->length++;
    pthread_cond_signal(&queue->ready);
    pthread_mutex_unlock(&queue->lock);
}

/* Unlinks the head; the caller holds the lock and has checked the queue is not empty. */
static cv_work *take_head(cv_work_queue *queue)
{
    cv_work *item = queue->head;
    queue->head = item->next;
    if (queue->head == NULL)
        queue->tail = NULL;
    queue->length--;
    item->next = NULL;
    return item;
}

cv_work *cv_work_queue_pop(cv_work_queue *queue)
{
    pthread_mutex_lock(&queue->lock);
    while (queue->head == NULL)
        pthread_cond_wait(&queue->ready, &queue->lock);
    cv_work *item = take_head(queue);
    pthread_mutex_unlock(&queue->lock);
    return item;
}

cv_work *cv_work_queue_try_pop(cv_work_queue *queue)
{
    pthread_mutex_lock(&queue->lock);
    cv_work *item = queue->head != NULL ? take_head(queue) : NULL;
    pthread_mutex_unlock(&queue->lock);
    return item;
}

uint64_t cv_work_stream_sequence(const cv_work *item)
{
    jsMsgMetaData *meta = NULL;
    uint64_t sequence = 0;
    if (item->from_stream && item->msg != NULL &&
        natsMsg_GetMetaData(&meta, item->msg) == NATS_OK)
        sequence = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    return sequence;
}

void cv_work_count(cv_work *item, atomic_int *in_flight)
{
    item->in_flight = in_flight;
    atomic_fetch_add(in_flight, 1);
}

void cv_work_free(cv_work *item)
{
    if (item == NULL)
        return;
    if (item->in_flight != NULL)
        atomic_fetch_sub(item->in_flight, 1);
    natsMsg_Destroy(item->msg);
    free(item->step);
    json_decref(item->output);
    free(item->error);
    free(item);
}
