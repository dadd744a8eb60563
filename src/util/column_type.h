/*
 * column_type.h: the types a column can have, forever (ARCHITECTURE §1). The numeric values are
 * the catalog's type codes and equal enum lp_field_type for the five field types.
 */
#ifndef INGOT_COLUMN_TYPE_H
#define INGOT_COLUMN_TYPE_H

enum column_type {
    COLUMN_I64 = 1,
    COLUMN_U64 = 2,
    COLUMN_F64 = 3,
    COLUMN_BOOL = 4,
    COLUMN_STRING = 5,
    COLUMN_TIME = 6,
    COLUMN_TAG = 7,
};

/* "i64", "u64", "f64", "bool", "string", "time", "tag"; "unknown" otherwise. */
static inline const char *column_type_name(int type)
{
    static const char *names[] = {"unknown", "i64", "u64", "f64", "bool", "string", "time", "tag"};
    return (type >= 1 && type <= 7) ? names[type] : names[0];
}

#endif
