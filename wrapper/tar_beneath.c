/*
 * Resolving a member's directory beneath the target, for `tar -x`. The archive is untrusted,
 * and so is what is already in the target: a name like "a/../../etc" or a symbolic link
 * "a -> /etc" left by an earlier member must never take a write outside it.
 *   1. names: a leading '/' is removed, a ".." component refuses the member;
 *   2. the member's directory, resolved beneath the target directory without ever leaving it
 *      (openat2 RESOLVE_BENEATH; without openat2, a walk that refuses every symbolic link),
 *      missing directories created on the way.
 * What is made in that directory, and how, is tar.c's.
 */
#include "tar_beneath.h"

#include "common.h"
#include "tar.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif
/* From <linux/openat2.h>, which musl does not ship. */
struct rw_open_how {
	uint64_t flags, mode, resolve;
};
#define RW_RESOLVE_NO_MAGICLINKS 0x02
#define RW_RESOLVE_BENEATH 0x08

#define say(...) rw_log_as("tar", __VA_ARGS__)

/* --- 1. names ----------------------------------------------------------------------------- */

char *beneath_safe_name(char *name, bool *warned, const char *what)
{
	if (*name == '/') {
		while (*name == '/')
			name++;
		if (!*warned)
			say("Removing leading `/' from %s", what);
		*warned = true;
	}
	for (const char *p = name; *p != '\0';) {
		size_t n = (size_t)(strchrnul(p, '/') - p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return NULL;
		for (p += n; *p == '/'; p++)
			;
	}
	return name;
}

char *beneath_split(char *path, char **last)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	char *slash = strrchr(path, '/');
	if (slash == NULL) {
		*last = path[0] != '\0' ? path : ".";
		return "";
	}
	*slash = '\0';
	*last = slash + 1;
	return path;
}

/* --- 2. resolving beneath the target ------------------------------------------------------ */

int beneath_open(struct beneath *b, const char *dir)
{
	b->root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat here, slash;
	if (b->root < 0 || fstat(b->root, &here) < 0 || stat("/", &slash) < 0)
		return -1;
	b->root_is_slash = here.st_dev == slash.st_dev && here.st_ino == slash.st_ino;
	/* openat2 came with Linux 5.6; seccomp profiles that predate it answer ENOSYS or EPERM. */
	const char *off = getenv(RW_NO_OPENAT2_ENV);
	if (off != NULL && off[0] != '\0' && strcmp(off, "0") != 0)
		return 0;
	struct rw_open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RW_RESOLVE_BENEATH};
	long probe = syscall(SYS_openat2, b->root, ".", &how, sizeof how);
	b->openat2 = probe >= 0 || (errno != ENOSYS && errno != EPERM);
	if (probe >= 0)
		(void)close((int)probe); /* an O_PATH descriptor: nothing to lose */
	return 0;
}

void beneath_close(const struct beneath *b, int fd)
{
	if (fd >= 0 && fd != b->root)
		(void)close(fd);
}

/* Without openat2: one component at a time, refusing every symbolic link. Stricter than
 * needed (a link that stays inside is refused too), never outside. */
static int walk(const struct beneath *b, const char *path)
{
	int fd = b->root;
	for (const char *p = path; *p != '\0';) {
		char part[NAME_MAX + 1];
		size_t n = (size_t)(strchrnul(p, '/') - p);
		int next = -1, error = ENAMETOOLONG;
		if (n <= NAME_MAX) {
			memcpy(part, p, n);
			part[n] = '\0';
			next = openat(fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			error = errno;
			struct stat st;
			if (next < 0 && error == ENOTDIR && fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				error = E_SYMLINK;
		}
		beneath_close(b, fd);
		if (next < 0) {
			errno = error;
			return -1;
		}
		fd = next;
		for (p += n; *p == '/'; p++)
			;
	}
	return fd;
}

int beneath_resolve(const struct beneath *b, const char *path)
{
	if (path[0] == '\0')
		return b->root;
	if (b->root_is_slash)
		return openat(b->root, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!b->openat2)
		return walk(b, path);
	struct rw_open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RW_RESOLVE_BENEATH | RW_RESOLVE_NO_MAGICLINKS,
	};
	/* EAGAIN: a rename elsewhere raced the walk through a symbolic link's ".."; try again. */
	for (int tries = 0; tries < 16; tries++) {
		long fd = syscall(SYS_openat2, b->root, path, &how, sizeof how);
		if (fd >= 0)
			return (int)fd;
		if (errno == EXDEV)
			errno = E_OUTSIDE;
		if (errno != EAGAIN)
			break;
	}
	return -1;
}

int beneath_open_parent(const struct beneath *b, char *path)
{
	int fd = beneath_resolve(b, path);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	int dir = b->root;
	for (char *p = path;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char end = *p;
		*p = '\0';
		if (p > path && p[-1] != '/') {
			int next = beneath_resolve(b, path);
			if (next < 0 && errno == ENOENT) {
				char *slash = strrchr(path, '/');
				if (mkdirat(dir, slash != NULL ? slash + 1 : path, 0777) == 0 || errno == EEXIST)
					next = beneath_resolve(b, path);
			}
			int error = errno;
			beneath_close(b, dir);
			dir = next;
			if (next < 0) {
				*p = end;
				errno = error;
				return -1;
			}
		}
		*p = end;
		if (end == '\0')
			return dir;
	}
}

