/*
 * Reading a tar archive, for `tar -x`, in the order the bytes come:
 *   1. the stream: 512-byte blocks, header checksums, numeric fields (octal or base-256);
 *   2. extended headers (GNU 'L' and 'K', pax 'x') that rename or resize the next member;
 *   3. the headers one after another: a bad one skipped to the next good one, two zero blocks
 *      the end.
 * The archive is untrusted: every field is checked before it is believed, and an extended
 * header costs at most EXTENDED_MAX bytes. GNU tar 1.34 is the reference for the messages.
 */
#include "tar_archive.h"

#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 512
/* A GNU long name or link, or a pax header, above this is refused rather than allocated. */
#define EXTENDED_MAX (1024 * 1024)

#define say(...) rw_log_as("tar", __VA_ARGS__)

/* --- 1. the stream ------------------------------------------------------------------------ */

/* At least `want` bytes at buf + pos unless the archive ends first: how many there are, or -1
 * after a read error (reported). */
static ssize_t fill(struct archive *a, size_t want)
{
	if (a->len - a->pos >= want || a->eof)
		return (ssize_t)(a->len - a->pos);
	memmove(a->buf, a->buf + a->pos, a->len - a->pos);
	a->len -= a->pos;
	a->pos = 0;
	while (a->len < want) {
		ssize_t n = read(a->in, a->buf + a->len, sizeof a->buf - a->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			say("%s: Cannot read: %s", a->name, strerror(errno));
			return -1;
		}
		if (n == 0) {
			a->eof = true;
			break;
		}
		a->len += (size_t)n;
	}
	return (ssize_t)a->len;
}

/* The next block at *block: BLOCK; 0 at the end of the stream; 1 to BLOCK-1 when it ends
 * inside the block (consumed); -1 after a read error. */
static ssize_t next_block(struct archive *a, const unsigned char **block)
{
	ssize_t n = fill(a, BLOCK);
	if (n > BLOCK)
		n = BLOCK;
	*block = a->buf + a->pos;
	a->pos += (size_t)n;
	a->offset += (uint64_t)n;
	return n;
}

ssize_t archive_next_data(struct archive *a, size_t max, const unsigned char **data)
{
	ssize_t have = fill(a, 1);
	if (have < 0)
		return -1;
	if (have == 0) {
		say("Unexpected EOF in archive");
		return -1;
	}
	size_t n = (size_t)have < max ? (size_t)have : max;
	if (n > a->left)
		n = (size_t)a->left;
	*data = a->buf + a->pos;
	a->pos += n;
	a->offset += n;
	a->left -= n;
	return (ssize_t)n;
}

int archive_skip_data(struct archive *a)
{
	const unsigned char *data;
	while (a->left > 0)
		if (archive_next_data(a, SIZE_MAX, &data) < 0)
			return -1;
	return 0;
}

