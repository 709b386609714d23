#ifndef RW_INSTALL_H
#define RW_INSTALL_H

/* Copy this executable to DIR/restart-wrapper (0755, atomically), creating DIR, and link
 * DIR/bin/tar, rm and test to it. Returns an exit status. */
int install(const char *dir);

/* Where `trigger` took its file from; it shapes the message when the file cannot be opened. */
enum trigger_source {
	TRIGGER_OPTION,  /* --restart-file=PATH */
	TRIGGER_ENV,     /* $RESTART_WRAPPER_RESTART_FILE */
	TRIGGER_DEFAULT, /* neither: /tmp/.restart-proc */
};

/* Write the restart file, which restarts the supervised program. Returns an exit status. */
int trigger(const char *restart_file, enum trigger_source source);

#endif
