/*
 * Every watch is an entry: (inotify wd, target, role, directory path).
 *   anchor: the parent directory of a target (or the nearest ancestor that exists),
 *           looking for the target's next path component;
 *   tree:   a directory inside a --watch tree, where every event is a change.
 * One directory can serve several entries (inotify hands back the same wd for the same
 * inode), so a wd is only removed once no entry uses it any more.
 */
#include "watch.h"

#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define EVENTS                                                                                    \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB |       \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define FALLBACK_POLL_MS 1000

/* What a target is, which decides what its changes mean. */
enum role {
	RESTART_FILE, /* a change restarts at once */
	SYNC_FILE,    /* a new report from the sync tools: the supervisor reads it */
	TREE,         /* a --watch tree: a change restarts after the quiet period */
};

struct target {
	const char *path;
	enum role role;
	uint64_t signature; /* polling only: the last seen state */
};

struct entry {
	int wd;
	size_t target;
	bool anchor;
	char *dir;
};

struct watcher {
	int fd; /* inotify, or -1 when polling */
	int64_t poll_ms;
	int64_t next_poll;
	struct target *targets;
	size_t ntargets;
	struct entry *entries;
	size_t nentries;
	size_t capacity;
};

static void arm(struct watcher *w, size_t t);
static uint64_t signature(const struct target *t);

/* --- entries ------------------------------------------------------------------------- */

static bool wd_in_use(const struct watcher *w, int wd)
{
	for (size_t i = 0; i < w->nentries; i++)
		if (w->entries[i].wd == wd)
			return true;
	return false;
}

static void remove_entry(struct watcher *w, size_t i, bool release_wd)
{
	int wd = w->entries[i].wd;
	free(w->entries[i].dir);
	w->entries[i] = w->entries[--w->nentries];
	/* The kernel already dropped the wd on IN_IGNORED; only live wds are released here. */
	if (release_wd && w->fd >= 0 && !wd_in_use(w, wd) && inotify_rm_watch(w->fd, wd) < 0 && errno != EINVAL)
		rw_log("inotify_rm_watch: %s", strerror(errno));
}

static void start_polling(struct watcher *w, const char *why)
{
	rw_log("%s; polling for changes every %lldms instead", why, (long long)FALLBACK_POLL_MS);
	if (w->fd >= 0 && close(w->fd) < 0)
		rw_log("close(inotify): %s", strerror(errno));
	w->fd = -1;
	for (size_t i = 0; i < w->nentries; i++)
		free(w->entries[i].dir);
	w->nentries = 0;
	w->poll_ms = FALLBACK_POLL_MS;
	w->next_poll = rw_now_ms() + w->poll_ms;
	for (size_t t = 0; t < w->ntargets; t++)
		w->targets[t].signature = signature(&w->targets[t]);
}

/* Watch `dir` for target t. Missing directories are a race we ignore; running out of
 * watches or memory switches the whole watcher to polling. Returns false when not added. */
static bool add_entry(struct watcher *w, size_t t, bool anchor, const char *dir)
{
	if (w->fd < 0)
		return false;
	int wd = inotify_add_watch(w->fd, dir, EVENTS);
	if (wd < 0) {
		if (errno == ENOSPC || errno == ENOMEM) {
			char why[PATH_MAX + 64];
			snprintf(why, sizeof why, "cannot watch %s: %s", dir, strerror(errno));
			start_polling(w, why);
		}
		return false;
	}
	for (size_t i = 0; i < w->nentries; i++) {
		struct entry *e = &w->entries[i];
		if (e->wd == wd && e->target == t && e->anchor == anchor && strcmp(e->dir, dir) == 0)
			return true;
	}
	if (w->nentries == w->capacity) {
		size_t capacity = w->capacity ? w->capacity * 2 : 16;
		struct entry *grown = realloc(w->entries, capacity * sizeof *grown);
		if (grown == NULL) {
			start_polling(w, "out of memory for watches");
			return false;
		}
		w->entries = grown;
		w->capacity = capacity;
	}
	char *copy = strdup(dir);
	if (copy == NULL) {
		start_polling(w, "out of memory for watches");
		return false;
	}
	w->entries[w->nentries++] = (struct entry){.wd = wd, .target = t, .anchor = anchor, .dir = copy};
	return true;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool join(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
	return n > 0 && n < PATH_MAX;
}

/* `path` is `dir` or inside it. */
static bool within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/' || strcmp(dir, "/") == 0);
}

