/* Handing a command line to the image's own tar, rm or test (see handoff.h). */
#include "handoff.h"

#include "common.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether the PATH entry `dir` (len bytes) holds `name`, written into candidate, and whether that is us. */
static bool found(const char *dir, size_t len, const char *name, const struct stat *self, char *candidate,
		  bool *is_self)
{
	struct stat st;
	if (len == 0 || snprintf(candidate, PATH_MAX, "%.*s/%s", (int)len, dir, name) >= PATH_MAX ||
	    stat(candidate, &st) < 0 || !S_ISREG(st.st_mode))
		return false; /* an empty entry would be the working directory: never ours to run */
	*is_self = st.st_dev == self->st_dev && st.st_ino == self->st_ino;
	return true;
}

/* This executable's device and inode. Opened rather than stat()ed: qemu-user, which runs the
 * other architectures' builds in the tests, opens the program for /proc/self/exe, but a stat()
 * of it would see qemu itself. */
static int stat_self(struct stat *self)
{
	int fd = rw_open_self();
	if (fd < 0)
		return -1;
	int status = fstat(fd, self);
	(void)close(fd); /* read only: nothing to lose */
	return status;
}

bool holds_our_tools(const char *dir, size_t len)
{
	struct stat self;
	char candidate[PATH_MAX];
	bool is_self = false;
	return stat_self(&self) == 0 && found(dir, len, "tar", &self, candidate, &is_self) && is_self;
}

void hand_off(const char *name, int argc, char **argv)
{
	struct stat self;
	const char *path = getenv("PATH");
	if (path == NULL || stat_self(&self) < 0)
		return;
	char **words = malloc(((size_t)argc + 2) * sizeof *words);
	if (words == NULL)
		return;
	words[0] = (char *)name;
	memcpy(words + 1, argv, (size_t)argc * sizeof *words);
	words[argc + 1] = NULL;

	/* Where to start: after our own entry, if PATH has one. */
	char candidate[PATH_MAX];
	const char *start = path;
	bool is_self;
	for (const char *p = path;; p++) {
		size_t len = strcspn(p, ":");
		if (found(p, len, name, &self, candidate, &is_self) && is_self) {
			start = p + len;
			break;
		}
		p += len;
		if (*p == '\0')
			break;
	}
	for (const char *p = start; *p != '\0';) {
		p += *p == ':';
		size_t len = strcspn(p, ":");
		if (found(p, len, name, &self, candidate, &is_self) && !is_self)
			execv(candidate, words); /* returns only on failure: try the next */
		p += len;
	}
	free(words);
}
