/*
 * hdf5_util.h — keeping HDF5 quiet, for every module that reads or writes
 * HDF5 (checkpoints in nn/, the motion cache and synthetic ground truth in
 * datasets/, model configs in motion/ and recognition/).
 *
 * HDF5 prints its error stack to stderr by default, and library code never
 * prints: each entry point that calls HDF5 turns the printing off for the
 * calling thread (HDF5's thread-safe build keeps one setting per thread) and
 * reports failures itself as GL_EHDF5 / GL_EFORMAT with a message.
 *
 * A full disk: gl_h5_fapl_new's driver keeps HDF5 from ever seeing a failed
 * write (HDF5 1.10 then leaves a half-closed file that crashes the process
 * at exit); writers check gl_h5_write_errno / gl_h5_close before publishing.
 *
 * The quiet functions are inline: glocal_base (nn/base.c) is linked by every
 * module and must not pull in HDF5, and datasets/ may not link glocal_nn
 * (libtorch); the driver lives in its own small library, glocal_h5
 * (nn/hdf5_util.c), linked by both.
 */
#ifndef GLOCAL_NN_HDF5_UTIL_H
#define GLOCAL_NN_HDF5_UTIL_H

#include <hdf5.h>

/* The caller's error printing, to put back when done. */
typedef struct {
    H5E_auto2_t fn;
    void *data;
} gl_h5_quiet;

/* Turns HDF5's error printing off on this thread until gl_h5_quiet_end(q). */
static inline gl_h5_quiet gl_h5_quiet_begin(void)
{
    gl_h5_quiet q = { NULL, NULL };
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static inline void gl_h5_quiet_end(gl_h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.fn, q.data); }

/* Turns HDF5's error printing off on this thread for good: for a module
 * (the motion cache) whose every entry point calls this first and whose
 * handles live across calls, so there is no single place to restore it. */
static inline void gl_h5_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* A file access property list (H5Pclose it) for files we write: POSIX I/O
 * whose failed writes are remembered rather than reported to HDF5, so the
 * file always closes cleanly. -1 when HDF5 refuses. */
hid_t gl_h5_fapl_new(void);
/* errno of the first failed write to the open file f (made with
 * gl_h5_fapl_new), 0 when none (or another driver). */
int gl_h5_write_errno(hid_t f);
/* H5Fclose(f), then 0, or GL_EIO "PATH: No space left on device" (the first
 * failed write's errno, or close's), or GL_EHDF5 when HDF5 failed. Objects
 * of f still open delay the real close: close them first. */
int gl_h5_close(hid_t f, const char *path);

#endif
