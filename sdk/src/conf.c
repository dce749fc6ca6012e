/*  conf.c - settings from flags, environment and a config file (internal).

    One pass per source, highest first: the command line, the environment,
    the file. A value is checked as soon as it is read and recorded only
    when no higher source has set the setting already; at the end each
    setting's recorded text (or its default) is stored in its target.
*/
#define _GNU_SOURCE
#include "conf.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  What has been recorded for one option.
typedef struct {
    drv_conf_source_t source;   //  where the recorded value came from
    const char *text;           //  recorded text (normalised), NULL = none yet
    const char *origin;         //  "--name", "DROVER_NAME", "FILE:LINE" or "default"
    size_t file_line;           //  line in the config file that set it, 0 = none
    const char **items;         //  LIST: items recorded from the winning source
    size_t item_count;          //  entries in items
    size_t item_cap;            //  entries allocated
} s_state_t;

struct _drv_conf_t {
    const char *program;                //  program name, for the usage text
    const drv_conf_option_t *options;   //  the table (borrowed)
    size_t count;                       //  entries in options
    s_state_t *state;                   //  one per option
    char **owned;                       //  strings we allocated, freed at the end
    size_t owned_count;                 //  entries in owned
    size_t owned_cap;                   //  entries allocated
};

drv_conf_t *
drv_conf_new (const char *program, const drv_conf_option_t *options, size_t count)
{
    drv_conf_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->program = program;
    self->options = options;
    self->count = count;
    self->state = calloc (count? count: 1, sizeof (s_state_t));
    if (!self->state) {
        free (self);
        return NULL;
    }
    for (size_t i = 0; i < count; i++)
        self->state [i].origin = "default";
    return self;
}

void
drv_conf_destroy (drv_conf_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    drv_conf_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free (self->state [i].items);
        if (self->options [i].type == DRV_CONF_LIST && self->options [i].target) {
            drv_conf_list_t *list = (drv_conf_list_t *) self->options [i].target;
            list->items = NULL;
            list->count = 0;
        }
    }
    for (size_t i = 0; i < self->owned_count; i++)
        free (self->owned [i]);
    free (self->owned);
    free (self->state);
    free (self);
    *self_p = NULL;
}

//  Keeps a heap string until the conf is destroyed; frees it and returns
//  NULL if it cannot be kept.
static char *
s_own (drv_conf_t *self, char *text)
{
    if (!text)
        return NULL;
    if (drv_grow ((void **) &self->owned, &self->owned_cap, self->owned_count + 1,
                  sizeof (char *))) {
        free (text);
        return NULL;
    }
    self->owned [self->owned_count++] = text;
    return text;
}

