/*
 * `tar -x`: extract the archives Tilt's live_update and `kubectl cp` stream into a container
 * whose image has no tar. GNU tar 1.34 is the reference for the command line, the messages
 * and the exit statuses (2 after any error, 64 for a command line it cannot parse, as GNU's).
 *
 * The archive is untrusted. Reads in the order a member is handled:
 *   1. the command line: GNU's syntax (old style `xf -`, clusters `-xmf -`, long options);
 *   2. the stream and its headers, extended ones included: tar_archive.c;
 *   3. the member's name, and its directory resolved beneath the target without ever leaving
 *      it, missing directories created on the way: tar_beneath.c;
 *   4. the member, made at a temporary name in that directory and renamed over its own name,
 *      never following a symbolic link there: a reader never sees half a file, and a running
 *      executable is replaced rather than written to (no ETXTBSY);
 *   5. owner, mode and times; directories' at the very end, deepest first, so extracting into
 *      them does not change their times and a read-only one can still be filled.
 * A command line it does not implement goes to the image's own tar (handoff.h). An extraction
 * is reported to the wrapper as it starts and as it ends, done or failed (sync.h).
 */
#include "tar.h"

#include "common.h"
#include "handoff.h"
#include "sync.h"
#include "tar_archive.h"
#include "tar_beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Temporary names taken by someone else (a crashed run with a reused pid) before giving up. */
#define TEMP_TRIES 100
#define say(...) rw_log_as("tar", __VA_ARGS__)

/* Numbered as ustar's typeflags '0' to '6'. */
enum kind { REGULAR, HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO };

/* What GNU restores of a member, beyond its data. */
struct meta {
	mode_t mode;
	int64_t uid, gid;
	struct timespec mtime;
};

struct member {
	char *name; /* as in the archive: shown by -v */
	char *link; /* a hard link's or symbolic link's target */
	enum kind kind;
	struct meta meta;
	int64_t size;
	unsigned major, minor;
};

/* A directory whose owner, mode and times are set after every member. */
struct delayed {
	char *name; /* beneath the target, leading '/' removed */
	int depth;
	dev_t dev;
	ino_t ino;
	struct meta meta;
	bool chmod; /* without -p, GNU leaves the mode of a directory that existed alone */
};

struct tar {
	/* the command line, as given (for the image's tar) and as understood */
	int argc;
	char **argv;
	bool extract, verbose, touch, same_owner, same_permissions;
	const char *archive, *directory;
	int owner_option, permissions_option; /* -1: not given, then GNU's default (root or not) */

	struct archive stream;
	struct beneath target; /* -C DIR (or the current directory), opened at the first member */
	mode_t umask;
	int pid;
	unsigned temp_counter;

	bool warned_slash, warned_link_slash, verbose_failed;
	bool failed; /* an error was reported: exit 2 at the end (the stream keeps its own) */
	struct delayed *dirs;
	size_t ndirs, dirs_capacity;
	char why[PATH_MAX + 64];
};

/* --- 1. the command line ------------------------------------------------------------------ */

/* The long options we take, each as the letter it stands for, then its name. 'O', 'P', 'n' and
 * 'h' are --same-owner, --no-same-permissions, --numeric-owner (what we do anyway: there is no
 * /etc/passwd to ask) and --help (or --usage), which have no short form here. */
#define LONG_OPTIONS \
	"xextract\0xget\0ffile\0Cdirectory\0mtouch\0ono-same-owner\0Osame-owner\0psame-permissions\0" \
	"ppreserve-permissions\0Pno-same-permissions\0vverbose\0nnumeric-owner\0hhelp\0husage\0"
/* GNU's options for what we do not do: said so plainly, rather than "invalid". (Macros, not
 * arrays: string literals are packed tighter, and the size budget counts.) */
#define UNSUPPORTED_SHORT "AcdrtuzjJZaOPhSkUW"
#define UNSUPPORTED_LONG "create\0list\0gzip\0bzip2\0xz\0"
#define NOT_SUPPORTED " is not supported by restart-wrapper"
#define HELP "Usage: tar -x [-mopv] [-f ARCHIVE] [-C DIR]\n"

