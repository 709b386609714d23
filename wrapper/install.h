#ifndef RW_INSTALL_H
#define RW_INSTALL_H

/* Copy this executable to DIR/restart-wrapper (0755, atomically), creating DIR. Returns an exit status. */
int install(const char *dir);

/* Write the restart file, which restarts the supervised program. Returns an exit status. */
int trigger(const char *restart_file);

#endif
