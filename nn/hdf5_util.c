/*
 * hdf5_util.c — the file driver behind gl_h5_fapl_new (hdf5_util.h): POSIX
 * pread/pwrite like HDF5's sec2, except that a failed write is remembered
 * instead of reported to HDF5.
 *
 * Why: when a write fails (a full disk, a file size limit), HDF5 1.10 fails
 * the H5Fclose that flushes its caches, leaves a half-destroyed file behind
 * its ID, and the library's atexit clean-up then dereferences it (glocal
 * extract into a full tmpfs died with SIGSEGV in H5F__close_cb). With this
 * driver every write "succeeds" for HDF5, so every close completes; the first
 * failure's errno is kept, writes after it are dropped (the file is garbage
 * and its writer unlinks it), and the writer asks gl_h5_write_errno /
 * gl_h5_close before it publishes anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/base.h"
#include "nn/hdf5_util.h"

typedef struct {
    H5FD_t pub;     /* first: HDF5 sees an H5FD_t */
    int fd;         /* gl_h5_write_errno finds the struct from &fd (get_handle) */
    haddr_t eoa, eof;
    int err;        /* errno of the first failed write, 0 if none */
    dev_t dev;
    ino_t ino;
} gl_h5fd;

static hid_t g_driver = -1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Thread_local int tls_close_err; /* err of the last file this thread closed */

static H5FD_t *fd_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    (void)fapl;
    if (!name || !*name || maxaddr == 0 || maxaddr == HADDR_UNDEF) return NULL;
    int o = (flags & H5F_ACC_RDWR) ? O_RDWR : O_RDONLY;
    if (flags & H5F_ACC_TRUNC) o |= O_TRUNC;
    if (flags & H5F_ACC_CREAT) o |= O_CREAT;
    if (flags & H5F_ACC_EXCL) o |= O_EXCL;
    int fd = open(name, o | O_CLOEXEC, 0644);
    if (fd < 0) {
        H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_FILE, H5E_CANTOPENFILE,
                 "%s: %s", name, strerror(errno));
        return NULL;
    }
    struct stat st;
    gl_h5fd *f = fstat(fd, &st) == 0 ? gl_calloc(1, sizeof *f) : NULL;
    if (!f) {
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->eof = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return &f->pub;
}

static herr_t fd_close(H5FD_t *file)
{
    gl_h5fd *f = (gl_h5fd *)file;
    if (close(f->fd) < 0 && !f->err) f->err = errno ? errno : EIO;
    tls_close_err = f->err;
    gl_free(f);
    return 0;
}

static int fd_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const gl_h5fd *x = (const gl_h5fd *)a, *y = (const gl_h5fd *)b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static herr_t fd_query(const H5FD_t *file, unsigned long *flags)
{
    (void)file;
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA | H5FD_FEAT_POSIX_COMPAT_HANDLE |
             H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
    return 0;
}

static haddr_t fd_get_eoa(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const gl_h5fd *)file)->eoa;
}

static herr_t fd_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    ((gl_h5fd *)file)->eoa = addr;
    return 0;
}

static haddr_t fd_get_eof(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const gl_h5fd *)file)->eof;
}

static herr_t fd_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    (void)fapl;
    *handle = &((gl_h5fd *)file)->fd;
    return 0;
}

static herr_t fd_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, void *buf)
{
    (void)type;
    (void)dxpl;
    gl_h5fd *f = (gl_h5fd *)file;
    char *p = buf;
    while (size > 0) {
        ssize_t n = pread(f->fd, p, size, (off_t)addr);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_IO, H5E_READERROR,
                     "read failed: %s", strerror(errno));
            return -1;
        }
        if (n == 0) { /* past the end: zeros, as sec2 */
            memset(p, 0, size);
            break;
        }
        p += n;
        addr += (haddr_t)n;
        size -= (size_t)n;
    }
    return 0;
}

static herr_t fd_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                       const void *buf)
{
    (void)type;
    (void)dxpl;
    gl_h5fd *f = (gl_h5fd *)file;
    const char *p = buf;
    if (f->err) return 0; /* the file is already lost: keep HDF5 going to a clean close */
    while (size > 0) {
        ssize_t n = pwrite(f->fd, p, size, (off_t)addr);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            f->err = n < 0 ? errno : ENOSPC;
            return 0;
        }
        p += n;
        addr += (haddr_t)n;
        size -= (size_t)n;
    }
    if (addr > f->eof) f->eof = addr;
    return 0;
}

static herr_t fd_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    (void)dxpl;
    (void)closing;
    gl_h5fd *f = (gl_h5fd *)file;
    if (f->err || f->eoa == f->eof) return 0;
    if (ftruncate(f->fd, (off_t)f->eoa) < 0) {
        f->err = errno;
        return 0;
    }
    f->eof = f->eoa;
    return 0;
}

static herr_t fd_lock(H5FD_t *file, hbool_t rw)
{
    (void)file;
    (void)rw;
    return 0; /* callers hold their own locks (the cache's spool lock) */
}

static herr_t fd_unlock(H5FD_t *file)
{
    (void)file;
    return 0;
}

static const H5FD_class_t g_class = {
    .name = "glocal_posix",
    .maxaddr = (haddr_t)INT64_MAX,
    .fc_degree = H5F_CLOSE_WEAK,
    .open = fd_open,
    .close = fd_close,
    .cmp = fd_cmp,
    .query = fd_query,
    .get_eoa = fd_get_eoa,
    .set_eoa = fd_set_eoa,
    .get_eof = fd_get_eof,
    .get_handle = fd_get_handle,
    .read = fd_read,
    .write = fd_write,
    .truncate = fd_truncate,
    .lock = fd_lock,
    .unlock = fd_unlock,
    .fl_map = { H5FD_MEM_DEFAULT, H5FD_MEM_DEFAULT, H5FD_MEM_DEFAULT, H5FD_MEM_DEFAULT,
                H5FD_MEM_DEFAULT, H5FD_MEM_DEFAULT, H5FD_MEM_DEFAULT },
};

static void register_driver(void)
{
    g_driver = H5FDregister(&g_class);
}

hid_t gl_h5_fapl_new(void)
{
    pthread_once(&g_once, register_driver);
    if (g_driver < 0) return -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_driver(fapl, g_driver, NULL) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

int gl_h5_write_errno(hid_t f)
{
    hid_t fapl = H5Fget_access_plist(f);
    int err = 0;
    void *h = NULL;
    if (fapl < 0) return 0;
    if (g_driver >= 0 && H5Pget_driver(fapl) == g_driver && H5Fget_vfd_handle(f, fapl, &h) >= 0 && h)
        err = ((gl_h5fd *)((char *)h - offsetof(gl_h5fd, fd)))->err;
    H5Pclose(fapl);
    return err;
}

int gl_h5_close(hid_t f, const char *path)
{
    int err = gl_h5_write_errno(f);
    tls_close_err = 0;
    herr_t rc = H5Fclose(f);
    if (!err) err = tls_close_err;
    if (err) return gl_error(GL_EIO, "%s: %s", path, strerror(err));
    if (rc < 0) return gl_error(GL_EHDF5, "%s: cannot close", path);
    return 0;
}