/* GNU's exit status for a command line it cannot parse (EX_USAGE); other errors are 2. */
#define USAGE 64

static int usage_error(int status)
{
	fputs("Try 'tar --help' or 'tar --usage' for more information.\n", stderr);
	return status;
}

/* The entry of table (NUL-separated, ended by an empty one) whose text after `skip` bytes is the
 * len bytes at name; NULL if none. */
static const char *lookup(const char *table, size_t skip, const char *name, size_t len)
{
	for (const char *p = table; *p != '\0'; p += strlen(p) + 1)
		if (strlen(p + skip) == len && memcmp(p + skip, name, len) == 0)
			return p;
	return NULL;
}

/* A command line that is not ours to run: the image's own tar takes it, if there is one. */
static void not_ours(const struct tar *t)
{
	hand_off("tar", t->argc, t->argv);
}

/* One option, by its letter: -1 to go on, else the exit status. */
static int apply_option(struct tar *t, int option, const char *value)
{
	if (option == 'f' || option == 'C') {
		const char **slot = option == 'f' ? &t->archive : &t->directory;
		if (*slot != NULL) {
			say("-%c twice%s", option, NOT_SUPPORTED);
			return 2;
		}
		*slot = value;
	} else if (option == 'x') {
		t->extract = true;
	} else if (option == 'm') {
		t->touch = true;
	} else if (option == 'o' || option == 'O') {
		t->owner_option = option == 'O';
	} else if (option == 'p' || option == 'P') {
		t->permissions_option = option == 'p';
	} else if (option == 'v') {
		t->verbose = true;
	} else if (option == 'h') {
		if (rw_write_all(1, HELP, sizeof HELP - 1) == 0)
			return 0;
		say("write error: %s", strerror(errno));
		return 2;
	}
	return -1;
}

/* A long option (argv[*i] starts with "--"); *i moves past its argument when that is the next word. */
static int long_option(struct tar *t, int argc, char **argv, int *i)
{
	const char *name = argv[*i] + 2;
	const char *equals = strchrnul(name, '=');
	int len = (int)(equals - name);
	const char *entry = lookup(LONG_OPTIONS, 1, name, (size_t)len);
	if (entry == NULL) {
		not_ours(t);
		if (lookup(UNSUPPORTED_LONG, 0, name, (size_t)len) != NULL) {
			say("--%.*s%s", len, name, NOT_SUPPORTED);
			return 2;
		}
		say("unrecognized option '%s'", argv[*i]);
		return usage_error(USAGE);
	}
	const char *value = NULL;
	if (entry[0] == 'f' || entry[0] == 'C') {
		value = *equals == '=' ? equals + 1 : *i + 1 < argc ? argv[++*i] : NULL;
		if (value == NULL) {
			say("option '--%s' requires an argument", name);
			return usage_error(USAGE);
		}
	} else if (*equals == '=') { /* GNU: "doesn't allow an argument"; the budget says less */
		say("unrecognized option '%s'", argv[*i]);
		return usage_error(USAGE);
	}
	return apply_option(t, entry[0], value);
}

/* A cluster of short options, "-xmf" ('f' and 'C' take the rest of the word, else the next). */
static int short_options(struct tar *t, int argc, char **argv, int *i)
{
	for (const char *p = argv[*i] + 1; *p != '\0'; p++) {
		if (*p == 'f' || *p == 'C') {
			const char *value = p[1] != '\0' ? p + 1 : *i + 1 < argc ? argv[++*i] : NULL;
			if (value != NULL)
				return apply_option(t, *p, value);
			say("option requires an argument -- '%c'", *p);
			return usage_error(USAGE);
		}
		if (strchr("xmopv", *p) == NULL)
			not_ours(t);
		if (strchr(UNSUPPORTED_SHORT, *p) != NULL) {
			say("-%c%s", *p, NOT_SUPPORTED);
			return 2;
		}
		if (strchr("xmopv", *p) == NULL) {
			say("invalid option -- '%c'", *p);
			return usage_error(USAGE);
		}
		apply_option(t, *p, NULL);
	}
	return -1;
}

