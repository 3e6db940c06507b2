/* nn_testutil.h — helpers shared by test_nn_ops.c and test_nn_train.c: a
 * tensor's values as float64. Test-only: static functions; include after
 * cmocka.h and tests/testutil.h. */
#ifndef GLOCAL_TESTS_NN_TESTUTIL_H
#define GLOCAL_TESTS_NN_TESTUTIL_H

#include "nn/nn.h"

static void to_f64(const nn_tensor *t, double *buf, size_t n)
{
    assert_int_equal(nn_numel(t), (int64_t)n);
    OK(nn_copy_to(t, buf, n * sizeof(double), NN_F64));
}

static double item(const nn_tensor *t)
{
    double v;
    OK(nn_item(t, &v));
    return v;
}

#endif