void archive_drain(struct archive *a)
{
	while (fill(a, 1) > 0)
		a->pos = a->len;
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

/* --- 2. extended headers ------------------------------------------------------------------ */

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
static int read_extended(struct archive *a, int64_t size, char **out)
{
	*out = size <= EXTENDED_MAX ? malloc((size_t)size + 1) : NULL;
	if (*out == NULL) { /* over the cap, or (hardly) no memory */
		say("Extended header too long (%lld bytes)", (long long)size);
		a->failed = a->ext.bad = true;
		return archive_skip_data(a) < 0 ? -1 : 1;
	}
	for (size_t n = 0; n < (size_t)size;) {
		const unsigned char *data;
		ssize_t got = archive_next_data(a, (size_t)size - n, &data);
		if (got < 0) {
			free(*out);
			*out = NULL;
			return -1;
		}
		memcpy(*out + n, data, (size_t)got);
		n += (size_t)got;
	}
	(*out)[size] = '\0';
	return archive_skip_data(a) < 0 ? -1 : 0;
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

/* pax records, "LENGTH KEY=VALUE\n" each, LENGTH counting the whole record: into *e.
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
static int extended_header(struct archive *a, char type, int64_t size)
{
	a->left = ((uint64_t)size + BLOCK - 1) / BLOCK * BLOCK;
	if (type == 'g' || type == 'V') /* pax globals and GNU volume labels: nothing we use */
		return archive_skip_data(a);
	char **slot = type == 'L' ? &a->ext.long_name : type == 'K' ? &a->ext.long_link : &a->ext.pax;
	if (type == 'x') { /* a later 'x' header replaces an earlier one */
		a->ext.path = a->ext.linkpath = NULL;
		a->ext.has_size = a->ext.has_uid = a->ext.has_gid = a->ext.has_mtime = a->ext.sparse = false;
	}
	free(*slot);
	*slot = NULL;
	int status = read_extended(a, size, slot);
	if (status == 0 && type == 'x' && !parse_pax(&a->ext, *slot, (size_t)size)) {
		say("Malformed extended header");
		a->failed = a->ext.bad = true;
	}
	return status < 0 ? -1 : 0;
}


/* --- 3. headers --------------------------------------------------------------------------- */

/* The member header at block, with the extended headers before it, into *h; its data area is
 * next. Everything is taken from block before the stream moves on under it. */
static void member_header(struct archive *a, const unsigned char *block, const int64_t *n, struct header *h)
{
	struct extended *e = &a->ext;
	char type = (char)block[156];
	/* POSIX ustar splits a long name into prefix and name; GNU's magic uses that space otherwise. */
	size_t prefix = memcmp(block + 257, "ustar\0", 6) == 0 ? strnlen((const char *)block + 345, 155) : 0;
	memcpy(h->name_field, block + 345, prefix);
	h->name_field[prefix] = '/';
	size_t base = strnlen((const char *)block, 100);
	memcpy(h->name_field + prefix + (prefix > 0), block, base);
	h->name_field[prefix + (prefix > 0) + base] = '\0';
	memcpy(h->link_field, block + 157, 100);
	h->link_field[100] = '\0';

	h->type = type;
	h->name = e->path ? e->path : e->long_name ? e->long_name : h->name_field;
	h->link = e->linkpath ? e->linkpath : e->long_link ? e->long_link : h->link_field;
	h->size = e->has_size ? e->size : n[F_SIZE];
	h->mode = (mode_t)(n[F_MODE] & 07777);
	h->uid = e->has_uid ? e->uid : n[F_UID];
	h->gid = e->has_gid ? e->gid : n[F_GID];
	h->mtime = e->has_mtime ? e->mtime : (struct timespec){.tv_sec = (time_t)n[F_MTIME]};
	h->major = (unsigned)n[F_MAJOR];
	h->minor = (unsigned)n[F_MINOR];
	h->refused = e->bad;
	h->sparse = type == 'S' || e->sparse;
	/* Old GNU sparse: more map blocks follow the header (its byte 482, then each one's 504). */
	h->sparse_maps = type == 'S' && block[482];
	/* Links, devices, directories and FIFOs have no data, whatever the size says, as GNU reads them. */
	a->left = type >= '1' && type <= '6' ? 0 : ((uint64_t)h->size + BLOCK - 1) / BLOCK * BLOCK;
}

int archive_next_header(struct archive *a, struct header *h)
{
	bool skipping = false;
	forget_extended(&a->ext); /* the previous member's */
	for (;;) {
		const unsigned char *block;
		ssize_t n = next_block(a, &block);
		if (n < 0)
			return -1;
		if (n < BLOCK) {
			if (skipping)
				return 0;
			if (!a->any) {
				say("This does not look like a tar archive");
				a->failed = true;
				return 0;
			}
			if (n == 0) /* no end-of-archive blocks, but whole: GNU accepts it */
				return 0;
			say("Unexpected EOF in archive");
			return -1;
		}
		if (is_zero(block)) {
			/* The end: GNU expects a second zero block, and reads no further either way. */
			uint64_t at = a->offset / BLOCK;
			n = next_block(a, &block);
			if (n < 0)
				return -1;
			if (n < BLOCK || !is_zero(block))
				say("A lone zero block at %llu", (unsigned long long)at);
			return 0;
		}
		int64_t f[F_COUNT];
		if (!checksum_ok(block) || !header_numbers(block, f)) {
			if (!skipping) {
				if (!a->any)
					say("This does not look like a tar archive");
				say("Skipping to next header");
				a->failed = true;
			}
			skipping = true;
			continue;
		}
		skipping = false;
		a->any = true;
		char type = (char)block[156];
		if (type == 'L' || type == 'K' || type == 'x' || type == 'g' || type == 'V') {
			if (extended_header(a, type, f[F_SIZE]) < 0)
				return -1;
			continue;
		}
		member_header(a, block, f, h);
		return 1;
	}
}

int archive_skip_sparse(struct archive *a, const struct header *h)
{
	for (bool more = h->sparse_maps; more;) {
		const unsigned char *block;
		ssize_t got = next_block(a, &block);
		if (got >= 0 && got < BLOCK)
			say("Unexpected EOF in archive");
		if (got < BLOCK)
			return -1;
		more = block[504];
	}
	return archive_skip_data(a);
}

void archive_free(struct archive *a)
{
	forget_extended(&a->ext);
}
