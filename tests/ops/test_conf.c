/*  test_conf.c - the settings loader (sdk/src/conf.c) on its own: argv
    forms, environment, file, precedence, lists, aliases, errors naming
    their source, printing, and clearing.
*/
#define _GNU_SOURCE
#include "conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int s_failures = 0;

#define CHECK(cond) do { \
    if (!(cond)) { \
        fprintf (stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        s_failures++; \
    } \
} while (0)

#define CHECK_STR(actual, expected) do { \
    const char *a_ = (actual), *e_ = (expected); \
    if (!a_ || strcmp (a_, e_)) { \
        fprintf (stderr, "%s:%d: expected '%s', got '%s'\n", __FILE__, __LINE__, e_, \
                 a_? a_: "(null)"); \
        s_failures++; \
    } \
} while (0)

#define CHECK_HAS(text, part) do { \
    if (!strstr ((text), (part))) { \
        fprintf (stderr, "%s:%d: '%s' lacks '%s'\n", __FILE__, __LINE__, (text), (part)); \
        s_failures++; \
    } \
} while (0)

static const char *s_colours [] = {"red", "green", "blue", NULL};

//  The settings of a made-up program, and its table.
typedef struct {
    const char *config;
    const char *endpoint;
    uint32_t size;
    int workers;
    bool verbose;
    int colour;
    drv_conf_list_t tags;
    const char *mode;
    bool help;
} settings_t;

static int
s_check_mode (const char *text, char **out, char *why, size_t why_size)
{
    if (strcmp (text, "fast") == 0) {
        *out = strdup ("FAST");
        return 0;
    }
    if (strcmp (text, "FAST") == 0 || strncmp (text, "slow", 4) == 0)
        return 0;
    snprintf (why, why_size, "wants fast or slow");
    return -1;
}

static drv_conf_option_t s_table [11];

static void
s_make_table (settings_t *settings)
{
    memset (settings, 0, sizeof *settings);
    drv_conf_option_t table [] = {
        { .name = "config", .type = DRV_CONF_STRING, .target = &settings->config,
          .flags = DRV_CONF_NO_FILE, .arg = "FILE", .help = "config file" },
        { .name = "endpoint", .type = DRV_CONF_STRING, .target = &settings->endpoint,
          .value = "tcp://*:1", .env = "TEST_CONF_EP", .help = "where" },
        { .name = "size", .type = DRV_CONF_U32, .target = &settings->size, .value = "10",
          .min = 1, .max = 100, .help = "how big" },
        { .name = "workers", .type = DRV_CONF_INT, .target = &settings->workers,
          .value = "auto", .min = 0, .max = 8, .word = "auto", .word_value = -1, .help = "n" },
        { .name = "verbose", .letter = 'v', .type = DRV_CONF_BOOL, .target = &settings->verbose },
        { .name = "colour", .type = DRV_CONF_CHOICE, .target = &settings->colour,
          .value = "green", .choices = s_colours },
        { .name = "tag", .letter = 't', .type = DRV_CONF_LIST, .target = &settings->tags },
        { .name = "mode", .type = DRV_CONF_STRING, .target = &settings->mode,
          .check = s_check_mode },
        { .name = "quiet", .type = DRV_CONF_ALIAS, .alias = "verbose", .value = "false" },
        { .name = "help", .letter = 'h', .type = DRV_CONF_BOOL, .target = &settings->help,
          .flags = DRV_CONF_FLAG_ONLY },
    };
    memset (s_table, 0, sizeof s_table);
    memcpy (s_table, table, sizeof table);
}

//  Loads argv (NULL-terminated) into settings; returns what
//  drv_conf_load returned, the conf in *conf_p and the reason in why.
static int
s_load (settings_t *settings, drv_conf_t **conf_p, char *why, const char *first, ...)
{
    char *argv [32] = {"prog"};
    int argc = 1;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg && argc < 31; arg = va_arg (args, const char *))
        argv [argc++] = (char *) arg;
    va_end (args);
    s_make_table (settings);
    *conf_p = drv_conf_new ("prog", s_table, 10);
    return drv_conf_load (*conf_p, argc, argv, why, 256);
}

static char *
s_write_file (const char *text)
{
    char *path = NULL;
    if (asprintf (&path, "%s/drover-test-conf.XXXXXX", getenv ("TMPDIR")? getenv ("TMPDIR"): "/tmp") < 0)
        abort ();
    int fd = mkstemp (path);
    if (fd < 0 || write (fd, text, strlen (text)) != (ssize_t) strlen (text))
        abort ();
    close (fd);
    return path;
}

