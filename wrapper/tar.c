/*
 * `tar -x`: extract the archives Tilt's live_update and `kubectl cp` stream into a container
 * whose image has no tar. GNU tar 1.34 is the reference for the command line, the messages
 * and the exit statuses (2 after any error, as GNU's).
 *
 * The archive is untrusted. Reads in the order a member is handled:
 *   1. the command line: GNU's syntax (old style `xf -`, clusters `-xmf -`, long options);
 *   2. the stream: 512-byte blocks, header checksums, numeric fields (octal or base-256);
 *   3. extended headers (GNU 'L' and 'K', pax 'x') that rename or resize the next member;
 *   4. names: a leading '/' is removed, a ".." component refuses the member;
 *   5. the member's directory, resolved beneath the target directory without ever leaving it
 *      (openat2 RESOLVE_BENEATH; without openat2, a walk that refuses every symbolic link),
 *      missing directories created on the way;
 *   6. the member, made at a temporary name in that directory and renamed over its own name,
 *      never following a symbolic link there: a reader never sees half a file, and a running
 *      executable is replaced rather than written to (no ETXTBSY);
 *   7. owner, mode and times; directories' at the very end, deepest first, so extracting into
 *      them does not change their times and a read-only one can still be filled.
 */
#include "tar.h"

#include "common.h"

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

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif
/* From <linux/openat2.h>, which musl does not ship. */
struct rw_open_how {
	uint64_t flags, mode, resolve;
};
#define RW_RESOLVE_NO_MAGICLINKS 0x02
#define RW_RESOLVE_BENEATH 0x08

#define BLOCK 512
/* A GNU long name or link, or a pax header, above this is refused rather than allocated. */
#define EXTENDED_MAX (1024 * 1024)
/* Temporary names taken by someone else (a crashed run with a reused pid) before giving up. */
#define TEMP_TRIES 100
/* Our own errno values, beyond the kernel's, for the two ways a path is refused. */
#define E_OUTSIDE 4096 /* it leads outside the target directory */
#define E_SYMLINK 4097 /* it has a symbolic link, and there is no openat2 to judge it */

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

/* What extended headers said about the next member. */
struct extended {
	char *long_name, *long_link; /* GNU 'L' and 'K' */
	char *pax;                   /* the last 'x' header's records; path and linkpath point in */
	char *path, *linkpath;
	int64_t size, uid, gid;
	struct timespec mtime;
	bool has_size, has_uid, has_gid, has_mtime;
	bool sparse; /* GNU.sparse.* records: a sparse file, which we refuse */
	bool bad;    /* malformed or too long (reported): refuse the next member */
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
	/* the command line */
	bool extract, verbose, touch, same_owner, same_permissions;
	const char *archive, *directory;
	int owner_option, permissions_option; /* -1: not given, then GNU's default (root or not) */

	/* the stream */
	int in;
	size_t pos, len; /* the unread bytes are buf[pos, len) */
	bool eof;
	uint64_t offset; /* bytes consumed, for "A lone zero block at N" */
	uint64_t left;   /* bytes of the current member's data area (data and padding) unread */
	unsigned char buf[64 * 1024];

	/* the target */
	int root;           /* O_PATH descriptor of -C DIR (or the current directory); -1 until opened */
	bool root_is_slash; /* it is "/": nothing can be outside it, absolute links included */
	bool openat2;
	mode_t umask;
	int pid;
	unsigned temp_counter;

