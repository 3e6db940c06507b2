/* testutil.h — small helpers shared by the cmocka test programs. */
#ifndef GLOCAL_TESTUTIL_H
#define GLOCAL_TESTUTIL_H

#include <math.h>
#include <stdio.h>

#include "nn/base.h"

/* cmocka 1.1.5 (Debian 12) has no assert_double_equal: |a - b| <= tol, with
 * both values in the failure message. */
#ifndef assert_double_equal
#define assert_double_equal(a, b, tol)                                                      \
    do {                                                                                    \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                      \
        if (!(fabs(a_ - b_) <= t_)) {                                                       \
            print_error("%s = %.17g, expected %s = %.17g (tolerance %g)\n", #a, a_, #b, b_, \
                        t_);                                                                \
            fail();                                                                         \
        }                                                                                   \
    } while (0)
#endif

/* Asserts a glocal call returned 0; on failure shows the call and its message. */
#define OK(call)                                                                            \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_ != 0) {                                                                     \
            print_error("%s returned %d: %s\n", #call, rc_, gl_last_error());              \
            fail();                                                                         \
        }                                                                                   \
    } while (0)

#endif
