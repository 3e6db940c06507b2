// motion.cpp — motion.c in C++: the header is C++-clean, and the handles fit
// std::unique_ptr with their _close as the deleter.
//   c++ motion.cpp $(pkg-config --cflags --libs glocal) -o motion_cpp
#include <glocal/glocal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

template <class T, void (*Close)(T **)> struct closer {
    void operator()(T *p) const { Close(&p); }
};
using estimator = std::unique_ptr<glocal_estimator, closer<glocal_estimator, glocal_estimator_close>>;
using video = std::unique_ptr<glocal_video, closer<glocal_video, glocal_video_close>>;

static int fail(int rc)
{
    std::fprintf(stderr, "motion_cpp: %s\n", rc == GLOCAL_EOF ? "the video ends before frame J" : glocal_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) return std::fprintf(stderr, "usage: motion_cpp VIDEO MODEL|- I J (I <= J)\n"), 2;
    long i = std::atol(argv[3]), j = std::atol(argv[4]);
    glocal_estimator *pe = nullptr;
    glocal_video *pv = nullptr;
    int w, h, rc;
    if ((rc = glocal_init(0, "cpu")) < 0) return fail(rc);
    rc = glocal_estimator_open(&pe, std::strcmp(argv[2], "-") ? argv[2] : nullptr, 0);
    estimator e(pe);
    if (rc < 0 || (rc = glocal_video_open(&pv, argv[1], 0, 0)) < 0) return fail(rc);
    video v(pv);
    if ((rc = glocal_video_info(v.get(), &w, &h, nullptr, nullptr)) < 0) return fail(rc);
    if (i < 0 || j < i) return std::fprintf(stderr, "motion_cpp: need 0 <= I <= J\n"), 2;
    std::vector<uint8_t> a(size_t(w) * h * 3), b(a.size());
    std::vector<float> local(size_t(2) * w * h);
    if ((rc = glocal_video_skip(v.get(), i)) != 0 || (rc = glocal_video_read(v.get(), a.data())) != 0) return fail(rc);
    if (j == i) b = a;
    else if ((rc = glocal_video_skip(v.get(), j - i - 1)) != 0 || (rc = glocal_video_read(v.get(), b.data())) != 0)
        return fail(rc);
    const uint8_t *pa[] = {a.data()}, *pb[] = {b.data()};
    double H[9], sum = 0;
    if ((rc = glocal_estimate(e.get(), pa, pb, 1, w, h, H, nullptr, local.data(), nullptr, nullptr)) < 0)
        return fail(rc);
    for (size_t p = 0; p < size_t(w) * h; p++) sum += std::hypot(local[p], local[size_t(w) * h + p]);
    std::printf("frames %ld -> %ld of %dx%d\nhomography\n", i, j, w, h);
    for (int r = 0; r < 3; r++) std::printf("  %12.6g %12.6g %12.6g\n", H[3 * r], H[3 * r + 1], H[3 * r + 2]);
    std::printf("mean local motion %.4f px\n", sum / (double(w) * h));
    return 0;
}
