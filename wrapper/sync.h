/*
 * The sync as the trigger (`run --sync-file=PATH`; the tools find PATH in $RESTART_WRAPPER_SYNC_FILE).
 *
 * Live update copies files with `tar -x` and deletes them with `rm`, each an exec into the
 * container. When those are ours, they know the moment a sync is complete, and say so in the
 * sync file: one line, replaced whole (written beside it, then renamed over it), so a reader
 * sees one report or the next, never half of one:
 *
 *     EVENT TOOL PID MS     start|done|failed, tar|rm, the last pid handed out in the container
 *                           when the line was written, CLOCK_MONOTONIC in ms
 *
 * The supervisor acts on the latest line only. Reports that come too fast to be read one by
 * one fold into the last, and the last is the state that counts:
 *   done tar   restart now: the archive is extracted, all of it;
 *   done rm    restart after RW_SYNC_RM_GRACE_MS, unless a tool starts first: Tilt runs `rm -rf`
 *              and then `tar` when an edit deletes and changes files, and the program must not
 *              start in between, on half a change;
 *   start      a sync is under way: what it ends with decides;
 *   failed     no restart: the sync is not whole (the tool's own message says why).
 */
#ifndef RW_SYNC_H
#define RW_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Set by the webhook in a container with restart-on-sync; the wrapper removes it from COMMAND's
 * environment, so the program's own tar and rm never restart it. */
#define RW_SYNC_FILE_ENV "RESTART_WRAPPER_SYNC_FILE"
/* Tilt starts the tar about one exec round trip (tens of ms) after the rm ends. */
#define RW_SYNC_RM_GRACE_MS 1000
/* A `trigger` this soon after a `tar -x` sync may repeat its restart (see sync_covers_trigger). */
#define RW_SYNC_FOLD_MS 2000
/* Room for one report line, its NUL included. */
#define RW_SYNC_LINE_MAX 64

enum sync_event { SYNC_START, SYNC_DONE, SYNC_FAILED };

struct sync_report {
	enum sync_event event;
	bool rm; /* reported by rm; otherwise by tar */
	long last_pid; /* the last pid handed out in the container as the report was written */
	int64_t ms;
};

/* Report `event` for `tool` ("tar" or "rm") to $RESTART_WRAPPER_SYNC_FILE. 0 when reported, or
 * when the variable is not set (nothing to report to); -1 when it could not be, said as `tool`. */
int sync_report(const char *tool, enum sync_event event);

/* The report in `path`, its text in line[RW_SYNC_LINE_MAX]. -1 when there is none: the file is
 * missing or unreadable, or holds no report (said only for what is not ENOENT). */
int sync_read(const char *path, struct sync_report *out, char *line);

/* Whether `trigger` would only repeat the restart the last sync asked for: that sync was a
 * `tar -x` that finished less than RW_SYNC_FOLD_MS ago, and no process has started in the
 * container since but the program's own. Every pid the kernel handed out after the report and
 * before ours (pids are allocated in increasing order) must belong to a live process whose
 * parent is in the container: an exec (a Tilt run step, a `kubectl exec`) has its parent
 * outside, and one that has exited may have changed files. `*ago` is set to how long ago the
 * sync finished. */
bool sync_covers_trigger(const char *sync_file, int64_t *ago);

#endif
