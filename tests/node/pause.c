/* The pod sandbox's program (containerd's sandbox_image), as Kubernetes' own pause.c: sleep until
 * SIGINT or SIGTERM, and reap whatever is re-parented to it. Built static with musl (~13 KB) and
 * pushed as a one-file image by tests/node/images.py, so the node tests pull nothing from outside. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;)
        pause();
}
