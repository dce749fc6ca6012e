/*  prom.c - Prometheus text exposition (format 0.0.4) and histograms.

    The page is built in one buffer that keeps its memory across resets,
    so a steady scrape rate allocates nothing once the page has reached
    its size. On allocation failure the buffer stops growing and remembers
    it; the caller checks prom_failed() once at the end.
*/
#include "prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define S_MIN_CAP       4096            //  first allocation
#define S_MAX_PAIRS     16              //  label pairs through the variadic calls

struct _prom_t {
    char *data;                         //  the page, NUL-terminated
    size_t size;                        //  bytes in use, without the NUL
    size_t cap;                         //  bytes allocated
    bool failed;                        //  an append ran out of memory
};

prom_t *
prom_new (void)
{
    prom_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->data = malloc (S_MIN_CAP);
    if (!self->data) {
        free (self);
        return NULL;
    }
    self->cap = S_MIN_CAP;
    self->data [0] = '\0';
    return self;
}

void
prom_destroy (prom_t **self_p)
{
    assert (self_p);
    prom_t *self = *self_p;
    if (!self)
        return;
    free (self->data);
    free (self);
    *self_p = NULL;
}

void
prom_reset (prom_t *self)
{
    assert (self);
    self->size = 0;
    self->data [0] = '\0';
    self->failed = false;
}

const char *
prom_data (prom_t *self)
{
    assert (self);
    return self->data;
}

size_t
prom_size (prom_t *self)
{
    assert (self);
    return self->size;
}

bool
prom_failed (prom_t *self)
{
    assert (self);
    return self->failed;
}


//  Writing ------------------------------------------------------------------

//  Makes room for extra more bytes plus the NUL. Returns false (and marks
//  the page failed) when memory runs out.
static bool
s_room (prom_t *self, size_t extra)
{
    if (self->failed)
        return false;
    if (self->cap - self->size > extra)
        return true;
    size_t cap = self->cap;
    while (cap - self->size <= extra) {
        if (cap > SIZE_MAX / 2) {
            self->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *data = realloc (self->data, cap);
    if (!data) {
        self->failed = true;
        return false;
    }
    self->data = data;
    self->cap = cap;
    return true;
}

static void
s_put (prom_t *self, const char *text, size_t size)
{
    if (!s_room (self, size))
        return;
    memcpy (self->data + self->size, text, size);
    self->size += size;
    self->data [self->size] = '\0';
}

static void
s_puts (prom_t *self, const char *text)
{
    s_put (self, text, strlen (text));
}

static void
s_putc (prom_t *self, char c)
{
    s_put (self, &c, 1);
}

//  A metric or label name: [a-zA-Z_:][a-zA-Z0-9_:]* (labels take no ':',
//  but nothing here writes one). These come from the code, so a bad one is
//  a programming error (checked by assert only, hence "unused" in release).
static bool __attribute__ ((unused))
s_name_ok (const char *name)
{
    if (!name || !*name || (*name >= '0' && *name <= '9'))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
           || (*p >= '0' && *p <= '9') || *p == '_' || *p == ':'))
            return false;
    return true;
}

