/*
 * `rm`: coreutils' options, messages and exit statuses, for the subset Tilt and people use.
 * A recursive removal never follows a symbolic link (one is removed as a link), and holds a
 * single directory descriptor however deep the tree: each directory's names are read whole
 * before anything in it is removed, and the way back up is "..", checked against the device
 * and inode seen on the way down. Prompts are never asked, as with -f.
 * An option it does not implement sends the command line to the image's own rm (handoff.h). A
 * removal is reported to the wrapper as it starts and as it ends, done or failed (sync.h).
 */
#include "rm.h"

#include "common.h"
#include "handoff.h"
#include "sync.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define say(...) rw_log_as("rm", __VA_ARGS__)

struct rm {
	bool recursive, force, dir, verbose;
	unsigned failures; /* exit 1 if any */
};

/* One directory on the way down: the names in it still to remove, and who it is. */
struct frame {
	char *names; /* each its d_type byte, then the name and a NUL */
	size_t size, next;
	size_t path_len;   /* the path's length before this directory's name was appended */
	unsigned failures; /* the count when it was opened: more at the end, and it cannot go */
	dev_t dev;
	ino_t ino;
};

#define HELP "Usage: rm [-rRfdv] [--] FILE...\n"

static int usage_error(void)
{
	fputs("Try 'rm --help' for more information.\n", stderr);
	return 1;
}

static void fail(struct rm *r, const char *path, int error)
{
	say("cannot remove '%s': %s", path, strerror(error));
	r->failures++;
}

static void removed(struct rm *r, const char *what, const char *path)
{
	if (!r->verbose)
		return;
	char line[4200];
	int n = snprintf(line, sizeof line, "removed %s'%s'\n", what, path);
	if (n >= (int)sizeof line) /* a very deep path: cut short, still one line */
		line[(n = (int)sizeof line - 1) - 1] = '\n';
	if (rw_write_all(1, line, (size_t)n) < 0) {
		say("write error: %s", strerror(errno));
		r->failures++;
		r->verbose = false;
	}
}

/* From <linux/dirent.h>: what getdents64 fills in. */
struct rw_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Every name in the directory fd but "." and "..", each after its type, into f. -1 with errno set. */
static int read_names(int fd, struct frame *f)
{
	char buffer[16 * 1024];
	size_t capacity = 0;
	f->names = NULL;
	f->size = f->next = 0;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int error = errno;
			free(f->names);
			errno = error;
			return -1;
		}
		if (n == 0)
			return 0;
		for (long at = 0; at < n;) {
			struct rw_dirent64 *d = (struct rw_dirent64 *)(buffer + at);
			at += d->d_reclen;
			size_t len = strlen(d->d_name);
			if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
				continue;
			if (f->size + len + 2 > capacity) {
				capacity = (capacity + len + 2) * 2;
				char *grown = realloc(f->names, capacity);
				if (grown == NULL) {
					free(f->names);
					errno = ENOMEM;
					return -1;
				}
				f->names = grown;
			}
			f->names[f->size] = (char)d->d_type;
			memcpy(f->names + f->size + 1, d->d_name, len + 1);
			f->size += len + 2;
		}
	}
}

/* The directory name in dir, opened to be emptied (never through a symbolic link), its names
 * read into f. -1 with errno set. */
static int open_frame(const struct rm *r, int dir, const char *name, struct frame *f)
{
	int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || read_names(fd, f) < 0) {
		int error = errno;
		(void)close(fd); /* read only: nothing to lose */
		errno = error;
		return -1;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->failures = r->failures;
	return fd;
}

/* A directory we cannot open may still be empty (unreadable, say): rmdir it, else report why
 * it could not be opened. */
static void remove_unopened(struct rm *r, int dir, const char *name, const char *path, int open_error)
{
	if (unlinkat(dir, name, AT_REMOVEDIR) == 0)
		removed(r, "directory ", path);
	else
		fail(r, path, errno == ENOTEMPTY || errno == EEXIST ? open_error : errno);
}