static int parse_options(struct tar *t, int argc, char **argv)
{
	bool options_done = false;
	const char *operand = NULL;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		int status = -1;
		if (options_done || arg[0] != '-' || arg[1] == '\0')
			operand = operand ? operand : arg;
		else if (strcmp(arg, "--") == 0)
			options_done = true;
		else if (arg[1] == '-')
			status = long_option(t, argc, argv, &i);
		else
			status = short_options(t, argc, argv, &i);
		if (status >= 0)
			return status;
	}
	if (!t->extract || operand != NULL)
		not_ours(t);
	if (!t->extract) {
		say("You must specify one of the '-Acdtrux', '--delete' or '--test-label' options");
		return usage_error(2);
	}
	if (operand != NULL) {
		say("%s: naming members to extract%s", operand, NOT_SUPPORTED);
		return 2;
	}
	return -1;
}

/* GNU's old style, a first word without '-': its letters are options, and the letters that
 * take an argument take the next words in turn (`tar xfC - dir`). Rewritten as "-x", "-f",
 * "-", "-C", "dir" into *out (to free), or NULL when the first word is not old style. */
static int old_style(int argc, char **argv, char ***out)
{
	*out = NULL;
	if (argc == 0 || argv[0][0] == '-')
		return argc;
	size_t letters = strlen(argv[0]);
	char **words = malloc((argc + letters) * sizeof *words + 3 * letters);
	if (words == NULL)
		return -1;
	char *options = (char *)(words + argc + letters);
	int n = 0, next = 1;
	for (size_t k = 0; k < letters; k++) {
		char *option = options + 3 * k;
		option[0] = '-';
		option[1] = argv[0][k];
		option[2] = '\0';
		words[n++] = option;
		if ((option[1] == 'f' || option[1] == 'C') && next < argc)
			words[n++] = argv[next++];
	}
	while (next < argc)
		words[n++] = argv[next++];
	*out = words;
	return n;
}

/* --- 4. members --------------------------------------------------------------------------- */

static const char *reason(struct tar *t, int error)
{
	if (error == E_OUTSIDE) {
		snprintf(t->why, sizeof t->why, "Path leads outside %s",
			 t->directory != NULL ? t->directory : ".");
		return t->why;
	}
	if (error == E_SYMLINK)
		return "Symbolic link refused (no openat2)";
	return strerror(error);
}

static void member_error(struct tar *t, const char *name, const char *what, const char *target, int error)
{
	if (target != NULL)
		say("%s: %s '%s': %s", name, what, target, reason(t, error));
	else
		say("%s: %s: %s", name, what, reason(t, error));
	t->failed = true;
}

/* GNU's words for failing to make each kind (a function: a table of pointers costs relocations). */
static const char *verb(enum kind kind)
{
	return kind == HARDLINK	   ? "Cannot hard link to"
	       : kind == SYMLINK   ? "Cannot create symlink to"
	       : kind == DIRECTORY ? "Cannot mkdir"
	       : kind == FIFO	   ? "Cannot mkfifo"
	       : kind != REGULAR   ? "Cannot mknod"
				   : "Cannot open";
}

/* The member's node at a fresh temporary name in dir, ours by pid and counter: a regular file's
 * descriptor, 0 for the others, -1 with errno set. link_dir and link_last name a hard link's
 * target. */
static int make_temporary(struct tar *t, const struct member *m, int dir, char *temporary, int link_dir,
			  const char *link_last)
{
	for (int tries = 0; tries < TEMP_TRIES; tries++) {
		snprintf(temporary, 64, ".restart-wrapper-tar.%d.%u", t->pid, t->temp_counter++);
		int r;
		if (m->kind == SYMLINK)
			r = symlinkat(m->link, dir, temporary);
		else if (m->kind == HARDLINK) /* flags 0: a symbolic link is linked itself, never followed */
			r = linkat(link_dir, link_last, dir, temporary, 0);
		else if (m->kind == FIFO)
			r = mkfifoat(dir, temporary, 0600);
		else if (m->kind != REGULAR)
			r = mknodat(dir, temporary, (m->kind == CHARDEV ? S_IFCHR : S_IFBLK) | 0600,
				    makedev(m->major, m->minor));
		else /* 0600 while it is written, whatever the archive says */
			r = openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (r >= 0 || errno != EEXIST)
			return r;
	}
	return -1;
}