	bool warned_slash, warned_link_slash, verbose_failed;
	bool failed; /* an error was reported: exit 2 at the end */
	struct extended ext;
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
	if (entry == NULL && lookup(UNSUPPORTED_LONG, 0, name, (size_t)len) != NULL) {
		say("--%.*s%s", len, name, NOT_SUPPORTED);
		return 2;
	}
	if (entry == NULL) {
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

/* --- 2. the stream ------------------------------------------------------------------------ */

/* At least `want` bytes at buf + pos unless the archive ends first: how many there are, or -1
 * after a read error (reported). */
static ssize_t fill(struct tar *t, size_t want)
{
	if (t->len - t->pos >= want || t->eof)
		return (ssize_t)(t->len - t->pos);
	memmove(t->buf, t->buf + t->pos, t->len - t->pos);
	t->len -= t->pos;
	t->pos = 0;
	while (t->len < want) {
		ssize_t n = read(t->in, t->buf + t->len, sizeof t->buf - t->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			say("%s: Cannot read: %s", t->archive, strerror(errno));
			return -1;
		}
		if (n == 0) {
			t->eof = true;
			break;
		}
		t->len += (size_t)n;
	}
	return (ssize_t)t->len;
}

/* The next block at *block: BLOCK; 0 at the end of the stream; 1 to BLOCK-1 when it ends
 * inside the block (consumed); -1 after a read error. */
static ssize_t next_block(struct tar *t, const unsigned char **block)
{
	ssize_t n = fill(t, BLOCK);
	if (n > BLOCK)
		n = BLOCK;
	*block = t->buf + t->pos;
	t->pos += (size_t)n;
	t->offset += (uint64_t)n;
	return n;
}

/* Up to `max` bytes of the current member's data area, in place at *data: how many (> 0), or
 * -1 when the stream fails (reported: a read error, or the archive ends too soon). */
static ssize_t next_data(struct tar *t, size_t max, const unsigned char **data)
{
	ssize_t have = fill(t, 1);
	if (have < 0)
		return -1;
	if (have == 0) {
		say("Unexpected EOF in archive");
		return -1;
	}
	size_t n = (size_t)have < max ? (size_t)have : max;
	if (n > t->left)
		n = (size_t)t->left;
	*data = t->buf + t->pos;
	t->pos += n;
	t->offset += n;
	t->left -= n;
	return (ssize_t)n;
}

/* Past the rest of the current member's data area; -1 when the stream fails. */
static int skip_data(struct tar *t)
{
	const unsigned char *data;
	while (t->left > 0)
		if (next_data(t, SIZE_MAX, &data) < 0)
			return -1;
	return 0;
}

/* After the end of the archive, read stdin to its end: the writer on the other side of an
 * exec stream (Tilt, kubectl) must never see EPIPE for data we do not need. */
static void drain(struct tar *t)
{
	while (fill(t, 1) > 0)
		t->pos = t->len;
}

/* A numeric header field: octal digits after optional blanks, ended by NUL, a blank or the end
 * of the field (no digits: 0); or GNU's base-256, for values octal cannot hold: the first byte's
 * top bit set, the next bit the sign, then big-endian two's complement. false when malformed
 * or beyond 64 bits. */
static bool number(const unsigned char *field, size_t size, int64_t *out)
{
	int64_t value = 0;
	size_t i = 0;
	if (field[0] & 0x80) {
		value = (field[0] & 0x3f) - (field[0] & 0x40);
		for (i = 1; i < size; i++) {
			if (value > INT64_MAX / 256 || value < INT64_MIN / 256)
				return false;
			value = value * 256 + field[i];
		}
		*out = value;
		return true;
	}
	while (i < size && field[i] == ' ')
		i++;
	for (; i < size && field[i] >= '0' && field[i] <= '7'; i++) {
		if (value > INT64_MAX / 8)
			return false;
		value = value * 8 + (field[i] - '0');
	}
	*out = value;
	return i == size || field[i] == '\0' || field[i] == ' ';
}

/* The sum of the header's bytes, its checksum field counted as blanks; like GNU, the signed
 * sum some old tars wrote is accepted too. */
static bool checksum_ok(const unsigned char *h)
{
	int64_t want, unsigned_sum = 0, signed_sum = 0;
	if (!number(h + 148, 8, &want))
		return false;
	for (int i = 0; i < BLOCK; i++) {
		unsigned char c = i >= 148 && i < 156 ? ' ' : h[i];
		unsigned_sum += c;
		signed_sum += (signed char)c;
	}
	return want == unsigned_sum || want == signed_sum;
}

/* The header's numeric fields, where they are and how long. */
enum { F_MODE, F_UID, F_GID, F_SIZE, F_MTIME, F_MAJOR, F_MINOR, F_COUNT };
static const unsigned short fields[F_COUNT][2] = {
	{100, 8}, {108, 8}, {116, 8}, {124, 12}, {136, 12}, {329, 8}, {337, 8},
};

/* false when one is malformed, or the size is negative or too big to round to blocks: then the
 * block is no header at all. */
static bool header_numbers(const unsigned char *h, int64_t *n)
{
	for (int i = 0; i < F_COUNT; i++)
		if (!number(h + fields[i][0], fields[i][1], &n[i]))
			return false;
	return n[F_SIZE] >= 0 && n[F_SIZE] <= INT64_MAX - BLOCK;
}

static bool is_zero(const unsigned char *block)
{
	for (int i = 0; i < BLOCK; i++)
		if (block[i] != 0)
			return false;
	return true;
}

/* --- 3. extended headers ------------------------------------------------------------------ */

static void forget_extended(struct extended *e)
{
	free(e->long_name);
	free(e->long_link);
	free(e->pax);
	memset(e, 0, sizeof *e);
}

/* The data of an 'L', 'K' or 'x' header, NUL-terminated, into *out: 0; 1 when it is refused
 * (too long, or no memory: reported, skipped, and the next member is refused too); -1 when
 * the stream fails. */
static int read_extended(struct tar *t, int64_t size, char **out)
{
	*out = size <= EXTENDED_MAX ? malloc((size_t)size + 1) : NULL;
	if (*out == NULL) { /* over the cap, or (hardly) no memory */
		say("Extended header too long (%lld bytes)", (long long)size);
		t->failed = t->ext.bad = true;
		return skip_data(t) < 0 ? -1 : 1;
	}
	for (size_t n = 0; n < (size_t)size;) {
		const unsigned char *data;
		ssize_t got = next_data(t, (size_t)size - n, &data);
		if (got < 0) {
			free(*out);
			*out = NULL;
			return -1;
		}
		memcpy(*out + n, data, (size_t)got);
		n += (size_t)got;
	}
	(*out)[size] = '\0';
	return skip_data(t) < 0 ? -1 : 0;
}

/* "[-]DIGITS[.DIGITS]" of a pax record, `len` bytes; nanoseconds only where nsec is not NULL. */
static bool decimal(const char *text, size_t len, int64_t *out, long *nsec)
{
	size_t i = 0;
	bool negative = nsec != NULL && len > 0 && text[0] == '-';
	int64_t value = 0;
	long fraction = 0;
	if (negative)
		i++;
	size_t first = i;
	for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
		if (value > (INT64_MAX - 9) / 10)
			return false;
		value = value * 10 + (text[i] - '0');
	}
	if (i == first)
		return false;
	if (nsec != NULL && i < len && text[i] == '.') {
		long scale = 100000000;
		for (i++; i < len && text[i] >= '0' && text[i] <= '9'; i++, scale /= 10)
			fraction += (text[i] - '0') * scale; /* digits past nanoseconds add 0 */
	}
	if (i != len)
		return false;
	if (negative && fraction > 0) { /* -1.25 is 2 seconds before the epoch plus 0.75 */
		value += 1;
		fraction = 1000000000 - fraction;
	}
	*out = negative ? -value : value;
	if (nsec != NULL)
		*nsec = fraction;
	return true;
}

/* pax records, "LENGTH KEY=VALUE\n" each, LENGTH counting the whole record: into t->ext.
 * false when one is malformed. Keys we do not use are ignored. */
static bool parse_pax(struct extended *e, char *data, size_t size)
{
	for (char *p = data, *end = data + size; p < end;) {
		size_t len = 0;
		char *q = p;
		for (; q < end && *q >= '0' && *q <= '9'; q++) {
			if (len > size)
				return false;
			len = len * 10 + (size_t)(*q - '0');
		}
		if (q == p || q == end || *q != ' ' || len > (size_t)(end - p) || len < (size_t)(q - p) + 2 ||
		    p[len - 1] != '\n')
			return false;
		char *key = q + 1, *record_end = p + len - 1;
		char *equals = memchr(key, '=', (size_t)(record_end - key));
		if (equals == NULL)
			return false;
		*equals = '\0';
		*record_end = '\0';
		char *value = equals + 1;
		size_t vlen = (size_t)(record_end - value);
		bool text = strlen(value) == vlen; /* no NUL inside */
		if (strcmp(key, "path") == 0 || strcmp(key, "linkpath") == 0) {
			if (!text || vlen == 0)
				return false;
			*(key[0] == 'p' ? &e->path : &e->linkpath) = value;
		} else if (strcmp(key, "size") == 0) {
			if (!decimal(value, vlen, &e->size, NULL) || e->size > INT64_MAX - BLOCK)
				return false;
			e->has_size = true;
		} else if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
			if (!decimal(value, vlen, key[0] == 'u' ? &e->uid : &e->gid, NULL))
				return false;
			*(key[0] == 'u' ? &e->has_uid : &e->has_gid) = true;
		} else if (strcmp(key, "mtime") == 0) {
			int64_t seconds;
			if (!decimal(value, vlen, &seconds, &e->mtime.tv_nsec))
				return false;
			e->mtime.tv_sec = (time_t)seconds;
			e->has_mtime = true;
		} else if (strncmp(key, "GNU.sparse.", 11) == 0) {
			e->sparse = true;
		}
		p += len;
	}
	return true;
}

