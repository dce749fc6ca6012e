/*  test_prom.c - the Prometheus text writer and histograms (broker/prom.c):
    exact output for a small page, escaping, cumulative buckets, +Inf.
*/
#include "prom.h"
#include "checks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void
s_expect (prom_t *prom, const char *expected, const char *what)
{
    bool same = strcmp (prom_data (prom), expected) == 0;
    CHECK (same, "%s", what);
    if (!same)
        fprintf (stderr, "--- expected\n%s--- got\n%s---\n", expected, prom_data (prom));
    CHECK (prom_size (prom) == strlen (prom_data (prom)), "%s: size", what);
    CHECK (!prom_failed (prom), "%s: not failed", what);
}

static void
s_test_page (prom_t *prom)
{
    prom_reset (prom);
    prom_family (prom, "drover_jobs_submitted_total", PROM_COUNTER, "Jobs accepted by the broker.");
    prom_sample (prom, "drover_jobs_submitted_total", 1234, "queue", "upper", NULL);
    prom_sample (prom, "drover_jobs_submitted_total", 0, "queue", "lower", NULL);
    prom_family (prom, "drover_workers", PROM_GAUGE, "Workers connected.");
    prom_sample (prom, "drover_workers", 3, NULL);
    prom_family (prom, "drover_up", PROM_UNTYPED, NULL);
    prom_sample (prom, "drover_up", 1, NULL);
    const char *labels [] = {"queue", "a", "state", "running"};
    prom_family (prom, "drover_jobs", PROM_GAUGE, "Jobs by queue and state.");
    prom_sample_labels (prom, "drover_jobs", labels, 2, 7);
    s_expect (prom,
        "# HELP drover_jobs_submitted_total Jobs accepted by the broker.\n"
        "# TYPE drover_jobs_submitted_total counter\n"
        "drover_jobs_submitted_total{queue=\"upper\"} 1234\n"
        "drover_jobs_submitted_total{queue=\"lower\"} 0\n"
        "# HELP drover_workers Workers connected.\n"
        "# TYPE drover_workers gauge\n"
        "drover_workers 3\n"
        "# HELP drover_up \n"
        "# TYPE drover_up untyped\n"
        "drover_up 1\n"
        "# HELP drover_jobs Jobs by queue and state.\n"
        "# TYPE drover_jobs gauge\n"
        "drover_jobs{queue=\"a\",state=\"running\"} 7\n",
        "small page");

    //  Reset keeps nothing
    prom_reset (prom);
    CHECK (prom_size (prom) == 0 && *prom_data (prom) == '\0', "reset empties");
}

static void
s_test_values (prom_t *prom)
{
    prom_reset (prom);
    prom_sample (prom, "v", 0.5, NULL);
    prom_sample (prom, "v", 0.1, NULL);
    prom_sample (prom, "v", -2, NULL);
    prom_sample (prom, "v", 9007199254740991.0, NULL);
    prom_sample (prom, "v", 1e300, NULL);
    prom_sample (prom, "v", 0.00005, NULL);
    prom_sample (prom, "v", 1.0 / 3.0, NULL);
    prom_sample (prom, "v", NAN, NULL);
    prom_sample (prom, "v", INFINITY, NULL);
    prom_sample (prom, "v", -INFINITY, NULL);
    s_expect (prom,
        "v 0.5\n"
        "v 0.1\n"
        "v -2\n"
        "v 9007199254740991\n"
        "v 1e+300\n"
        "v 5e-05\n"
        "v 0.33333333333333331\n"
        "v NaN\n"
        "v +Inf\n"
        "v -Inf\n",
        "value formats");
    //  Every number reads back exactly
    const char *line = prom_data (prom);
    double expected [] = {0.5, 0.1, -2, 9007199254740991.0, 1e300, 0.00005, 1.0 / 3.0};
    for (size_t i = 0; i < sizeof expected / sizeof expected [0]; i++) {
        CHECK (strtod (line + 2, NULL) == expected [i], "value %zu reads back", i);
        line = strchr (line, '\n') + 1;
    }
}

