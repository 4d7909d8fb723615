/*
 * crash: the last word of a hearthd that dies of a fatal signal.
 *
 * Plugins run inside hearthd: a plugin that dereferences NULL takes the
 * daemon down (systemd starts it again). Before it goes, one line on stderr
 * names the signal and, when a plugin callback was running, the plugin and
 * the callback, so the user knows which plugin to disable. Then the signal
 * takes its course: the handler that was there before (a sanitizer's), or
 * the default action (a core dump when enabled).
 */
#ifndef HEARTH_CRASH_H
#define HEARTH_CRASH_H

/* Install the handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT, on
 * an alternate stack (a stack overflow is one of the crashes). Once. */
void crash_report_install(void);

#endif
