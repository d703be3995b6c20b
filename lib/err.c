/* Sentences and names for every code: the library's table, then errno. */
#include <errno.h>
#include <string.h>

#include "netkit/error.h"

const char *nk_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define NK_ERROR_TEXT_(name, value, text) \
    case value:                           \
        return text;
        NK_ERROR_MAP(NK_ERROR_TEXT_)
#undef NK_ERROR_TEXT_
    default:
        break;
    }
    /* strerrordesc_np returns a constant string (no shared buffer, unlike
     * strerror), or NULL for a number errno does not know. */
    if (code < 0 && code > -4096) {
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return "unknown error code";
}

const char *nk_err_name(int code)
{
    switch (code) {
    case 0:
        return "OK";
#define NK_ERROR_NAME_(name, value, text) \
    case value:                           \
        return #name;
        NK_ERROR_MAP(NK_ERROR_NAME_)
#undef NK_ERROR_NAME_
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        const char *s = strerrorname_np(-code);
        if (s)
            return s;
    }
    return "UNKNOWN";
}
