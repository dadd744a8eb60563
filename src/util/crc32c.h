/*
 * crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of WAL segment
 * headers and entries.
 *
 * The value convention is zlib's: crc32c_update(0, buf, len) == crc32c(buf, len), and a checksum
 * can be built piecewise, crc32c_update(crc32c(a, n), b, m) == crc32c(a ++ b, n + m). The
 * pre/post inversion happens inside. crc32c("123456789", 9) == 0xE3069283.
 *
 * The SSE4.2 crc32 instruction is used when the CPU has it (checked once, at run time); otherwise a
 * portable slicing-by-8 table. Both give identical results. Thread-safe, no allocation.
 */
#ifndef INGOT_CRC32C_H
#define INGOT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c(const void *buf, size_t len);

/* The portable table implementation, always (tests compare it against the hardware path). */
uint32_t crc32c_update_portable(uint32_t crc, const void *buf, size_t len);

/* 1 if crc32c_update uses the SSE4.2 instruction on this CPU. */
int crc32c_hardware(void);

#endif
