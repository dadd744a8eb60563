/*
 * catalog_internal.h: helpers shared by the catalog back ends (catalog_sqlite.c,
 * catalog_postgres.c); implemented in catalog_open.c. Not part of the catalog contract.
 */
#ifndef INGOT_CATALOG_INTERNAL_H
#define INGOT_CATALOG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Check a parquet_file.sequence_extras value before it is stored: NULL or "" or decimal
 * sequence numbers separated by single commas, each above max_sequence_number (no signs, no
 * spaces, no empty items). Returns 0 or INGOT_E_INVALID.
 */
int catalog_extras_validate(const char *extras, uint64_t max_sequence_number);

/*
 * Normalise a concatenation of stored sequence_extras lists (joined with commas; NULL or "" is
 * empty): keep the values above max_sequence_number, sort ascending, drop duplicates, and write
 * them comma-separated into *out (malloc'd, "" if none; caller frees). Returns 0,
 * INGOT_E_CORRUPT for text that is not such a list, or INGOT_E_NOMEM.
 */
int catalog_extras_merge(const char *concat, uint64_t max_sequence_number, char **out);

/* Current time in nanoseconds since the Unix epoch (UTC). */
int64_t catalog_now_ns(void);

#endif
