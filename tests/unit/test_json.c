/* Unit tests of util/json: string escaping (valid UTF-8 out, always) and string-array parsing. */
#include "test.h"
#include "util/json.h"

static void test_string_escaping(void)
{
    strbuf s = {0};
    json_put_string(&s, "a\"b\\c\n\x01", 7);
    CHECK_EQ_STR(s.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    strbuf_reset(&s);
    json_put_string(&s, "h\xc3\xa9 \xe2\x98\x83", 7); /* valid UTF-8 passes through */
    CHECK_EQ_STR(s.data, "\"h\xc3\xa9 \xe2\x98\x83\"");
    strbuf_reset(&s);
    json_put_string(&s, "x\xff\xc3", 3); /* invalid bytes become U+FFFD */
    CHECK_EQ_STR(s.data, "\"x\\ufffd\\ufffd\"");
    strbuf_reset(&s);
    json_put_string(&s, "\xed\xa0\x80", 3); /* a surrogate is not valid UTF-8 */
    CHECK_EQ_STR(s.data, "\"\\ufffd\\ufffd\\ufffd\"");
    strbuf_free(&s);
}

static void test_string_array_round_trip(void)
{
    const char *in[] = {"region", "ho\"st,1", "caf\xc3\xa9", "", "time"};
    strbuf s = {0};
    json_put_string_array(&s, in, 5);
    CHECK_EQ_STR(s.data, "[\"region\",\"ho\\\"st,1\",\"caf\xc3\xa9\",\"\",\"time\"]");
    char **out;
    size_t n;
    CHECK_EQ_INT(json_parse_string_array(s.data, &out, &n), 0);
    CHECK_EQ_INT(n, 5);
    for (size_t i = 0; i < n && i < 5; i++) CHECK_EQ_STR(out[i], in[i]);
    json_free_string_array(out, n);
    strbuf_free(&s);
}

static void test_string_array_parsing(void)
{
    char **out;
    size_t n;
    CHECK_EQ_INT(json_parse_string_array(" [ ] ", &out, &n), 0);
    CHECK_EQ_INT(n, 0);
    json_free_string_array(out, n);
    CHECK_EQ_INT(json_parse_string_array("[\"\\u00e9\\ud83d\\ude00\\n\\/\"]", &out, &n), 0);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_EQ_STR(out[0], "\xc3\xa9\xf0\x9f\x98\x80\n/");
    json_free_string_array(out, n);
    const char *bad[] = {"", "[", "[\"a\"", "[\"a\",]", "[1]", "[\"a\"] x", "{\"a\":1}",
                         "[\"\\ud800\"]", "[\"\\x\"]", "[\"a\nb\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(json_parse_string_array(bad[i], &out, &n), INGOT_E_INVALID);
}

static const json_member *member(const json_member *ms, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ms[i].key, key)) return &ms[i];
    return NULL;
}

static void test_flat_object_parsing(void)
{
    json_member *ms;
    size_t n;
    const char *doc = " {\"namespace\" : \"d\\u00e9b\", \"columns\":[\"a\",\"b\"],\"min_time\":-9223372036854775808,"
                      "\"max_time\":\"1700000000000000001\",\"none\":null,\"big\":9223372036854775807} ";
    CHECK_EQ_INT(json_parse_flat_object(doc, &ms, &n), 0);
    CHECK_EQ_INT(n, 6);
    const json_member *m = member(ms, n, "namespace");
    CHECK(m && m->kind == JSON_MEMBER_STRING && !strcmp(m->string, "d\xc3\xa9" "b"));
    m = member(ms, n, "columns");
    CHECK(m && m->kind == JSON_MEMBER_STRING_ARRAY && m->count == 2 && !strcmp(m->items[1], "b"));
    m = member(ms, n, "min_time");
    CHECK(m && m->kind == JSON_MEMBER_INTEGER && m->integer == INT64_MIN);
    m = member(ms, n, "big");
    CHECK(m && m->kind == JSON_MEMBER_INTEGER && m->integer == INT64_MAX);
    m = member(ms, n, "max_time");
    CHECK(m && m->kind == JSON_MEMBER_STRING && !strcmp(m->string, "1700000000000000001"));
    m = member(ms, n, "none");
    CHECK(m && m->kind == JSON_MEMBER_NULL);
    CHECK(ms[0].key && !strcmp(ms[0].key, "namespace")); /* document order */
    json_free_members(ms, n);
    CHECK_EQ_INT(json_parse_flat_object("{}", &ms, &n), 0);
    CHECK_EQ_INT(n, 0);
    json_free_members(ms, n);
    const char *bad[] = {"", "{", "[]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1.5}",
                         "{\"a\":1e3}", "{\"a\":true}", "{\"a\":{}}", "{\"a\":[1]}",
                         "{\"a\":9223372036854775808}", "{\"a\":-9223372036854775809}",
                         "{\"a\":1} x", "{a:1}", "{\"a\":-}", "{\"a\":nul}",
                         "{\"a\":\"db\\u0000x\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rv = json_parse_flat_object(bad[i], &ms, &n);
        CHECK_EQ_INT(rv, INGOT_E_INVALID);
        if (rv != INGOT_E_INVALID) fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
}

int main(void)
{
    TEST_RUN(test_string_escaping);
    TEST_RUN(test_string_array_round_trip);
    TEST_RUN(test_string_array_parsing);
    TEST_RUN(test_flat_object_parsing);
    TEST_MAIN_END();
}