static void
s_test_escaping (prom_t *prom)
{
    prom_reset (prom);
    prom_family (prom, "m", PROM_GAUGE, "Help with \\ backslash,\nnewline and \"quotes\".");
    prom_sample (prom, "m", 1, "queue", "a\\b\"c\nd", "other", "", NULL);
    prom_sample (prom, "m", 2, "queue", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", NULL);
    prom_sample (prom, "m", 3, "queue", "bad\xFF" "byte\xC3", NULL);
    prom_sample (prom, "m", 4, "queue", "overlong\xC0\xAF" "surrogate\xED\xA0\x80", NULL);
    prom_sample (prom, "m", 5, "queue", "tab\there", NULL);
    s_expect (prom,
        "# HELP m Help with \\\\ backslash,\\nnewline and \"quotes\".\n"
        "# TYPE m gauge\n"
        "m{queue=\"a\\\\b\\\"c\\nd\",other=\"\"} 1\n"
        "m{queue=\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"} 2\n"
        "m{queue=\"bad\xEF\xBF\xBD" "byte\xEF\xBF\xBD\"} 3\n"
        "m{queue=\"overlong\xEF\xBF\xBD\xEF\xBF\xBD" "surrogate\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"} 4\n"
        "m{queue=\"tab\there\"} 5\n",
        "escaping");
}

static void
s_test_histogram (prom_t *prom)
{
    prom_histogram_t h;
    const double bounds [] = {0.1, 1, 10};
    prom_histogram_init (&h, bounds, 3);
    double values [] = {0.05, 0.1, 0.5, 1, 2, 5, 20, 1000};
    for (size_t i = 0; i < sizeof values / sizeof values [0]; i++)
        prom_histogram_observe (&h, values [i]);
    prom_histogram_observe (&h, NAN);
    CHECK (h.count == 8, "count %llu (NaN ignored)", (unsigned long long) h.count);
    CHECK (h.counts [0] == 2 && h.counts [1] == 2 && h.counts [2] == 2 && h.counts [3] == 2,
           "per-bucket counts, bounds inclusive");

    prom_reset (prom);
    prom_family (prom, "drover_job_wait_seconds", PROM_HISTOGRAM, "Wait.");
    prom_histogram (prom, "drover_job_wait_seconds", &h, "queue", "q\"1", NULL);
    prom_histogram (prom, "drover_job_wait_seconds", &h, NULL);
    s_expect (prom,
        "# HELP drover_job_wait_seconds Wait.\n"
        "# TYPE drover_job_wait_seconds histogram\n"
        "drover_job_wait_seconds_bucket{queue=\"q\\\"1\",le=\"0.1\"} 2\n"
        "drover_job_wait_seconds_bucket{queue=\"q\\\"1\",le=\"1\"} 4\n"
        "drover_job_wait_seconds_bucket{queue=\"q\\\"1\",le=\"10\"} 6\n"
        "drover_job_wait_seconds_bucket{queue=\"q\\\"1\",le=\"+Inf\"} 8\n"
        "drover_job_wait_seconds_sum{queue=\"q\\\"1\"} 1028.65\n"
        "drover_job_wait_seconds_count{queue=\"q\\\"1\"} 8\n"
        "drover_job_wait_seconds_bucket{le=\"0.1\"} 2\n"
        "drover_job_wait_seconds_bucket{le=\"1\"} 4\n"
        "drover_job_wait_seconds_bucket{le=\"10\"} 6\n"
        "drover_job_wait_seconds_bucket{le=\"+Inf\"} 8\n"
        "drover_job_wait_seconds_sum 1028.65\n"
        "drover_job_wait_seconds_count 8\n",
        "histogram");

    //  An empty histogram still has every bucket, all zero
    prom_histogram_init (&h, bounds, 3);
    prom_reset (prom);
    prom_histogram (prom, "e", &h, NULL);
    s_expect (prom,
        "e_bucket{le=\"0.1\"} 0\n"
        "e_bucket{le=\"1\"} 0\n"
        "e_bucket{le=\"10\"} 0\n"
        "e_bucket{le=\"+Inf\"} 0\n"
        "e_sum 0\n"
        "e_count 0\n",
        "empty histogram");

    //  The default bucket sets
    prom_histogram_init_job (&h);
    CHECK (h.bound_count >= 10 && h.bounds [0] == 0.001 && h.bounds [h.bound_count - 1] == 600,
           "job buckets 1 ms .. 10 min");
    prom_histogram_observe (&h, 0.0004);
    prom_histogram_observe (&h, 3600);
    CHECK (h.counts [0] == 1 && h.counts [h.bound_count] == 1, "job extremes");
    prom_histogram_init_fsync (&h);
    CHECK (h.bounds [0] == 0.00005 && h.bounds [h.bound_count - 1] == 1, "fsync buckets 50 us .. 1 s");
    for (size_t i = 1; i < h.bound_count; i++)
        CHECK (h.bounds [i] > h.bounds [i - 1], "fsync bounds ascend at %zu", i);
    prom_reset (prom);
    prom_histogram (prom, "f", &h, NULL);
    CHECK (strstr (prom_data (prom), "f_bucket{le=\"5e-05\"} 0\n") != NULL, "fsync first le");
    CHECK (strstr (prom_data (prom), "f_bucket{le=\"0.00025\"} 0\n") != NULL, "fsync le 250 us");

    //  Cumulative counts never decrease, and +Inf equals _count
    prom_histogram_init_job (&h);
    unsigned seed = 7;
    for (int i = 0; i < 100000; i++)
        prom_histogram_observe (&h, (double) rand_r (&seed) / RAND_MAX * 700);
    prom_reset (prom);
    prom_histogram (prom, "r", &h, NULL);
    unsigned long long last = 0, value = 0;
    bool ascending = true;
    const char *p = prom_data (prom);
    while ((p = strstr (p, "r_bucket{")) != NULL) {
        p = strchr (p, '}') + 2;
        value = strtoull (p, NULL, 10);
        if (value < last)
            ascending = false;
        last = value;
    }
    CHECK (ascending, "cumulative buckets ascend");
    CHECK (last == 100000, "+Inf bucket holds every observation: %llu", last);
    CHECK (strstr (prom_data (prom), "r_count 100000\n") != NULL, "_count");
}