/* An 'L', 'K', 'x', 'g' or 'V' header: 0, or -1 when the stream fails. */
static int extended_header(struct tar *t, char type, int64_t size)
{
	t->left = ((uint64_t)size + BLOCK - 1) / BLOCK * BLOCK;
	if (type == 'g' || type == 'V') /* pax globals and GNU volume labels: nothing we use */
		return skip_data(t);
	char **slot = type == 'L' ? &t->ext.long_name : type == 'K' ? &t->ext.long_link : &t->ext.pax;
	if (type == 'x') { /* a later 'x' header replaces an earlier one */
		t->ext.path = t->ext.linkpath = NULL;
		t->ext.has_size = t->ext.has_uid = t->ext.has_gid = t->ext.has_mtime = t->ext.sparse = false;
	}
	free(*slot);
	*slot = NULL;
	int status = read_extended(t, size, slot);
	if (status == 0 && type == 'x' && !parse_pax(&t->ext, *slot, (size_t)size)) {
		say("Malformed extended header");
		t->failed = t->ext.bad = true;
	}
	return status < 0 ? -1 : 0;
}

/* --- 4. names ----------------------------------------------------------------------------- */

/* The name beneath the target: a leading '/' removed (said once, as GNU does); NULL when a
 * ".." component could lead outside. */