/* Rename the temporary over the member's name. A directory in the way goes if it is empty, as
 * GNU removes it; a full one is "File exists", as GNU says. */
static int rename_over(int dir, const char *temporary, const char *last)
{
	if (renameat(dir, temporary, dir, last) == 0)
		return 0;
	if (errno != EISDIR)
		return -1;
	if (unlinkat(dir, last, AT_REMOVEDIR) < 0) {
		if (errno == ENOTEMPTY)
			errno = EEXIST;
		return -1;
	}
	return renameat(dir, temporary, dir, last);
}

/* GNU's "rwsr-xr-x", for "Cannot change mode to". */
static const char *mode_string(mode_t mode, char *out)
{
	static const char rwx[] = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[i] = mode & (0400 >> i) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[2] = out[2] == 'x' ? 's' : 'S';
	if (mode & S_ISGID)
		out[5] = out[5] == 'x' ? 's' : 'S';
	if (mode & S_ISVTX)
		out[8] = out[8] == 'x' ? 't' : 'T';
	out[9] = '\0';
	return out;
}

/* --- 5. owner, mode and times ------------------------------------------------------------- */

/* GNU's defaults: as root the archive's numeric owner (there is no /etc/passwd to map names
 * with, so names are ignored) and its mode, set-id bits included; otherwise no chown and the
 * mode less the umask; -o, --same-owner, -p and --no-same-permissions override. Then the
 * modification time, unless -m. chown first: it clears set-id bits. With fd >= 0, through it;
 * else name in dir, never following a final symbolic link. fchmodat and utimensat are the
 * kernel's: musl's carry emulations (of flags, of old kernels) the size budget has no room for. */
static void set_meta(struct tar *t, const char *shown, const struct meta *meta, bool chmod_it, int fd, int dir,
		     const char *name)
{
	if (t->same_owner) {
		int r = -1;
		errno = EINVAL;
		if (meta->uid >= 0 && meta->uid < UINT32_MAX && meta->gid >= 0 && meta->gid < UINT32_MAX)
			r = fd >= 0 ? fchown(fd, (uid_t)meta->uid, (gid_t)meta->gid)
				    : fchownat(dir, name, (uid_t)meta->uid, (gid_t)meta->gid, AT_SYMLINK_NOFOLLOW);
		if (r < 0) {
			say("%s: Cannot change ownership to uid %lld, gid %lld: %s", shown, (long long)meta->uid,
			    (long long)meta->gid, strerror(errno));
			t->failed = true;
		}
	}
	if (chmod_it) {
		mode_t mode = t->same_permissions ? meta->mode & 07777 : meta->mode & 0777 & ~t->umask;
		if ((fd >= 0 ? fchmod(fd, mode) : syscall(SYS_fchmodat, dir, name, mode)) < 0) {
			char text[10];
			say("%s: Cannot change mode to %s: %s", shown, mode_string(mode, text), strerror(errno));
			t->failed = true;
		}
	}
	if (!t->touch) {
		struct timespec times[2] = {{.tv_nsec = UTIME_NOW}, meta->mtime};
		if (syscall(SYS_utimensat, fd >= 0 ? fd : dir, fd >= 0 ? NULL : name, times,
			    fd >= 0 ? 0 : AT_SYMLINK_NOFOLLOW) < 0) {
			say("%s: Cannot utime: %s", shown, strerror(errno));
			t->failed = true;
		}
	}
}

/* The data into fd: 0, with *error the first write error (the data is read to its end all the
 * same, to stay in step with the stream); -1 when the stream fails. */
static int write_data(struct tar *t, int fd, int64_t size, int *error)
{
	*error = 0;
	for (uint64_t left = (uint64_t)size; left > 0;) {
		const unsigned char *data;
		ssize_t n = archive_next_data(&t->stream, left < SIZE_MAX ? (size_t)left : SIZE_MAX, &data);
		if (n < 0)
			return -1;
		if (*error == 0 && rw_write_all(fd, data, (size_t)n) < 0)
			*error = errno;
		left -= (uint64_t)n;
	}
	return 0;
}

