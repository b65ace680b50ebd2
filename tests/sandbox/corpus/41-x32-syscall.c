/* getpid through the x32 ABI (the syscall number with bit 30 set): the
 * filter kills the process with SIGSYS, whether or not the kernel has x32.
 * Compiled on the host by the test: gcc -static -O1.
 * Expected: exit 125, "killed for a system call the sandbox forbids" */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define X32_SYSCALL_BIT 0x40000000L

int main(void)
{
    printf("calling getpid through the x32 ABI\n");
    fflush(stdout);
    errno = 0;
    long r = syscall(X32_SYSCALL_BIT | SYS_getpid);
    int e = errno;
    if (r == -1)
        printf("RESULT: survived-%s\n", strerrorname_np(e) ? strerrorname_np(e) : strerror(e));
    else
        printf("RESULT: survived-%ld\n", r);
    return 0;
}
