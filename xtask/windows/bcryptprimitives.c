/*
 * Test-only stand-in for bcryptprimitives.dll under Wine 8 (Debian 12), which lacks it.
 *
 * Rust's standard library on Windows (1.78 and later) takes its random numbers from
 * ProcessPrng in bcryptprimitives.dll; real Windows 10 and later have it. `cargo xtask windows`
 * builds this file with MinGW-w64 and places the DLL next to the .exe files it runs under Wine,
 * nowhere else. It forwards to RtlGenRandom (advapi32's SystemFunction036), which Wine implements
 * over the host's random source. Never shipped.
 */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!RtlGenRandom(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
