/**
 * @file netkit/export.h
 * @brief The NK_API marker that exports a function from the shared library.
 */
#ifndef NETKIT_EXPORT_H
#define NETKIT_EXPORT_H

/**
 * @brief Marks a public function. The library is built with
 * `-fvisibility=hidden`, so only functions marked NK_API are exported.
 */
#if defined(__GNUC__) || defined(__clang__)
#define NK_API __attribute__((visibility("default")))
#else
#define NK_API
#endif

#endif
