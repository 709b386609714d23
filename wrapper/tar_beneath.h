/*
 * Where a member of an untrusted archive goes, for `tar -x`: beneath the target directory
 * (-C DIR, or the current directory) and never outside it, whatever the names and the symbolic
 * links already there say. Names are cleaned first (a leading '/' removed, ".." refused); then
 * a member's directory is opened with openat2 RESOLVE_BENEATH, or, without openat2, by a walk
 * that refuses every symbolic link; missing directories are created on the way.
 */
#ifndef RW_TAR_BENEATH_H
#define RW_TAR_BENEATH_H

#include <stdbool.h>

/* Our own errno values, beyond the kernel's, for the two ways a path is refused. */
#define E_OUTSIDE 4096 /* it leads outside the target directory */
#define E_SYMLINK 4097 /* it has a symbolic link, and there is no openat2 to judge it */

struct beneath {
	int root;           /* O_PATH descriptor of the target; -1 until opened */
	bool root_is_slash; /* it is "/": nothing can be outside it, absolute links included */
	bool openat2;
};

/* Open the target directory dir into *b and see whether openat2 can be had: 0, or -1 with
 * errno set. b->root is closed by the caller. */
int beneath_open(struct beneath *b, const char *dir);

/* The name beneath the target: a leading '/' removed (said once, as GNU does: *warned, about
 * `what`); NULL when a ".." component could lead outside. */
char *beneath_safe_name(char *name, bool *warned, const char *what);

/* Split path, in place, into its directory ("" for the target itself), returned, and its last
 * component, at *last ("." for the target itself); trailing slashes go. */
char *beneath_split(char *path, char **last);

/* The directory `path` (relative, without "..") beneath the target, as an O_PATH descriptor
 * (the target's own for ""); -1 with errno set, E_OUTSIDE when it leads outside. Magic links
 * (/proc/self/fd/N) are never followed. */
int beneath_resolve(const struct beneath *b, const char *path);

/* beneath_resolve(), creating what is missing as GNU does (0777 less the umask, times not
 * restored), one directory at a time, each resolved afresh from the target, so a symbolic link
 * met on the way is judged like any other. path is modified and restored. */
int beneath_open_parent(const struct beneath *b, char *path);

/* Close a descriptor beneath_resolve() or beneath_open_parent() returned: the target's own is
 * borrowed, the others are ours. An O_PATH descriptor has nothing to flush: close cannot lose
 * anything. */
void beneath_close(const struct beneath *b, int fd);

#endif
