/*  conf.h - settings from flags, environment and a config file (internal).

    droverd and drover-worker declare each of their settings once, in a
    table of drv_conf_option_t, and this module fills the settings from
    three sources, highest precedence first:

        1. the command line      --max-payload 1048576, --max-payload=1048576
        2. the environment       DROVER_MAX_PAYLOAD=1048576
        3. a config file         max-payload = 1048576
        4. the option's default  (the table's `value`)

    The file is named by --config FILE or DROVER_CONFIG; it holds lines
    `name = value`, `#` comments and blank lines. Names are the long flags
    without their dashes; switches take true or false. The environment
    variable of a setting is DROVER_ and its name upper-cased with '-' as
    '_', unless the table names another.

    Every value read is checked, even one that a higher source overrides:
    a bad line in the file is an error whatever the command line says. An
    error is one line naming where the value came from (the flag, the
    variable, or FILE:LINE); the programs exit 2 with it.

        drv_conf_option_t options [] = {
            { .name = "heartbeat", .type = DRV_CONF_U32, .target = &heartbeat,
              .value = "1000", .min = 10, .max = 600000, .arg = "MS",
              .help = "heartbeat interval" },
            ...
        };
        drv_conf_t *conf = drv_conf_new ("droverd", options, count);
        if (drv_conf_load (conf, argc, argv, why, sizeof why))
            ...exit 2
        drv_conf_destroy (&conf);    //  at exit: strings set point into it
*/
#ifndef DRV_CONF_H_INCLUDED
#define DRV_CONF_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    DRV_CONF_STRING,        //  target const char **: any text (check may refuse or rewrite it)
    DRV_CONF_U32,           //  target uint32_t *: whole number in [min, max]
    DRV_CONF_INT,           //  target int *: whole number in [min, max]
    DRV_CONF_BOOL,          //  target bool *: a switch on the command line, true|false elsewhere
    DRV_CONF_CHOICE,        //  target int *: index of the value in choices
    DRV_CONF_LIST,          //  target drv_conf_list_t *: comma-separated; flags repeat
    DRV_CONF_ALIAS          //  command line only: a switch that sets `alias` to `value`
} drv_conf_type_t;

//  Where a setting's value came from, lowest precedence first.
typedef enum {
    DRV_CONF_FROM_DEFAULT = 0,
    DRV_CONF_FROM_FILE,
    DRV_CONF_FROM_ENV,
    DRV_CONF_FROM_FLAG
} drv_conf_source_t;

//  Option flags
#define DRV_CONF_FLAG_ONLY   1u     //  command line only: no variable, not in files, not printed
#define DRV_CONF_NO_FILE     2u     //  flag and variable, but not in files and not printed

//  The value of a DRV_CONF_LIST option. Items point into argv, environ or
//  the drv_conf_t; the array belongs to the drv_conf_t.
typedef struct {
    const char **items;         //  values in order
    size_t count;               //  entries in items
} drv_conf_list_t;

//  Checks a string value and may rewrite it: returns 0 and sets *out to a
//  new heap string (the conf frees it) or leaves it NULL to keep text as
//  is; or returns -1 with the reason in why ("wants HOST:PORT").
typedef int (drv_conf_check_fn) (const char *text, char **out, char *why, size_t why_size);

typedef struct {
    const char *name;           //  long flag without dashes, and the config-file name
    char letter;                //  short flag (-q), or 0
    drv_conf_type_t type;       //  how the value is read and stored
    void *target;               //  where it is stored (see the types)
    const char *value;          //  default as text, NULL = unset; ALIAS: the value it sets
    const char *arg;            //  placeholder in the usage text ("MS"); NULL for switches
    const char *help;           //  usage text; may hold '\n' for more lines
    int64_t min, max;           //  U32, INT: accepted range
    const char *word;           //  U32, INT: a word also accepted ("auto"), or NULL
    int64_t word_value;         //  the number it stands for
    const char *const *choices; //  CHOICE: accepted words, NULL-terminated
    const char *env;            //  variable; NULL = DROVER_<NAME>; "" = none
    const char *alias;          //  ALIAS: name of the option it sets
    drv_conf_check_fn *check;   //  STRING: validation, or NULL
    unsigned flags;             //  DRV_CONF_FLAG_ONLY, DRV_CONF_NO_FILE
} drv_conf_option_t;

typedef struct _drv_conf_t drv_conf_t;

//  A loader for the given table (not copied: it must outlive the conf).
//  program prefixes nothing; it names the program in the usage text.
//  Returns NULL when out of memory.
drv_conf_t *drv_conf_new (const char *program, const drv_conf_option_t *options, size_t count);

//  Frees the conf and the strings it made (file values, rewritten values,
//  lists): call it once the targets are no longer used. Harmless on NULL.
void drv_conf_destroy (drv_conf_t **self_p);

//  Reads argv (argv [0] is the program), then the environment, then the
//  config file named by the "config" option if the table has one, checks
//  every value, and stores the winner of each setting in its target
//  (defaults for the rest). Returns 0, or -1 with a one-line reason in why;
//  targets are then partly set. Arguments that are not options are errors.
int drv_conf_load (drv_conf_t *self, int argc, char **argv, char *why, size_t why_size);

//  Where the named option's value came from after drv_conf_load.
drv_conf_source_t drv_conf_source (drv_conf_t *self, const char *name);

//  Describes where the named option's value came from: "--exec",
//  "DROVER_EXEC", "FILE:LINE" or "default". Valid until the conf is destroyed.
const char *drv_conf_origin (drv_conf_t *self, const char *name);

//  Forgets the named option's value after drv_conf_load, as if nothing had
//  set it and it had no default: its target gets NULL, 0 or false, and
//  drv_conf_print shows it unset. For settings that exclude each other.
void drv_conf_clear (drv_conf_t *self, const char *name);

//  Prints every setting that a file may hold as `name = value`, one per
//  line, in table order: valid config-file syntax. Unset settings are
//  printed commented out.
void drv_conf_print (drv_conf_t *self, FILE *out);

//  Prints the options part of a usage text: flag, variable, default, help.
void drv_conf_usage (drv_conf_t *self, FILE *out);

#endif
