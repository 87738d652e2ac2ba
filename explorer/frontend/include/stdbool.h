/* Minimal <stdbool.h> for the analyzer (explorer.frontend). */
#ifndef NFX_STDBOOL_H
#define NFX_STDBOOL_H
#define bool _Bool
#define true 1
#define false 0
#endif