//  A formatted string owned by the conf, or NULL when out of memory.
static char *
s_ownf (drv_conf_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static char *
s_ownf (drv_conf_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    va_end (args);
    return s_own (self, text);
}

static const drv_conf_option_t *
s_find (drv_conf_t *self, const char *name, size_t length)
{
    for (size_t i = 0; i < self->count; i++)
        if (strlen (self->options [i].name) == length
        &&  memcmp (self->options [i].name, name, length) == 0)
            return &self->options [i];
    return NULL;
}

static s_state_t *
s_state (drv_conf_t *self, const drv_conf_option_t *option)
{
    return &self->state [option - self->options];
}

//  The option's environment variable into buffer; "" when it has none.
static const char *
s_env_name (const drv_conf_option_t *option, char *buffer, size_t size)
{
    if (option->type == DRV_CONF_ALIAS || (option->flags & DRV_CONF_FLAG_ONLY))
        return "";
    if (option->env)
        return option->env;
    int length = snprintf (buffer, size, "DROVER_%s", option->name);
    for (int i = 7; i < length && (size_t) i < size; i++)
        buffer [i] = buffer [i] == '-'? '_': (char) toupper ((unsigned char) buffer [i]);
    return buffer;
}

//  Value parsing ------------------------------------------------------------

static int
s_parse_bool (const char *text, bool *value)
{
    static const char *yes [] = {"true", "yes", "on", "1"};
    static const char *no [] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp (text, yes [i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp (text, no [i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return -1;
}

//  Strict decimal (or the option's word) within the option's range.
static int
s_parse_number (const drv_conf_option_t *option, const char *text, int64_t *value)
{
    if (option->word && strcmp (text, option->word) == 0) {
        *value = option->word_value;
        return 0;
    }
    if (!*text || isspace ((unsigned char) *text))
        return -1;
    char *end;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || *end || parsed < option->min || parsed > option->max)
        return -1;
    *value = parsed;
    return 0;
}

static int
s_parse_choice (const drv_conf_option_t *option, const char *text)
{
    for (int i = 0; option->choices && option->choices [i]; i++)
        if (strcmp (option->choices [i], text) == 0)
            return i;
    return -1;
}

//  Writes what the option accepts ("wants ...") into why.
static void
s_wants (const drv_conf_option_t *option, char *why, size_t why_size)
{
    switch (option->type) {
        case DRV_CONF_U32:
        case DRV_CONF_INT:
            snprintf (why, why_size, "wants a whole number from %" PRId64 " to %" PRId64 "%s%s",
                      option->min, option->max, option->word? " or ": "",
                      option->word? option->word: "");
            break;
        case DRV_CONF_BOOL:
            snprintf (why, why_size, "wants true or false");
            break;
        case DRV_CONF_CHOICE: {
            size_t used = (size_t) snprintf (why, why_size, "wants ");
            for (int i = 0; option->choices [i] && used < why_size; i++)
                used += (size_t) snprintf (why + used, why_size - used, "%s%s",
                                           i == 0? "": option->choices [i + 1]? ", ": " or ",
                                           option->choices [i]);
            break;
        }
        default:
            snprintf (why, why_size, "wants a value");
            break;
    }
}

//  Checks text for option; for a string option with a check, *text_p may be
//  replaced by its normalised form (owned by the conf). origin names the
//  source in the error. Returns 0 or -1 with why set.
static int
s_check (drv_conf_t *self, const drv_conf_option_t *option, const char **text_p,
         const char *origin, char *why, size_t why_size)
{
    const char *text = *text_p;
    char wants [256] = "";
    bool bad = false;
    switch (option->type) {
        case DRV_CONF_STRING:
            if (option->check) {
                char *out = NULL;
                if (option->check (text, &out, wants, sizeof wants))
                    bad = true;
                else
                if (out) {
                    *text_p = s_own (self, out);
                    if (!*text_p) {
                        snprintf (why, why_size, "out of memory");
                        return -1;
                    }
                }
            }
            break;
        case DRV_CONF_LIST:
            if (!*text) {
                snprintf (wants, sizeof wants, "wants a value");
                bad = true;
            }
            break;
        case DRV_CONF_U32:
        case DRV_CONF_INT: {
            int64_t value;
            bad = s_parse_number (option, text, &value) != 0;
            break;
        }
        case DRV_CONF_BOOL: {
            bool value;
            bad = s_parse_bool (text, &value) != 0;
            break;
        }
        case DRV_CONF_CHOICE:
            bad = s_parse_choice (option, text) < 0;
            break;
        case DRV_CONF_ALIAS:
            break;
    }
    if (bad) {
        if (!*wants)
            s_wants (option, wants, sizeof wants);
        snprintf (why, why_size, "%s %s, got '%.100s'", origin, wants, text);
        return -1;
    }
    return 0;
}

//  Appends the comma-separated items of text to the option's list.
static int
s_list_add (drv_conf_t *self, s_state_t *state, const char *text)
{
    char *copy = s_own (self, strdup (text));
    if (!copy)
        return -1;
    char *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
        while (isspace ((unsigned char) *item))
            item++;
        char *end = item + strlen (item);
        while (end > item && isspace ((unsigned char) end [-1]))
            *--end = 0;
        if (!*item)
            continue;
        if (drv_grow ((void **) &state->items, &state->item_cap, state->item_count + 1,
                      sizeof (char *)))
            return -1;
        state->items [state->item_count++] = item;
    }
    return 0;
}

//  Records a checked value for option from source, unless a higher source
//  set it already. A list from the same source grows; from a higher one it
//  starts again. Returns 0 or -1 (out of memory).
static int
s_record (drv_conf_t *self, const drv_conf_option_t *option, const char *text,
          drv_conf_source_t source, const char *origin, size_t line)
{
    s_state_t *state = s_state (self, option);
    if (state->text && state->source > source)
        return 0;
    if (option->type == DRV_CONF_LIST) {
        if (!state->text || state->source < source)
            state->item_count = 0;
        if (s_list_add (self, state, text))
            return -1;
    }
    state->text = text;
    state->source = source;
    state->origin = origin;
    state->file_line = line;
    return 0;
}

//  The command line -----------------------------------------------------------

static int
s_load_argv (drv_conf_t *self, int argc, char **argv, char *why, size_t why_size)
{
    for (int index = 1; index < argc; index++) {
        const char *arg = argv [index];
        if (strcmp (arg, "--") == 0) {
            if (index + 1 < argc) {
                snprintf (why, why_size, "unexpected argument '%.100s'", argv [index + 1]);
                return -1;
            }
            break;
        }
        if (arg [0] != '-' || arg [1] == 0) {
            snprintf (why, why_size, "unexpected argument '%.100s'", arg);
            return -1;
        }
        const drv_conf_option_t *option = NULL;
        const char *value = NULL;       //  attached value (--name=value, -qvalue)
        if (arg [1] == '-') {
            const char *name = arg + 2;
            const char *equals = strchr (name, '=');
            size_t length = equals? (size_t) (equals - name): strlen (name);
            option = s_find (self, name, length);
            if (equals)
                value = equals + 1;
        }
        else {
            for (size_t i = 0; i < self->count && !option; i++)
                if (self->options [i].letter && self->options [i].letter == arg [1])
                    option = &self->options [i];
            if (option && arg [2])
                value = arg + 2;
        }
        if (!option) {
            const char *equals = strchr (arg, '=');
            snprintf (why, why_size, "unknown option '%.*s'",
                      (int) (equals && arg [1] == '-'? equals - arg: 100), arg);
            return -1;
        }
        char *origin = arg [1] == '-'? s_ownf (self, "--%s", option->name)
                                     : s_ownf (self, "-%c", option->letter);
        if (!origin) {
            snprintf (why, why_size, "out of memory");
            return -1;
        }
        bool is_switch = option->type == DRV_CONF_BOOL || option->type == DRV_CONF_ALIAS;
        if (option->type == DRV_CONF_ALIAS) {
            if (value) {
                snprintf (why, why_size, "%s takes no value", origin);
                return -1;
            }
            const drv_conf_option_t *target = s_find (self, option->alias, strlen (option->alias));
            if (!target) {
                snprintf (why, why_size, "%s: no option '%s'", origin, option->alias);
                return -1;
            }
            const char *text = option->value;
            if (s_check (self, target, &text, origin, why, why_size)
            ||  s_record (self, target, text, DRV_CONF_FROM_FLAG, origin, 0))
                return -1;
            continue;
        }
        if (!value) {
            if (is_switch)
                value = "true";
            else
            if (index + 1 < argc)
                value = argv [++index];
            else {
                snprintf (why, why_size, "%s needs a value", origin);
                return -1;
            }
        }
        if (s_check (self, option, &value, origin, why, why_size)
        ||  s_record (self, option, value, DRV_CONF_FROM_FLAG, origin, 0)) {
            if (!*why)
                snprintf (why, why_size, "out of memory");
            return -1;
        }
    }
    return 0;
}

//  The environment ------------------------------------------------------------

static int
s_load_env (drv_conf_t *self, char *why, size_t why_size)
{
    for (size_t i = 0; i < self->count; i++) {
        const drv_conf_option_t *option = &self->options [i];
        char buffer [128];
        const char *name = s_env_name (option, buffer, sizeof buffer);
        const char *value = *name? getenv (name): NULL;
        if (!value || !*value)
            continue;
        const char *origin = s_own (self, strdup (name));
        if (!origin) {
            snprintf (why, why_size, "out of memory");
            return -1;
        }
        if (s_check (self, option, &value, origin, why, why_size))
            return -1;
        if (s_record (self, option, value, DRV_CONF_FROM_ENV, origin, 0)) {
            snprintf (why, why_size, "out of memory");
            return -1;
        }
    }
    return 0;
}

//  The config file -------------------------------------------------------------

static char *
s_trim (char *text)
{
    while (isspace ((unsigned char) *text))
        text++;
    char *end = text + strlen (text);
    while (end > text && isspace ((unsigned char) end [-1]))
        *--end = 0;
    return text;
}

static int
s_load_file (drv_conf_t *self, const char *path, const char *named_by, char *why, size_t why_size)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (why, why_size, "cannot read config file %s (from %s): %s",
                  path, named_by, strerror (errno));
        return -1;
    }
    //  Lines that set each option in this file, to refuse a second one.
    size_t *seen = calloc (self->count? self->count: 1, sizeof (size_t));
    char *line = NULL;
    size_t line_cap = 0;
    size_t number = 0;
    int rc = 0;
    while (rc == 0) {
        errno = 0;
        ssize_t length = getline (&line, &line_cap, file);
        if (length < 0) {
            if (ferror (file) || errno) {
                snprintf (why, why_size, "cannot read config file %s (from %s): %s",
                          path, named_by, strerror (errno? errno: EIO));
                rc = -1;
            }
            break;
        }
        number++;
        if (!seen) {
            snprintf (why, why_size, "out of memory");
            rc = -1;
            break;
        }
        if (memchr (line, 0, (size_t) length)) {
            snprintf (why, why_size, "%s:%zu: not a text line", path, number);
            rc = -1;
            break;
        }
        char *text = s_trim (line);
        if (*text == 0 || *text == '#')
            continue;
        char *equals = strchr (text, '=');
        if (!equals) {
            snprintf (why, why_size, "%s:%zu: expected 'name = value', got '%.60s'",
                      path, number, text);
            rc = -1;
            break;
        }
        *equals = 0;
        char *name = s_trim (text);
        char *value = s_trim (equals + 1);
        const drv_conf_option_t *option = s_find (self, name, strlen (name));
        if (!option || option->type == DRV_CONF_ALIAS
        ||  (option->flags & (DRV_CONF_FLAG_ONLY | DRV_CONF_NO_FILE))) {
            snprintf (why, why_size, "%s:%zu: unknown setting '%.60s'", path, number, name);
            rc = -1;
            break;
        }
        size_t slot = (size_t) (option - self->options);
        if (seen [slot] && option->type != DRV_CONF_LIST) {
            snprintf (why, why_size, "%s:%zu: %s is already set on line %zu",
                      path, number, option->name, seen [slot]);
            rc = -1;
            break;
        }
        seen [slot] = number;
        const char *origin = s_ownf (self, "%s:%zu: %s", path, number, option->name);
        const char *kept = s_own (self, strdup (value));
        if (!origin || !kept) {
            snprintf (why, why_size, "out of memory");
            rc = -1;
            break;
        }
        if (!*kept) {
            snprintf (why, why_size, "%s needs a value", origin);
            rc = -1;
            break;
        }
        if (s_check (self, option, &kept, origin, why, why_size)
        ||  s_record (self, option, kept, DRV_CONF_FROM_FILE, origin, number)) {
            if (!*why)
                snprintf (why, why_size, "out of memory");
            rc = -1;
        }
    }
    free (line);
    free (seen);
    fclose (file);
    return rc;
}

//  Storing ---------------------------------------------------------------------

static int
s_store (drv_conf_t *self, const drv_conf_option_t *option, char *why, size_t why_size)
{
    s_state_t *state = s_state (self, option);
    const char *text = state->text;
    if (!text && option->value && option->type != DRV_CONF_ALIAS) {
        //  Defaults go through the same checks (a wrong table is a bug).
        text = option->value;
        if (s_check (self, option, &text, "default of", why, why_size))
            return -1;
        if (option->type == DRV_CONF_LIST && s_list_add (self, state, text)) {
            snprintf (why, why_size, "out of memory");
            return -1;
        }
        state->text = text;
    }
    if (!option->target)
        return 0;
    int64_t number = 0;
    bool flag = false;
    switch (option->type) {
        case DRV_CONF_STRING:
            *(const char **) option->target = text;
            break;
        case DRV_CONF_U32:
            if (text) {
                s_parse_number (option, text, &number);
                *(uint32_t *) option->target = (uint32_t) number;
            }
            break;
        case DRV_CONF_INT:
            if (text) {
                s_parse_number (option, text, &number);
                *(int *) option->target = (int) number;
            }
            break;
        case DRV_CONF_BOOL:
            if (text)
                s_parse_bool (text, &flag);
            *(bool *) option->target = flag;
            break;
        case DRV_CONF_CHOICE:
            if (text)
                *(int *) option->target = s_parse_choice (option, text);
            break;
        case DRV_CONF_LIST: {
            drv_conf_list_t *list = (drv_conf_list_t *) option->target;
            list->items = state->items;
            list->count = state->item_count;
            break;
        }
        case DRV_CONF_ALIAS:
            break;
    }
    return 0;
}

int
drv_conf_load (drv_conf_t *self, int argc, char **argv, char *why, size_t why_size)
{
    why [0] = 0;
    if (s_load_argv (self, argc, argv, why, why_size))
        return -1;
    if (s_load_env (self, why, why_size))
        return -1;
    const drv_conf_option_t *config = s_find (self, "config", 6);
    if (config && config->type == DRV_CONF_STRING) {
        s_state_t *state = s_state (self, config);
        if (state->text && *state->text
        &&  s_load_file (self, state->text, state->origin, why, why_size))
            return -1;
    }
    for (size_t i = 0; i < self->count; i++)
        if (s_store (self, &self->options [i], why, why_size))
            return -1;
    return 0;
}

drv_conf_source_t
drv_conf_source (drv_conf_t *self, const char *name)
{
    const drv_conf_option_t *option = s_find (self, name, strlen (name));
    return option? s_state (self, option)->source: DRV_CONF_FROM_DEFAULT;
}

const char *
drv_conf_origin (drv_conf_t *self, const char *name)
{
    const drv_conf_option_t *option = s_find (self, name, strlen (name));
    if (!option)
        return "default";
    s_state_t *state = s_state (self, option);
    return state->source == DRV_CONF_FROM_DEFAULT? "default": state->origin;
}

void
drv_conf_clear (drv_conf_t *self, const char *name)
{
    const drv_conf_option_t *option = s_find (self, name, strlen (name));
    if (!option || option->type == DRV_CONF_ALIAS)
        return;
    s_state_t *state = s_state (self, option);
    state->text = NULL;
    state->item_count = 0;
    state->source = DRV_CONF_FROM_DEFAULT;
    state->origin = "default";
    if (!option->target)
        return;
    switch (option->type) {
        case DRV_CONF_STRING: *(const char **) option->target = NULL; break;
        case DRV_CONF_U32:    *(uint32_t *) option->target = 0; break;
        case DRV_CONF_INT:
        case DRV_CONF_CHOICE: *(int *) option->target = 0; break;
        case DRV_CONF_BOOL:   *(bool *) option->target = false; break;
        case DRV_CONF_LIST:
            ((drv_conf_list_t *) option->target)->items = NULL;
            ((drv_conf_list_t *) option->target)->count = 0;
            break;
        case DRV_CONF_ALIAS:  break;
    }
}

//  Printing ---------------------------------------------------------------------

void
drv_conf_print (drv_conf_t *self, FILE *out)
{
    for (size_t i = 0; i < self->count; i++) {
        const drv_conf_option_t *option = &self->options [i];
        if (option->type == DRV_CONF_ALIAS
        ||  (option->flags & (DRV_CONF_FLAG_ONLY | DRV_CONF_NO_FILE)))
            continue;
        s_state_t *state = s_state (self, option);
        if (option->type == DRV_CONF_LIST) {
            if (state->item_count == 0) {
                fprintf (out, "# %s = (not set)\n", option->name);
                continue;
            }
            fprintf (out, "%s = ", option->name);
            for (size_t j = 0; j < state->item_count; j++)
                fprintf (out, "%s%s", j? ",": "", state->items [j]);
            fputc ('\n', out);
            continue;
        }
        if (!state->text) {
            if (option->type == DRV_CONF_BOOL)
                fprintf (out, "%s = false\n", option->name);
            else
                fprintf (out, "# %s = (not set)\n", option->name);
            continue;
        }
        int64_t number;
        bool flag;
        switch (option->type) {
            case DRV_CONF_U32:
            case DRV_CONF_INT:
                s_parse_number (option, state->text, &number);
                if (option->word && number == option->word_value)
                    fprintf (out, "%s = %s\n", option->name, option->word);
                else
                    fprintf (out, "%s = %" PRId64 "\n", option->name, number);
                break;
            case DRV_CONF_BOOL:
                s_parse_bool (state->text, &flag);
                fprintf (out, "%s = %s\n", option->name, flag? "true": "false");
                break;
            default:
                fprintf (out, "%s = %s\n", option->name, state->text);
                break;
        }
    }
}

void
drv_conf_usage (drv_conf_t *self, FILE *out)
{
    for (size_t i = 0; i < self->count; i++) {
        const drv_conf_option_t *option = &self->options [i];
        char flag [80];
        if (option->letter)
            snprintf (flag, sizeof flag, "-%c, --%s%s%s", option->letter, option->name,
                      option->arg? " ": "", option->arg? option->arg: "");
        else
            snprintf (flag, sizeof flag, "    --%s%s%s", option->name,
                      option->arg? " ": "", option->arg? option->arg: "");
        if (strlen (flag) > 24)
            fprintf (out, "  %s\n%-28s", flag, "");
        else
            fprintf (out, "  %-24s  ", flag);
        //  Continuation lines of the help line up under its first.
        for (const char *c = option->help? option->help: ""; *c; c++) {
            fputc (*c, out);
            if (*c == '\n')
                fprintf (out, "%-28s", "");
        }
        char buffer [128];
        const char *env = s_env_name (option, buffer, sizeof buffer);
        bool show_default = option->value && option->type != DRV_CONF_ALIAS
                         && option->type != DRV_CONF_BOOL;
        if (*env || show_default) {
            fprintf (out, "\n%-28s[", "");
            if (*env)
                fprintf (out, "%s", env);
            if (show_default)
                fprintf (out, "%sdefault %s", *env? ", ": "", option->value);
            fputc (']', out);
        }
        fputc ('\n', out);
    }
    (void) self->program;
}
