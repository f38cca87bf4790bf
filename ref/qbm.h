/*
 * qbm: persistent dirty bitmaps in the QBM format (a JSON descriptor plus one
 *   raw file per bitmap), with the qcow2 in-use rule and checksums.
 *
 * Role: load a node's persistent bitmaps at open, mark them in use on disk
 *   before the guest writes, store them on clean close.
 * Model: shared/spec/qemu-semantics.md §6.1 (QBM v1: {"QBM": {"version": 1,
 *   "image": {...}, "bitmaps": {NAME: {"file", "granularity-bytes", "type":
 *   "dirty"}}}}, bit files in HBitmap serialisation, ext-soft-/ext-hard-
 *   extension keys) and §6.2 (qcow2's lifecycle: in_use set on disk at a
 *   read-write open, cleared by a clean store; found set at load means the
 *   bitmap is inconsistent: no data, disabled, only removal).
 * Extensions (blocksim's, under the RFC's extension rule): the image object
 *   carries "ext-hard-blocksim-size"; each bitmap "ext-hard-blocksim-in-use",
 *   "ext-soft-blocksim-auto" (enabled) and "ext-soft-blocksim-crc32" (zlib
 *   CRC-32 of its file's serialised bytes); the descriptor file holds two
 *   QBM_SLOT_SIZE slots, each a NUL-padded JSON text whose DESC carries
 *   "ext-hard-blocksim-generation" and "ext-soft-blocksim-crc32" (of DESC's
 *   compact, key-sorted dump without that key). A write goes to the slot the
 *   newest one does not occupy; the loader takes the valid slot with the
 *   highest generation, so a torn descriptor write falls back to the last
 *   whole one. A bitmap file is its serialisation padded with zeroes to 512.
 * Invariants: the durable descriptor never says "not in use" for a bitmap
 *   whose in-memory copy may have changed since its file was written.
 * Ownership: qbm_open's object borrows the dirty set and the files; it owns
 *   its descriptor handle. qbm_close frees it; no operation may be running.
 * Async contract: qbm_open loads synchronously (open-time metadata);
 *   qbm_sync and qbm_store complete through their callback, never inline,
 *   with 0 or a negative errno. One operation at a time.
 * Depends on: base, env (files, timer), bitmap, dirty, jansson, zlib.
 */
#ifndef BLOCKSIM_QBM_H
#define BLOCKSIM_QBM_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "dirty.h"
#include "env.h"

#define QBM_VERSION 1
#define QBM_SLOT_SIZE 32768u
#define QBM_DESC_SIZE (2 * QBM_SLOT_SIZE)
#define QBM_BITMAPS_MAX 64
#define QBM_DESC_SUFFIX ".qbm"

/* An image name leaves room for ".NAME.bitmap" in a file name. */
#define QBM_IMAGE_NAME_MAX 56

struct qbm_opts {
    struct env_files files;
    struct env_timer timer;
    const char *image;  /* the image's file name; the descriptor is image.qbm */
    const char *format; /* its format name, recorded in the descriptor */
    uint64_t size;      /* the image's size in bytes */
    unsigned mutants;   /* NODE_MUTANT_QBM_* bits (node.h) */
};

struct qbm_op;

struct qbm {
    struct qbm_opts o;
    char image[ENV_FILE_NAME_MAX];
    char format[32];
    char desc_name[ENV_FILE_NAME_MAX];
    struct dirty_set *set;  /* borrowed: the node's bitmaps */
    struct env_storage desc; /* open once the descriptor exists */
    bool desc_open;
    uint64_t generation;    /* of the newest descriptor; 0: none yet */
    char (*known)[ENV_FILE_NAME_MAX]; /* bitmap files the durable descriptor names */
    size_t n_known;
    struct qbm_op *op;      /* the running sync or store, or NULL */
};

/* Load the persistent bitmaps of image @o->image into @set, which must be
 * empty: bitmaps found in use come back inconsistent, the others with their
 * bits, enabled as stored. No descriptor means no bitmaps. On a malformed
 * or corrupt descriptor or bitmap file returns BS_EFORMAT, BS_EVERSION or
 * BS_ECORRUPT (or an I/O errno) with @e naming the file and the fault, and
 * @set is left empty. */
int qbm_open(const struct qbm_opts *o, struct dirty_set *set, struct err *e,
             struct qbm **out) WUR;

/* Write a descriptor naming every persistent bitmap of the set, each marked
 * in use, and flush it: call after open (before the guest writes) and after
 * adding, removing or persisting a bitmap. */
void qbm_sync(struct qbm *q, env_io_cb *cb, void *opaque);

/* Clean close: write and flush every persistent, consistent bitmap's file,
 * then a descriptor marking them not in use, flush it, and delete files no
 * longer named. Frozen bitmaps must have been reclaimed or abdicated. */
void qbm_store(struct qbm *q, env_io_cb *cb, void *opaque);

void qbm_close(struct qbm *q); /* NULL is fine */

/* The file name blocksim gives a bitmap of @image. */
void qbm_bitmap_file(const char *image, const char *name, char *buf, size_t size);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug qbm_bugs[];
extern const size_t qbm_bugs_count;

#endif
