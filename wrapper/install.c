/*
 * `install DIR` and `trigger`: the two file operations, both needing no shell in the image.
 * install also lays down DIR/bin/tar, rm and test, the tools Tilt and kubectl cp exec.
 */
#include "install.h"

#include "common.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
		rw_log("install: path too long: %s", dir);
		return -1;
	}
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char end = *p;
		*p = '\0';
		/* An existing ancestor we may not write to fails with EACCES, not EEXIST. */
		struct stat st;
		if (mkdir(path, 0755) < 0 && errno != EEXIST && !(stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
			rw_log("install: cannot create %s: %s", path, strerror(errno));
			return -1;
		}
		if (end == '\0')
			return 0;
		*p = '/';
	}
}

/* Closing a descriptor we only read from cannot lose data; a failure is still worth a line. */
static void close_input(int fd)
{
	if (close(fd) < 0)
		rw_log("install: close: %s", strerror(errno));
}

/* DIR/bin/tar, rm and test, links to ../restart-wrapper: relative, so they work wherever DIR
 * is mounted; each made at a temporary name and renamed over, so installing again is fine. */
static int install_links(const char *dir)
{
	char bin[PATH_MAX], link[PATH_MAX + 16], temporary[PATH_MAX + 32];
	if (snprintf(bin, sizeof bin, "%s/bin", dir) >= (int)sizeof bin) {
		rw_log("install: path too long: %s", dir);
		return -1;
	}
	if (mkdir(bin, 0755) == 0) {
		/* The umask may have taken bits away; the container's user must be able to look in. */
		if (chmod(bin, 0755) < 0) {
			rw_log("install: cannot create %s: %s", bin, strerror(errno));
			return -1;
		}
	} else if (errno != EEXIST) {
		rw_log("install: cannot create %s: %s", bin, strerror(errno));
		return -1;
	}
	/* "tar", "rm", "test": a string, not a table of pointers, for the size budget. */
	for (const char *name = "tar\0rm\0test\0"; *name != '\0'; name += strlen(name) + 1) {
		snprintf(link, sizeof link, "%s/%s", bin, name);
		snprintf(temporary, sizeof temporary, "%s/.%s.%d", bin, name, (int)getpid());
		/* A leftover of an earlier install that died here, with our pid, would block symlink(). */
		if (unlink(temporary) < 0 && errno != ENOENT) {
			rw_log("install: cannot remove %s: %s", temporary, strerror(errno));
			return -1;
		}
		if (symlink("../restart-wrapper", temporary) < 0 || rename(temporary, link) < 0) {
			rw_log("install: cannot create %s: %s", link, strerror(errno));
			if (unlink(temporary) < 0 && errno != ENOENT)
				rw_log("install: cannot remove %s: %s", temporary, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int install(const char *dir)
{
	char target[PATH_MAX], temporary[PATH_MAX];
	if (make_dirs(dir) < 0)
		return 1;
	if (snprintf(target, sizeof target, "%s/restart-wrapper", dir) >= (int)sizeof target ||
	    snprintf(temporary, sizeof temporary, "%s/.restart-wrapper.%d", dir, (int)getpid()) >=
		    (int)sizeof temporary) {
		rw_log("install: path too long: %s", dir);
		return 1;
	}
	int in = rw_open_self();
	if (in < 0) {
		rw_log("install: cannot open this executable: %s", strerror(errno));
		return 1;
	}
	/* Copy to a temporary name and rename: a reader never sees a half-written binary. */
	int out = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0) {
		rw_log("install: cannot create %s: %s", temporary, strerror(errno));
		close_input(in);
		return 1;
	}
	char buffer[64 * 1024];
	ssize_t n;
	int failed = 0;
	while ((n = read(in, buffer, sizeof buffer)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || rw_write_all(out, buffer, (size_t)n) < 0) {
			failed = errno;
			break;
		}
	}
	/* fchmod because the umask may have taken bits away from 0755. */
	if (!failed && (fchmod(out, 0755) < 0 || fsync(out) < 0))
		failed = errno;
	if (close(out) < 0 && !failed)
		failed = errno;
	close_input(in);
	if (!failed && rename(temporary, target) < 0)
		failed = errno;
	if (failed) {
		rw_log("install: cannot write %s: %s", target, strerror(failed));
		if (unlink(temporary) < 0)
			rw_log("install: cannot remove %s: %s", temporary, strerror(errno));
		return 1;
	}
	if (install_links(dir) < 0)
		return 1;
	rw_log("installed %s", target);
	return 0;
}

int trigger(const char *restart_file, enum trigger_source source)
{
	/* A Tiltfile that kept its trigger run step after the sync became the trigger: the tar just
	 * before us asked for the restart already, and nothing has run since to make a second one
	 * worth its cost (sync.h says how that is known). An explicit --restart-file is obeyed. */
	const char *sync_file = getenv(RW_SYNC_FILE_ENV);
	int64_t ago;
	if (source != TRIGGER_OPTION && sync_file != NULL && sync_file[0] != '\0' &&
	    sync_covers_trigger(sync_file, &ago)) {
		rw_log("trigger: the sync %lldms ago restarts the program already (restart-on-sync); nothing to do",
		       (long long)ago);
		return 0;
	}
	/* Any completed write is a trigger; the time makes the file useful to a human too. */
	int fd = open(restart_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		/* Name the file and where it came from: the usual failure is the default /tmp file
		 * in an image without /tmp, or with a read-only root filesystem. */
		const char *error = strerror(errno);
		if (source == TRIGGER_ENV)
			rw_log("trigger: cannot open %s (from $" RW_RESTART_FILE_ENV "): %s", restart_file, error);
		else if (source == TRIGGER_DEFAULT)
			rw_log("trigger: cannot open %s (the default; $" RW_RESTART_FILE_ENV
			       " is not set): %s; pass --restart-file=PATH with a file the wrapper watches",
			       restart_file, error);
		else
			rw_log("trigger: cannot open %s: %s", restart_file, error);
		return 1;
	}
	struct timespec now;
	char line[32];
	int failed = 0;
	if (clock_gettime(CLOCK_REALTIME, &now) < 0) {
		failed = errno;
	} else {
		int len = snprintf(line, sizeof line, "%lld\n", (long long)now.tv_sec);
		if (rw_write_all(fd, line, (size_t)len) < 0)
			failed = errno;
	}
	if (close(fd) < 0 && !failed)
		failed = errno;
	if (failed) {
		rw_log("trigger: cannot write %s: %s", restart_file, strerror(failed));
		return 1;
	}
	return 0;
}