/* readdir() without "." and "..". NULL at the end, or on an error, which is logged: a
 * directory we cannot list is one whose changes we will not all see. */
static struct dirent *next_entry(DIR *d, const char *dir)
{
	for (;;) {
		errno = 0; /* readdir reports errors only through errno */
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				rw_log("readdir %s: %s", dir, strerror(errno));
			return NULL;
		}
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return de;
	}
}

static void close_dir(DIR *d, const char *dir)
{
	if (closedir(d) < 0)
		rw_log("closedir %s: %s", dir, strerror(errno));
}

/* --- trees and anchors --------------------------------------------------------------- */

static void add_tree(struct watcher *w, size_t t, const char *dir)
{
	if (!add_entry(w, t, false, dir))
		return;
	DIR *d = opendir(dir);
	if (d == NULL)
		return; /* removed meanwhile, or unreadable: its own events still arrive */
	struct dirent *de;
	while (w->fd >= 0 && (de = next_entry(d, dir)) != NULL) {
		char child[PATH_MAX];
		if (!join(child, dir, de->d_name))
			continue;
		struct stat st;
		bool subdir = de->d_type == DT_DIR ||
			      (de->d_type == DT_UNKNOWN && lstat(child, &st) == 0 && S_ISDIR(st.st_mode));
		if (subdir)
			add_tree(w, t, child);
	}
	close_dir(d, dir);
}

static void remove_tree(struct watcher *w, size_t t, const char *dir)
{
	for (size_t i = w->nentries; i-- > 0;)
		if (i < w->nentries && w->entries[i].target == t && !w->entries[i].anchor &&
		    within(w->entries[i].dir, dir))
			remove_entry(w, i, true);
}

/* (Re)place target t's anchor on the nearest existing ancestor, and watch its tree if it is one. */
static void arm(struct watcher *w, size_t t)
{
	const struct target *target = &w->targets[t];
	for (size_t i = w->nentries; i-- > 0;)
		if (i < w->nentries && w->entries[i].target == t && w->entries[i].anchor)
			remove_entry(w, i, true);

	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", target->path);
	do {
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else if (slash != NULL)
			*slash = '\0';
	} while (!is_dir(dir) && strcmp(dir, "/") != 0);
	if (!add_entry(w, t, true, dir))
		return;
	if (target->role == TREE && is_dir(target->path))
		add_tree(w, t, target->path);
}

/* --- events -------------------------------------------------------------------------- */

static void report(struct change *c, enum role role, const char *path)
{
	bool immediate = role == RESTART_FILE;
	if (role == SYNC_FILE) {
		c->sync = true;
		return;
	}
	/* The log names the cause that decides what happens: the first immediate one if any
	 * (it restarts at once), else the first --watch change. */
	if ((immediate && !c->restart_file) || c->what[0] == '\0')
		snprintf(c->what, sizeof c->what, "%s", path);
	if (immediate)
		c->restart_file = true;
	else
		c->tree = true;
}

/* Something at `path` in --watch target t changed: report it, and follow a directory that
 * moved in or was created (watch its tree) or moved out (stop watching it). */
static void tree_change(struct watcher *w, size_t t, uint32_t mask, const char *path, struct change *c)
{
	report(c, TREE, path);
	if (!(mask & IN_ISDIR))
		return;
	if (mask & (IN_CREATE | IN_MOVED_TO))
		add_tree(w, t, path);
	if (mask & IN_MOVED_FROM)
		remove_tree(w, t, path);
}

