/* no_process: a test NF that forgot nf_process. */
#include "nf.h"
bool nf_init(void) { return true; }
