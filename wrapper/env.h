/*
 * --env-file: KEY=VALUE lines added to COMMAND's environment, read again before every start.
 *
 * The file is read in the parent, into a fresh environment built from the wrapper's own
 * (which never changes), so a variable removed from the file is gone at the next start.
 * The child only points `environ` at the result before exec: nothing to allocate or
 * report between fork and exec.
 */
#ifndef RW_ENV_H
#define RW_ENV_H

struct environment {
	char **vars; /* NULL-terminated; NULL: start COMMAND with the wrapper's own environment */
	char *text;  /* the file's contents, which vars point into */
};

/* Read PATH and build the environment for the next start. A missing file is not an
 * error and says nothing; an unreadable or oversized one is reported and left out; a
 * malformed line is reported with its number and left out. Never fails the start. */
void env_load(const char *path, struct environment *env);

void env_release(struct environment *env);

/* Make the wrapper's own environment, which COMMAND inherits, the one COMMAND should have.
 * restart-on-sync puts the tools (`bin`, next to the wrapper) first on the container's PATH, so
 * that what is exec'd into the container runs our tar and rm, which report a sync; COMMAND must
 * not: its tar and rm are the image's, and its own never restart it. So $RESTART_WRAPPER_SYNC_FILE
 * goes, and PATH's first entry moves to the end when it holds our tools (its tar is this
 * executable): where it is without restart-on-sync. */
void env_for_program(void);

#endif