/* An event about the target path itself, seen from its parent directory. */
static void target_event(struct watcher *w, size_t t, uint32_t mask, const char *path, struct change *c)
{
	const struct target *target = &w->targets[t];
	if (target->role == SYNC_FILE) {
		/* A report is renamed into place: one event per report. */
		if (mask & (IN_MOVED_TO | IN_CLOSE_WRITE))
			report(c, SYNC_FILE, path);
		return;
	}
	if (target->role == RESTART_FILE) {
		/* A file created by open() is followed by IN_CLOSE_WRITE; only a link or a
		 * directory appearing by itself counts at IN_CREATE, so one write is one restart. */
		struct stat st;
		bool created_other = (mask & IN_CREATE) && lstat(path, &st) == 0 && !S_ISREG(st.st_mode);
		if ((mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB)) || created_other)
			report(c, RESTART_FILE, path);
		return;
	}
	tree_change(w, t, mask, path, c);
}

static void handle_event(struct watcher *w, const struct inotify_event *ev, struct change *c)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		/* Events were lost: count it as a change, and re-arm in case directories appeared. */
		report(c, RESTART_FILE, "(inotify queue overflowed)");
		for (size_t t = 0; t < w->ntargets; t++)
			arm(w, t);
		return;
	}
	if (ev->mask & IN_IGNORED) {
		/* The directory is gone (or moved off the filesystem): drop its entries and re-anchor. */
		bool rearm[w->ntargets > 0 ? w->ntargets : 1];
		memset(rearm, 0, sizeof rearm);
		for (size_t i = w->nentries; i-- > 0;) {
			if (i < w->nentries && w->entries[i].wd == ev->wd) {
				if (w->entries[i].anchor)
					rearm[w->entries[i].target] = true;
				remove_entry(w, i, false);
			}
		}
		for (size_t t = 0; t < w->ntargets; t++)
			if (rearm[t])
				arm(w, t);
		return;
	}

	/* Handling an event may add or remove entries; work from a copy of the matching ones. */
	size_t n = 0;
	for (size_t i = 0; i < w->nentries; i++)
		n += w->entries[i].wd == ev->wd;
	if (n == 0)
		return;
	struct entry *matches = calloc(n, sizeof *matches);
	if (matches == NULL) {
		report(c, RESTART_FILE, "(out of memory while reading events)");
		return;
	}
	size_t copied = 0;
	for (size_t i = 0; i < w->nentries; i++) {
		if (w->entries[i].wd != ev->wd)
			continue;
		matches[copied] = w->entries[i];
		matches[copied].dir = strdup(w->entries[i].dir);
		if (matches[copied].dir == NULL) {
			report(c, RESTART_FILE, "(out of memory while reading events)");
			break;
		}
		copied++;
	}
	for (size_t i = 0; i < copied; i++) {
		const char *dir = matches[i].dir;
		size_t t = matches[i].target;
		const char *goal = w->targets[t].path;
		char child[PATH_MAX] = "";
		bool named = ev->len > 0 && join(child, dir, ev->name);

		if (matches[i].anchor) {
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				arm(w, t);
			} else if (named && strcmp(child, goal) == 0) {
				target_event(w, t, ev->mask, child, c);
			} else if (named && within(goal, child) && (ev->mask & IN_ISDIR) &&
				   (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
				/* A directory on the way to the target appeared: move the anchor down. */
				arm(w, t);
				struct stat st;
				if (lstat(goal, &st) == 0)
					report(c, w->targets[t].role, goal);
			}
		} else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
			if (strcmp(dir, goal) == 0)
				report(c, TREE, goal);
		} else if (named) {
			tree_change(w, t, ev->mask, child, c);
		}
	}
	for (size_t i = 0; i < copied; i++)
		free(matches[i].dir);
	free(matches);
}

/* --- polling ------------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static uint64_t stat_hash(const char *path, const struct stat *st)
{
	uint64_t h = mix(14695981039346656037ULL, path, strlen(path));
	int64_t fields[] = {
		(int64_t)st->st_dev, (int64_t)st->st_ino, (int64_t)st->st_size, (int64_t)st->st_mode,
		st->st_mtim.tv_sec,  st->st_mtim.tv_nsec, st->st_ctim.tv_sec,   st->st_ctim.tv_nsec,
	};
	return mix(h, fields, sizeof fields) | 1; /* never 0: 0 means "absent" */
}

