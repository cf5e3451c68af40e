// The public header compiles as plain C99 on its own, with -pedantic -Werror.
#include "keel.h"
int keel_header_compiles_as_c(void);
int keel_header_compiles_as_c(void) { return KEEL_OK; }
