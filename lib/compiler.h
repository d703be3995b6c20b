/* Compiler hints for the per-message paths. */
#ifndef NK_LIB_COMPILER_H
#define NK_LIB_COMPILER_H

#if defined(__GNUC__) || defined(__clang__)
/* A rarely taken path kept out of line: the hot caller that no longer
 * inlines it saves fewer registers on every call. */
#define NK__COLD __attribute__((noinline, cold))
#define NK__NOINLINE __attribute__((noinline))
#define NK__LIKELY(x) __builtin_expect(!!(x), 1)
#define NK__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define NK__COLD
#define NK__NOINLINE
#define NK__LIKELY(x) (x)
#define NK__UNLIKELY(x) (x)
#endif

#endif
