/*
 * Watching the restart files, the sync file and the --watch trees.
 *
 * A restart file (the sync file too) is watched through its parent directory (or the nearest
 * ancestor that exists), never through its inode: editors, tar and `kubectl cp` replace files,
 * and a watch on the old inode would go quiet. --watch trees are watched recursively,
 * and directories created later are added as they appear. When inotify cannot be had,
 * the same targets are polled by comparing (device, inode, size, mtime, ctime).
 */
#ifndef RW_WATCH_H
#define RW_WATCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct watcher;

/* What changed since the last look. */
struct change {
	bool restart_file;         /* a restart file changed: act at once */
	bool sync;                 /* the sync file has a new report: read it */
	bool tree;                 /* something under a --watch path: act after the quiet period */
	char what[PATH_MAX + 64];  /* the first path seen, for the log line */
};

/* sync_file may be NULL. poll_ms > 0 forces polling at that interval. Returns NULL only when
 * out of memory. */
struct watcher *watcher_open(const char *const *restart_files, size_t nrestart_files, const char *sync_file,
			     char *const *trees, size_t ntrees, int64_t poll_ms);

/* The inotify descriptor to wait on, or -1 when polling. */
int watcher_fd(const struct watcher *w);

/* When the next poll is due (CLOCK_MONOTONIC ms), or -1 when not polling. */
int64_t watcher_next_poll(const struct watcher *w);

/* Take in everything that happened (never blocks) and add it to *c. */
void watcher_collect(struct watcher *w, int64_t now, struct change *c);

/* Release the descriptor and every watch. */
void watcher_close(struct watcher *w);

#endif
