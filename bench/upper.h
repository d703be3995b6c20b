/* The job every benchmark server does is the examples' own uppercasing
 * (examples/upper.h), so libnetkit's examples and the peers do identical
 * work. */
#include "../examples/upper.h"
