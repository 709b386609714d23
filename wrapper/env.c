/*
 * The --env-file format, one variable a line:
 *
 *     # a comment (the first non-blank character is #); blank lines are skipped
 *     KEY=VALUE            VALUE is everything after the first '=' up to the end of the line
 *     export KEY=VALUE     an optional leading "export "
 *     KEY="VALUE"          one matching pair of '…' or "…" around VALUE is removed
 *
 * KEY is [A-Za-z_][A-Za-z0-9_]*, blanks may precede it, a trailing \r is dropped, and
 * there are no escapes. A later line wins over an earlier one, and the file over the
 * wrapper's own environment.
 */
#include "env.h"

#include "common.h"
#include "handoff.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bounds that keep a runaway file from costing more than it could ever be worth: exec
 * refuses a single string above 128 KiB (MAX_ARG_STRLEN) and all of them above ARG_MAX
 * (2 MiB with the usual 8 MiB stack), and merging is quadratic in the variable count. */
#define ENV_FILE_MAX (1024 * 1024)
#define ENV_LINE_MAX (64 * 1024)
#define ENV_VARS_MAX 4096

/* The whole file, NUL-terminated, in *text; its length in *len. -1 when there is nothing
 * to use (missing quietly, anything else with a line). */
static int read_file(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			rw_log("%s: cannot read: %s; starting without it", path, strerror(errno));
		return -1;
	}
	size_t capacity = 0, n = 0;
	char *buffer = NULL;
	const char *problem = NULL;
	int error = 0;
	for (;;) {
		if (n == capacity) {
			if (capacity > ENV_FILE_MAX) {
				problem = "larger than 1 MiB";
				break;
			}
			/* One byte past the limit tells "exactly 1 MiB" from "more". */
			capacity = capacity == 0 ? 4096 : capacity * 2 > ENV_FILE_MAX ? ENV_FILE_MAX + 1 : capacity * 2;
			char *grown = realloc(buffer, capacity + 1); /* + the terminating NUL */
			if (grown == NULL) {
				error = ENOMEM;
				break;
			}
			buffer = grown;
		}
		ssize_t got = read(fd, buffer + n, capacity - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			error = errno;
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (close(fd) < 0 && error == 0 && problem == NULL)
		error = errno;
	if (error != 0 || problem != NULL) {
		if (problem != NULL)
			rw_log("%s: %s; starting without it", path, problem);
		else
			rw_log("%s: cannot read: %s; starting without it", path, strerror(error));
		free(buffer);
		return -1;
	}
	buffer[n] = '\0'; /* the first pass always allocated it */
	*text = buffer;
	*len = n;
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

/* One line, NUL-terminated in place (no \n, no trailing \r). On success *var points at
 * "KEY=VALUE" inside the line, with the quotes removed, and *key_len is KEY's length;
 * *var stays NULL for a blank line or a comment. Returns what is wrong, or NULL. */
static const char *parse_line(char *line, char **var, size_t *key_len)
{
	char *p = line;
	*var = NULL;
	while (is_blank(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return NULL;
	if (strncmp(p, "export", 6) == 0 && is_blank(p[6])) {
		p += 6;
		while (is_blank(*p))
			p++;
	}
	char *key = p;
	if (is_name_start(*p))
		for (p++; is_name_char(*p); p++)
			;
	if (*p != '=' || p == key)
		return strchr(key, '=') != NULL ? "the name before '=' must match [A-Za-z_][A-Za-z0-9_]*"
						: "expected KEY=VALUE";
	char *value = p + 1;
	size_t value_len = strlen(value);
	if (value_len >= 2 && (value[0] == '"' || value[0] == '\'') && value[value_len - 1] == value[0]) {
		memmove(value, value + 1, value_len - 2);
		value[value_len - 2] = '\0';
	}
	*var = key;
	*key_len = (size_t)(p - key);
	return NULL;
}

/* Put var ("KEY=VALUE", KEY key_len long) in vars, replacing one with the same KEY. */
static void set_var(char **vars, size_t *count, char *var, size_t key_len)
{
	for (size_t i = 0; i < *count; i++) {
		if (strncmp(vars[i], var, key_len + 1) == 0) { /* KEY and its '=' */
			vars[i] = var;
			return;
		}
	}
	vars[(*count)++] = var;
}

void env_load(const char *path, struct environment *env)
{
	*env = (struct environment){0};
	char *text;
	size_t len;
	if (read_file(path, &text, &len) < 0)
		return;

	size_t inherited = 0, lines = 1;
	while (environ[inherited] != NULL)
		inherited++;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	size_t room = inherited + (lines < ENV_VARS_MAX ? lines : ENV_VARS_MAX) + 1;
	char **vars = calloc(room, sizeof *vars);
	if (vars == NULL) {
		rw_log("%s: out of memory; starting without it", path);
		free(text);
		return;
	}
	memcpy(vars, environ, inherited * sizeof *vars);

	size_t count = inherited, taken = 0;
	char *end = text + len;
	char *line = text;
	for (size_t number = 1; line < end; number++) {
		char *newline = memchr(line, '\n', (size_t)(end - line));
		char *eol = newline != NULL ? newline : end;
		char *next = newline != NULL ? newline + 1 : end;
		size_t line_len = (size_t)(eol - line);
		if (eol > line && eol[-1] == '\r')
			eol--;
		*eol = '\0'; /* within the buffer: a '\n', a '\r', or the terminating NUL */

		const char *problem;
		char *var = NULL;
		size_t key_len = 0;
		if (strlen(line) != (size_t)(eol - line))
			problem = "contains a NUL byte";
		else
			problem = parse_line(line, &var, &key_len);
		if (problem == NULL && var != NULL && line_len > ENV_LINE_MAX)
			problem = "longer than 64 KiB"; /* only a variable: a long comment costs nothing */

		if (problem != NULL) {
			rw_log("%s:%zu: %s; line ignored", path, number, problem);
		} else if (var != NULL && taken == ENV_VARS_MAX) {
			rw_log("%s:%zu: more than %d variables; this line and the rest ignored", path, number,
			       ENV_VARS_MAX);
			break;
		} else if (var != NULL) {
			set_var(vars, &count, var, key_len);
			taken++;
		}
		line = next;
	}
	vars[count] = NULL;
	env->vars = vars;
	env->text = text;
}

void env_release(struct environment *env)
{
	free(env->vars);
	free(env->text);
	*env = (struct environment){0};
}

void env_for_program(void)
{
	if (unsetenv(RW_SYNC_FILE_ENV) < 0)
		rw_log("unsetenv(%s): %s", RW_SYNC_FILE_ENV, strerror(errno));
	const char *path = getenv("PATH");
	size_t first = path != NULL ? strcspn(path, ":") : 0;
	if (path == NULL || path[first] == '\0' || !holds_our_tools(path, first))
		return;
	size_t len = strlen(path);
	char *moved = malloc(len + 1);
	if (moved == NULL) {
		rw_log("out of memory; the program keeps PATH=%s", path);
		return;
	}
	snprintf(moved, len + 1, "%s:%.*s", path + first + 1, (int)first, path);
	if (setenv("PATH", moved, 1) < 0)
		rw_log("setenv(PATH): %s", strerror(errno));
	free(moved);
}
