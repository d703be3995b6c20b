/**
 * @file netkit/version.h
 * @brief Compile-time and run-time version of libnetkit.
 */
#ifndef NETKIT_VERSION_H
#define NETKIT_VERSION_H

#include "netkit/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Major version: changes when the ABI breaks (it is the SONAME). */
#define NK_VERSION_MAJOR 0
/** Minor version: new API, compatible ABI. */
#define NK_VERSION_MINOR 1
/** Patch version: fixes only. */
#define NK_VERSION_PATCH 0
/** The version as one number, 0xMMmmpp, for `#if` comparisons. */
#define NK_VERSION_HEX \
    ((NK_VERSION_MAJOR << 16) | (NK_VERSION_MINOR << 8) | NK_VERSION_PATCH)

/**
 * @brief Version of the library actually linked, as NK_VERSION_HEX computes.
 *
 * Compare with NK_VERSION_HEX to detect a header/library mismatch.
 * Safe from any thread and any callback.
 * @return The version as 0xMMmmpp.
 */
NK_API unsigned nk_version(void);

/**
 * @brief Version of the library actually linked, as "MAJOR.MINOR.PATCH".
 * @return A constant string owned by the library. Safe from any thread.
 */
NK_API const char *nk_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
