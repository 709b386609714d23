/*
 * The supervisor: run COMMAND, restart it on a trigger, behave as a correct PID 1.
 *
 * Reads in the order a process lives:
 *   1. configure signals: block them all (bar faults) and read them from a signalfd;
 *      become a child subreaper when not PID 1, so orphans still come back to us;
 *   2. spawn COMMAND in its own process group, with the signal mask we inherited and
 *      the --env-file variables read afresh;
 *   3. loop: reap every child on SIGCHLD; forward every other signal to the group;
 *      TERM/INT/QUIT/HUP and the --stop-signal mean shut down; file changes, and the sync
 *      tools' reports of a finished sync (--sync-file), mean restart;
 *   4. stop = stop signal to the group, SIGKILL at the deadline, then kill whatever
 *      descendants remain (a `setsid` grandchild holding a port included);
 *   5. when COMMAND has exited, one line says how, and what happens next: start it again
 *      (a change asked for it), run it again after a back-off (--exit-policy=rerun), wait
 *      for a change (continue), or exit with its status, 128+N when signal N killed it.
 *
 * All state lives in one struct supervisor; there is no other global state.
 */
#include "supervise.h"

#include "common.h"
#include "env.h"
#include "sync.h"
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long to wait for SIGKILLed remnants to be reaped before carrying on regardless. */
#define REMNANT_GRACE_MS 2000
/* --watch changes restart after a quiet period, but never later than this after the first one,
 * so a tree that is written to continuously still restarts. */
#define DEBOUNCE_CAP_FACTOR 10
#define DEBOUNCE_CAP_MIN_MS 1000
/* --exit-policy=rerun: the first wait, its cap, and how long a run must last to count as
 * healthy again (the next wait starts over from the first). */
#define RERUN_FIRST_MS 1000
#define RERUN_CAP_MS 30000
#define RERUN_HEALTHY_MS 30000

struct supervisor {
	const struct run_options *opt;
	sigset_t inherited_mask;
	int signal_fd;
	struct watcher *watcher;

	pid_t child;         /* also its process group; 0 when nothing runs */
	int64_t started;     /* when the child was started */
	int wait_status;     /* how the child last ended, as waitpid() put it */
	int status;          /* the last exit status to report */
	bool stopping;       /* a stop signal went out, waiting for the child to go */
	bool killed;         /* the deadline passed and SIGKILL went out */
	int64_t deadline;    /* when to SIGKILL a stopping child */
	bool restart;        /* start again once the child is gone */
	char restart_cause[PATH_MAX + 64];
	bool shutting_down;  /* exit once the child is gone */

	/* --exit-policy=rerun */
	int64_t rerun_at;    /* when to run COMMAND again; -1 when not waiting to */
	int64_t backoff_ms;  /* the wait after the next exit */

	/* The last signal from outside that was passed on to COMMAND, and when (-1: none yet). */
	int forwarded;
	int64_t forwarded_at;

	/* --watch changes waiting out the quiet period */
	bool pending;
	int64_t pending_first;
	int64_t pending_last;
	char pending_what[PATH_MAX + 64];

	/* --sync-file: the last report acted on, and when an `rm`'s restart is due (-1: none) */
	char sync_line[RW_SYNC_LINE_MAX];
	int64_t sync_due;
};

/* --- 1. signals ------------------------------------------------------------------------ */

static bool is_fault_signal(int sig)
{
	/* Raised by our own faults; blocking them would make a crash hang instead. */
	return sig == SIGFPE || sig == SIGILL || sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT ||
	       sig == SIGTRAP || sig == SIGSYS;
}

static int configure_signals(struct supervisor *s)
{
	sigset_t all;
	if (sigfillset(&all) < 0) {
		rw_log("sigfillset: %s", strerror(errno));
		return -1;
	}
	for (int sig = 1; sig < _NSIG; sig++) {
		if (is_fault_signal(sig) && sigdelset(&all, sig) < 0) {
			rw_log("sigdelset(%d): %s", sig, strerror(errno));
			return -1;
		}
	}
	if (sigprocmask(SIG_SETMASK, &all, &s->inherited_mask) < 0) {
		rw_log("sigprocmask: %s", strerror(errno));
		return -1;
	}
	s->signal_fd = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->signal_fd < 0) {
		rw_log("signalfd: %s", strerror(errno));
		return -1;
	}
	/* As PID 1 every orphan is ours already; otherwise ask for them. */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		rw_log("cannot become a child subreaper (%s): orphans of COMMAND will not be reaped or stopped",
		       strerror(errno));
	return 0;
}

