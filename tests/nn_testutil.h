/* nn_testutil.h — helpers shared by the nn and training tests: a tensor's
 * values as float64, a parameter table dumped to a file. Test-only: static
 * functions; include after cmocka.h and tests/testutil.h. */
#ifndef GLOCAL_TESTS_NN_TESTUTIL_H
#define GLOCAL_TESTS_NN_TESTUTIL_H

#include "nn/nn.h"

static inline void to_f64(const nn_tensor *t, double *buf, size_t n)
{
    assert_int_equal(nn_numel(t), (int64_t)n);
    OK(nn_copy_to(t, buf, n * sizeof(double), NN_F64));
}

static inline double item(const nn_tensor *t)
{
    double v;
    OK(nn_item(t, &v));
    return v;
}

/* Every value of p, table order, as float64, written atomically to path
 * (test_read_doubles reads it back). No cmocka asserts: ranks in child
 * processes call it. 0 or a GL_E* code. */
static inline int test_dump_params(const nn_params *p, const char *path)
{
    int64_t total = 0;
    for (int i = 0; i < p->n; i++) total += nn_numel(p->tensors[i]);
    double *buf = gl_malloc((size_t)total * sizeof *buf);
    if (!buf) return GL_ENOMEM;
    int64_t off = 0;
    int rc = 0;
    for (int i = 0; i < p->n && rc == 0; i++) {
        int64_t n = nn_numel(p->tensors[i]);
        rc = nn_copy_to(p->tensors[i], buf + off, (size_t)n * sizeof(double), NN_F64);
        off += n;
    }
    if (rc == 0) rc = gl_write_file_atomic(path, buf, (size_t)total * sizeof *buf);
    gl_free(buf);
    return rc;
}

#endif
