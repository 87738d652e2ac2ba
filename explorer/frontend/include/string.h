/* Minimal <string.h> for the analyzer (explorer.frontend): the three functions NFs may call. */
#ifndef NFX_STRING_H
#define NFX_STRING_H
#include <stddef.h>
void *memcpy(void *dest, const void *src, size_t n);
void *memset(void *s, int c, size_t n);
int memcmp(const void *s1, const void *s2, size_t n);
#endif