static char *safe_name(char *name, bool *warned, const char *what)
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

/* Split path, in place, into its directory ("" for the target itself), returned, and its last
 * component, at *last ("." for the target itself); trailing slashes go. */
static char *split(char *path, char **last)
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

/* --- 5. resolving beneath the target ------------------------------------------------------ */

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

/* Descriptors of the target itself are borrowed; the others are ours. An O_PATH descriptor
 * has nothing to flush: close cannot lose anything. */
static void close_dir(struct tar *t, int fd)
{
	if (fd >= 0 && fd != t->root)
		(void)close(fd);
}

/* Without openat2: one component at a time, refusing every symbolic link. Stricter than
 * needed (a link that stays inside is refused too), never outside. */
static int walk(struct tar *t, const char *path)
{
	int fd = t->root;
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
		close_dir(t, fd);
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

/* The directory `path` (relative, without "..") beneath the target, as an O_PATH descriptor
 * (the target's own for ""); -1 with errno set, E_OUTSIDE when it leads outside. Magic links
 * (/proc/self/fd/N) are never followed. */
static int resolve(struct tar *t, const char *path)
{
	if (path[0] == '\0')
		return t->root;
	if (t->root_is_slash)
		return openat(t->root, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!t->openat2)
		return walk(t, path);
	struct rw_open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RW_RESOLVE_BENEATH | RW_RESOLVE_NO_MAGICLINKS,
	};
	/* EAGAIN: a rename elsewhere raced the walk through a symbolic link's ".."; try again. */
	for (int tries = 0; tries < 16; tries++) {
		long fd = syscall(SYS_openat2, t->root, path, &how, sizeof how);
		if (fd >= 0)
			return (int)fd;
		if (errno == EXDEV)
			errno = E_OUTSIDE;
		if (errno != EAGAIN)
			break;
	}
	return -1;
}

/* resolve(), creating what is missing as GNU does (0777 less the umask, times not restored),
 * one directory at a time, each resolved afresh from the target, so a symbolic link met on the
 * way is judged like any other. path is modified and restored. */