/* rm -r of the directory top, depth first, with one directory descriptor open at a time. */
static void remove_tree(struct rm *r, const char *top)
{
	struct frame *stack = NULL, first;
	size_t depth = 0, capacity = 0, len = strlen(top), path_capacity = len + 256;
	char *path = malloc(path_capacity);
	if (path == NULL) {
		fail(r, top, ENOMEM);
		return;
	}
	/* Without its trailing slashes, so that O_NOFOLLOW sees a symbolic link ("link/" would be
	 * followed): rm -r link/ must not empty the directory it points to, as coreutils' does. */
	memcpy(path, top, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	int fd = open_frame(r, AT_FDCWD, path, &first);
	if (fd < 0) {
		remove_unopened(r, AT_FDCWD, path, top, errno);
		free(path);
		return;
	}
	bool aborted = false;
	stack = &first;
	depth = 1;
	while (depth > 0) {
		struct frame *f = &stack[depth - 1];
		if (f->next < f->size) {
			unsigned char type = (unsigned char)f->names[f->next];
			const char *name = f->names + f->next + 1;
			size_t name_len = strlen(name), at = len;
			f->next += name_len + 2;
			if (at + name_len + 2 > path_capacity) {
				char *grown = realloc(path, (at + name_len + 2) * 2);
				if (grown == NULL) {
					fail(r, path, ENOMEM);
					continue;
				}
				path = grown;
				path_capacity = (at + name_len + 2) * 2;
			}
			path[at] = '/';
			memcpy(path + at + 1, name, name_len + 1);
			len = at + 1 + name_len;
			/* A directory is gone into without trying unlink: a parent we may not write refuses
			 * that with EACCES, where the entries inside may still go (as coreutils removes them).
			 * Some filesystems leave d_type unknown: then ask. */
			struct stat st;
			if (type == DT_UNKNOWN)
				type = fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)
					       ? DT_DIR
					       : DT_REG;
			if (type != DT_DIR && unlinkat(fd, name, 0) == 0) {
				removed(r, "", path);
			} else if (type != DT_DIR) {
				if (errno != ENOENT) /* gone already: nothing to say */
					fail(r, path, errno);
			} else {
				struct frame child;
				int next = open_frame(r, fd, name, &child);
				if (next >= 0 && (stack == &first || depth == capacity)) {
					/* The first frame lives outside the array until the tree is two deep. */
					struct frame *grown = realloc(stack == &first ? NULL : stack,
								      (capacity * 2 + 16) * sizeof *grown);
					if (grown == NULL) {
						free(child.names);
						(void)close(next); /* read only: nothing to lose */
						errno = ENOMEM;
						next = -1;
					} else {
						if (stack == &first)
							grown[0] = first;
						stack = grown;
						capacity = capacity * 2 + 16;
					}
				}
				if (next >= 0) {
					child.path_len = at;
					stack[depth++] = child;
					(void)close(fd); /* read only: nothing to lose */
					fd = next;
					continue;
				}
				remove_unopened(r, fd, name, path, errno);
			}
			path[len = at] = '\0';
			continue;
		}
		/* f is empty now: back up to its parent and remove it there. */
		free(f->names);
		if (depth == 1)
			break;
		struct frame *parent = &stack[depth - 2];
		int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct stat st;
		if (up < 0 || fstat(up, &st) < 0 || st.st_dev != parent->dev || st.st_ino != parent->ino) {
			/* Moved while we were inside: ".." is not where we came from. Stop this tree. */
			say("cannot remove '%s': %s", path, up < 0 ? strerror(errno) : "Moved during removal");
			r->failures++;
			aborted = true;
			if (up >= 0)
				(void)close(up);
			while (--depth > 0)
				free(stack[depth - 1].names);
			break;
		}
		(void)close(fd);
		fd = up;
		/* When something inside could not be removed (said), coreutils says nothing more. */
		if (r->failures == f->failures && unlinkat(fd, path + f->path_len + 1, AT_REMOVEDIR) == 0)
			removed(r, "directory ", path);
		else if (r->failures == f->failures)
			fail(r, path, errno);
		path[len = f->path_len] = '\0';
		depth--;
	}
	(void)close(fd);
	if (stack != &first)
		free(stack);
	if (!aborted && r->failures == first.failures) {
		if (unlinkat(AT_FDCWD, path, AT_REMOVEDIR) == 0)
			removed(r, "directory ", top);
		else
			fail(r, top, errno);
	}
	free(path);
}

