/*  plugin.h - loads a --plugin handler from a shared library (internal).

    The library sees the SDK's drover_job_* functions from the
    drover-worker executable itself (it is linked with exported symbols),
    so a plugin needs to link nothing.
*/
#ifndef PLUGIN_H_INCLUDED
#define PLUGIN_H_INCLUDED

#include "drover.h"
#include <stddef.h>

//  A loaded plugin: the library and the handler found in it.
typedef struct {
    void *library;              //  dlopen handle
    drover_handler_fn *handler; //  the symbol, as a handler
} plugin_t;

//  Loads spec ("path/lib.so:symbol"; the last ':' separates the symbol).
//  A path without '/' that names an existing file is taken relative to the
//  current directory, not searched for in the system's library path.
//  Returns 0 and fills self, or -1 with a one-line reason in why.
int plugin_load (plugin_t *self, const char *spec, char *why, size_t why_size);

//  Unloads the library. Harmless on a zeroed or unloaded plugin.
void plugin_unload (plugin_t *self);

#endif
