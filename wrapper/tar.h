/*
 * `tar`, for images that have none: restart-wrapper run as `tar` (DIR/bin/tar, a link that
 * install lays down) or as `restart-wrapper tar`. Tilt's live_update runs `tar -C / -x -f -`
 * and `kubectl cp` runs `tar -xmf - -C DIR`, both with the archive on stdin.
 *
 *   tar -x [-f ARCHIVE] [-C DIR] [-m] [-o|--same-owner] [-p|--no-same-permissions] [-v]
 *
 * GNU tar 1.34 is the reference for the command line, the messages and the exit statuses.
 */
#ifndef RW_TAR_H
#define RW_TAR_H

/* The environment variable that makes tar resolve paths without openat2 (as on kernels older
 * than 5.6): the walk that refuses every symbolic link on the way. For tests. */
#define RW_NO_OPENAT2_ENV "RESTART_WRAPPER_NO_OPENAT2"

/* argv without the program name. Returns the exit status: 0, or 2 after any error. */
int tar_main(int argc, char **argv);

#endif