static void remove_operand(struct rm *r, const char *arg)
{
	/* coreutils refuses "." and ".." as the last component under -r, trailing slashes aside. */
	const char *end = arg + strlen(arg), *base;
	while (end > arg + 1 && end[-1] == '/')
		end--;
	for (base = end; base > arg && base[-1] != '/'; base--)
		;
	if (r->recursive && base[0] == '.' && (end - base == 1 || (end - base == 2 && base[1] == '.'))) {
		say("refusing to remove '.' or '..' directory: skipping '%s'", arg);
		r->failures++;
		return;
	}
	struct stat st, root;
	if (lstat(arg, &st) < 0) {
		/* -f: what is not there is already removed; a file as a directory ("f/") is not there. */
		if (!(r->force && (errno == ENOENT || errno == ENOTDIR)))
			fail(r, arg, errno);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(arg) == 0)
			removed(r, "", arg);
		else
			fail(r, arg, errno);
	} else if (!r->recursive && !r->dir) {
		fail(r, arg, EISDIR);
	} else if (!r->recursive) {
		if (rmdir(arg) == 0)
			removed(r, "directory ", arg);
		else
			fail(r, arg, errno);
	} else if (stat("/", &root) == 0 && st.st_dev == root.st_dev && st.st_ino == root.st_ino) {
		say("it is dangerous to operate recursively on '%s'%s", arg,
		    strcmp(arg, "/") != 0 ? " (same as '/')" : "");
		say("use --no-preserve-root to override this failsafe");
		r->failures++;
	} else {
		remove_tree(r, arg);
	}
}

/* -1 to go on, else the exit status. */
static int option(struct rm *r, int c)
{
	if (c == 'r' || c == 'R')
		r->recursive = true;
	else if (c == 'f')
		r->force = true;
	else if (c == 'd')
		r->dir = true;
	else if (c == 'v')
		r->verbose = true;
	else {
		say("invalid option -- '%c'", c);
		return usage_error();
	}
	return -1;
}

int rm_main(int argc, char **argv)
{
	/* Each long option as the letter it stands for, then its name; ' ': the default, no effect. */
	const char *const long_options = "rrecursive\0fforce\0ddir\0vverbose\0 preserve-root\0hhelp\0";
	struct rm r = {0};
	int noperands = 0;
	bool options_done = false;
	/* coreutils takes options after operands too (`rm a -f`): look at every word first. */
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *p = long_options;
		int status = -1;
		if (options_done || arg[0] != '-' || arg[1] == '\0') {
			noperands++;
		} else if (strcmp(arg, "--") == 0) {
			options_done = true;
		} else if (arg[1] == '-') {
			while (*p != '\0' && strcmp(p + 1, arg + 2) != 0)
				p += strlen(p) + 1;
			if (*p == '\0') {
				hand_off("rm", argc, argv); /* not ours: the image's rm, if it has one */
				say("unrecognized option '%s'", arg);
				status = usage_error();
			} else if (*p == 'h') {
				status = rw_write_all(1, HELP, sizeof HELP - 1) < 0;
			} else if (*p != ' ') {
				status = option(&r, *p);
			}
		} else {
			if (arg[strspn(arg + 1, "rRfdv") + 1] != '\0')
				hand_off("rm", argc, argv);
			for (p = arg + 1; *p != '\0' && status < 0; p++)
				status = option(&r, *p);
		}
		if (status >= 0)
			return status;
	}
	if (noperands == 0) {
		if (r.force)
			return 0;
		say("missing operand");
		return usage_error();
	}
	/* A sync under way: what it ends with decides the restart (see sync.h). */
	(void)sync_report("rm", SYNC_START); /* a failure says so; the end will fail to report too */
	options_done = false;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (options_done || arg[0] != '-' || arg[1] == '\0')
			remove_operand(&r, arg);
		else if (strcmp(arg, "--") == 0)
			options_done = true;
	}
	if (sync_report("rm", r.failures > 0 ? SYNC_FAILED : SYNC_DONE) < 0 && r.failures == 0) {
		say("the files are removed, but the program was not restarted");
		return 1;
	}
	return r.failures > 0;
}