/* --- 2. spawn -------------------------------------------------------------------------- */

static int spawn(struct supervisor *s)
{
	/* Read in the parent, so every report comes from here and the child only swaps a pointer. */
	struct environment env = {0};
	if (s->opt->env_file != NULL)
		env_load(s->opt->env_file, &env);
	pid_t pid = fork();
	if (pid < 0) {
		int error = errno;
		env_release(&env);
		rw_log("fork: %s", strerror(error));
		return -1;
	}
	if (pid == 0) {
		/* Own process group, so a stop reaches COMMAND's children too. With a terminal,
		 * take the foreground (SIGTTOU is still blocked here, so this cannot stop us). */
		if (setpgid(0, 0) < 0)
			rw_log("setpgid: %s", strerror(errno));
		if (isatty(STDIN_FILENO) && tcsetpgrp(STDIN_FILENO, getpid()) < 0 && errno != ENOTTY)
			rw_log("tcsetpgrp: %s", strerror(errno));
		if (sigprocmask(SIG_SETMASK, &s->inherited_mask, NULL) < 0)
			rw_log("sigprocmask: %s", strerror(errno));
		/* execvp passes `environ` and looks COMMAND up in its PATH, so a PATH set in the
		 * env file is the one used, as with `env PATH=… COMMAND`. */
		if (env.vars != NULL)
			environ = env.vars;
		execvp(s->opt->command[0], s->opt->command);
		int error = errno;
		rw_log("cannot run %s: %s", s->opt->command[0], strerror(error));
		_exit(error == ENOENT || error == ENOTDIR ? 127 : 126);
	}
	env_release(&env);
	/* Set it from this side too, so the group exists before we ever signal it. */
	if (setpgid(pid, pid) < 0 && errno != EACCES && errno != ESRCH)
		rw_log("setpgid(%d): %s", (int)pid, strerror(errno));
	s->child = pid;
	s->started = rw_now_ms();
	s->rerun_at = -1;
	s->stopping = s->killed = s->restart = false;
	return 0;
}

/* --- 3. the loop's helpers -------------------------------------------------------------- */

static int exit_status(int wait_status)
{
	if (WIFEXITED(wait_status))
		return WEXITSTATUS(wait_status);
	if (WIFSIGNALED(wait_status))
		return (128 + WTERMSIG(wait_status)) & 0xff;
	return 1;
}

/* Reap every child that has exited (merged SIGCHLDs included). True when COMMAND was among them. */
static bool reap(struct supervisor *s)
{
	bool main_exited = false;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return main_exited; /* 0: none ready; ECHILD: no children at all */
		if (pid == s->child) {
			s->wait_status = status;
			s->status = exit_status(status);
			main_exited = true;
		}
	}
}

static void signal_group(struct supervisor *s, int sig)
{
	if (s->child > 0 && kill(-s->child, sig) < 0 && errno != ESRCH)
		rw_log("kill(-%d, %d): %s", (int)s->child, sig, strerror(errno));
}

/* SIGKILL every child of ours and its process group; returns how many were found.
 * Needs /proc; without it (a bare chroot) only the process group is stopped. */
static int kill_children(void)
{
	DIR *proc = opendir("/proc");
	if (proc == NULL)
		return 0;
	pid_t self = getpid();
	int found = 0;
	for (;;) {
		errno = 0; /* readdir reports errors only through errno */
		struct dirent *de = readdir(proc);
		if (de == NULL) {
			if (errno != 0)
				rw_log("readdir(/proc): %s", strerror(errno));
			break;
		}
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || pid == self || rw_parent_of(pid) != self)
			continue;
		found++;
		if (kill(-pid, SIGKILL) < 0 && kill(pid, SIGKILL) < 0 && errno != ESRCH)
			rw_log("kill(%d): %s", (int)pid, strerror(errno));
	}
	if (closedir(proc) < 0)
		rw_log("closedir(/proc): %s", strerror(errno));
	return found;
}

/* Reap whatever has exited, without waiting. True while children remain. */
static bool children_remain(void)
{
	for (;;) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid > 0 || (pid < 0 && errno == EINTR))
			continue;
		return pid == 0; /* -1 with ECHILD: none left */
	}
}

