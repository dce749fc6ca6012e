/*  plugin.c - loads a --plugin handler from a shared library (internal).
*/
#include "plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
plugin_load (plugin_t *self, const char *spec, char *why, size_t why_size)
{
    memset (self, 0, sizeof *self);
    const char *colon = spec ? strrchr (spec, ':') : NULL;
    if (!colon || colon == spec || colon [1] == 0) {
        snprintf (why, why_size, "--plugin wants LIBRARY:SYMBOL, got '%s'", spec ? spec : "");
        return -1;
    }
    size_t path_len = (size_t) (colon - spec);
    char *path = malloc (path_len + 3);
    if (!path) {
        snprintf (why, why_size, "out of memory");
        return -1;
    }
    //  dlopen("x.so") searches LD_LIBRARY_PATH and the system directories,
    //  never the current one; users mean the file they can see.
    memcpy (path, spec, path_len);
    path [path_len] = 0;
    if (!memchr (spec, '/', path_len) && access (path, F_OK) == 0) {
        memmove (path + 2, path, path_len + 1);
        memcpy (path, "./", 2);
    }
    //  RTLD_NOW: a missing symbol inside the plugin shows up here, as a
    //  usage error, not as a crash in the middle of a job.
    dlerror ();
    self->library = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    free (path);
    if (!self->library) {
        const char *error = dlerror ();
        snprintf (why, why_size, "cannot load plugin: %s", error ? error : spec);
        return -1;
    }
    const char *symbol = colon + 1;
    dlerror ();
    void *address = dlsym (self->library, symbol);
    const char *error = dlerror ();
    if (error || !address) {
        snprintf (why, why_size, "plugin %.*s has no symbol '%s'", (int) path_len, spec, symbol);
        plugin_unload (self);
        return -1;
    }
    //  POSIX guarantees this conversion works for dlsym results.
    *(void **) &self->handler = address;
    return 0;
}

void
plugin_unload (plugin_t *self)
{
    if (self->library)
        dlclose (self->library);
    self->library = NULL;
    self->handler = NULL;
}
