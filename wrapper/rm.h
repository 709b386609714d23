/*
 * `rm`, for images that have none: restart-wrapper run as `rm` (DIR/bin/rm, a link that
 * install lays down) or as `restart-wrapper rm`. Tilt's live_update deletes with
 * `rm -rf PATH...`.
 *
 *   rm [-r|-R] [-f] [-d] [-v] [--] PATH...
 *
 * GNU coreutils rm is the reference for the messages and the exit statuses.
 */
#ifndef RW_RM_H
#define RW_RM_H

/* argv without the program name. Returns the exit status: 0, or 1 when anything failed. */
int rm_main(int argc, char **argv);

#endif
