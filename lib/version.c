#include "netkit/version.h"

#define NK_STR_(x) #x
#define NK_STR(x) NK_STR_(x)

unsigned nk_version(void)
{
    return NK_VERSION_HEX;
}

const char *nk_version_string(void)
{
    return NK_STR(NK_VERSION_MAJOR) "." NK_STR(NK_VERSION_MINOR) "." NK_STR(
        NK_VERSION_PATCH);
}
