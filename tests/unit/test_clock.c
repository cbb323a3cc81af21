/* tests/unit/test_clock.c: the admin API's timestamps (UTC, whole seconds,
 * the fraction dropped, never rounded up) and the wall clock's unit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "common/clock.h"

static void test_iso_time(void **state)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00Z"},
        {999, "1970-01-01T00:00:00Z"},
        {1796407912000, "2026-12-04T18:11:52Z"},
        {1796407912999, "2026-12-04T18:11:52Z"},
        {951782400000, "2000-02-29T00:00:00Z"},
    };
    char buf[32];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mr_iso_time(cases[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
    }
}

static void test_wall_ms_is_milliseconds_since_epoch(void **state)
{
    time_t before = time(NULL);
    int64_t ms = mr_wall_ms();
    time_t after = time(NULL);

    (void)state;
    assert_true(ms >= (int64_t)before * 1000);
    assert_true(ms < ((int64_t)after + 1) * 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso_time),
        cmocka_unit_test(test_wall_ms_is_milliseconds_since_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
