#include "crash.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "plugin_host.h"

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define N_FATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))

static struct sigaction previous[N_FATAL];
static char alt_stack[64 * 1024];

/* Only async-signal-safe calls from here on: write(2), sigaction, raise. */
static void put(char *line, size_t *len, size_t cap, const char *text)
{
	for (; text && *text && *len + 1 < cap; text++)
		line[(*len)++] = *text;
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV:
		return "SIGSEGV (invalid memory access)";
	case SIGBUS:
		return "SIGBUS (bus error)";
	case SIGFPE:
		return "SIGFPE (arithmetic error)";
	case SIGILL:
		return "SIGILL (illegal instruction)";
	case SIGABRT:
		return "SIGABRT (aborted)";
	default:
		return "a fatal signal";
	}
}

static void on_fatal(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	const char *plugin, *what;
	plugin_host_running(&plugin, &what);
	char line[512];
	size_t len = 0;
	put(line, &len, sizeof(line), "hearthd: crash: ");
	put(line, &len, sizeof(line), signal_name(sig));
	if (plugin) {
		put(line, &len, sizeof(line), " in plugin '");
		put(line, &len, sizeof(line), plugin);
		put(line, &len, sizeof(line), "', in its ");
		put(line, &len, sizeof(line), what);
		put(line, &len, sizeof(line),
		    " callback; hearthd stops. Take the plugin out of [plugins] enable until it "
		    "is fixed.");
	} else {
		put(line, &len, sizeof(line), " outside any plugin callback; hearthd stops.");
	}
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
	/* the handler that was there before takes over: for a fault the
	 * instruction runs again on return and faults into it; a signal that
	 * was sent (or abort's) is raised again */
	for (size_t i = 0; i < N_FATAL; i++)
		if (fatal_signals[i] == sig)
			sigaction(sig, &previous[i], NULL);
	if (sig == SIGABRT || !info || info->si_code <= 0)
		raise(sig);
}

void crash_report_install(void)
{
	static int installed;
	if (installed++)
		return;
	stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof(alt_stack), .ss_flags = 0};
	sigaltstack(&ss, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_FATAL; i++)
		sigaction(fatal_signals[i], &sa, &previous[i]);
}
