/*
 * Standalone stand-in for QEMU's qemu/queue.h: the tail queue calls the
 * project's files and tests use, as a singly linked list.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_QUEUE_H
#define STANDALONE_QEMU_QUEUE_H

#define QTAILQ_HEAD(name, type)                                         \
struct name {                                                           \
    struct type *tqh_first;                                             \
}

#define QTAILQ_ENTRY(type)                                              \
struct {                                                                \
    struct type *tqe_next;                                              \
}

#define QTAILQ_INIT(head) do {                                          \
    (head)->tqh_first = NULL;                                           \
} while (0)

#define QTAILQ_INSERT_HEAD(head, elm, field) do {                       \
    (elm)->field.tqe_next = (head)->tqh_first;                          \
    (head)->tqh_first = (elm);                                          \
} while (0)

#define QTAILQ_FOREACH(var, head, field)                                \
    for ((var) = ((head)->tqh_first);                                   \
         (var);                                                         \
         (var) = ((var)->field.tqe_next))

#define QTAILQ_EMPTY(head)  ((head)->tqh_first == NULL)

#endif