/* After COMMAND is gone: nothing it started may outlive it (ports, locks, double output). */
static void kill_remnants(struct supervisor *s)
{
	pid_t group = s->child;
	s->child = 0;
	if (kill(-group, SIGKILL) < 0 && errno != ESRCH)
		rw_log("kill(-%d): %s", (int)group, strerror(errno));
	int64_t give_up = rw_now_ms() + REMNANT_GRACE_MS;
	/* Killing a child reparents its own children to us, so look again until none remain. */
	while (children_remain() && kill_children() > 0) {
		if (rw_now_ms() > give_up) {
			rw_log("some processes COMMAND started did not die within %dms", REMNANT_GRACE_MS);
			return;
		}
		struct timespec pause = {.tv_nsec = 1000000};
		if (nanosleep(&pause, NULL) < 0 && errno != EINTR)
			rw_log("nanosleep: %s", strerror(errno));
	}
}

/* Start the clock on a stop. False when one is under way: it keeps its first deadline, so
 * neither triggers nor signals ever extend a stop. */
static bool start_stopping(struct supervisor *s, int64_t now)
{
	if (s->stopping)
		return false;
	s->stopping = true;
	s->deadline = now + s->opt->stop_timeout_ms;
	return true;
}

static void request_restart(struct supervisor *s, const char *cause, int64_t now)
{
	if (s->shutting_down)
		return;
	/* A change is a fresh start: the rerun back-off is for exits nobody asked for. */
	s->backoff_ms = RERUN_FIRST_MS;
	if (s->child == 0) {
		/* COMMAND had exited (continue, or rerun waiting out its back-off): start it now. */
		rw_log("starting %s: %s", s->opt->command[0], cause);
		if (spawn(s) < 0)
			rw_log("will try again on the next change");
		return;
	}
	if (s->stopping && s->restart)
		return; /* collapses into the restart already under way */
	rw_log("restarting %s: %s", s->opt->command[0], cause);
	snprintf(s->restart_cause, sizeof s->restart_cause, "%s", cause);
	s->restart = true;
	if (start_stopping(s, now))
		signal_group(s, s->opt->stop_signal);
}

/* The usual ones, and the configured stop signal: the kubelet stops a container with the
 * image's STOPSIGNAL (SIGQUIT for nginx, SIGWINCH for httpd), which the webhook passes as
 * --stop-signal. (SIGCHLD never gets here, and KILL and STOP never reach a process.) */
static bool is_shutdown_signal(const struct supervisor *s, int sig)
{
	return sig == SIGTERM || sig == SIGINT || sig == SIGQUIT || sig == SIGHUP || sig == s->opt->stop_signal;
}

/* Returns the shutdown signal when the wrapper should exit now (nothing runs), else 0. */
static int handle_signals(struct supervisor *s, int64_t now)
{
	struct signalfd_siginfo info;
	for (;;) {
		ssize_t n = read(s->signal_fd, &info, sizeof info);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			rw_log("read(signalfd): %s", strerror(errno));
		if (n != (ssize_t)sizeof info)
			break; /* EAGAIN: all read */
		int sig = (int)info.ssi_signo;
		if (sig == SIGCHLD)
			continue; /* reaping runs after every wake-up; see run_loop() */
		signal_group(s, sig);
		if (s->child > 0) {
			s->forwarded = sig;
			s->forwarded_at = now;
		}
		if (is_shutdown_signal(s, sig)) {
			s->shutting_down = true;
			s->restart = false;
			if (s->child == 0)
				return sig;
			start_stopping(s, now); /* the signal itself was forwarded above */
		}
	}
	return 0;
}

/* A restart for a finished sync: it covers the changes the sync made under --watch trees. */
static void restart_for_sync(struct supervisor *s, const char *tool, int64_t now)
{
	char cause[64];
	snprintf(cause, sizeof cause, "a sync finished (%s)", tool);
	s->pending = false;
	s->sync_due = -1;
	request_restart(s, cause, now);
}

/* A new line in the sync file: act on the latest report (see sync.h). True when it restarts. */
static bool take_sync_report(struct supervisor *s, int64_t now)
{
	struct sync_report report;
	char line[RW_SYNC_LINE_MAX];
	if (sync_read(s->opt->sync_file, &report, line) < 0 || strcmp(line, s->sync_line) == 0)
		return false;
	memcpy(s->sync_line, line, sizeof line);
	s->sync_due = -1; /* a tool started or failed: the rm's restart waits for it, or is off */
	if (report.event == SYNC_DONE && report.rm)
		s->sync_due = now + RW_SYNC_RM_GRACE_MS;
	if (report.event != SYNC_DONE || report.rm)
		return false;
	restart_for_sync(s, "tar -x", now);
	return true;
}

