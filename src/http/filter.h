/*
 * The front door's seccomp allowlist: the system calls an h2o event loop,
 * OpenSSL, libpq and the routes make, and nothing else.
 *
 * Threat model: a bug in the TLS, HTTP or JSON handling gives an attacker
 * code execution in the front door. That process already runs as an
 * unprivileged user with no capabilities and no_new_privs (privdrop.h);
 * this list takes away what such a user could still do to the machine:
 * no execve (no shell, no helper), no ptrace, no new listening socket, no
 * file opened for writing, no file created, renamed or removed, no mount
 * or namespace calls, no keyring, bpf or perf. A call outside the list fails with EPERM (the
 * process goes on, and a rare path shows up as a failed request, not an
 * outage); clone3 fails with ENOSYS so that glibc falls back to clone.
 * Only the native x86-64 ABI passes: the 32-bit and x32 entry points kill
 * the process, since their numbers differ and would dodge the list.
 *
 * Under AddressSanitizer the list also admits what LeakSanitizer needs to
 * check for leaks at exit (a tracer that ptraces this process's threads):
 * the release build never has it.
 *
 * Errors: filter_install returns 0, or -1 with a message in err.
 * Threads: call it before starting any thread (a filter covers the calling
 * thread and the threads it starts later).
 */
#ifndef DEBATE_HTTP_FILTER_H
#define DEBATE_HTTP_FILTER_H

#include <stddef.h>

int filter_install(char *err, size_t errlen);

#endif