static int open_parent(struct tar *t, char *path)
{
	int fd = resolve(t, path);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	int dir = t->root;
	for (char *p = path;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char end = *p;
		*p = '\0';
		if (p > path && p[-1] != '/') {
			int next = resolve(t, path);
			if (next < 0 && errno == ENOENT) {
				char *slash = strrchr(path, '/');
				if (mkdirat(dir, slash != NULL ? slash + 1 : path, 0777) == 0 || errno == EEXIST)
					next = resolve(t, path);
			}
			int error = errno;
			close_dir(t, dir);
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

/* --- 6. members --------------------------------------------------------------------------- */

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

/* --- 7. owner, mode and times ------------------------------------------------------------- */

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
		ssize_t n = next_data(t, left < SIZE_MAX ? (size_t)left : SIZE_MAX, &data);
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
		char *safe = safe_name(m->link, &t->warned_link_slash, "hard link targets");
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
		link_dir = resolve(t, split(link_copy, &link_last));
		if (link_dir < 0) {
			member_error(t, shown, verb(m->kind), target, errno);
			free(link_copy);
			return 0;
		}
	}
	int fd = make_temporary(t, m, dir, temporary, link_dir, link_last);
	close_dir(t, link_dir);
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
	t->root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat here, slash;
	if (t->root < 0 || fstat(t->root, &here) < 0 || stat("/", &slash) < 0) {
		say("%s: Cannot open: %s", dir, strerror(errno));
		return -1;
	}
	t->root_is_slash = here.st_dev == slash.st_dev && here.st_ino == slash.st_ino;
	/* openat2 came with Linux 5.6; seccomp profiles that predate it answer ENOSYS or EPERM. */
	const char *off = getenv(RW_NO_OPENAT2_ENV);
	if (off != NULL && off[0] != '\0' && strcmp(off, "0") != 0)
		return 0;
	struct rw_open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RW_RESOLVE_BENEATH};
	long probe = syscall(SYS_openat2, t->root, ".", &how, sizeof how);
	t->openat2 = probe >= 0 || (errno != ENOSYS && errno != EPERM);
	if (probe >= 0)
		(void)close((int)probe); /* an O_PATH descriptor: nothing to lose */
	return 0;
}

/* One member, from its header h and the extended headers before it: 0, or -1 when the stream
 * fails. Its data is read or skipped either way. */