/* Order-independent: the sum of every entry's hash, so readdir order does not matter. */
static uint64_t tree_hash(const char *dir)
{
	uint64_t sum = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *de;
	while ((de = next_entry(d, dir)) != NULL) {
		char child[PATH_MAX];
		struct stat st;
		if (!join(child, dir, de->d_name) || lstat(child, &st) < 0)
			continue; /* too long to name, or gone since readdir: nothing to compare */
		sum += stat_hash(child, &st);
		if (S_ISDIR(st.st_mode))
			sum += tree_hash(child);
	}
	close_dir(d, dir);
	return sum;
}

static uint64_t signature(const struct target *t)
{
	struct stat st;
	if (stat(t->path, &st) < 0)
		return 0;
	uint64_t h = stat_hash(t->path, &st);
	if (t->role == TREE && S_ISDIR(st.st_mode))
		h += tree_hash(t->path);
	return h;
}

static void poll_targets(struct watcher *w, struct change *c)
{
	for (size_t t = 0; t < w->ntargets; t++) {
		struct target *target = &w->targets[t];
		uint64_t now = signature(target);
		/* A restart file that disappears is not a trigger; its return is. */
		if (now != target->signature && !(target->role != TREE && now == 0))
			report(c, target->role, target->path);
		target->signature = now;
	}
}

/* --- the interface ------------------------------------------------------------------- */

struct watcher *watcher_open(const char *const *restart_files, size_t nrestart_files, const char *sync_file,
			     char *const *trees, size_t ntrees, int64_t poll_ms)
{
	struct watcher *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->targets = calloc(nrestart_files + 1 + ntrees, sizeof *w->targets);
	if (w->targets == NULL) {
		free(w);
		return NULL;
	}
	/* Restart files first: report() names the first immediate cause, in the order given. */
	for (size_t i = 0; i < nrestart_files; i++)
		w->targets[w->ntargets++] = (struct target){.path = restart_files[i], .role = RESTART_FILE};
	if (sync_file != NULL)
		w->targets[w->ntargets++] = (struct target){.path = sync_file, .role = SYNC_FILE};
	for (size_t i = 0; i < ntrees; i++) {
		/* "/a/b/" and "/a/b" are the same tree; paths are compared as strings below. */
		size_t len = strlen(trees[i]);
		while (len > 1 && trees[i][len - 1] == '/')
			trees[i][--len] = '\0';
		w->targets[w->ntargets++] = (struct target){.path = trees[i], .role = TREE};
	}

	w->fd = -1;
	if (poll_ms > 0) {
		w->poll_ms = poll_ms;
		w->next_poll = rw_now_ms() + poll_ms;
		for (size_t t = 0; t < w->ntargets; t++)
			w->targets[t].signature = signature(&w->targets[t]);
		return w;
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		char why[128];
		snprintf(why, sizeof why, "inotify unavailable: %s", strerror(errno));
		start_polling(w, why);
		return w;
	}
	for (size_t t = 0; t < w->ntargets && w->fd >= 0; t++)
		arm(w, t);
	return w;
}

int watcher_fd(const struct watcher *w)
{
	return w->fd;
}

int64_t watcher_next_poll(const struct watcher *w)
{
	return w->fd < 0 ? w->next_poll : -1;
}

void watcher_collect(struct watcher *w, int64_t now, struct change *c)
{
	if (w->fd < 0) {
		if (now >= w->next_poll) {
			poll_targets(w, c);
			w->next_poll = now + w->poll_ms;
		}
		return;
	}
	char buffer[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t len = read(w->fd, buffer, sizeof buffer);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				start_polling(w, "reading inotify failed");
			return;
		}
		for (char *p = buffer; p < buffer + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			handle_event(w, ev, c);
			if (w->fd < 0)
				return; /* switched to polling while handling */
			p += sizeof *ev + ev->len;
		}
	}
}

void watcher_close(struct watcher *w)
{
	if (w->fd >= 0 && close(w->fd) < 0)
		rw_log("close(inotify): %s", strerror(errno));
	for (size_t i = 0; i < w->nentries; i++)
		free(w->entries[i].dir);
	free(w->entries);
	free(w->targets);
	free(w);
}