static char *
s_printed (drv_conf_t *conf)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    drv_conf_print (conf, out);
    fclose (out);
    return text;
}

int
main (void)
{
    settings_t s;
    drv_conf_t *conf;
    char why [256];
    unsetenv ("TEST_CONF_EP");
    unsetenv ("DROVER_SIZE");
    unsetenv ("DROVER_TAG");
    unsetenv ("DROVER_CONFIG");

    //  Defaults
    CHECK (s_load (&s, &conf, why, NULL) == 0);
    CHECK_STR (s.endpoint, "tcp://*:1");
    CHECK (s.size == 10 && s.workers == -1 && !s.verbose && s.colour == 1);
    CHECK (s.tags.count == 0 && s.mode == NULL);
    CHECK (drv_conf_source (conf, "size") == DRV_CONF_FROM_DEFAULT);
    char *printed = s_printed (conf);
    CHECK_HAS (printed, "endpoint = tcp://*:1\n");
    CHECK_HAS (printed, "workers = auto\n");
    CHECK_HAS (printed, "verbose = false\n");
    CHECK_HAS (printed, "# tag = (not set)\n");
    CHECK (!strstr (printed, "help") && !strstr (printed, "config") && !strstr (printed, "quiet"));
    free (printed);
    drv_conf_destroy (&conf);
    CHECK (conf == NULL);
    drv_conf_destroy (&conf);

    //  Flag forms: --name value, --name=value, -x value, -xvalue; lists
    //  grow; the last scalar wins; aliases; checked strings rewritten.
    CHECK (s_load (&s, &conf, why, "--size", "20", "--size=30", "-v", "-t", "a", "-tb",
                   "--tag", "c, d", "--workers", "3", "--colour=blue", "--mode", "fast",
                   "--quiet", NULL) == 0);
    CHECK (s.size == 30 && s.workers == 3 && s.colour == 2 && !s.verbose);
    CHECK (s.tags.count == 4);
    if (s.tags.count == 4) {
        CHECK_STR (s.tags.items [0], "a");
        CHECK_STR (s.tags.items [1], "b");
        CHECK_STR (s.tags.items [2], "c");
        CHECK_STR (s.tags.items [3], "d");
    }
    CHECK_STR (s.mode, "FAST");
    CHECK_STR (drv_conf_origin (conf, "size"), "--size");
    CHECK_STR (drv_conf_origin (conf, "verbose"), "--quiet");
    CHECK_STR (drv_conf_origin (conf, "tag"), "--tag");
    printed = s_printed (conf);
    CHECK_HAS (printed, "tag = a,b,c,d\n");
    CHECK_HAS (printed, "mode = FAST\n");
    free (printed);
    drv_conf_destroy (&conf);
    CHECK (s.tags.items == NULL && s.tags.count == 0);

    //  Precedence: file < environment < flag; a list from a higher source
    //  replaces a lower one's; lines of the file add up.
    char *path = s_write_file ("# comment\n\n  size = 40  \ntag = f1\ntag = f2,f3\n"
                               "colour = red\nendpoint = tcp://file:1\nverbose = true\n"
                               "mode = slow # not a comment\n");
    CHECK (s_load (&s, &conf, why, "--config", path, NULL) == 0);
    CHECK (s.size == 40 && s.colour == 0 && s.verbose && s.tags.count == 3);
    CHECK_STR (s.endpoint, "tcp://file:1");
    CHECK_STR (s.mode, "slow # not a comment");
    CHECK (drv_conf_source (conf, "size") == DRV_CONF_FROM_FILE);
    char origin [300];
    snprintf (origin, sizeof origin, "%s:3: size", path);
    CHECK_STR (drv_conf_origin (conf, "size"), origin);
    drv_conf_destroy (&conf);

    setenv ("DROVER_SIZE", "50", 1);
    setenv ("TEST_CONF_EP", "tcp://env:1", 1);
    setenv ("DROVER_TAG", "e1", 1);
    setenv ("DROVER_CONFIG", path, 1);
    CHECK (s_load (&s, &conf, why, NULL) == 0);
    CHECK (s.size == 50 && s.colour == 0);
    CHECK_STR (s.endpoint, "tcp://env:1");
    CHECK (s.tags.count == 1 && strcmp (s.tags.items [0], "e1") == 0);
    CHECK (drv_conf_source (conf, "endpoint") == DRV_CONF_FROM_ENV);
    CHECK_STR (drv_conf_origin (conf, "endpoint"), "TEST_CONF_EP");
    drv_conf_destroy (&conf);

    CHECK (s_load (&s, &conf, why, "--size", "60", "-t", "x", "--endpoint", "tcp://flag:1",
                   NULL) == 0);
    CHECK (s.size == 60 && s.tags.count == 1 && strcmp (s.tags.items [0], "x") == 0);
    CHECK_STR (s.endpoint, "tcp://flag:1");
    CHECK (drv_conf_source (conf, "size") == DRV_CONF_FROM_FLAG);
    //  Clearing forgets a value: target and print
    drv_conf_clear (conf, "endpoint");
    CHECK (s.endpoint == NULL);
    printed = s_printed (conf);
    CHECK_HAS (printed, "# endpoint = (not set)\n");
    free (printed);
    drv_conf_destroy (&conf);
    unsetenv ("DROVER_SIZE");
    unsetenv ("TEST_CONF_EP");
    unsetenv ("DROVER_TAG");
    unsetenv ("DROVER_CONFIG");

    //  Errors name their source
    struct { const char *file; const char *flag; const char *value; const char *want; } cases [] = {
        { NULL, "--size", "0", "--size wants a whole number from 1 to 100, got '0'" },
        { NULL, "--size", "12x", "--size wants a whole number" },
        { NULL, "--size", "-5", "--size wants a whole number" },
        { NULL, "--size", "99999999999999999999", "--size wants" },
        { NULL, "--workers", "most", "--workers wants a whole number from 0 to 8 or auto" },
        { NULL, "--colour", "pink", "--colour wants red, green or blue, got 'pink'" },
        { NULL, "--mode", "medium", "--mode wants fast or slow, got 'medium'" },
        { NULL, "--verbose=maybe", NULL, "--verbose wants true or false" },
        { NULL, "--quiet=1", NULL, "--quiet takes no value" },
        { NULL, "--nope", NULL, "unknown option '--nope'" },
        { NULL, "--nope=3", NULL, "unknown option '--nope'" },
        { NULL, "-z", NULL, "unknown option '-z'" },
        { NULL, "--size", NULL, "--size needs a value" },
        { NULL, "word", NULL, "unexpected argument 'word'" },
        { NULL, "--", "word", "unexpected argument 'word'" },
        { "size = 1\nsize = 2\n", NULL, NULL, ":2: size is already set on line 1" },
        { "verbose\n", NULL, NULL, ":1: expected 'name = value'" },
        { "help = true\n", NULL, NULL, ":1: unknown setting 'help'" },
        { "config = x\n", NULL, NULL, ":1: unknown setting 'config'" },
        { "quiet = true\n", NULL, NULL, ":1: unknown setting 'quiet'" },
        { "\nsize =\n", NULL, NULL, ":2: size needs a value" },
        { "colour = pink\n", NULL, NULL, ":1: colour wants red, green or blue" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char *file = cases [i].file? s_write_file (cases [i].file): NULL;
        int rc = file? s_load (&s, &conf, why, "--config", file, NULL)
                     : s_load (&s, &conf, why, cases [i].flag, cases [i].value, NULL);
        CHECK (rc == -1);
        CHECK_HAS (why, cases [i].want);
        if (file) {
            CHECK_HAS (why, file);
            unlink (file);
            free (file);
        }
        drv_conf_destroy (&conf);
    }
    setenv ("DROVER_SIZE", "101", 1);
    CHECK (s_load (&s, &conf, why, "--size", "5", NULL) == -1);
    CHECK_HAS (why, "DROVER_SIZE wants a whole number from 1 to 100, got '101'");
    drv_conf_destroy (&conf);
    unsetenv ("DROVER_SIZE");
    CHECK (s_load (&s, &conf, why, "--config", "/nonexistent/drover.conf", NULL) == -1);
    CHECK_HAS (why, "cannot read config file /nonexistent/drover.conf (from --config)");
    drv_conf_destroy (&conf);

    unlink (path);
    free (path);
    if (s_failures)
        fprintf (stderr, "test_conf: %d failure(s)\n", s_failures);
    else
        printf ("test_conf: ok\n");
    return s_failures? 1: 0;
}
