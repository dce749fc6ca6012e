/*  checks.h - checks for unit tests that go on after a failure.

    CHECK (cond, format, ...) counts the check and, when cond is false,
    prints where and why and counts a failure; CHECKS_RESULT () prints the
    tally and is main's exit status (0 only when nothing failed).
*/
#ifndef DRV_TEST_CHECKS_H_INCLUDED
#define DRV_TEST_CHECKS_H_INCLUDED

#include <stdio.h>

static int s_failures;
static int s_checks;

#define CHECK(cond, ...) do {                                       \
    s_checks++;                                                     \
    if (!(cond)) {                                                  \
        s_failures++;                                               \
        fprintf (stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
        fprintf (stderr, __VA_ARGS__);                              \
        fprintf (stderr, "\n");                                     \
    }                                                               \
} while (0)

#define CHECKS_RESULT() \
    (printf ("%d checks, %d failures\n", s_checks, s_failures), s_failures? 1: 0)

#endif