static void take_changes(struct supervisor *s, int64_t now)
{
	struct change c = {0};
	watcher_collect(s->watcher, now, &c);
	/* One restart for both: with nothing running, a second would start COMMAND twice. */
	if (c.sync && take_sync_report(s, now))
		return;
	if (c.restart_file) {
		char cause[sizeof c.what + 16];
		snprintf(cause, sizeof cause, "%s changed", c.what);
		s->pending = false; /* the restart covers pending tree changes too */
		s->sync_due = -1;   /* and an rm's */
		request_restart(s, cause, now);
	} else if (c.tree) {
		if (!s->pending) {
			s->pending = true;
			s->pending_first = now;
			snprintf(s->pending_what, sizeof s->pending_what, "%s", c.what);
		}
		s->pending_last = now;
	}
}

static int64_t debounce_due(const struct supervisor *s)
{
	int64_t cap = s->opt->debounce_ms * DEBOUNCE_CAP_FACTOR;
	if (cap < DEBOUNCE_CAP_MIN_MS)
		cap = DEBOUNCE_CAP_MIN_MS;
	int64_t quiet = s->pending_last + s->opt->debounce_ms;
	int64_t latest = s->pending_first + cap;
	return quiet < latest ? quiet : latest;
}

static int poll_timeout(const struct supervisor *s, int64_t now)
{
	int64_t due = -1;
	if (s->stopping && !s->killed)
		due = s->deadline;
	if (s->pending && (due < 0 || debounce_due(s) < due))
		due = debounce_due(s);
	if (s->rerun_at >= 0 && (due < 0 || s->rerun_at < due))
		due = s->rerun_at;
	if (s->sync_due >= 0 && (due < 0 || s->sync_due < due))
		due = s->sync_due;
	int64_t next_poll = watcher_next_poll(s->watcher);
	if (next_poll >= 0 && (due < 0 || next_poll < due))
		due = next_poll;
	if (due < 0)
		return -1; /* idle: sleep until a signal or an event, no CPU */
	return due <= now ? 0 : (int)(due - now > 60000 ? 60000 : due - now);
}

/* --- the loop -------------------------------------------------------------------------- */

static int run_loop(struct supervisor *s);

int supervise(const struct run_options *opt)
{
	struct supervisor s = {.opt = opt, .signal_fd = -1, .rerun_at = -1, .backoff_ms = RERUN_FIRST_MS,
			       .forwarded_at = -1, .sync_due = -1};
	if (configure_signals(&s) < 0)
		return 1;
	s.watcher = watcher_open(opt->restart_files, opt->nrestart_files, opt->sync_file, opt->watch, opt->nwatch,
				 opt->poll_ms);
	if (s.watcher == NULL) {
		rw_log("out of memory");
		return 1;
	}
	int status = spawn(&s) < 0 ? 1 : run_loop(&s);
	watcher_close(s.watcher);
	if (close(s.signal_fd) < 0)
		rw_log("close(signalfd): %s", strerror(errno));
	return status;
}

/* "11 (SEGV)", or "40" for a signal with no name of its own. */
static void describe_signal(int sig, char *out, size_t len)
{
	const char *name = signal_name(sig);
	if (name != NULL)
		snprintf(out, len, "%d (%s)", sig, name);
	else
		snprintf(out, len, "%d", sig);
}

/* "exited with status 3" or "was killed by signal 11 (SEGV)". */
static void describe_end(int wait_status, char *out, size_t len)
{
	if (WIFSIGNALED(wait_status)) {
		char sig[32];
		describe_signal(WTERMSIG(wait_status), sig, sizeof sig);
		snprintf(out, len, "was killed by signal %s", sig);
	} else {
		snprintf(out, len, "exited with status %d", exit_status(wait_status));
	}
}

/* The one line every end of COMMAND gets: how it ended, after how long, and what happens
 * next (`then`, formatted like printf). Greppable by "restart-wrapper: COMMAND ". */
static void log_end(const struct supervisor *s, int64_t ran_ms, const char *then, ...)
	__attribute__((format(printf, 3, 4)));
static void log_end(const struct supervisor *s, int64_t ran_ms, const char *then, ...)
{
	char how[64], next[PATH_MAX + 128];
	describe_end(s->wait_status, how, sizeof how);
	va_list ap;
	va_start(ap, then);
	vsnprintf(next, sizeof next, then, ap);
	va_end(ap);
	rw_log("%s %s after %lld.%llds; %s", s->opt->command[0], how, (long long)(ran_ms / 1000),
	       (long long)(ran_ms % 1000 / 100), next);
}

