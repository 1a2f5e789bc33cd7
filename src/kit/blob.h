/*
 * The blob port: named byte objects (product images, attachments), chosen by URL.
 *   file:PATH   files under PATH (default "file:var/blobs"); a blob is written to a temporary
 *               file, fsynced, then renamed into place, so a reader never sees half of one.
 *   (s3://...   later, behind the same calls.)
 * Keys are relative names of [a-z0-9._/-] segments without "." or ".." segments, at most 200
 * bytes ("products/<tenant-hash>/<image-id>"); anything else is refused with AG_EINVAL.
 * Thread-safe: one store serves every worker.
 */
#ifndef KIT_BLOB_H
#define KIT_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct kit_blob_store;
struct kit_blob_writer; /* one blob being written */

/* Opens the store; creates the directory (0700) when missing. AG_EINVAL for a bad URL. */
int kit_blob_open(const char *url, struct kit_blob_store **out, struct ag_err *err);
void kit_blob_close(struct kit_blob_store *store); /* NULL allowed */

/*
 * Starts writing key: bytes go to a temporary object that becomes visible under key only on
 * kit_blob_commit; kit_blob_abort (or a crash) leaves nothing under key. An existing blob with
 * the same key is replaced on commit.
 */
int kit_blob_begin(struct kit_blob_store *store, const char *key, struct kit_blob_writer **out,
                   struct ag_err *err);
int kit_blob_write(struct kit_blob_writer *w, const void *data, size_t len, struct ag_err *err);
/* Makes the blob durable and visible; frees w whatever the outcome. */
int kit_blob_commit(struct kit_blob_writer *w, struct ag_err *err);
void kit_blob_abort(struct kit_blob_writer *w); /* NULL allowed; frees w */

/*
 * Reads a whole blob into memory (malloc'd, *len bytes; at most max bytes: AG_ERANGE beyond).
 * AG_ENOTFOUND when there is no such blob.
 */
int kit_blob_read(struct kit_blob_store *store, const char *key, size_t max, void **data,
                  size_t *len, struct ag_err *err);
/* Removes a blob; removing a missing one is 0. */
int kit_blob_remove(struct kit_blob_store *store, const char *key, struct ag_err *err);

#endif
