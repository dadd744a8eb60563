/* Unit tests of the text encoders of query batches (query_text.h). */
#include "query/query_text.h"
#include "test.h"

static void test_time_format(void)
{
    char b[64];
    query_text_format_time(0, b);
    CHECK_EQ_STR(b, "1970-01-01T00:00:00.000000000Z");
    query_text_format_time(1767225600000000000LL, b);
    CHECK_EQ_STR(b, "2026-01-01T00:00:00.000000000Z");
    query_text_format_time(-1, b);
    CHECK_EQ_STR(b, "1969-12-31T23:59:59.999999999Z");
    query_text_format_time(951782400123456789LL, b); /* a leap day */
    CHECK_EQ_STR(b, "2000-02-29T00:00:00.123456789Z");
    query_text_format_time(INT64_MAX, b);
    CHECK_EQ_STR(b, "2262-04-11T23:47:16.854775807Z");
    query_text_format_time(INT64_MIN, b);
    CHECK_EQ_STR(b, "1677-09-21T00:12:43.145224192Z");
}

/* A two-row batch: tag h, f64 v (row 1 null), string s, time. */
static query_batch *make_batch(void)
{
    static int32_t ids[] = {1, 0};
    static int32_t dict_off[] = {0, 1, 4};
    static char dict[] = "ab,c";
    static double f[] = {0.1, 0};
    static uint8_t fvalid[] = {1};
    static int32_t soff[] = {0, 3, 6};
    static char sbytes[] = "x\"yz\nw";
    static int64_t t[] = {0, 1};
    static query_column cols[4];
    static query_batch b;
    cols[0] = (query_column){.name = "h", .type = COLUMN_TAG};
    cols[0].data.tag.ids = ids;
    cols[0].data.tag.dict_offsets = dict_off;
    cols[0].data.tag.dict_bytes = dict;
    cols[0].data.tag.dict_count = 2;
    cols[1] = (query_column){.name = "v", .type = COLUMN_F64, .validity = fvalid};
    cols[1].data.f64 = f;
    cols[2] = (query_column){.name = "s", .type = COLUMN_STRING};
    cols[2].data.str.offsets = soff;
    cols[2].data.str.bytes = sbytes;
    cols[3] = (query_column){.name = "time", .type = COLUMN_TIME};
    cols[3].data.i64 = t;
    b = (query_batch){.partition_key = "1970-01-01", .row_count = 2, .column_count = 4, .columns = cols};
    return &b;
}

static void encode(enum query_text_format f, size_t soft_limit, strbuf *out)
{
    query_text_encoder e;
    query_batch *b = make_batch();
    query_text_begin(&e, f, out);
    size_t row = 0;
    while (!query_text_rows(&e, b, &row, out->len + soft_limit, out)) {
    }
    row = 0;
    while (!query_text_rows(&e, b, &row, out->len + soft_limit, out)) {
    }
    query_text_end(&e, out);
    query_text_encoder_free(&e);
}

static void test_jsonl_and_json(void)
{
    strbuf s = {0};
    encode(QUERY_TEXT_JSONL, 1, &s);
    const char *row0 = "{\"h\":\"b,c\",\"v\":0.1,\"s\":\"x\\\"y\",\"time\":\"1970-01-01T00:00:00.000000000Z\"}\n";
    const char *row1 = "{\"h\":\"a\",\"s\":\"z\\nw\",\"time\":\"1970-01-01T00:00:00.000000001Z\"}\n";
    char expect[1024];
    snprintf(expect, sizeof expect, "%s%s%s%s", row0, row1, row0, row1);
    CHECK_EQ_STR(s.data, expect);
    strbuf_free(&s);
    encode(QUERY_TEXT_JSON, 1 << 20, &s);
    CHECK(s.data[0] == '[' && s.data[1] == '\n');
    CHECK(strstr(s.data, "},\n{") != NULL);
    CHECK(strcmp(s.data + s.len - 3, "}\n]") == 0 || strcmp(s.data + s.len - 3, "\n]\n") == 0);
    strbuf_free(&s);
}

static void test_csv(void)
{
    strbuf s = {0};
    encode(QUERY_TEXT_CSV, 1 << 20, &s);
    CHECK_EQ_STR(s.data, "h,v,s,time\r\n"
                         "\"b,c\",0.1,\"x\"\"y\",1970-01-01T00:00:00.000000000Z\r\n"
                         "a,,\"z\nw\",1970-01-01T00:00:00.000000001Z\r\n"
                         "\"b,c\",0.1,\"x\"\"y\",1970-01-01T00:00:00.000000000Z\r\n"
                         "a,,\"z\nw\",1970-01-01T00:00:00.000000001Z\r\n");
    strbuf_free(&s);
}

static void test_empty_json_is_an_empty_array(void)
{
    strbuf s = {0};
    query_text_encoder e;
    query_text_begin(&e, QUERY_TEXT_JSON, &s);
    query_text_end(&e, &s);
    CHECK_EQ_STR(s.data, "[]\n");
    query_text_encoder_free(&e);
    strbuf_free(&s);
}

static void test_format_parse(void)
{
    enum query_text_format f;
    CHECK(query_text_format_parse("csv", &f) == 0 && f == QUERY_TEXT_CSV);
    CHECK(query_text_format_parse("jsonl", &f) == 0 && f == QUERY_TEXT_JSONL);
    CHECK(query_text_format_parse("xml", &f) == -1);
}

int main(void)
{
    TEST_RUN(test_time_format);
    TEST_RUN(test_jsonl_and_json);
    TEST_RUN(test_csv);
    TEST_RUN(test_empty_json_is_an_empty_array);
    TEST_RUN(test_format_parse);
    TEST_MAIN_END();
}
