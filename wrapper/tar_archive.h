/*
 * The tar stream, for `tar -x`: 512-byte blocks read from a descriptor, header after header,
 * each checked (checksum, numeric fields) and read together with the extended headers before
 * it (GNU 'L' and 'K', pax 'x'), so what comes out is what the next member is: its name, link,
 * size, owner, mode and times. What to do with a member is tar.c's; this only reads.
 *
 * The archive is untrusted: a malformed header is skipped to the next good one, as GNU does,
 * and an extended header that is malformed or too long refuses the member after it.
 */
#ifndef RW_TAR_ARCHIVE_H
#define RW_TAR_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* What extended headers said about the next member (tar_archive.c's own). */
struct extended {
	char *long_name, *long_link; /* GNU 'L' and 'K' */
	char *pax;                   /* the last 'x' header's records; path and linkpath point in */
	char *path, *linkpath;
	int64_t size, uid, gid;
	struct timespec mtime;
	bool has_size, has_uid, has_gid, has_mtime;
	bool sparse; /* GNU.sparse.* records: a sparse file, which we refuse */
	bool bad;    /* malformed or too long (reported): refuse the next member */
};

struct archive {
	const char *name; /* for messages: "-" for stdin */
	int in;
	size_t pos, len; /* the unread bytes are buf[pos, len) */
	bool eof;
	bool any;        /* a header was read: an archive that breaks off now is not "not a tar archive" */
	bool failed;     /* an error was reported: exit 2 at the end */
	uint64_t offset; /* bytes consumed, for "A lone zero block at N" */
	uint64_t left;   /* bytes of the current member's data area (data and padding) unread */
	struct extended ext;
	unsigned char buf[64 * 1024];
};

/* A member's header, with what the extended headers before it said applied. name and link
 * point into it or into the archive's extended headers: valid until the next header is read. */
struct header {
	char type; /* the typeflag, '0' to '7' and GNU's letters */
	char *name, *link;
	int64_t size;
	mode_t mode;
	int64_t uid, gid;
	struct timespec mtime;
	unsigned major, minor;
	bool refused;     /* an extended header before it was malformed or too long (reported) */
	bool sparse;      /* a sparse file, old GNU ('S') or pax (GNU.sparse.*), which we refuse */
	bool sparse_maps; /* old GNU sparse: more map blocks follow the header */
	char name_field[256 + 1], link_field[100 + 1];
};

/* The next member's header into *h, its data area next in the stream: 1; 0 at the end of the
 * archive; -1 after a fatal error (reported). */
int archive_next_header(struct archive *a, struct header *h);

/* Up to `max` bytes of the current member's data area, in place at *data: how many (> 0), or
 * -1 when the stream fails (reported: a read error, or the archive ends too soon). */
ssize_t archive_next_data(struct archive *a, size_t max, const unsigned char **data);

/* Past the rest of the current member's data area; -1 when the stream fails. */
int archive_skip_data(struct archive *a);

/* Past a sparse member: its map blocks, then its data area; -1 when the stream fails. */
int archive_skip_sparse(struct archive *a, const struct header *h);

/* After the end of the archive, read stdin to its end: the writer on the other side of an
 * exec stream (Tilt, kubectl) must never see EPIPE for data we do not need. */
void archive_drain(struct archive *a);

/* The memory of the extended headers. */
void archive_free(struct archive *a);

#endif