//  Length of the valid UTF-8 sequence at p (at most left bytes), or 0.
static size_t
s_utf8_len (const unsigned char *p, size_t left)
{
    size_t len;
    uint32_t cp;
    if (p [0] < 0x80)
        return 1;
    if ((p [0] & 0xE0) == 0xC0) {
        len = 2;
        cp = p [0] & 0x1F;
    }
    else
    if ((p [0] & 0xF0) == 0xE0) {
        len = 3;
        cp = p [0] & 0x0F;
    }
    else
    if ((p [0] & 0xF8) == 0xF0) {
        len = 4;
        cp = p [0] & 0x07;
    }
    else
        return 0;
    if (len > left)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p [i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p [i] & 0x3F);
    }
    //  Overlong forms, surrogates and values past Unicode are invalid
    static const uint32_t least [5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least [len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

//  Writes text escaped: backslash and newline always, double quote when
//  quote is set (label values; HELP text leaves quotes alone). Invalid
//  UTF-8 becomes U+FFFD, one per bad byte.
static void
s_escaped (prom_t *self, const char *text, bool quote)
{
    const unsigned char *p = (const unsigned char *) text;
    size_t left = strlen (text);
    while (left > 0) {
        //  Copy the longest run that needs nothing done
        size_t run = 0;
        while (run < left && p [run] >= 0x20 && p [run] < 0x80 && p [run] != '\\'
               && !(quote && p [run] == '"'))
            run++;
        if (run) {
            s_put (self, (const char *) p, run);
            p += run;
            left -= run;
            continue;
        }
        if (*p == '\\')
            s_put (self, "\\\\", 2);
        else
        if (*p == '"')
            s_put (self, "\\\"", 2);
        else
        if (*p == '\n')
            s_put (self, "\\n", 2);
        else {
            size_t len = s_utf8_len (p, left);
            if (len == 0) {
                s_put (self, "\xEF\xBF\xBD", 3);
                len = 1;
            }
            else
                s_put (self, (const char *) p, len);
            p += len;
            left -= len;
            continue;
        }
        p++;
        left--;
    }
}

//  Formats a value the way Prometheus reads it: integers plainly, other
//  numbers in the shortest form that reads back exactly.
static void
s_value (char *text, size_t size, double value)
{
    if (isnan (value))
        snprintf (text, size, "NaN");
    else
    if (isinf (value))
        snprintf (text, size, value > 0? "+Inf": "-Inf");
    else
    if (value == floor (value) && fabs (value) < 9007199254740992.0)
        snprintf (text, size, "%.0f", value);
    else {
        snprintf (text, size, "%.15g", value);
        if (strtod (text, NULL) != value)
            snprintf (text, size, "%.17g", value);
    }
}

//  name{k="v",...,extra_name="extra_value"} value\n
static void
s_line (prom_t *self, const char *name, const char *suffix, const char *const *labels,
        size_t pairs, const char *extra_name, const char *extra_value, const char *value)
{
    s_puts (self, name);
    if (suffix)
        s_puts (self, suffix);
    if (pairs > 0 || extra_name) {
        s_putc (self, '{');
        for (size_t i = 0; i < pairs; i++) {
            assert (s_name_ok (labels [2 * i]));
            if (i > 0)
                s_putc (self, ',');
            s_puts (self, labels [2 * i]);
            s_put (self, "=\"", 2);
            s_escaped (self, labels [2 * i + 1]? labels [2 * i + 1]: "", true);
            s_putc (self, '"');
        }
        if (extra_name) {
            if (pairs > 0)
                s_putc (self, ',');
            s_puts (self, extra_name);
            s_put (self, "=\"", 2);
            s_puts (self, extra_value);
            s_putc (self, '"');
        }
        s_putc (self, '}');
    }
    s_putc (self, ' ');
    s_puts (self, value);
    s_putc (self, '\n');
}

//  Collects NULL-terminated name/value pairs from args into labels.
static size_t
s_collect (va_list args, const char **labels)
{
    size_t pairs = 0;
    const char *label;
    while ((label = va_arg (args, const char *))) {
        assert (pairs < S_MAX_PAIRS);
        labels [2 * pairs] = label;
        labels [2 * pairs + 1] = va_arg (args, const char *);
        pairs++;
    }
    return pairs;
}

void
prom_family (prom_t *self, const char *name, prom_type_t type, const char *help)
{
    assert (self);
    assert (s_name_ok (name));
    static const char *types [] = {"counter", "gauge", "histogram", "untyped"};
    assert ((size_t) type < sizeof types / sizeof types [0]);
    s_puts (self, "# HELP ");
    s_puts (self, name);
    s_putc (self, ' ');
    s_escaped (self, help? help: "", false);
    s_puts (self, "\n# TYPE ");
    s_puts (self, name);
    s_putc (self, ' ');
    s_puts (self, types [type]);
    s_putc (self, '\n');
}

void
prom_sample_labels (prom_t *self, const char *name, const char *const *labels,
                    size_t pairs, double value)
{
    assert (self);
    assert (s_name_ok (name));
    assert (labels || pairs == 0);
    char text [32];
    s_value (text, sizeof text, value);
    s_line (self, name, NULL, labels, pairs, NULL, NULL, text);
}

void
prom_sample (prom_t *self, const char *name, double value, ...)
{
    const char *labels [2 * S_MAX_PAIRS];
    va_list args;
    va_start (args, value);
    size_t pairs = s_collect (args, labels);
    va_end (args);
    prom_sample_labels (self, name, labels, pairs, value);
}

void
prom_histogram_labels (prom_t *self, const char *name, const prom_histogram_t *histogram,
                       const char *const *labels, size_t pairs)
{
    assert (self);
    assert (histogram);
    assert (s_name_ok (name));
    assert (labels || pairs == 0);
    char le [32], text [32];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= histogram->bound_count; i++) {
        cumulative += histogram->counts [i];
        if (i < histogram->bound_count)
            s_value (le, sizeof le, histogram->bounds [i]);
        else
            snprintf (le, sizeof le, "+Inf");
        snprintf (text, sizeof text, "%llu", (unsigned long long) cumulative);
        s_line (self, name, "_bucket", labels, pairs, "le", le, text);
    }
    s_value (text, sizeof text, histogram->sum);
    s_line (self, name, "_sum", labels, pairs, NULL, NULL, text);
    snprintf (text, sizeof text, "%llu", (unsigned long long) histogram->count);
    s_line (self, name, "_count", labels, pairs, NULL, NULL, text);
}

void
prom_histogram (prom_t *self, const char *name, const prom_histogram_t *histogram, ...)
{
    const char *labels [2 * S_MAX_PAIRS];
    va_list args;
    va_start (args, histogram);
    size_t pairs = s_collect (args, labels);
    va_end (args);
    prom_histogram_labels (self, name, histogram, labels, pairs);
}
