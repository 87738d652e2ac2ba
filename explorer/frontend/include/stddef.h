/* Minimal <stddef.h> for the analyzer (explorer.frontend): real x86-64 widths. */
#ifndef NFX_STDDEF_H
#define NFX_STDDEF_H
typedef unsigned long size_t;
typedef long ptrdiff_t;
#define NULL ((void *)0)
#define offsetof(type, member) ((size_t)&((type *)0)->member)
#endif
