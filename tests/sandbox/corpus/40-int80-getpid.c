/* getpid through the 32-bit entry point (int 0x80) from a 64-bit process:
 * the filter's architecture check kills the process with SIGSYS.
 * Compiled on the host by the test: gcc -static -O1.
 * Expected: exit 125, "killed for a system call the sandbox forbids" */
#include <stdio.h>

int main(void)
{
    long r;
    printf("calling getpid (i386 number 20) through int 0x80\n");
    fflush(stdout);
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
    printf("RESULT: survived-%ld\n", r);
    return 0;
}
