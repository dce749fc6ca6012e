/*  prom.h - Prometheus text exposition (format 0.0.4) and histograms.

    A prom_t is a growing text buffer that metrics are written into, family
    by family, each time /metrics is scraped:

        prom_reset (prom);
        prom_family (prom, "drover_jobs_submitted_total", PROM_COUNTER,
                     "Jobs accepted by the broker.");
        prom_sample (prom, "drover_jobs_submitted_total", 1234, "queue", "upper", NULL);
        prom_family (prom, "drover_job_wait_seconds", PROM_HISTOGRAM,
                     "Time from ready to dispatched.");
        prom_histogram (prom, "drover_job_wait_seconds", &wait, "queue", "upper", NULL);
        //  prom_data (prom), prom_size (prom): the page

    Label values are escaped (backslash, double quote, newline) and bytes
    that are not valid UTF-8 are replaced by U+FFFD, so any queue name makes
    a valid page. Metric and label names come from the code, not from
    peers: they are asserted, not escaped.

    A prom_histogram_t has fixed buckets stored in the struct: observing a
    value is a short scan and three additions, with no allocation, and the
    struct can sit in any other (a queue, the journal). The observe and
    init functions are inline so a module can keep a histogram without
    linking this file.

    Not thread-safe: the broker actor owns its prom_t and histograms.
*/
#ifndef BROKER_PROM_H_INCLUDED
#define BROKER_PROM_H_INCLUDED

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct _prom_t prom_t;

typedef enum {
    PROM_COUNTER,
    PROM_GAUGE,
    PROM_HISTOGRAM,
    PROM_UNTYPED
} prom_type_t;

//  The content type of the page, for the HTTP response.
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

//  Creates an empty buffer. Returns NULL when out of memory.
prom_t *prom_new (void);

//  Frees the buffer; sets *self_p to NULL; harmless on NULL.
void prom_destroy (prom_t **self_p);

//  Empties the buffer for a new page, keeping its memory.
void prom_reset (prom_t *self);

//  The page so far, NUL-terminated (never NULL), and its length. Valid
//  until the next write or reset.
const char *prom_data (prom_t *self);
size_t prom_size (prom_t *self);

//  True if memory ran out since the last reset: the page is then cut
//  short and should not be served (answer 500 instead).
bool prom_failed (prom_t *self);

//  Writes a family's "# HELP" (help escaped) and "# TYPE" lines. Samples
//  of the family follow it.
void prom_family (prom_t *self, const char *name, prom_type_t type, const char *help);

//  Writes one sample: name, then label name/value pairs ending with NULL
//  (no pairs: just NULL), with value. Integers up to 2^53 print exactly;
//  NaN and infinities print as Prometheus spells them.
void prom_sample (prom_t *self, const char *name, double value, ...)
    __attribute__ ((sentinel));

//  The same with the labels in an array of 2 x pairs strings (name,
//  value, name, value...); labels may be NULL when pairs is 0.
void prom_sample_labels (prom_t *self, const char *name, const char *const *labels,
                         size_t pairs, double value);


//  Histograms -----------------------------------------------------------------

#define PROM_BUCKETS_MAX 24             //  finite upper bounds per histogram

typedef struct {
    double bounds [PROM_BUCKETS_MAX];       //  finite upper bounds, ascending
    uint64_t counts [PROM_BUCKETS_MAX + 1]; //  per bucket, not cumulative; last is +Inf
    size_t bound_count;                     //  bounds in use
    double sum;                             //  sum of observed values
    uint64_t count;                         //  values observed
} prom_histogram_t;

//  Starts an empty histogram with count ascending finite bounds (at most
//  PROM_BUCKETS_MAX; +Inf is implied).
static inline void
prom_histogram_init (prom_histogram_t *self, const double *bounds, size_t count)
{
    assert (self);
    assert (count <= PROM_BUCKETS_MAX);
    memset (self, 0, sizeof *self);
    for (size_t i = 0; i < count; i++) {
        assert (i == 0 || bounds [i] > bounds [i - 1]);
        self->bounds [i] = bounds [i];
    }
    self->bound_count = count;
}

//  Default buckets for job wait and run times, in seconds: 1 ms .. 10 min.
static inline void
prom_histogram_init_job (prom_histogram_t *self)
{
    const double bounds [] = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1, 2.5, 5, 10, 30, 60, 120, 300, 600
    };
    prom_histogram_init (self, bounds, sizeof bounds / sizeof bounds [0]);
}

//  Default buckets for fsync latency, in seconds: 50 us .. 1 s.
static inline void
prom_histogram_init_fsync (prom_histogram_t *self)
{
    const double bounds [] = {
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1
    };
    prom_histogram_init (self, bounds, sizeof bounds / sizeof bounds [0]);
}

//  Counts value in the first bucket whose bound is >= value (le means
//  "less or equal"), or in +Inf. A NaN is ignored: it would poison the sum.
static inline void
prom_histogram_observe (prom_histogram_t *self, double value)
{
    if (value != value)
        return;
    size_t i = 0;
    while (i < self->bound_count && value > self->bounds [i])
        i++;
    self->counts [i]++;
    self->sum += value;
    self->count++;
}

//  Writes a histogram's samples (after its prom_family with PROM_HISTOGRAM):
//  name_bucket{...,le="B"} with cumulative counts, le="+Inf", name_sum and
//  name_count; labels as for prom_sample, ending with NULL.
void prom_histogram (prom_t *self, const char *name, const prom_histogram_t *histogram, ...)
    __attribute__ ((sentinel));

//  The same with labels in an array, as prom_sample_labels.
void prom_histogram_labels (prom_t *self, const char *name, const prom_histogram_t *histogram,
                            const char *const *labels, size_t pairs);

#endif
