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

int main(void)
{
    TEST_RUN(test_string_escaping);
    TEST_RUN(test_string_array_round_trip);
    TEST_RUN(test_string_array_parsing);
    TEST_MAIN_END();
}