static void
s_test_growth (prom_t *prom)
{
    //  Far beyond the first allocation
    prom_reset (prom);
    char name [32];
    for (int i = 0; i < 20000; i++) {
        snprintf (name, sizeof name, "queue-%d", i);
        prom_sample (prom, "drover_queue_depth", i, "queue", name, NULL);
    }
    CHECK (!prom_failed (prom), "large page");
    CHECK (strstr (prom_data (prom), "drover_queue_depth{queue=\"queue-19999\"} 19999\n") != NULL,
           "last line present");
    CHECK (prom_size (prom) > 500000, "size %zu", prom_size (prom));
}

//  Writes a page using every feature, for an outside parser to check
//  (tests/ci/metrics_format.sh).
static int
s_dump (const char *path)
{
    prom_t *prom = prom_new ();
    prom_family (prom, "drover_jobs_submitted_total", PROM_COUNTER, "Jobs accepted, by queue.\nSecond line \\ here.");
    prom_sample (prom, "drover_jobs_submitted_total", 1234, "queue", "upper", NULL);
    prom_sample (prom, "drover_jobs_submitted_total", 9007199254740991.0, "queue", "a\\b\"c\nd", NULL);
    prom_sample (prom, "drover_jobs_submitted_total", 0, "queue", "bad\xFFutf8", NULL);
    prom_family (prom, "drover_workers", PROM_GAUGE, "Workers connected.");
    prom_sample (prom, "drover_workers", 3, NULL);
    prom_family (prom, "drover_ratio", PROM_GAUGE, "Odd values.");
    prom_sample (prom, "drover_ratio", 1.0 / 3.0, "kind", "third", NULL);
    prom_sample (prom, "drover_ratio", NAN, "kind", "nan", NULL);
    prom_sample (prom, "drover_ratio", INFINITY, "kind", "inf", NULL);
    prom_sample (prom, "drover_ratio", -1e-300, "kind", "tiny", NULL);
    prom_histogram_t h;
    prom_histogram_init_job (&h);
    for (int i = 0; i < 1000; i++)
        prom_histogram_observe (&h, i * 0.7);
    prom_family (prom, "drover_job_run_seconds", PROM_HISTOGRAM, "Run time.");
    prom_histogram (prom, "drover_job_run_seconds", &h, "queue", "upper", NULL);
    prom_histogram_init_fsync (&h);
    prom_histogram_observe (&h, 0.0003);
    prom_family (prom, "drover_journal_fsync_seconds", PROM_HISTOGRAM, "fsync latency.");
    prom_histogram (prom, "drover_journal_fsync_seconds", &h, NULL);
    FILE *file = fopen (path, "w");
    if (!file || fwrite (prom_data (prom), 1, prom_size (prom), file) != prom_size (prom)) {
        perror (path);
        return 1;
    }
    fclose (file);
    prom_destroy (&prom);
    return 0;
}

int
main (int argc, char *argv [])
{
    if (argc == 3 && strcmp (argv [1], "--dump") == 0)
        return s_dump (argv [2]);
    prom_t *prom = prom_new ();
    CHECK (prom, "prom_new");
    if (!prom)
        return 1;
    s_test_page (prom);
    s_test_values (prom);
    s_test_escaping (prom);
    s_test_histogram (prom);
    s_test_growth (prom);
    prom_destroy (&prom);
    CHECK (prom == NULL, "destroy clears the pointer");
    prom_destroy (&prom);
    return CHECKS_RESULT ();
}