/* Remember a directory for the end; no memory means its metadata is not restored (reported). */
static void delay(struct tar *t, const char *shown, const char *name, int dir, const char *last,
		  const struct meta *meta, bool chmod_it)
{
	struct stat st;
	if (fstatat(dir, last, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		member_error(t, shown, verb(DIRECTORY), NULL, errno);
		return;
	}
	if (t->ndirs == t->dirs_capacity) {
		size_t capacity = t->dirs_capacity ? t->dirs_capacity * 2 : 64;
		struct delayed *grown = realloc(t->dirs, capacity * sizeof *grown);
		if (grown == NULL) {
			member_error(t, shown, verb(DIRECTORY), NULL, ENOMEM);
			return;
		}
		t->dirs = grown;
		t->dirs_capacity = capacity;
	}
	char *copy = strdup(name);
	if (copy == NULL) {
		member_error(t, shown, verb(DIRECTORY), NULL, ENOMEM);
		return;
	}
	int depth = 0;
	for (const char *p = copy; *p != '\0'; p++)
		depth += *p == '/';
	t->dirs[t->ndirs++] = (struct delayed){
		.name = copy, .depth = depth, .dev = st.st_dev, .ino = st.st_ino,
		.meta = *meta, .chmod = chmod_it,
	};
}

/* A directory: made if missing (0700 until the end, so we can fill it); a non-directory in the
 * way is removed; one that exists is kept. Its metadata waits for the end. */
static void extract_directory(struct tar *t, const struct member *m, const char *shown, const char *name, int dir,
			      const char *last)
{
	bool created = mkdirat(dir, last, 0700) == 0;
	struct stat st;
	if (!created && (errno != EEXIST || fstatat(dir, last, &st, AT_SYMLINK_NOFOLLOW) < 0)) {
		member_error(t, shown, "Cannot mkdir", NULL, errno);
		return;
	}
	if (!created && !S_ISDIR(st.st_mode)) {
		if (unlinkat(dir, last, 0) < 0 || mkdirat(dir, last, 0700) < 0) {
			member_error(t, shown, "Cannot mkdir", NULL, errno);
			return;
		}
		created = true;
	}
	delay(t, shown, name, dir, last, &m->meta, created || t->same_permissions);
}

/* Anything but a directory: made at a temporary name, metadata set, renamed over. -1 only
 * when the stream fails. */
static int extract_node(struct tar *t, const struct member *m, const char *shown, int dir, const char *last)
{
	char temporary[64];
	int link_dir = -1, status = 0;
	char *link_copy = NULL, *link_last = NULL;
	const char *target = m->kind == SYMLINK || m->kind == HARDLINK ? m->link : NULL;
	if (m->kind == HARDLINK) {
		char *safe = beneath_safe_name(m->link, &t->warned_link_slash, "hard link targets");
		if (safe == NULL) {
			say("%s: %s '%s': %s", shown, verb(HARDLINK), m->link, "Link target contains '..'");
			t->failed = true;
			return 0;
		}
		target = safe;
		link_copy = strdup(safe);
		if (link_copy == NULL) {
			member_error(t, shown, verb(m->kind), target, ENOMEM);
			return 0;
		}
		link_dir = beneath_resolve(&t->target, beneath_split(link_copy, &link_last));
		if (link_dir < 0) {
			member_error(t, shown, verb(m->kind), target, errno);
			free(link_copy);
			return 0;
		}
	}
	int fd = make_temporary(t, m, dir, temporary, link_dir, link_last);
	beneath_close(&t->target, link_dir);
	free(link_copy);
	if (fd < 0) {
		member_error(t, shown, verb(m->kind), target, errno);
		return 0;
	}
	if (m->kind == REGULAR) {
		int error;
		status = write_data(t, fd, m->size, &error);
		if (status == 0 && error == 0)
			set_meta(t, shown, &m->meta, true, fd, -1, NULL);
		if (close(fd) < 0 && error == 0)
			error = errno;
		if (status < 0 || error != 0) {
			if (error != 0)
				member_error(t, shown, "Cannot write", NULL, error);
			if (unlinkat(dir, temporary, 0) < 0)
				member_error(t, temporary, "Cannot unlink", NULL, errno);
			return status;
		}
	} else if (m->kind != HARDLINK) { /* a hard link is its target's inode: nothing of its own */
		set_meta(t, shown, &m->meta, m->kind != SYMLINK, -1, dir, temporary);
	}
	if (rename_over(dir, temporary, last) < 0) {
		member_error(t, shown, verb(m->kind), target, errno);
		if (unlinkat(dir, temporary, 0) < 0)
			member_error(t, temporary, "Cannot unlink", NULL, errno);
	} else if (m->kind == HARDLINK && unlinkat(dir, temporary, 0) < 0 && errno != ENOENT) {
		/* Renaming onto a link to the same inode does nothing: the temporary is left over. */
		member_error(t, temporary, "Cannot unlink", NULL, errno);
	}
	return status;
}

/* Print a name for -v, one line, control characters as '?' like our messages. */
static void show(struct tar *t, const char *name)
{
	char line[1024];
	size_t n = 0;
	for (const char *p = name;; p++) {
		if (n == sizeof line - 1 || *p == '\0') {
			if (*p == '\0')
				line[n++] = '\n';
			if (!t->verbose_failed && rw_write_all(1, line, n) < 0) {
				say("write error: %s", strerror(errno));
				t->failed = t->verbose_failed = true;
			}
			if (*p == '\0')
				return;
			n = 0;
		}
		line[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
	}
}

/* The target directory, opened at the first member (GNU's order: an empty archive is "not a
 * tar archive" before a missing -C is anything). -1 is fatal (reported). */
static int open_root(struct tar *t)
{
	const char *dir = t->directory != NULL ? t->directory : ".";
	if (beneath_open(&t->target, dir) < 0) {
		say("%s: Cannot open: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* One member, from its header h (the extended headers before it applied): 0, or -1 when the
 * stream fails. Its data is read or skipped either way. */
static int extract_member(struct tar *t, struct header *h)
{
	char type = h->type;
	struct member m = {
		.name = h->name,
		.link = h->link,
		.kind = REGULAR,
		.size = h->size,
		.meta = {.mode = h->mode, .uid = h->uid, .gid = h->gid, .mtime = h->mtime},
		.major = h->major,
		.minor = h->minor,
	};
	size_t len = strlen(m.name);
	if (type >= '1' && type <= '6') /* no data, whatever the size says, as GNU reads them */
		m.kind = (enum kind)(type - '0');
	else if (type == 'D' || (len > 0 && m.name[len - 1] == '/' && (type == '0' || type == '\0')))
		m.kind = DIRECTORY; /* GNU's incremental directory (its data skipped); old archives' '/' */
	else if (type != '0' && type != '\0' && type != '7' && type != 'S')
		say("%s: Unknown file type '%c', extracted as normal file", m.name, type);

	if (h->refused) /* reported with the extended header */
		return archive_skip_data(&t->stream);
	if (h->sparse) {
		say("%s: sparse file%s", m.name, NOT_SUPPORTED);
		t->failed = true;
		return archive_skip_sparse(&t->stream, h);
	}
	char *safe = beneath_safe_name(m.name, &t->warned_slash, "member names");
	if (safe == NULL) {
		say("%s: Member name contains '..'", m.name);
		t->failed = true;
		return archive_skip_data(&t->stream);
	}
	if (t->verbose)
		show(t, m.name);
	for (size_t end = strlen(safe); end > 1 && safe[end - 1] == '/';) /* messages say "d", not "d/" */
		safe[--end] = '\0';
	if (t->target.root < 0 && open_root(t) < 0)
		return -1;

	char *work = strdup(safe), *last;
	if (work == NULL) {
		member_error(t, safe, verb(m.kind), NULL, ENOMEM);
		return archive_skip_data(&t->stream);
	}
	int status = 0;
	int dir = beneath_open_parent(&t->target, beneath_split(work, &last));
	if (dir < 0)
		member_error(t, safe, verb(m.kind), m.kind == SYMLINK || m.kind == HARDLINK ? m.link : NULL,
			     errno);
	else if (m.kind == DIRECTORY)
		extract_directory(t, &m, safe, safe, dir, last);
	else
		status = extract_node(t, &m, safe, dir, last);
	beneath_close(&t->target, dir);
	free(work);
	return status < 0 ? -1 : archive_skip_data(&t->stream);
}

/* The directories' metadata, now that nothing more goes into them: deepest first (a directory
 * made read-only or unsearchable cannot hide the ones below), in archive order at one depth (the
 * later of two members for the same directory wins). One replaced since (by a later member of
 * the same name) is left alone. */
static void finish_directories(struct tar *t)
{
	int deepest = 0;
	for (size_t i = 0; i < t->ndirs; i++)
		deepest = t->dirs[i].depth > deepest ? t->dirs[i].depth : deepest;
	for (int depth = deepest; depth >= 0; depth--) {
		for (size_t i = 0; i < t->ndirs; i++) {
			struct delayed *d = &t->dirs[i];
			if (d->depth != depth)
				continue;
			char *last;
			int dir = beneath_resolve(&t->target, beneath_split(d->name, &last));
			struct stat st;
			if (dir >= 0 && fstatat(dir, last, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
			    st.st_dev == d->dev && st.st_ino == d->ino)
				set_meta(t, d->name, &d->meta, d->chmod, -1, dir, last);
			beneath_close(&t->target, dir);
			free(d->name);
		}
	}
	free(t->dirs);
	t->dirs = NULL;
	t->ndirs = 0;
}

/* The archive, header by header: 0 at its end, -1 after a fatal error (reported). */
static int extract(struct tar *t)
{
	struct header h;
	int n;
	while ((n = archive_next_header(&t->stream, &h)) > 0)
		if (extract_member(t, &h) < 0)
			return -1;
	return n;
}

int tar_main(int argc, char **argv)
{
	struct tar *t = calloc(1, sizeof *t);
	char **words;
	int nwords = old_style(argc, argv, &words);
	if (t == NULL || nwords < 0) {
		say("%s", strerror(ENOMEM));
		free(t);
		return 2;
	}
	t->target.root = -1;
	t->owner_option = t->permissions_option = -1;
	t->argc = argc;
	t->argv = argv;
	int status = parse_options(t, nwords, words != NULL ? words : argv);
	if (status >= 0)
		goto out;
	/* From here on the sync is under way, and ends reported as done or failed. */
	(void)sync_report("tar", SYNC_START); /* a failure says so; the end will fail to report too */
	bool root = geteuid() == 0;
	t->same_owner = t->owner_option >= 0 ? t->owner_option : root;
	t->same_permissions = t->permissions_option >= 0 ? t->permissions_option : root;
	t->umask = umask(0);
	umask(t->umask);
	t->pid = (int)getpid();

	if (t->archive == NULL || strcmp(t->archive, "-") == 0) {
		t->archive = "-";
		t->stream.in = 0;
	} else if ((t->stream.in = open(t->archive, O_RDONLY | O_CLOEXEC)) < 0) {
		say("%s: Cannot open: %s", t->archive, strerror(errno));
		say("Error is not recoverable: exiting now");
		status = 2;
		goto reported;
	}
	t->stream.name = t->archive;
	int result = extract(t);
	finish_directories(t);
	if (result < 0)
		say("Error is not recoverable: exiting now");
	else if (t->failed || t->stream.failed)
		say("Exiting with failure status due to previous errors");
	status = result < 0 || t->failed || t->stream.failed ? 2 : 0;
	if (t->stream.in == 0)
		archive_drain(&t->stream);
	else
		(void)close(t->stream.in); /* read only: nothing to lose */
reported:
	if (sync_report("tar", status == 0 ? SYNC_DONE : SYNC_FAILED) < 0 && status == 0) {
		say("the files are extracted, but the program was not restarted");
		status = 2;
	}
out:
	if (t->target.root >= 0)
		(void)close(t->target.root);
	archive_free(&t->stream);
	free(words);
	free(t);
	return status;
}