static int extract_member(struct tar *t, const unsigned char *h, const int64_t *n)
{
	struct extended *e = &t->ext;
	char type = (char)h[156];
	char name[256 + 1], link[100 + 1];
	/* POSIX ustar splits a long name into prefix and name; GNU's magic uses that space otherwise. */
	size_t prefix = memcmp(h + 257, "ustar\0", 6) == 0 ? strnlen((const char *)h + 345, 155) : 0;
	memcpy(name, h + 345, prefix);
	name[prefix] = '/';
	size_t base = strnlen((const char *)h, 100);
	memcpy(name + prefix + (prefix > 0), h, base);
	name[prefix + (prefix > 0) + base] = '\0';
	memcpy(link, h + 157, 100);
	link[100] = '\0';

	struct member m = {
		.name = e->path ? e->path : e->long_name ? e->long_name : name,
		.link = e->linkpath ? e->linkpath : e->long_link ? e->long_link : link,
		.kind = REGULAR,
		.size = e->has_size ? e->size : n[F_SIZE],
		.meta = {
			.mode = (mode_t)(n[F_MODE] & 07777),
			.uid = e->has_uid ? e->uid : n[F_UID],
			.gid = e->has_gid ? e->gid : n[F_GID],
			.mtime = e->has_mtime ? e->mtime : (struct timespec){.tv_sec = (time_t)n[F_MTIME]},
		},
		.major = (unsigned)n[F_MAJOR],
		.minor = (unsigned)n[F_MINOR],
	};
	size_t len = strlen(m.name);
	if (type >= '1' && type <= '6') /* no data, whatever the size says, as GNU reads them */
		m.kind = (enum kind)(type - '0');
	else if (type == 'D' || (len > 0 && m.name[len - 1] == '/' && (type == '0' || type == '\0')))
		m.kind = DIRECTORY; /* GNU's incremental directory (its data skipped); old archives' '/' */
	else if (type != '0' && type != '\0' && type != '7' && type != 'S')
		say("%s: Unknown file type '%c', extracted as normal file", m.name, type);
	t->left = type >= '1' && type <= '6' ? 0 : ((uint64_t)m.size + BLOCK - 1) / BLOCK * BLOCK;

	if (e->bad) /* reported with the extended header */
		return skip_data(t);
	if (type == 'S' || e->sparse) {
		say("%s: sparse file%s", m.name, NOT_SUPPORTED);
		t->failed = true;
		/* Old GNU sparse: more map blocks follow the header (its byte 482, then each one's 504). */
		for (bool more = type == 'S' && h[482]; more;) {
			const unsigned char *block;
			ssize_t got = next_block(t, &block);
			if (got >= 0 && got < BLOCK)
				say("Unexpected EOF in archive");
			if (got < BLOCK)
				return -1;
			more = block[504];
		}
		return skip_data(t);
	}
	char *safe = safe_name(m.name, &t->warned_slash, "member names");
	if (safe == NULL) {
		say("%s: Member name contains '..'", m.name);
		t->failed = true;
		return skip_data(t);
	}
	if (t->verbose)
		show(t, m.name);
	for (size_t end = strlen(safe); end > 1 && safe[end - 1] == '/';) /* messages say "d", not "d/" */
		safe[--end] = '\0';
	if (t->root < 0 && open_root(t) < 0)
		return -1;

	char *work = strdup(safe), *last;
	if (work == NULL) {
		member_error(t, safe, verb(m.kind), NULL, ENOMEM);
		return skip_data(t);
	}
	int status = 0;
	int dir = open_parent(t, split(work, &last));
	if (dir < 0)
		member_error(t, safe, verb(m.kind), m.kind == SYMLINK || m.kind == HARDLINK ? m.link : NULL,
			     errno);
	else if (m.kind == DIRECTORY)
		extract_directory(t, &m, safe, safe, dir, last);
	else
		status = extract_node(t, &m, safe, dir, last);
	close_dir(t, dir);
	free(work);
	return status < 0 ? -1 : skip_data(t);
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
			int dir = resolve(t, split(d->name, &last));
			struct stat st;
			if (dir >= 0 && fstatat(dir, last, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
			    st.st_dev == d->dev && st.st_ino == d->ino)
				set_meta(t, d->name, &d->meta, d->chmod, -1, dir, last);
			close_dir(t, dir);
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
	bool skipping = false, any = false;
	for (;;) {
		const unsigned char *block;
		ssize_t n = next_block(t, &block);
		if (n < 0)
			return -1;
		if (n < BLOCK) {
			if (skipping)
				return 0;
			if (!any) {
				say("This does not look like a tar archive");
				t->failed = true;
				return 0;
			}
			if (n == 0) /* no end-of-archive blocks, but whole: GNU accepts it */
				return 0;
			say("Unexpected EOF in archive");
			return -1;
		}
		if (is_zero(block)) {
			/* The end: GNU expects a second zero block, and reads no further either way. */
			uint64_t at = t->offset / BLOCK;
			n = next_block(t, &block);
			if (n < 0)
				return -1;
			if (n < BLOCK || !is_zero(block))
				say("A lone zero block at %llu", (unsigned long long)at);
			return 0;
		}
		unsigned char h[BLOCK]; /* the buffer moves on under the data */
		memcpy(h, block, BLOCK);
		int64_t f[F_COUNT];
		if (!checksum_ok(h) || !header_numbers(h, f)) {
			if (!skipping) {
				if (!any)
					say("This does not look like a tar archive");
				say("Skipping to next header");
				t->failed = true;
			}
			skipping = true;
			continue;
		}
		skipping = false;
		any = true;
		char type = (char)h[156];
		if (type == 'L' || type == 'K' || type == 'x' || type == 'g' || type == 'V') {
			if (extended_header(t, type, f[F_SIZE]) < 0)
				return -1;
			continue;
		}
		int status = extract_member(t, h, f);
		forget_extended(&t->ext);
		if (status < 0)
			return -1;
	}
}

int tar_main(int argc, char **argv)
{
	struct tar *t = calloc(1, sizeof *t);
	char **words;
	argc = old_style(argc, argv, &words);
	if (t == NULL || argc < 0) {
		say("%s", strerror(ENOMEM));
		free(t);
		return 2;
	}
	t->root = -1;
	t->owner_option = t->permissions_option = -1;
	int status = parse_options(t, argc, words != NULL ? words : argv);
	if (status >= 0)
		goto out;
	bool root = geteuid() == 0;
	t->same_owner = t->owner_option >= 0 ? t->owner_option : root;
	t->same_permissions = t->permissions_option >= 0 ? t->permissions_option : root;
	t->umask = umask(0);
	umask(t->umask);
	t->pid = (int)getpid();

	if (t->archive == NULL || strcmp(t->archive, "-") == 0) {
		t->archive = "-";
		t->in = 0;
	} else if ((t->in = open(t->archive, O_RDONLY | O_CLOEXEC)) < 0) {
		say("%s: Cannot open: %s", t->archive, strerror(errno));
		say("Error is not recoverable: exiting now");
		status = 2;
		goto out;
	}
	int result = extract(t);
	finish_directories(t);
	if (result < 0)
		say("Error is not recoverable: exiting now");
	else if (t->failed)
		say("Exiting with failure status due to previous errors");
	status = result < 0 || t->failed ? 2 : 0;
	if (t->in == 0)
		drain(t);
	else
		(void)close(t->in); /* read only: nothing to lose */
out:
	if (t->root >= 0)
		(void)close(t->root);
	forget_extended(&t->ext);
	free(words);
	free(t);
	return status;
}