/* Did COMMAND end within the stop timeout after a signal from outside was passed on to it? */
static bool ended_by_forwarded_signal(const struct supervisor *s, int64_t now)
{
	return s->forwarded_at >= 0 && s->forwarded_at >= s->started && now - s->forwarded_at <= s->opt->stop_timeout_ms;
}

/* --exit-policy=rerun: COMMAND exited by itself. Wait 1s, then 2s, 4s … at most 30s while
 * it keeps exiting quickly; a run of 30s or more counts as healthy and starts over at 1s. */
static void schedule_rerun(struct supervisor *s, int64_t ran_ms)
{
	if (ran_ms >= RERUN_HEALTHY_MS)
		s->backoff_ms = RERUN_FIRST_MS;
	int64_t wait = s->backoff_ms;
	s->backoff_ms = wait * 2 < RERUN_CAP_MS ? wait * 2 : RERUN_CAP_MS;
	s->rerun_at = rw_now_ms() + wait;
	log_end(s, ran_ms, "running it again in %llds (exit-policy rerun)", (long long)(wait / 1000));
}

/* Returns the wrapper's exit status once it is time to go. */
static int run_loop(struct supervisor *s)
{
	const struct run_options *opt = s->opt;
	for (;;) {
		struct pollfd fds[2] = {
			{.fd = s->signal_fd, .events = POLLIN},
			{.fd = watcher_fd(s->watcher), .events = POLLIN},
		};
		int64_t now = rw_now_ms();
		if (poll(fds, fds[1].fd >= 0 ? 2 : 1, poll_timeout(s, now)) < 0 && errno != EINTR) {
			rw_log("poll: %s", strerror(errno));
			return 1;
		}
		now = rw_now_ms();

		int shutdown = handle_signals(s, now);
		if (shutdown != 0) {
			/* Nothing runs. rerun meant COMMAND to be running, so its last status is the
			 * honest one to leave with; continue was idle by design and exits 0. */
			int status = opt->exit_policy == EXIT_RERUN ? s->status : 0;
			char sig[32];
			describe_signal(shutdown, sig, sizeof sig);
			rw_log("shutting down on signal %s while %s is not running; exiting with status %d", sig,
			       opt->command[0], status);
			return status;
		}
		take_changes(s, now);
		if (s->pending && now >= debounce_due(s)) {
			char cause[sizeof s->pending_what + 16];
			snprintf(cause, sizeof cause, "%s changed", s->pending_what);
			s->pending = false;
			request_restart(s, cause, now);
		}
		if (s->sync_due >= 0 && now >= s->sync_due)
			restart_for_sync(s, "rm", now);
		if (s->stopping && !s->killed && now >= s->deadline) {
			rw_log("%s did not stop within %lldms; sending SIGKILL", opt->command[0],
			       (long long)opt->stop_timeout_ms);
			s->killed = true;
			signal_group(s, SIGKILL);
		}
		if (s->child == 0 && s->rerun_at >= 0 && now >= s->rerun_at && spawn(s) < 0)
			return 1;

		if (!reap(s))
			continue;
		int64_t ran = rw_now_ms() - s->started; /* before the remnants, which are not COMMAND's run */
		kill_remnants(s);
		s->stopping = s->killed = false;
		if (s->shutting_down) {
			log_end(s, ran, "exiting with status %d (shutting down)", s->status);
			return s->status;
		}
		if (s->restart) {
			log_end(s, ran, "starting it again now (%s)", s->restart_cause);
			if (spawn(s) < 0)
				return 1;
			continue;
		}
		if (ended_by_forwarded_signal(s, now)) {
			/* A signal from outside ended it: that was someone stopping the container with a
			 * signal this wrapper does not know as a stop signal (an image's STOPSIGNAL the
			 * webhook could not read, say). Running it again would only make the kubelet
			 * wait out the grace period; leave, as a program that is PID 1 itself would. */
			char sig[32];
			describe_signal(s->forwarded, sig, sizeof sig);
			log_end(s, ran, "exiting with status %d (it ended after signal %s was passed on to it)", s->status,
				sig);
			return s->status;
		}
		switch (opt->exit_policy) {
		case EXIT_RESTART:
			log_end(s, ran, "exiting with status %d (exit-policy restart)", s->status);
			return s->status;
		case EXIT_CONTINUE:
			log_end(s, ran, "waiting for a change to run it again (exit-policy continue)");
			break;
		case EXIT_RERUN:
			schedule_rerun(s, ran);
			break;
		}
	}
}
