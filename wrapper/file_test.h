/*
 * `test -d FILE` (and -e, -f), for images that have no test: restart-wrapper run as `test`
 * (DIR/bin/test, a link that install lays down) or as `restart-wrapper test`.
 *
 * `kubectl cp SRC POD:DEST` first runs `test -d DEST` in the container, and copies into DEST
 * only when that succeeds. Without a `test` in the image the exec fails, and kubectl copies onto
 * DEST instead: `kubectl cp app.conf pod:/etc/app/` would make /etc/app a file.
 *
 * GNU coreutils test is the reference: 0 true, 1 false, 2 for an expression it cannot take.
 */
#ifndef RW_FILE_TEST_H
#define RW_FILE_TEST_H

/* argv without the program name. Returns the exit status. */
int test_main(int argc, char **argv);

#endif
